import MambaTensor
import VisionMambaModels
import VisionMambaData

/// Mean loss and top-1 / top-5 accuracy (percent) over a dataset.
package struct Evaluation: Sendable {
    package var loss: Double
    package var top1: Double
    package var top5: Double
    package var count: Int
    /// DyVM: the fraction of (image, block, direction) triples whose gate was on.
    package var directionRate: Double? = nil
}

/// Evaluates `model` on every sample of `loader` (no augmentation), cross-entropy without smoothing.
/// In a data-parallel run each rank evaluates its share and the sums are reduced.
package func evaluate(_ model: VimModel, loader: DataLoader, world: ProcessGroup = SingleProcess(),
                     datasetName: String = "evaluation") throws -> Evaluation {
    // A dataset with more classes than the head has labels the model cannot score: refused
    // before the first batch (a model with more classes than the dataset is fine).
    guard loader.dataset.numClasses <= model.config.numClasses else {
        throw TrainingError.classCountMismatch(dataset: datasetName, datasetClasses: loader.dataset.numClasses,
                                               modelClasses: model.config.numClasses)
    }
    var lossSum = 0.0, correct1 = 0, correct5 = 0, seen = 0, gatesOn = 0, gates = 0
    try loader.forEachBatch(epoch: 0) { _, batch in
        // A label the head does not have (a dataset with more classes than the model) would
        // index past its logits row.
        try validateLabels(batch.labels, classes: model.config.numClasses)
        let trace = model.config.dyvm == nil ? nil : ForwardTrace()
        let logits = try model(batch.images, trace: trace)
        for entry in trace?.entries ?? [] where entry.name == "directions" {
            if case .ints(let on) = entry.values { gatesOn += on.reduce(0, +); gates += on.count }
        }
        let B = batch.labels.count, C = logits.shape[1]
        lossSum += Double(try crossEntropy(logits, labels: batch.labels, tape: nil).array[0]) * Double(B)
        let values = logits.array
        for b in 0..<B {
            let row = Array(values[(b * C)..<((b + 1) * C)])
            let target = row[batch.labels[b]]
            // Rank of the true class: how many logits beat it (ties count for the label, as topk does).
            let better = row.filter { $0 > target }.count
            if better < 1 { correct1 += 1 }
            if better < 5 { correct5 += 1 }
        }
        seen += B
    }
    let t = world.sum([lossSum, Double(correct1), Double(correct5), Double(seen), Double(gatesOn), Double(gates)])
    let n = max(t[3], 1)
    return Evaluation(loss: t[0] / n, top1: 100 * t[1] / n, top5: 100 * t[2] / n, count: Int(t[3]),
                      directionRate: t[5] == 0 ? nil : t[4] / t[5])
}
