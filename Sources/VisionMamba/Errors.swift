import MambaIO
import MambaNN
import MambaTensor
import VisionMambaData
import VisionMambaModels
import VisionMambaTraining

/// A model's settings are invalid, or an input does not fit the model (its size, its channels).
public typealias ConfigError = VisionMambaModels.ConfigError
/// A file could not be read or written, or its contents are damaged.
public typealias FileError = MambaIO.FileError
/// Weights do not match the model: a missing or unexpected tensor, or one of another shape.
public typealias StateDictError = MambaNN.StateDictError
/// A tensor of the wrong shape or with non-finite values reached an operation.
public typealias TensorError = MambaTensor.TensorError
/// A training run cannot start or go on: a bad setting, a folder that holds another run, a
/// non-finite loss.
public typealias TrainingError = VisionMambaTraining.TrainingError
/// A dataset folder or file is missing or malformed.
public typealias DatasetError = VisionMambaData.DatasetError

/// Misuse of the public API, caught before any model runs.
public enum VisionMambaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A pixel buffer of `width` × `height` needs `expected` bytes in its layout; it has `found`.
    case pixelBufferSize(width: Int, height: Int, expected: Int, found: Int)
    /// A pixel buffer's width or height is not positive.
    case pixelBufferDimensions(width: Int, height: Int)
    /// `top` must be between 1 and the model's class count.
    case topOutOfRange(top: Int, classes: Int)
    /// A setting of ``InferenceOptions`` is out of its range.
    case invalidOption(name: String, value: String, allowed: String)
    /// The option `option` needs a model of another kind than `model` (a DyVM keep ratio on a
    /// plain Vim, fusion on a segmentor).
    case optionNeedsOtherModel(option: String, model: String)
    /// `model` is a segmentation model where a classifier is needed, or the other way round.
    case wrongModelKind(model: String, expected: String)
    /// The image list given to a batched call is empty.
    case noImages
    /// ``Trainer/run()`` was called a second time on one trainer.
    case alreadyRunning

    /// One line saying what was wrong with the call.
    public var description: String {
        switch self {
        case let .pixelBufferSize(width, height, expected, found):
            return "a \(width)x\(height) pixel buffer needs \(expected) bytes, got \(found)"
        case let .pixelBufferDimensions(width, height):
            return "a pixel buffer needs a positive width and height, got \(width)x\(height)"
        case let .topOutOfRange(top, classes):
            return "top must be in 1...\(classes) for this model's \(classes) classes, got \(top)"
        case let .invalidOption(name, value, allowed):
            return "\(name) is \(value); it must be \(allowed)"
        case let .optionNeedsOtherModel(option, model):
            return "\(option) does not apply to \(model)"
        case let .wrongModelKind(model, expected):
            return "\(model) is not \(expected)"
        case .noImages:
            return "no images given"
        case .alreadyRunning:
            return "this trainer has already run; make a new one to resume its checkpoint"
        }
    }
}
