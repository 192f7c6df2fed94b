import Foundation
import MambaIO

/// One line of metrics.jsonl: what an epoch did.
public struct EpochMetrics: Codable, Equatable, Sendable {
    /// The epoch, from 0.
    public var epoch: Int
    /// Mean training loss over the epoch.
    public var trainLoss: Double
    /// Mean cross-entropy on the validation split.
    public var valLoss: Double
    /// Validation top-1 accuracy in percent.
    public var top1: Double
    /// Validation top-5 accuracy in percent.
    public var top5: Double
    /// The epoch's learning rate.
    public var lr: Double
    /// Training images per second over the epoch.
    public var imagesPerSecond: Double
    /// The epoch's training time in seconds (without evaluation).
    public var epochSeconds: Double
    /// The process's peak resident memory in MiB so far.
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
    /// One JSON object per line, keys sorted, written whole and atomically.
    static func writeLines<Line: Encodable>(_ lines: [Line], to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var text = ""
        for line in lines { text += String(decoding: try encoder.encode(line), as: UTF8.self) + "\n" }
        try writeAtomically(Data(text.utf8), to: path)
    }

    /// metrics.jsonl (one JSON object per epoch) and learning-curve.svg, both rewritten whole and
    /// atomically from the run's history, so a resumed run never repeats or loses a line.
    static func write(_ history: [EpochMetrics], to directory: String) throws {
        try writeLines(history, to: directory + "/metrics.jsonl")
        try writeAtomically(Data(learningCurveSVG(history).utf8), to: directory + "/learning-curve.svg")
    }

    /// A segmentation run's metrics.jsonl (one object per evaluation) and learning-curve.svg.
    static func write(segmentation history: [SegmentationEvalMetrics], to directory: String) throws {
        try writeLines(history, to: directory + "/metrics.jsonl")
        let maxIteration = Double(max(history.map(\.iteration).max() ?? 1, 1))
        let maxLoss = max(history.map(\.trainLoss).filter(\.isFinite).max() ?? 1, 1e-6)
        let svg = LinePlot(
            x: .init(title: "iteration", max: maxIteration, integer: true, label: { String(Int($0)) }),
            y: .init(title: "train loss (decode + 0.4 · auxiliary)", max: maxLoss, label: { String(format: "%.2f", $0) }),
            rightY: .init(title: "validation mIoU (%)", max: 100, label: { "\(Int($0))%" }),
            series: [.init(name: "train loss", color: "#1f77b4", points: history.map { (Double($0.iteration), $0.trainLoss) }),
                     .init(name: "val mIoU (right axis)", color: "#2ca02c", points: history.map { (Double($0.iteration), $0.valMIoU) }, right: true)]
        ).svg()
        try writeAtomically(Data(svg.utf8), to: directory + "/learning-curve.svg")
    }

    /// Train and validation loss (left axis) and top-1 accuracy (right axis, %) against epoch.
    static func learningCurveSVG(_ history: [EpochMetrics]) -> String {
        let maxEpoch = Double(max(history.map { $0.epoch + 1 }.max() ?? 1, 1))
        let maxLoss = max(history.flatMap { [$0.trainLoss, $0.valLoss] }.filter(\.isFinite).max() ?? 1, 1e-6)
        func points(_ value: (EpochMetrics) -> Double) -> [(x: Double, y: Double)] {
            history.map { (Double($0.epoch + 1), value($0)) }
        }
        return LinePlot(
            x: .init(title: "epoch", max: maxEpoch, integer: true, label: { String(Int($0)) }),
            y: .init(title: "cross-entropy loss", max: maxLoss, label: { String(format: "%.2f", $0) }),
            rightY: .init(title: "validation top-1 (%)", max: 100, label: { "\(Int($0))%" }),
            series: [.init(name: "train loss", color: "#1f77b4", points: points(\.trainLoss)),
                     .init(name: "val loss", color: "#ff7f0e", points: points(\.valLoss)),
                     .init(name: "val top-1 (right axis)", color: "#2ca02c", points: points(\.top1), right: true)]
        ).svg()
    }
}
