import MambaTensor

/// A layer that owns parameters under the official PyTorch `state_dict` names.
///
/// Each module lists its own tensors (keys spelled out literally) and its children with
/// their key prefixes; nothing is discovered by reflection, so every key can be found by grep.
public protocol Module: AnyObject {
    /// This module's own parameters, keyed relative to the module ("weight", "A_log").
    var ownParameters: [(String, Tensor)] { get }
    /// Child modules with their key ("proj", "layers.3").
    var children: [(String, Module)] { get }
}

extension Module {
    public var ownParameters: [(String, Tensor)] { [] }
    public var children: [(String, Module)] { [] }

    /// Every parameter under its full dotted name, in the official `state_dict` order
    /// as far as each module lists them.
    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        var result = ownParameters.map { (prefix + $0.0, $0.1) }
        for (key, child) in children { result += child.namedParameters(prefix: prefix + key + ".") }
        return result
    }

    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.count } }
}

/// Why a state dict does not fit a model: every problem by name, with both shapes.
public struct StateDictMismatch: Error, CustomStringConvertible {
    public var missing: [(String, [Int])] = []
    public var unexpected: [(String, [Int])] = []
    public var wrongShape: [(String, expected: [Int], found: [Int])] = []
    public var source: String = ""

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && wrongShape.isEmpty }

    public var description: String {
        var parts: [String] = []
        func list(_ xs: [String]) -> String {
            xs.count <= 6 ? xs.joined(separator: ", ") : xs.prefix(6).joined(separator: ", ") + " and \(xs.count - 6) more"
        }
        if !wrongShape.isEmpty {
            parts.append("wrong shape: " + list(wrongShape.map { "\($0.0) (model \(describe(shape: $0.expected)), file \(describe(shape: $0.found)))" }))
        }
        if !missing.isEmpty { parts.append("missing: " + list(missing.map { "\($0.0) \(describe(shape: $0.1))" })) }
        if !unexpected.isEmpty { parts.append("unexpected: " + list(unexpected.map { "\($0.0) \(describe(shape: $0.1))" })) }
        return (source.isEmpty ? "" : "\(source): ") + "state dict does not match the model; " + parts.joined(separator: "; ")
    }
}

/// A tensor as a state dict supplies it: shape plus float32 values.
public protocol StateDictValue {
    var shape: [Int] { get }
    func floats() -> [Float]
}

extension Module {
    /// Copies `stateDict` into the parameters. Strict (the default) requires the same names and
    /// shapes; non-strict loads what fits and still reports wrong shapes of names it does know.
    /// Returns the names that were skipped (empty when strict).
    @discardableResult
    public func load<V: StateDictValue>(stateDict: [String: V], strict: Bool = true, source: String = "") throws -> StateDictMismatch {
        var mismatch = StateDictMismatch(source: source)
        let params = namedParameters()
        let known = Set(params.map(\.0))
        for (name, tensor) in params {
            guard let value = stateDict[name] else { mismatch.missing.append((name, tensor.shape)); continue }
            // A [1] scalar and a [] scalar, or [D,1,K] and [D,K], are the same data: only
            // the element layout matters, but PyTorch names the exact shape; compare it exactly.
            if value.shape != tensor.shape {
                mismatch.wrongShape.append((name, expected: tensor.shape, found: value.shape))
            }
        }
        for name in stateDict.keys.sorted() where !known.contains(name) {
            mismatch.unexpected.append((name, stateDict[name]!.shape))
        }
        if !mismatch.wrongShape.isEmpty || (strict && !mismatch.isEmpty) { throw mismatch }
        for (name, tensor) in params {
            guard let value = stateDict[name] else { continue }
            let values = value.floats()
            values.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: tensor.count) }
        }
        return mismatch
    }
}
