import Foundation
import MambaTensor
import VisionMambaModels
#if canImport(CoreGraphics)
import CoreGraphics
#endif

/// One class of a classification: its index, its name, and the model's probability for it.
public struct Prediction: Sendable, Equatable, Codable {
    /// The class index, the row of the model's head.
    public let classIndex: Int
    /// The class name: the checkpoint's, the ImageNet-1k name for the released models, else
    /// `class <index>`.
    public let label: String
    /// The softmax probability, in [0, 1].
    public let probability: Float
}

/// Classifies images with a Vim, Famba-V or DyVM model.
///
/// ```swift
/// import VisionMamba
///
/// Runtime.configure()
/// let classifier = try ImageClassifier(model: "vim-tiny", weights: URL(fileURLWithPath: "vim_t_midclstok_76p1acc.pth"))
/// for p in try classifier.classify(URL(fileURLWithPath: "coffee.jpg"), top: 3) {
///     print(p.label, p.probability)
/// }
/// ```
///
/// A classifier is immutable after loading and `Sendable`: one instance serves concurrent calls
/// from many tasks, each pass holding its own state. `classify` is synchronous and computes on
/// the calling thread: a server runs it on a thread meant for blocking work, not on an event
/// loop. The kernels' worker threads (``Runtime/configure(threads:)``) serve one call at a time;
/// a call that finds them busy runs its kernels on its own thread, so N concurrent calls use
/// about N + threads − 1 cores.
public final class ImageClassifier: @unchecked Sendable {
    // @unchecked: the model is a class of the (Swift 5 mode) model layer. It is never changed
    // after `init`, and a forward pass without a tape only reads it (LibraryTests checks
    // concurrent calls against serial ones).
    private let loaded: LoadedClassifier

    /// The model's name (`vim-tiny`, or the name stored in a checkpoint).
    public var modelName: String { loaded.config.name }
    /// Class i's name.
    public var classNames: [String] { loaded.classNames }
    /// The side of the square input the eval transform produces.
    public var imageSize: Int { loaded.transform.size }
    /// The model's parameter count.
    public var parameterCount: Int { loaded.model.parameterCount }

    /// A zoo model (`vim-tiny`, `vim-small`, `dyvm-tiny`, an official name, …; see the README's
    /// zoo) with `weights`: an official `.pth`, a safetensors file, or a training checkpoint of it.
    public init(model: String, weights: URL, options: InferenceOptions = InferenceOptions()) throws {
        loaded = try LoadedClassifier(model: model, weights: weights, options: options)
    }

    /// The model a training checkpoint of this package describes, with its class names and eval
    /// transform.
    public init(checkpoint: URL, options: InferenceOptions = InferenceOptions()) throws {
        loaded = try LoadedClassifier(model: nil, weights: checkpoint, options: options)
    }

    /// The `top` most probable classes of each image, most probable first, in batches of
    /// ``InferenceOptions/batchSize``.
    public func classify(_ images: [ImageInput], top: Int = 5) throws -> [[Prediction]] {
        let classes = loaded.config.numClasses
        guard (1...classes).contains(top) else { throw VisionMambaError.topOutOfRange(top: top, classes: classes) }
        var results: [[Prediction]] = []
        try loaded.forEachBatch(images) { slice, input in
            let logits = try loaded.model(input).array
            for row in 0..<slice.count {
                let p = Self.softmax(logits[(row * classes)..<((row + 1) * classes)])
                let best = p.indices.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }.prefix(top)
                results.append(best.map { Prediction(classIndex: $0, label: loaded.classNames[$0], probability: p[$0]) })
            }
        }
        return results
    }

    /// The `top` most probable classes of one image.
    public func classify(_ image: ImageInput, top: Int = 5) throws -> [Prediction] {
        try classify([image], top: top)[0]
    }

    /// The `top` most probable classes of a JPEG or PNG file.
    public func classify(_ file: URL, top: Int = 5) throws -> [Prediction] {
        try classify(.file(file), top: top)
    }

    /// The `top` most probable classes of the bytes of a JPEG or PNG file.
    public func classify(_ encoded: Data, top: Int = 5) throws -> [Prediction] {
        try classify(.encoded(encoded), top: top)
    }

    /// The `top` most probable classes of decoded pixels.
    public func classify(_ pixels: PixelBuffer, top: Int = 5) throws -> [Prediction] {
        try classify(.pixels(pixels), top: top)
    }

    #if canImport(CoreGraphics)
    /// The `top` most probable classes of a Core Graphics image.
    public func classify(_ image: CGImage, top: Int = 5) throws -> [Prediction] {
        try classify(.pixels(PixelBuffer(image)), top: top)
    }
    #endif

    /// Softmax in double precision, as probabilities (the command line's `predict` uses it too).
    package static func softmax(_ logits: ArraySlice<Float>) -> [Float] {
        let m = logits.max() ?? 0
        let e = logits.map { exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }
}
