import Foundation
import MambaIO
import VisionMambaModels

/// Trains the same model and data under no fusion and the four Famba-V strategies at a matched
/// token budget (about the same r × fusing blocks, as the official scripts: all r, interleave 2r,
/// and lower/upper over three quarters of the blocks with r·4/3), then writes a markdown table
/// and an SVG of validation top-1 against training time.
package struct FusionStudy {
    package struct Row: Sendable {
        package var strategy: TokenFusion.Strategy
        package var fusion: TokenFusion?
        package var schedule: [Int]
        package var secondsPerEpoch: Double
        package var peakTensorMiB: Double
        package var top1: Double
        package var history: [EpochMetrics]
    }

    package let base: TrainOptions
    package let tokens: Int
    package let preserveOrder: Bool
    package let outputDir: String
    package let overwrite: Bool

    /// `overwrite` lets the arms replace runs already in their folders (refused otherwise).
    package init(base: TrainOptions, tokens: Int, preserveOrder: Bool = false, outputDir: String, overwrite: Bool = false) throws {
        try base.validate()
        guard (1...(1 << 30)).contains(tokens) else {
            throw TrainingError.invalidOption(name: "tokens", value: "\(tokens)", allowed: "1...\(1 << 30)")
        }
        self.base = base
        self.tokens = tokens
        self.preserveOrder = preserveOrder
        self.outputDir = outputDir
        self.overwrite = overwrite
        // Every arm's r (2r for interleave) must fit the model before the first arm trains.
        for (_, fusion) in arms() {
            var model = base.model
            model.fusion = fusion
            try model.validate()
        }
    }

    /// (strategy, fusion) for each arm of the study, with the paper's meaning of lower and upper.
    package func arms() -> [(TokenFusion.Strategy, TokenFusion?)] {
        let depth = base.model.depth, quarter = depth / 4
        let r34 = Int((Double(tokens) * Double(depth) / Double(depth - quarter)).rounded())
        func fusion(_ blocks: [Int], _ r: Int) -> TokenFusion { TokenFusion(blocks: blocks, tokens: r, preserveOrder: preserveOrder) }
        return [
            (.none, nil),
            (.all, fusion(Array(0..<depth), tokens)),
            (.interleave, fusion((0..<depth).filter { $0 % 2 == 1 }, 2 * tokens)),
            (.lower, fusion(Array(0..<(depth - quarter)), r34)),
            (.upper, fusion(Array(quarter..<depth), r34)),
        ]
    }

    package func run(events: @escaping (TrainingEvent) -> Void = { _ in }) throws -> [Row] {
        var rows: [Row] = []
        for (strategy, fusion) in arms() {
            var options = base
            options.model.fusion = fusion
            let dir = outputDir + "/" + strategy.rawValue
            try? FileManager.default.removeItem(atPath: dir)
            events(.note("== \(strategy.rawValue): fused blocks \(fusion?.blocks.map(String.init).joined(separator: ",") ?? "none"), r = \(fusion?.tokens ?? 0)"))
            let history = try ClassificationTrainer(options: options, outputDir: dir, overwrite: overwrite, events: events).run()
            rows.append(Row(strategy: strategy, fusion: fusion, schedule: options.model.tokenSchedule,
                            secondsPerEpoch: median(history.map(\.epochSeconds)),
                            peakTensorMiB: history.compactMap(\.peakTensorMiB).max() ?? 0,
                            top1: history.last?.top1 ?? 0, history: history))
        }
        try writeAtomically(Data(markdown(rows).utf8), to: outputDir + "/fusion-study.md")
        try writeAtomically(Data(Self.svg(rows).utf8), to: outputDir + "/fusion-study.svg")
        return rows
    }

    /// The median epoch time: the first epoch of an arm also pays for warming caches and pages.
    func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    package func markdown(_ rows: [Row]) -> String {
        let baseRow = rows.first { $0.strategy == .none }
        var s = "| strategy | fused blocks | r | tokens per block | Σ token·layers | s / epoch | Δ time | peak tensor MiB | Δ memory | final top-1 |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let blocks = r.fusion.map { $0.blocks.isEmpty ? "none" : compact($0.blocks) } ?? "none"
            let dt = baseRow.map { String(format: "%+.1f%%", 100 * (r.secondsPerEpoch / $0.secondsPerEpoch - 1)) } ?? "-"
            let dm = baseRow.map { String(format: "%+.1f%%", 100 * (r.peakTensorMiB / $0.peakTensorMiB - 1)) } ?? "-"
            s += "| \(r.strategy.rawValue) | \(blocks) | \(r.fusion?.tokens ?? 0) | \(r.schedule.map(String.init).joined(separator: " ")) | \(r.schedule.reduce(0, +)) | "
            s += String(format: "%.2f | %@ | %.1f | %@ | %.2f%% |\n", r.secondsPerEpoch, dt, r.peakTensorMiB, dm, r.top1)
        }
        return s
    }

    func compact(_ blocks: [Int]) -> String {
        var parts: [String] = [], i = 0
        while i < blocks.count {
            var j = i
            while j + 1 < blocks.count && blocks[j + 1] == blocks[j] + 1 { j += 1 }
            parts.append(j > i + 1 ? "\(blocks[i])–\(blocks[j])" : (i...j).map { String(blocks[$0]) }.joined(separator: ","))
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// Validation top-1 against cumulative training time, one line per strategy.
    package static func svg(_ rows: [Row]) -> String {
        let maxT = max(rows.map { $0.history.map(\.epochSeconds).reduce(0, +) }.max() ?? 1, 1e-3)
        let colors = ["#333333", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
        let series = rows.enumerated().map { k, r -> LinePlot.Series in
            var t = 0.0
            let points = r.history.map { m -> (x: Double, y: Double) in
                t += m.epochSeconds
                return (t, m.top1)
            }
            return .init(name: r.strategy.rawValue, color: colors[k % colors.count], points: points)
        }
        return LinePlot(x: .init(title: "training time (s)", max: maxT, label: { String(format: "%.0f", $0) }),
                        y: .init(title: "validation top-1 (%)", max: 100, label: { "\(Int($0))%" }),
                        series: series).svg()
    }
}
