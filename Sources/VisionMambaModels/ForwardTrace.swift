/// What a forward pass reports beside its logits for parity checks and inspection: named float
/// and integer tensors in the layout of the official fixtures (`prune.0.logp`, `directions`, …).
package final class ForwardTrace {
    package enum Values { case floats([Float]), ints([Int]) }
    package private(set) var entries: [(name: String, shape: [Int], values: Values)] = []

    package init() {}

    /// The integers recorded under `name` (the last record of that name), e.g. `tokens`: the
    /// tokens each block's mixer saw.
    package func ints(_ name: String) -> [Int]? {
        guard let entry = entries.last(where: { $0.name == name }), case let .ints(values) = entry.values else { return nil }
        return values
    }

    // Recorded by our own forward passes only, with shapes that hold their values.
    package func record(_ name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "\(name): shape \(shape) does not hold \(floats.count) values")
        entries.append((name, shape, .floats(floats)))
    }

    package func record(_ name: String, shape: [Int], ints: [Int]) {
        precondition(shape.reduce(1, *) == ints.count, "\(name): shape \(shape) does not hold \(ints.count) values")
        entries.append((name, shape, .ints(ints)))
    }
}
