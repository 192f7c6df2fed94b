import MambaTensor

/// Why a state dict or an optimizer state does not fit the model it is loaded into.
public enum StateDictError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One tensor that does not fit, by its official name.
    public enum Problem: Sendable, Equatable, CustomStringConvertible {
        /// The model has `key`; the state dict does not.
        case missingKey(key: String, expected: [Int])
        /// The state dict has `key`; the model does not.
        case unexpectedKey(key: String, found: [Int])
        /// Both have `key`, with other shapes.
        case shapeMismatch(key: String, expected: [Int], found: [Int])
        /// The value under `key` holds another number of elements than its own shape says.
        case valueCountMismatch(key: String, expected: Int, found: Int)

        /// One line naming the tensor and the shapes.
        public var description: String {
            switch self {
            case let .missingKey(key, expected): return "missing \(abbreviated(key)) \(describe(shape: expected))"
            case let .unexpectedKey(key, found): return "unexpected \(abbreviated(key)) \(describe(shape: found))"
            case let .shapeMismatch(key, expected, found):
                return "\(abbreviated(key)): expected \(describe(shape: expected)), found \(describe(shape: found))"
            case let .valueCountMismatch(key, expected, found):
                return "\(abbreviated(key)): \(found) values for \(expected) elements"
            }
        }
    }

    /// Every tensor of the state dict from `source` (a file, or empty) that does not fit the model.
    case mismatch(source: String, problems: [Problem])
    /// A training checkpoint holds no `model_ema.*` tensors.
    case missingEMA(source: String)
    /// The optimizer moment `key` (exp_avg or exp_avg_sq of a parameter) is absent.
    case missingOptimizerState(key: String)
    /// The optimizer moment `key` holds another number of values than its parameter.
    case optimizerStateSize(key: String, expected: Int, found: Int)

    /// One line naming the file and the tensors that do not fit.
    public var description: String {
        switch self {
        case let .mismatch(source, problems):
            let prefix = source.isEmpty ? "" : abbreviated(source) + ": "
            return prefix + "state dict does not fit the model: " + abbreviated(list: problems.map(\.description), separator: "; ")
        case let .missingEMA(source):
            return "\(abbreviated(source)): no model_ema tensors (the run kept no moving average of its weights)"
        case let .missingOptimizerState(key):
            return "optimizer state \(abbreviated(key)) is missing"
        case let .optimizerStateSize(key, expected, found):
            return "optimizer state \(abbreviated(key)): expected \(expected) values, found \(found)"
        }
    }
}

/// What a non-strict load left out: parameters the state dict did not have (they keep their
/// values) and tensors of the state dict the model does not have.
package struct StateDictReport: Sendable, Equatable, CustomStringConvertible {
    package var missing: [String]
    package var unexpected: [String]

    package init(missing: [String] = [], unexpected: [String] = []) {
        self.missing = missing
        self.unexpected = unexpected
    }

    package var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty }

    package var description: String {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("not in the state dict: " + abbreviated(list: missing)) }
        if !unexpected.isEmpty { parts.append("not in the model: " + abbreviated(list: unexpected)) }
        return parts.isEmpty ? "every tensor loaded" : parts.joined(separator: "; ")
    }
}
