import MambaTensor

/// A layer that owns parameters under the official PyTorch `state_dict` names.
///
/// Each module lists its own tensors (keys spelled out literally) and its children with
/// their key prefixes; nothing is discovered by reflection, so every key can be found by grep.
package protocol Module: AnyObject {
    /// This module's own parameters, keyed relative to the module ("weight", "A_log").
    var ownParameters: [(String, Tensor)] { get }
    /// State that is saved and loaded but not trained, such as BatchNorm's running statistics
    /// (PyTorch's buffers), keyed relative to the module.
    var ownBuffers: [(String, Tensor)] { get }
    /// Child modules with their key ("proj", "layers.3").
    var children: [(String, Module)] { get }
}

extension Module {
    package var ownParameters: [(String, Tensor)] { [] }
    package var ownBuffers: [(String, Tensor)] { [] }
    package var children: [(String, Module)] { [] }

    /// Every parameter under its full dotted name, in the official `state_dict` order
    /// as far as each module lists them.
    package func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        var result = ownParameters.map { (prefix + $0.0, $0.1) }
        for (key, child) in children { result += child.namedParameters(prefix: prefix + key + ".") }
        return result
    }

    package var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.count } }

    /// This module and every module below it, depth first.
    package var descendants: [Module] { [self] + children.flatMap { $0.1.descendants } }

    /// Every buffer under its full dotted name.
    package func namedBuffers(prefix: String = "") -> [(String, Tensor)] {
        var result = ownBuffers.map { (prefix + $0.0, $0.1) }
        for (key, child) in children { result += child.namedBuffers(prefix: prefix + key + ".") }
        return result
    }

    /// What `state_dict()` holds: each module's parameters, then its buffers, then its children.
    package func namedState(prefix: String = "") -> [(String, Tensor)] {
        var result = (ownParameters + ownBuffers).map { (prefix + $0.0, $0.1) }
        for (key, child) in children { result += child.namedState(prefix: prefix + key + ".") }
        return result
    }
}

/// A tensor as a state dict supplies it: shape plus float32 values.
package protocol StateDictValue {
    var shape: [Int] { get }
    func floats() -> [Float]
}

extension Module {
    /// Copies `stateDict` into the parameters and buffers. Strict (the default) requires the same names and
    /// shapes; non-strict loads what fits and still refuses wrong shapes of names it does know.
    /// Nothing is copied unless every name and shape checks (a value whose `floats()` does not
    /// fill its own shape is found only while copying). Returns what a non-strict load left out.
    @discardableResult
    package func load<V: StateDictValue>(stateDict: [String: V], strict: Bool = true, source: String = "") throws -> StateDictReport {
        var problems: [StateDictError.Problem] = [], missing: [(String, [Int])] = []
        var present: [(String, Tensor, V)] = []
        let params = namedState()
        for (name, tensor) in params {
            guard let value = stateDict[name] else { missing.append((name, tensor.shape)); continue }
            // A [1] scalar and a [] scalar, or [D,1,K] and [D,K], are the same data: only
            // the element layout matters, but PyTorch names the exact shape; compare it exactly.
            if value.shape == tensor.shape { present.append((name, tensor, value)) }
            else { problems.append(.shapeMismatch(key: name, expected: tensor.shape, found: value.shape)) }
        }
        let known = Set(params.map(\.0))
        let unexpected = stateDict.filter { !known.contains($0.key) }.sorted { $0.key < $1.key }
        if strict {
            problems += missing.map { .missingKey(key: $0.0, expected: $0.1) }
            problems += unexpected.map { .unexpectedKey(key: $0.key, found: $0.value.shape) }
        }
        guard problems.isEmpty else { throw StateDictError.mismatch(source: source, problems: problems) }
        // One tensor's floats at a time: a whole converted copy of a large model would double its memory.
        for (name, tensor, value) in present {
            let floats = value.floats()
            guard floats.count == tensor.count else {
                throw StateDictError.mismatch(source: source, problems: [.valueCountMismatch(key: name, expected: tensor.count, found: floats.count)])
            }
            try tensor.assign(floats)
        }
        return strict ? StateDictReport() : StateDictReport(missing: missing.map(\.0), unexpected: unexpected.map(\.key))
    }
}
