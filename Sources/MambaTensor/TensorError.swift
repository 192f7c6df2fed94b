/// Why a tensor, an index or an argument handed to a public op was refused. Thrown before any
/// kernel runs, so a refused call has changed nothing.
public enum TensorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A shape with a dimension below zero.
    case negativeDimension(tensor: String, shape: [Int])
    /// A shape whose element count does not fit in an Int.
    case sizeOverflow(tensor: String, shape: [Int])
    /// So many values given where the shape holds `expected`.
    case valueCountMismatch(tensor: String, expected: Int, found: Int)
    /// A tensor whose shape must be exactly `expected`.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A tensor with the wrong number of dimensions.
    case rankMismatch(tensor: String, expected: Int, found: [Int])
    /// Dimension `axis` of a tensor must be `expected`.
    case dimensionMismatch(tensor: String, axis: Int, expected: Int, found: [Int])
    /// A reshape to a shape of another element count.
    case cannotReshape(from: [Int], to: [Int])
    /// Rows `start ..< start + count` of a tensor with `size` rows.
    case rowsOutOfRange(tensor: String, start: Int, count: Int, size: Int)
    /// An index into a dimension of `count` entries.
    case indexOutOfRange(tensor: String, index: Int, count: Int)
    /// A class label of a model or dataset with `classes` classes.
    case labelOutOfRange(label: Int, classes: Int)
    /// An op that needs at least one sample got an empty batch.
    case emptyBatch(tensor: String)
    /// A scalar argument outside the values it may take (`allowed`, e.g. "[0, 1)").
    case invalidArgument(name: String, value: Double, allowed: String)
    /// Operands of one op on different devices.
    case deviceMismatch(expected: String, found: String)
    /// Operands the kernel reads with one row stride were views with different strides.
    case layoutMismatch(tensor: String, expected: Int, found: Int)

    /// One line naming the operation, the tensor and the shapes.
    public var description: String {
        switch self {
        case let .negativeDimension(tensor, shape):
            return "\(abbreviated(tensor)): negative dimension in shape \(describe(shape: shape))"
        case let .sizeOverflow(tensor, shape):
            return "\(abbreviated(tensor)): shape \(describe(shape: shape)) has too many elements to allocate"
        case let .valueCountMismatch(tensor, expected, found):
            return "\(abbreviated(tensor)): expected \(expected) values, found \(found)"
        case let .shapeMismatch(tensor, expected, found):
            return "\(abbreviated(tensor)): expected shape \(describe(shape: expected)), found \(describe(shape: found))"
        case let .rankMismatch(tensor, expected, found):
            return "\(abbreviated(tensor)): expected \(expected) dimensions, found shape \(describe(shape: found))"
        case let .dimensionMismatch(tensor, axis, expected, found):
            return "\(abbreviated(tensor)): dimension \(axis) must be \(expected), found shape \(describe(shape: found))"
        case let .cannotReshape(from, to):
            return "cannot reshape \(describe(shape: from)) to \(describe(shape: to)): the element counts differ"
        case let .rowsOutOfRange(tensor, start, count, size):
            return "\(abbreviated(tensor)): rows \(start)..<\(start &+ count) outside 0..<\(size)"
        case let .indexOutOfRange(tensor, index, count):
            return "\(abbreviated(tensor)): index \(index) outside 0..<\(count)"
        case let .labelOutOfRange(label, classes):
            return "label \(label) outside the \(classes) classes 0..<\(classes)"
        case let .emptyBatch(tensor):
            return "\(abbreviated(tensor)): empty batch"
        case let .invalidArgument(name, value, allowed):
            return "\(abbreviated(name)) is \(value); allowed: \(allowed)"
        case let .deviceMismatch(expected, found):
            return "operands on different devices: expected \(expected), found \(found)"
        case let .layoutMismatch(tensor, expected, found):
            return "\(abbreviated(tensor)): row stride \(found), expected \(expected) (the same as its partner operand)"
        }
    }
}

/// Shapes printed the PyTorch way, [2, 3, 224, 224]; a shape of more than eight dimensions (only a
/// file can make one) shows its first eight and the count.
public func describe(shape: [Int]) -> String {
    let shown = shape.prefix(8).map(String.init).joined(separator: ", ")
    return shape.count <= 8 ? "[" + shown + "]" : "[" + shown + ", … (\(shape.count) dimensions)]"
}

/// Text from a user or a file (a tensor name, a path, a model name) cut to `limit` characters and
/// kept on one line, so an error message stays one bounded line whatever it quotes.
public func abbreviated(_ text: String, limit: Int = 120) -> String {
    var out = ""
    for (i, ch) in text.enumerated() {
        if i == limit { return out + "…" }
        out.append(ch.isNewline || ch == "\t" ? " " : ch)
    }
    return out
}

/// The first `limit` items of a list, then how many more: "a, b, c and 12 more".
public func abbreviated(list items: [String], limit: Int = 6, separator: String = ", ") -> String {
    let shown = items.prefix(limit).map { abbreviated($0) }.joined(separator: separator)
    return items.count <= limit ? shown : shown + " and \(items.count - limit) more"
}

/// Checks that every label is a class index of a `classes`-way classifier.
public func validateLabels(_ labels: [Int], classes: Int) throws {
    if let bad = labels.first(where: { $0 < 0 || $0 >= classes }) { throw TensorError.labelOutOfRange(label: bad, classes: classes) }
}

/// The element count of a shape given by a caller, or the error that refuses it.
package func checkedCount(_ shape: [Int], tensor: String) throws -> Int {
    if shape.contains(where: { $0 < 0 }) { throw TensorError.negativeDimension(tensor: tensor, shape: shape) }
    var count = 1
    for d in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        if overflow { throw TensorError.sizeOverflow(tensor: tensor, shape: shape) }
        count = product
    }
    // Four bytes per element must still be countable.
    if count > Int.max / 4 { throw TensorError.sizeOverflow(tensor: tensor, shape: shape) }
    return count
}
