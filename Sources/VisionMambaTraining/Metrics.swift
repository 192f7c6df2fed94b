import Foundation
import MambaIO

/// One line of metrics.jsonl: what an epoch did.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var valLoss: Double
    public var top1: Double
    public var top5: Double
    public var lr: Double
    public var imagesPerSecond: Double
    public var epochSeconds: Double
    public var peakRSSMiB: Double
    /// Peak bytes of live tensors during the epoch (MiB).
    public var peakTensorMiB: Double? = nil
    /// Tokens each block's mixer saw (Famba-V fusion), when fusion is on.
    public var tokens: [Int]? = nil
    /// DyVM: fraction of scan directions the gates left on in validation.
    public var directionRate: Double? = nil

    enum CodingKeys: String, CodingKey {
        case epoch, lr, top1, top5
        case trainLoss = "train_loss", valLoss = "val_loss"
        case imagesPerSecond = "images_per_second", epochSeconds = "epoch_seconds", peakRSSMiB = "peak_rss_mib"
        case peakTensorMiB = "peak_tensor_mib", tokens, directionRate = "direction_rate"
    }
}

enum MetricsWriter {
    /// metrics.jsonl (one JSON object per epoch) and learning-curve.svg, both rewritten whole and
    /// atomically from the run's history, so a resumed run never repeats or loses a line.
    static func write(_ history: [EpochMetrics], to directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var text = ""
        for m in history { text += String(decoding: try encoder.encode(m), as: UTF8.self) + "\n" }
        try writeAtomically(Data(text.utf8), to: directory + "/metrics.jsonl")
        try writeAtomically(Data(learningCurveSVG(history).utf8), to: directory + "/learning-curve.svg")
    }

    /// Train and validation loss (left axis) and top-1 accuracy (right axis, %) against epoch.
    static func learningCurveSVG(_ history: [EpochMetrics]) -> String {
        let (w, h, left, right, top, bottom) = (640.0, 400.0, 60.0, 60.0, 30.0, 50.0)
        let plotW = w - left - right, plotH = h - top - bottom
        let epochs = history.map { Double($0.epoch + 1) }
        let maxEpoch = max(epochs.max() ?? 1, 1)
        let maxLoss = max(history.flatMap { [$0.trainLoss, $0.valLoss] }.filter(\.isFinite).max() ?? 1, 1e-6)
        func x(_ e: Double) -> Double { left + plotW * e / maxEpoch }
        func yLoss(_ l: Double) -> Double { top + plotH * (1 - l / maxLoss) }
        func yAcc(_ a: Double) -> Double { top + plotH * (1 - a / 100) }
        func path(_ values: [Double], _ y: (Double) -> Double) -> String {
            zip(epochs, values).enumerated().map { i, p in "\(i == 0 ? "M" : "L")\(String(format: "%.1f", x(p.0))),\(String(format: "%.1f", y(p.1)))" }.joined(separator: " ")
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#888\"/>\n"
        for i in 0...4 {
            let f = Double(i) / 4
            s += "<text x=\"\(left - 6)\" y=\"\(yLoss(maxLoss * f) + 4)\" text-anchor=\"end\">\(String(format: "%.2f", maxLoss * f))</text>\n"
            s += "<text x=\"\(left + plotW + 6)\" y=\"\(yAcc(100 * f) + 4)\">\(Int(100 * f))%</text>\n"
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(h - 15)\" text-anchor=\"middle\">epoch (of \(Int(maxEpoch)))</text>\n"
        if !history.isEmpty {
            s += "<path d=\"\(path(history.map(\.trainLoss), yLoss))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n"
            s += "<path d=\"\(path(history.map(\.valLoss), yLoss))\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>\n"
            s += "<path d=\"\(path(history.map(\.top1), yAcc))\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"2\"/>\n"
        }
        s += "<text x=\"\(left + 8)\" y=\"\(top - 10)\" fill=\"#1f77b4\">train loss</text>"
        s += "<text x=\"\(left + 90)\" y=\"\(top - 10)\" fill=\"#ff7f0e\">val loss</text>"
        s += "<text x=\"\(left + 160)\" y=\"\(top - 10)\" fill=\"#2ca02c\">val top-1 (right axis)</text>\n</svg>\n"
        return s
    }
}
