/// Segmentation scores as mmsegmentation computes them: per class, the pixel areas of the
/// intersection and union of prediction and label, of the prediction and of the label, summed
/// over a whole dataset before any ratio is taken (`intersect_and_union`, then
/// `total_area_to_metrics`). Pixels labelled `ignoreIndex` are left out; so are labels outside
/// 0..<numClasses, which mmseg's histogram drops.
package struct SegmentationMetrics: Sendable, Equatable {
    package let numClasses: Int
    package let ignoreIndex: Int
    package private(set) var intersection: [Int64]
    package private(set) var union: [Int64]
    package private(set) var predicted: [Int64]
    package private(set) var labelled: [Int64]

    package init(numClasses: Int, ignoreIndex: Int = 255) {
        precondition(numClasses > 0, "a segmentation model has at least one class")
        self.numClasses = numClasses
        self.ignoreIndex = ignoreIndex
        intersection = Array(repeating: 0, count: numClasses)
        union = intersection
        predicted = intersection
        labelled = intersection
    }

    /// Areas summed elsewhere (the ranks of a data-parallel evaluation), one per class each.
    init(numClasses: Int, ignoreIndex: Int, intersection: [Int64], predicted: [Int64], labelled: [Int64]) {
        precondition([intersection, predicted, labelled].allSatisfy { $0.count == numClasses }, "one area per class")
        self.numClasses = numClasses
        self.ignoreIndex = ignoreIndex
        self.intersection = intersection
        self.predicted = predicted
        self.labelled = labelled
        union = (0..<numClasses).map { predicted[$0] + labelled[$0] - intersection[$0] }
    }

    /// Adds one image: `prediction` a class per pixel, `labels` the label map, same length.
    package mutating func add(prediction: [Int], labels: [UInt8]) throws {
        guard prediction.count == labels.count else {
            throw TrainingError.labelMapMismatch(predicted: prediction.count, labelled: labels.count)
        }
        for (p, l) in zip(prediction, labels.lazy.map(Int.init)) where l != ignoreIndex {
            let pIn = (0..<numClasses).contains(p), lIn = (0..<numClasses).contains(l)
            if pIn { predicted[p] += 1 }
            if lIn { labelled[l] += 1 }
            if pIn && p == l { intersection[p] += 1 }
        }
        for c in 0..<numClasses { union[c] = predicted[c] + labelled[c] - intersection[c] }
    }

    /// Another shard's areas added to these (the ranks of a data-parallel evaluation).
    package mutating func merge(_ other: SegmentationMetrics) {
        precondition(other.numClasses == numClasses && other.ignoreIndex == ignoreIndex, "metrics of different class sets")
        for c in 0..<numClasses {
            intersection[c] += other.intersection[c]
            predicted[c] += other.predicted[c]
            labelled[c] += other.labelled[c]
            union[c] = predicted[c] + labelled[c] - intersection[c]
        }
    }

    /// aAcc: the fraction of labelled pixels predicted right, over all classes.
    package var allAccuracy: Double {
        let total = labelled.reduce(0, +)
        return total == 0 ? .nan : Double(intersection.reduce(0, +)) / Double(total)
    }

    /// IoU per class; NaN for a class neither labelled nor predicted anywhere.
    package var iou: [Double] { (0..<numClasses).map { Double(intersection[$0]) / Double(union[$0]) } }

    /// Accuracy per class; NaN for a class never labelled.
    package var accuracy: [Double] { (0..<numClasses).map { Double(intersection[$0]) / Double(labelled[$0]) } }

    /// mIoU: the mean of `iou` over the classes where it is defined (numpy's nanmean).
    package var meanIoU: Double { Self.nanMean(iou) }

    /// mAcc: the mean of `accuracy` where it is defined.
    package var meanAccuracy: Double { Self.nanMean(accuracy) }

    static func nanMean(_ values: [Double]) -> Double {
        let defined = values.filter { !$0.isNaN }
        return defined.isEmpty ? .nan : defined.reduce(0, +) / Double(defined.count)
    }
}
