import Foundation
import MambaIO
import MambaTensor
import VisionMambaData
import VisionMambaModels
import VisionMambaTraining

/// A segmentation model loaded for inference, with its class names and transforms. Shared by
/// ``Segmenter`` and ``FeatureExtractor``; never changed after loading.
struct LoadedSegmentor {
    let model: Segmentor
    let config: SegmentationConfig
    let classNames: [String]
    let transform: SegmentationTransform
    /// The sliding window's stride for images of any size.
    let stride: Int
    let maxImagePixels: Int

    /// `name` nil: the model our segmentation checkpoint at `weights` describes. A segmentation
    /// zoo name (`upernet-vim-tiny`, …): that model with `weights` (an mmseg checkpoint, a
    /// safetensors file, or a checkpoint of ours of it).
    init(model name: String?, weights: URL, options: InferenceOptions) throws {
        let stored = try SegmentationTrainer.storedState(weights.path)
        let base: SegmentationConfig
        if let name {
            guard ModelZoo.isSegmentation(name) else { throw VisionMambaError.wrongModelKind(model: name, expected: "a segmentation model") }
            base = try ModelZoo.segmentationEntry(named: name).config
            if let stored, stored.options.model.name != base.name {
                throw VisionMambaError.wrongModelKind(model: stored.options.model.name, expected: base.name)
            }
        } else {
            guard let stored else {
                if try Checkpoint.storedState(weights.path) != nil {
                    throw VisionMambaError.wrongModelKind(model: weights.path, expected: "a segmentation checkpoint")
                }
                throw TrainingError.notATrainingCheckpoint(path: weights.path)
            }
            base = stored.options.model
        }
        let config = try options.apply(to: stored?.options.model ?? base)
        let model = try Segmentor(config: config)
        try model.load(stateDict: try VimModel.modelTensors(weights.path, ema: options.useEMA), strict: true, source: weights.path)
        self.model = model
        self.config = config
        if let stored { classNames = stored.classNames }
        else if config.numClasses == 150 { classNames = try SegmentationPalette.ade20k().names }
        else { classNames = (0..<config.numClasses).map { "class \($0)" } }
        transform = stored?.options.transform ?? SegmentationTransform.ade20k(crop: config.backbone.imgSize)
        stride = stored?.options.slideStride ?? config.backbone.imgSize * 2 / 3
        maxImagePixels = options.maxImagePixels
    }
}
