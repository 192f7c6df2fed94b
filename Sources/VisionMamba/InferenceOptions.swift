import MambaIO
import VisionMambaModels

/// How a loaded model runs: the efficiency methods and the batch size. The same options serve
/// ``ImageClassifier``, ``FeatureExtractor`` and ``Segmenter``; each refuses the ones that do
/// not apply to its model.
///
/// ```swift
/// // A DyVM keeping 60% of its tokens at each pruning stage, four images a pass.
/// let options = InferenceOptions(tokenKeepRatio: 0.6, batchSize: 4)
/// ```
public struct InferenceOptions: Sendable, Equatable {
    /// DyVM only: each pruning stage s keeps `int(r^s · M)` of the M patch tokens. Nil keeps
    /// the model's own ratio.
    public var tokenKeepRatio: Double?
    /// Famba-V cross-layer token fusion for a classifier: which blocks fuse and how many tokens
    /// each removes. Nil keeps the model's own (none for the released models).
    public var fusion: TokenFusion?
    /// Run a classifier at another square resolution, its position embedding interpolated
    /// bicubically over the patch grid with the class token's row kept apart (as the command
    /// line's `--img-size`). Nil keeps the model's size.
    public var imageSize: Int?
    /// Load the moving average of the weights a run kept (`TrainOptions.modelEMA`) instead of
    /// the weights themselves.
    public var useEMA: Bool
    /// Images per forward pass in batched calls.
    public var batchSize: Int
    /// The largest image accepted, in pixels. A file or encoded image is refused from its header
    /// (a `FileError`), before its pixels are allocated: a service taking images from clients
    /// sets it to what it expects, since a small PNG can hold a huge blank image. At most, and by
    /// default, 2^28 (1 GiB while decoding).
    public var maxImagePixels: Int

    /// Options with the model's own settings and batches of up to `batchSize` images.
    public init(tokenKeepRatio: Double? = nil, fusion: TokenFusion? = nil, imageSize: Int? = nil, useEMA: Bool = false,
                batchSize: Int = 16, maxImagePixels: Int = 1 << 28) {
        self.tokenKeepRatio = tokenKeepRatio
        self.fusion = fusion
        self.imageSize = imageSize
        self.useEMA = useEMA
        self.batchSize = batchSize
        self.maxImagePixels = maxImagePixels
    }

    /// Checks the values and applies them to a classifier's `config`.
    func apply(to config: VimConfig) throws -> VimConfig {
        try validate()
        var c = config
        if let tokenKeepRatio {
            guard var d = c.dyvm else { throw VisionMambaError.optionNeedsOtherModel(option: "tokenKeepRatio (DyVM)", model: c.name) }
            d.tokenKeepRatio = tokenKeepRatio
            c.dyvm = d
        }
        if let fusion { c.fusion = fusion }
        try c.validate()
        return c
    }

    /// Checks the values and applies them to a segmentor's `config`.
    func apply(to config: SegmentationConfig) throws -> SegmentationConfig {
        try validate()
        if fusion != nil { throw VisionMambaError.optionNeedsOtherModel(option: "fusion (Famba-V)", model: config.name) }
        if imageSize != nil { throw VisionMambaError.optionNeedsOtherModel(option: "imageSize", model: config.name) }
        var c = config
        if let tokenKeepRatio {
            guard var d = c.backbone.dyvm else { throw VisionMambaError.optionNeedsOtherModel(option: "tokenKeepRatio (DyVM)", model: c.name) }
            d.tokenKeepRatio = tokenKeepRatio
            c.backbone.dyvm = d
        }
        c.dropPathRate = 0
        return c
    }

    // Comparisons are written so that NaN fails them.
    func validate() throws {
        if let r = tokenKeepRatio, !(r > 0 && r <= 1) {
            throw VisionMambaError.invalidOption(name: "tokenKeepRatio", value: "\(r)", allowed: "in (0, 1]")
        }
        if let s = imageSize, s < 1 { throw VisionMambaError.invalidOption(name: "imageSize", value: "\(s)", allowed: "positive") }
        if batchSize < 1 { throw VisionMambaError.invalidOption(name: "batchSize", value: "\(batchSize)", allowed: "at least 1") }
        if !(1...ImageDecoder.maxPixels).contains(maxImagePixels) {
            throw VisionMambaError.invalidOption(name: "maxImagePixels", value: "\(maxImagePixels)", allowed: "in 1...\(ImageDecoder.maxPixels)")
        }
    }
}
