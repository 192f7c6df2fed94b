import Foundation
import MambaIO
import MambaTensor
import VisionMambaData
import VisionMambaModels
import VisionMambaTraining

/// A stack of feature maps of one image: `channels` planes of `height × width`.
public struct FeatureMap: Sendable, Equatable {
    /// Feature channels.
    public let channels: Int
    /// Rows of the map.
    public let height: Int
    /// Columns of the map.
    public let width: Int
    /// `channels × height × width` values, channel-major (`values[(c * height + y) * width + x]`).
    public let values: [Float]

    /// The value of channel `c` at (`x`, `y`).
    public subscript(c: Int, y: Int, x: Int) -> Float { values[(c * height + y) * width + x] }
}

/// Every token of one image after the model's final norm.
public struct TokenFeatures: Sendable, Equatable {
    /// Tokens: the patch tokens the model kept, and its class token.
    public let count: Int
    /// Values per token.
    public let dimension: Int
    /// `count × dimension` values, token by token.
    public let values: [Float]
    /// Where the class token sits among the tokens (the middle, for the released models).
    public let classTokenIndex: Int

    /// Token `i`'s values.
    public subscript(token i: Int) -> ArraySlice<Float> { values[(i * dimension)..<((i + 1) * dimension)] }
}

/// Features of images: the pooled vector a classifier's head sees, all tokens, or for a
/// segmentation backbone the four pyramid levels its decode head reads.
///
/// ```swift
/// let extractor = try FeatureExtractor(checkpoint: URL(fileURLWithPath: "runs/digits/checkpoint.safetensors"))
/// let vectors = try extractor.pooled([.file(a), .file(b)])   // one [Float] per image
/// ```
///
/// Immutable after loading and `Sendable`.
public final class FeatureExtractor: @unchecked Sendable {
    // @unchecked: see ImageClassifier.
    private enum Loaded {
        case classifier(LoadedClassifier)
        case segmentor(LoadedSegmentor)
    }
    private let loaded: Loaded

    /// The model's name.
    public var modelName: String {
        switch loaded {
        case .classifier(let c): return c.config.name
        case .segmentor(let s): return s.config.name
        }
    }

    /// A zoo model, classification or segmentation, with `weights` (see ``ImageClassifier`` and
    /// ``Segmenter`` for the names and files each takes).
    public init(model: String, weights: URL, options: InferenceOptions = InferenceOptions()) throws {
        loaded = ModelZoo.isSegmentation(model)
            ? .segmentor(try LoadedSegmentor(model: model, weights: weights, options: options))
            : .classifier(try LoadedClassifier(model: model, weights: weights, options: options))
    }

    /// The model a training checkpoint of this package describes, classification or segmentation.
    public init(checkpoint: URL, options: InferenceOptions = InferenceOptions()) throws {
        loaded = try SegmentationTrainer.storedState(checkpoint.path) != nil
            ? .segmentor(try LoadedSegmentor(model: nil, weights: checkpoint, options: options))
            : .classifier(try LoadedClassifier(model: nil, weights: checkpoint, options: options))
    }

    /// The pooled feature vector of each image: what the classifier's head reads (the class
    /// token after the final norm, or the token mean for models that pool).
    public func pooled(_ images: [ImageInput]) throws -> [[Float]] {
        let c = try classifier("pooled features")
        var out: [[Float]] = []
        try c.forEachBatch(images) { slice, input in
            let features = try c.model.forwardFeatures(input)
            let d = features.shape[1], values = features.array
            for row in 0..<slice.count { out.append(Array(values[(row * d)..<((row + 1) * d)])) }
        }
        return out
    }

    /// Every token of one image after the final norm.
    public func tokens(_ image: ImageInput) throws -> TokenFeatures {
        let c = try classifier("tokens")
        let pass = try c.model.forwardTokens(try c.batch([image]))
        return TokenFeatures(count: pass.tokens.shape[1], dimension: pass.tokens.shape[2], values: pass.tokens.array,
                             classTokenIndex: pass.cls[0])
    }

    /// A segmentation backbone's four pyramid levels (strides 4, 8, 16 and 32 of the crop), the
    /// image resized to the model's crop size and normalised as in evaluation.
    public func pyramid(_ image: ImageInput) throws -> [FeatureMap] {
        guard case .segmentor(let s) = loaded else {
            throw VisionMambaError.wrongModelKind(model: modelName, expected: "a segmentation model (pyramid features)")
        }
        return try pyramidFeatures(try image.decoded(maxPixels: s.maxImagePixels), model: s.model, transform: s.transform).map {
            FeatureMap(channels: $0.shape[1], height: $0.shape[2], width: $0.shape[3], values: $0.array)
        }
    }

    private func classifier(_ what: String) throws -> LoadedClassifier {
        guard case .classifier(let c) = loaded else {
            throw VisionMambaError.wrongModelKind(model: modelName, expected: "a classifier (\(what))")
        }
        return c
    }
}
