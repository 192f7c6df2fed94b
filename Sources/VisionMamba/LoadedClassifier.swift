import Foundation
import MambaIO
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

/// A classification model loaded for inference, with what turns an image into its input. Shared
/// by ``ImageClassifier`` and ``FeatureExtractor``; never changed after loading, so concurrent
/// calls only read it.
struct LoadedClassifier {
    let model: VimModel
    let config: VimConfig
    let classNames: [String]
    let transform: InputTransform
    let batchSize: Int
    let maxImagePixels: Int

    /// `name` nil: the model our training checkpoint at `weights` describes. A zoo name: that
    /// model, with released weights (`.pth` or safetensors) or a checkpoint of it.
    init(model name: String?, weights: URL, options: InferenceOptions) throws {
        if let stored = try SegmentationTrainer.storedState(weights.path) {
            throw VisionMambaError.wrongModelKind(model: stored.options.model.name, expected: "a classifier")
        }
        if let name, ModelZoo.isSegmentation(name) { throw VisionMambaError.wrongModelKind(model: name, expected: "a classifier") }
        var description = try ModelDescription(weights: weights.path, config: try name.map(ModelZoo.resolve))
        let config = try options.apply(to: description.config)
        var running = config
        if let size = options.imageSize {
            running.imgSize = size
            description.transform.size = size
        }
        try running.checkFitsInMemory(batch: options.batchSize, training: false)
        let model = try VimModel(config: config)
        try model.load(weights: weights.path, ema: options.useEMA)
        if let size = options.imageSize { try model.setImageSize(size, interpolation: .classTokenAware) }
        self.model = model
        self.config = running
        self.classNames = description.classNames ?? (0..<config.numClasses).map { "class \($0)" }
        self.transform = description.transform
        self.batchSize = options.batchSize
        self.maxImagePixels = options.maxImagePixels
    }

    /// The images as one input batch `[N, 3, S, S]` after the model's eval transform.
    func batch(_ images: ArraySlice<ImageInput>) throws -> Tensor {
        var pixels: [Float] = []
        pixels.reserveCapacity(images.count * 3 * transform.size * transform.size)
        for image in images { pixels += transform.apply(try image.decoded(maxPixels: maxImagePixels)) }
        return try Tensor(shape: [images.count, 3, transform.size, transform.size], values: pixels)
    }

    /// `body` on each batch of at most `batchSize` images, in order.
    func forEachBatch(_ images: [ImageInput], _ body: (ArraySlice<ImageInput>, Tensor) throws -> Void) throws {
        guard !images.isEmpty else { throw VisionMambaError.noImages }
        for start in stride(from: 0, to: images.count, by: batchSize) {
            let slice = images[start..<min(start + batchSize, images.count)]
            try body(slice, try batch(slice))
        }
    }
}
