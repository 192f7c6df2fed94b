import MambaIO
import MambaTensor
import VisionMambaModels
import VisionMambaData

/// mmseg's evaluation of a segmentor on a dataset: each image resized keeping its ratio
/// (`transform.evaluate`), logits by sliding window with `stride` (nil: the whole image, which
/// must then be the model's size), resized back to the original size, and the areas of every
/// image summed into one `SegmentationMetrics`. `indices` picks the images (a rank's shard);
/// `progress` is told after each one.
package func evaluateSegmentation(_ model: Segmentor, on dataset: any SegmentationDataset, name: String, transform: SegmentationTransform,
                                 stride: Int?, indices: [Int]? = nil, progress: (Int) -> Void = { _ in }) throws -> SegmentationMetrics {
    guard dataset.numClasses == model.config.numClasses else {
        throw TrainingError.classCountMismatch(dataset: name, datasetClasses: dataset.numClasses, modelClasses: model.config.numClasses)
    }
    var metrics = SegmentationMetrics(numClasses: model.config.numClasses, ignoreIndex: dataset.ignoreIndex)
    for (done, i) in (indices ?? Array(0..<dataset.count)).enumerated() {
        let original = try dataset.sample(i)
        let s = transform.evaluate(original)
        let image = try Tensor(shape: [1, 3, s.height, s.width], values: s.image)
        let labels = try model.predictLabels(image, stride: stride, height: original.height, width: original.width)
        try metrics.add(prediction: labels, labels: original.labels)
        progress(done + 1)
    }
    return metrics
}

/// The class of every pixel of an image, at its own size, as the evaluation computes it:
/// resized keeping its ratio (`transform.evaluate`), logits by sliding window with `stride` (nil:
/// the whole image, which must then be the model's size), resized back, the best class.
package func segmentImage(_ image: RGBImage, model: Segmentor, transform: SegmentationTransform, stride: Int?) throws -> [Int] {
    let s = transform.evaluate(SegmentationSample(image: image.planarFloats, labels: [], height: image.height, width: image.width))
    let input = try Tensor(shape: [1, 3, s.height, s.width], values: s.image)
    return try model.predictLabels(input, stride: stride, height: image.height, width: image.width)
}

/// A segmentation backbone's four pyramid levels for an image resized to the model's crop and
/// normalised as in evaluation (the `features` command, `FeatureExtractor.pyramid`).
package func pyramidFeatures(_ image: RGBImage, model: Segmentor, transform: SegmentationTransform) throws -> [Tensor] {
    let crop = model.config.backbone.imgSize
    var sample = SegmentationTransform.resize(SegmentationSample(image: image.planarFloats, labels: [], height: image.height,
                                                                 width: image.width), height: crop, width: crop, labels: false)
    transform.normalize(&sample)
    return try model.backbone.features(Tensor(shape: [1, 3, crop, crop], values: sample.image))
}
