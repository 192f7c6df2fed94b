import Foundation
import MambaIO
import MambaTensor
import VisionMambaModels

/// The Vim paper's high-resolution comparison in this engine: the Vim-T and DeiT-T segmentation
/// backbones with their feature pyramids (untrained weights, evaluation mode), batch inference
/// at several image sizes. Per model and size: the time of a batch-1 forward pass, its peak of
/// live tensors (parameters, input and activations: what PyTorch reports as
/// `max_memory_allocated`), and the largest batch whose peak fits a memory budget, extrapolated
/// from the growth of the peak between batches 1 and 2 (an estimate, not a measurement).
package struct ResolutionStudy {
    package enum Model: String, CaseIterable, Sendable {
        /// `upernet-vim-tiny`'s backbone: 24 Vim blocks, features after 5, 11, 17, 23.
        case vimTiny = "vim-tiny"
        /// `upernet-deit-tiny`'s backbone: 12 DeiT blocks, features after 3, 5, 7, 11.
        case deitTiny = "deit-tiny"
    }

    package struct Row: Sendable {
        package var model: Model
        /// The size asked for and the size run: a multiple of 32 at most the request.
        package var requestedSize: Int, size: Int
        package var tokens: Int
        /// Median seconds of a batch-1 forward pass over the repeats.
        package var seconds: Double
        package var imagesPerSecond: Double { seconds > 0 ? 1 / seconds : 0 }
        /// Peak live tensor bytes of a batch-1 and a batch-2 pass.
        package var peakBytes: Int, peakBytesBatch2: Int
        /// The growth of the peak per image, and what the fixed part is.
        package var bytesPerImage: Int { max(peakBytesBatch2 - peakBytes, 0) }
        package var fixedBytes: Int { peakBytes - bytesPerImage }
        /// The measured pass at the study's large batch: seconds per image and peak bytes.
        package var large: (batch: Int, secondsPerImage: Double, peakBytes: Int)? = nil
        /// Estimated peak for `batch` images.
        package func estimatedBytes(batch: Int) -> Int { fixedBytes + batch * bytesPerImage }
        /// The largest batch whose estimated peak stays within `budget` (0 when not even one).
        package func largestBatch(budget: Int) -> Int {
            guard bytesPerImage > 0 else { return peakBytes <= budget ? Int.max : 0 }
            return max(0, (budget - fixedBytes) / bytesPerImage)
        }
    }

    package let sizes: [Int]
    package let repeats: Int
    package let models: [Model]
    package let memoryBudget: Int
    /// A batch measured once per model and size beside batch 1 (nil: none).
    package let largeBatch: Int?
    package let outputDir: String
    package let overwrite: Bool

    /// The budget's default is the 16 GiB of the paper's comparison.
    package init(sizes: [Int] = [512, 640, 738, 1024, 1248], repeats: Int = 2, models: [Model] = Model.allCases,
                memoryBudget: Int = 16 << 30, largeBatch: Int? = nil, outputDir: String, overwrite: Bool = false) throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ (32...4096).contains($0) }) else {
            throw TrainingError.invalidOption(name: "sizes", value: sizes.map(String.init).joined(separator: ","), allowed: "one or more sizes in 32...4096 px")
        }
        guard (1...1000).contains(repeats) else { throw TrainingError.invalidOption(name: "repeats", value: "\(repeats)", allowed: "1...1000") }
        guard !models.isEmpty else { throw TrainingError.invalidOption(name: "models", value: "none", allowed: "vim-tiny, deit-tiny") }
        guard memoryBudget > 0 else { throw TrainingError.invalidOption(name: "memory budget", value: "\(memoryBudget)", allowed: "positive") }
        if let largeBatch, !(2...4096).contains(largeBatch) {
            throw TrainingError.invalidOption(name: "batch", value: "\(largeBatch)", allowed: "2...4096")
        }
        self.largeBatch = largeBatch
        (self.sizes, self.repeats, self.models, self.memoryBudget) = (sizes, repeats, models, memoryBudget)
        (self.outputDir, self.overwrite) = (outputDir, overwrite)
    }

    package var markdownPath: String { outputDir + "/resolution-study.md" }
    package var svgPath: String { outputDir + "/resolution-study.svg" }

    /// Both backbones run on a 16-px patch grid that the pyramid pools by 2: a size becomes the
    /// multiple of 32 at or below it. 738 (the paper's) runs as 736, a 46 × 46 grid: the grid the
    /// official code gets at 738, whose stride-16 patch conv leaves out the last 2 pixels.
    package static func runSize(_ requested: Int) -> Int { requested / 32 * 32 }

    /// Measures every model at every size (smallest first), then writes the table and the chart.
    /// Refuses, before measuring, to replace another run's files without `overwrite`.
    package func run(events: (TrainingEvent) -> Void = { _ in }) throws -> [Row] {
        // Every pass must fit this machine (the batch-2 or the large pass is the largest), before any runs.
        let largest = max(2, largeBatch ?? 2)
        for size in sizes.map(Self.runSize) {
            var deit = try ModelZoo.deitBackbone(named: "upernet-deit-tiny").backbone
            deit.imgSize = size
            if models.contains(.deitTiny) { try deit.checkFitsInMemory(batch: largest) }
            var vim = try ModelZoo.segmentationEntry(named: "upernet-vim-tiny").config.backbone
            vim.imgSize = size
            if models.contains(.vimTiny) { try vim.checkFitsInMemory(batch: largest, training: false) }
        }
        if !overwrite {
            for path in [markdownPath, svgPath] where FileManager.default.fileExists(atPath: path) {
                throw TrainingError.outputHoldsStudy(path: path)
            }
        }
        do { try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true) }
        catch { throw TrainingError.outputNotWritable(path: outputDir) }
        var rows: [Row] = []
        for requested in sizes.sorted() {
            for model in models {
                events(.note("\(model.rawValue) at \(Self.runSize(requested)) px"))
                rows.append(try measure(model, requestedSize: requested))
            }
        }
        try writeAtomically(Data(markdown(rows).utf8), to: markdownPath)
        try writeAtomically(Data(svg(rows).utf8), to: svgPath)
        return rows
    }

    /// One model at one size: a warm-up pass, `repeats` timed batch-1 passes, one batch-2 pass.
    package func measure(_ model: Model, requestedSize: Int) throws -> Row {
        let size = Self.runSize(requestedSize)
        let baseline = TensorMemory.liveBytes
        let (forward, tokens) = try Self.backbone(model, size: size)
        func images(_ batch: Int) throws -> Tensor {
            var rng = SeededGenerator(seed: 1)
            let t = try Tensor(shape: [batch, 3, size, size], values: (0..<(batch * 3 * size * size)).map { _ in Float(rng.normal()) })
            t.requiresGrad = false
            return t
        }
        func peak(batch: Int) throws -> Int {
            let input = try images(batch)
            TensorMemory.resetPeak()
            _ = try forward(input)
            return TensorMemory.peakBytes - baseline
        }
        let one = try images(1)
        _ = try forward(one)                                   // warm-up: the buffer pool and pages
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try forward(one)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        var row = Row(model: model, requestedSize: requestedSize, size: size, tokens: tokens, seconds: median,
                      peakBytes: try peak(batch: 1), peakBytesBatch2: try peak(batch: 2))
        if let largeBatch {
            let input = try images(largeBatch)
            _ = try forward(input)                             // warm-up at this batch: its pages
            TensorMemory.resetPeak()
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try forward(input)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            row.large = (largeBatch, seconds / Double(largeBatch), TensorMemory.peakBytes - baseline)
        }
        return row
    }

    /// The backbone at `size` with seeded untrained weights: its forward pass to the four pyramid
    /// features (evaluation mode, no tape) and the tokens its blocks see.
    static func backbone(_ model: Model, size: Int) throws -> (forward: (Tensor) throws -> Void, tokens: Int) {
        switch model {
        case .vimTiny:
            var c = try ModelZoo.segmentationEntry(named: "upernet-vim-tiny").config
            c.backbone.imgSize = size
            let net = try SegmentationBackbone(config: c)
            net.resetParameters(seed: 0)
            return ({ _ = try net($0) }, c.backbone.numPatches)
        case .deitTiny:
            var c = try ModelZoo.deitBackbone(named: "upernet-deit-tiny")
            c.backbone.imgSize = size
            let net = try DeiTSegmentationBackbone(config: c)
            net.resetParameters(seed: 0)
            return ({ _ = try net($0) }, c.backbone.tokens)
        }
    }

    static func title(_ model: Model) -> String { model == .vimTiny ? "Vim-T" : "DeiT-T" }

    /// The batch the paper's comparison is made at is unknown; 64 is shown beside batch 1.
    static let largeBatch = 64

    package func markdown(_ rows: [Row]) -> String {
        func mib(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1_048_576) }
        let budget = String(format: "%g GiB", Double(memoryBudget) / Double(1 << 30))
        var s = "# Resolution study: Vim-T and DeiT-T backbones with their feature pyramids\n\n"
        s += "Batch inference of the segmentation backbones (Vim-T: `upernet-vim-tiny`, 24 blocks; DeiT-T: "
        s += "`upernet-deit-tiny`, 12 blocks, 3 heads) to their four pyramid features, untrained weights, evaluation mode, "
        s += "float32 on \(Parallel.threads) thread(s). Time: median of \(repeats) batch-1 passes after a warm-up. "
        s += "Peak: the largest total of live tensors during one pass (parameters, input and activations; what PyTorch "
        s += "reports as max_memory_allocated), measured at batch 1 and 2. The per-image growth between them gives the "
        s += "largest batch within \(budget) and the memory at batch \(Self.largeBatch): both are linear extrapolations, "
        s += "estimates rather than measurements. DeiT-T's attention holds the probabilities of every head, "
        s += "[B, 3, T, T], as timm's eager attention does.\n"
        if rows.contains(where: { $0.size != $0.requestedSize }) {
            s += "\nA size that is not a multiple of 32 runs at the multiple of 32 below it (both pyramids pool the 16-px "
            s += "patch grid by 2): 738 px runs as 736 px, the 46 × 46 grid that the official code gets at 738 px, "
            s += "whose stride-16 patch conv leaves out the last 2 pixels.\n"
        }
        s += "\n| size | run at | model | tokens | ms / image | images/s | peak MiB, batch 1 | MiB per extra image | "
        s += "largest batch in \(budget) (est.) | MiB at batch \(Self.largeBatch) (est.) |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let largest = r.largestBatch(budget: memoryBudget)
            s += "| \(r.requestedSize) | \(r.size) | \(Self.title(r.model)) | \(r.tokens) | "
            s += String(format: "%.1f | %.3f | ", 1000 * r.seconds, r.imagesPerSecond)
            s += "\(mib(r.peakBytes)) | \(mib(r.bytesPerImage)) | \(largest == Int.max ? "unbounded" : String(largest)) | "
            s += "\(mib(r.estimatedBytes(batch: Self.largeBatch))) |\n"
        }
        let pairs = Dictionary(grouping: rows, by: \.requestedSize).compactMap { size, rs -> (Int, Row, Row)? in
            guard let v = rs.first(where: { $0.model == .vimTiny }), let d = rs.first(where: { $0.model == .deitTiny }) else { return nil }
            return (size, v, d)
        }.sorted { $0.0 < $1.0 }
        let measured = rows.compactMap { r in r.large.map { (r, $0) } }
        if let batch = measured.first?.1.batch {
            s += "\nMeasured at batch \(batch) (one pass each, after a warm-up pass at that batch):\n\n| size | model | ms / image | images/s | peak MiB |\n|---|---|---|---|---|\n"
            for (r, l) in measured {
                s += "| \(r.requestedSize) | \(Self.title(r.model)) | " + String(format: "%.1f | %.3f | ", 1000 * l.secondsPerImage, 1 / max(l.secondsPerImage, 1e-12))
                s += "\(mib(l.peakBytes)) |\n"
            }
        }
        if !pairs.isEmpty {
            s += "\n| size | Vim-T images/s ÷ DeiT-T images/s | memory Vim-T saves, batch 1 | memory Vim-T saves, batch \(Self.largeBatch) (est.) |\n"
            s += "|---|---|---|---|\n"
            for (size, v, d) in pairs {
                let saved1 = 100 * (1 - Double(v.peakBytes) / Double(max(d.peakBytes, 1)))
                let savedN = 100 * (1 - Double(v.estimatedBytes(batch: Self.largeBatch)) / Double(max(d.estimatedBytes(batch: Self.largeBatch), 1)))
                s += String(format: "| %d | %.2f× | %.1f%% | %.1f%% |\n", size, d.seconds / max(v.seconds, 1e-12), saved1, savedN)
            }
            let both = pairs.compactMap { size, v, d in v.large.flatMap { vl in d.large.map { (size, vl, $0) } } }
            if let batch = both.first?.1.batch {
                s += "\n| size | Vim-T images/s ÷ DeiT-T images/s, batch \(batch) | memory Vim-T saves, batch \(batch) (measured) |\n|---|---|---|\n"
                for (size, v, d) in both {
                    s += String(format: "| %d | %.2f× | %.1f%% |\n", size, d.secondsPerImage / max(v.secondsPerImage, 1e-12),
                                100 * (1 - Double(v.peakBytes) / Double(max(d.peakBytes, 1))))
                }
            }
        }
        return s
    }

    /// Time per image (left axis) and batch-1 peak memory (right axis) against the image size.
    package func svg(_ rows: [Row]) -> String {
        var series: [LinePlot.Series] = []
        let colors: [Model: String] = [.vimTiny: "#1f77b4", .deitTiny: "#d62728"]
        for model in models {
            let rs = rows.filter { $0.model == model }.sorted { $0.size < $1.size }
            series.append(.init(name: "\(Self.title(model)) ms/image", color: colors[model]!, points: rs.map { (Double($0.size), 1000 * $0.seconds) }))
            series.append(.init(name: "\(Self.title(model)) peak MiB", color: colors[model]! + "99",
                                points: rs.map { (Double($0.size), Double($0.peakBytes) / 1_048_576) }, right: true))
        }
        let maxSize = Double(rows.map(\.size).max() ?? 1), maxMs = 1000 * (rows.map(\.seconds).max() ?? 1)
        let maxMiB = Double(rows.map(\.peakBytes).max() ?? 1) / 1_048_576
        return LinePlot(x: .init(title: "image size (px)", max: maxSize * 1.05, label: { String(format: "%.0f", $0) }),
                        y: .init(title: "ms per image, batch 1", max: maxMs * 1.1, label: { String(format: "%.0f", $0) }),
                        rightY: .init(title: "peak MiB, batch 1", max: maxMiB * 1.1, label: { String(format: "%.0f", $0) }),
                        series: series).svg()
    }
}
