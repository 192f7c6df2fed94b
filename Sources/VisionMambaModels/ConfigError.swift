import MambaTensor

/// Why a model description, a model name or an input does not describe a model this package can
/// build or run.
public enum ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Field `field` (its official name, e.g. patch_size) of model `model` is `value`; `allowed` says what it may be.
    case invalidValue(model: String, field: String, value: String, allowed: String)
    /// Two settings of `model` that cannot be used together.
    case incompatible(model: String, first: String, second: String)
    /// Famba-V fusion asked to remove `requested` tokens per fusing block from a model whose
    /// `tokens` tokens allow at most `maximum` ((T − 1) / 2, the class token kept) in any block.
    case tooManyFusionTokens(model: String, requested: Int, maximum: Int, tokens: Int)
    /// A forward pass (or a training step, `training`) of `batch` images of `model` would need about
    /// `estimatedBytes` (`VimConfig.estimatedBytes`), more than the machine's `availableBytes`.
    case tooLarge(model: String, batch: Int, training: Bool, estimatedBytes: Int, availableBytes: Int)
    /// A model name that is neither in the zoo nor a JSON file.
    case unknownModel(name: String, valid: [String])
    /// A Famba-V strategy name that is not one of `valid`.
    case unknownFusionStrategy(name: String, valid: [String])
    /// A model description file that cannot be read.
    case unreadableFile(path: String)
    /// A model description file that is not a JSON object.
    case notAJSONObject(path: String)
    /// A model description file without a required field (`expected`: what the field holds).
    case missingField(path: String, field: String, expected: String)
    /// Images of shape `found` given to `model`, which takes [B, channels, size, size].
    case inputShapeMismatch(model: String, channels: Int, size: Int, found: [Int])
    /// An operation that needs a DyVM model (one with pruning stages and direction heads).
    case requiresDyVM(model: String)
    /// An operation that needs a plain Vim (no fusion, no DyVM), such as DyVM's dense teacher.
    case requiresPlainVim(model: String)
    /// A DyVM model's plain forward pass is inference only; training runs through `dyvmTrainingStep`.
    case dyvmForwardWithTape(model: String)
    /// A DyVM segmentation backbone trains on random decisions, drawn by the caller.
    case dyvmTrainingNeedsNoise(model: String)

    /// One line naming the model, the setting and what it may be.
    public var description: String {
        switch self {
        case let .invalidValue(model, field, value, allowed):
            return "\(abbreviated(model)): \(field) is \(abbreviated(value)); allowed: \(allowed)"
        case let .incompatible(model, first, second):
            return "\(abbreviated(model)): \(first) and \(second) cannot be combined"
        case let .tooManyFusionTokens(model, requested, maximum, tokens):
            return "\(abbreviated(model)): fusion.tokens is \(requested); a fusion of its \(tokens) tokens removes at most \(maximum) ((T − 1) / 2, the class token kept)"
        case let .tooLarge(model, batch, training, estimatedBytes, availableBytes):
            return "\(abbreviated(model)): a \(training ? "training step" : "forward pass") of \(batch) image(s) needs about \(describe(bytes: estimatedBytes)) (estimated), more than the \(describe(bytes: availableBytes)) of memory this machine has"
        case let .unknownModel(name, valid):
            return "unknown model '\(abbreviated(name))'; valid names: \(valid.joined(separator: ", ")), or an official name"
        case let .unknownFusionStrategy(name, valid):
            return "unknown fusion strategy '\(abbreviated(name))'; valid: \(valid.joined(separator: ", ")), or explicit fusion blocks"
        case let .unreadableFile(path):
            return "\(abbreviated(path)): cannot read the model description"
        case let .notAJSONObject(path):
            return "\(abbreviated(path)): not a JSON object"
        case let .missingField(path, field, expected):
            return "\(abbreviated(path)): missing \(expected) \"\(field)\""
        case let .inputShapeMismatch(model, channels, size, found):
            return "input has shape \(describe(shape: found)); \(abbreviated(model)) expects [B, \(channels), \(size), \(size)]"
        case let .requiresDyVM(model):
            return "\(abbreviated(model)): needs a DyVM model (pruning stages and direction heads)"
        case let .requiresPlainVim(model):
            return "\(abbreviated(model)): needs a plain Vim (no token fusion, no DyVM)"
        case let .dyvmForwardWithTape(model):
            return "\(abbreviated(model)): the DyVM forward pass is inference only; train it through dyvmTrainingStep"
        case let .dyvmTrainingNeedsNoise(model):
            return "\(abbreviated(model)): a DyVM training pass needs its random draws (DyVMNoise)"
        }
    }
}
