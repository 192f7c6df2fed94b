import Foundation

/// A float32 tensor: a shape over a `Storage` on some device.
///
/// A tensor is a view: rows (every dimension but the last, flattened) start `rowStride` elements
/// apart from `offset`, and the last dimension is contiguous. A fresh tensor is contiguous
/// (rowStride = the last dimension); `columns(_:)` and `rows(_:)` give views that share the
/// storage, so in_proj's x | z halves and x_proj's dt | B | C columns cost no copies. Model code
/// works with whole tensors through ops; only backends read the storage.
package final class Tensor: @unchecked Sendable {
    package let shape: [Int]
    package let count: Int
    package let storage: Storage
    /// Elements from the storage's start to element 0.
    package let offset: Int
    /// Elements from one row to the next.
    package let rowStride: Int
    /// Where d(loss)/d(self) accumulates. Backward steps that need only this tensor's gradient,
    /// not its values, keep the slot alone, so the values are freed as soon as the forward pass
    /// is done with them. A view's slot is the same view of its base's gradient.
    package let slot: GradientSlot
    /// How to compute these values again from the op's inputs, when the op that made them
    /// chose to be recomputed in the backward pass instead of kept (see `Tape.recomputable`).
    package var recipe: Recipe?

    /// d(loss)/d(self), filled by `Tape.backward` for tensors that reach the loss.
    /// Set only by our own ops (backward kernels write into it assuming the tensor's shape).
    package var grad: Tensor? {
        get { slot.grad }
        set { slot.grad = newValue }
    }
    /// Whether backward steps should fill `grad` (parameters and activations; not input images).
    package var requiresGrad: Bool {
        get { slot.requiresGrad }
        set { slot.requiresGrad = newValue }
    }

    package var device: Device { storage.device }
    package var backend: any Backend { storage.device.backend }

    private init(storage: Storage, shape: [Int], offset: Int, rowStride: Int, slot: GradientSlot) {
        self.storage = storage
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.offset = offset
        self.rowStride = rowStride
        self.slot = slot
    }

    /// An uninitialised tensor for our own kernels, which write all of it. Its shape comes from
    /// tensors that already exist, so a negative dimension here is a bug of ours; shapes from
    /// callers go through the throwing initialisers.
    package convenience init(uninitializedShape shape: [Int], device: Device = .cpu) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let count = shape.reduce(1, *)
        self.init(storage: device.backend.allocate(count: count), shape: shape, offset: 0,
                  rowStride: shape.last ?? 1, slot: GradientSlot(shape: shape))
    }

    /// Zeros of a shape of our own making (see `init(uninitializedShape:)`).
    package convenience init(zeroed shape: [Int], device: Device = .cpu) {
        self.init(uninitializedShape: shape, device: device)
        backend.fill(self, with: 0)
    }

    /// Values we computed ourselves for a shape of our own (so the count matching is an invariant).
    package convenience init(ownValues values: [Float], shape: [Int], device: Device = .cpu) {
        self.init(uninitializedShape: shape, device: device)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        backend.write(values, into: self)
    }

    /// Zeros of `shape`.
    package convenience init(zeros shape: [Int], device: Device = .cpu) throws {
        _ = try checkedCount(shape, tensor: "zeros")
        self.init(zeroed: shape, device: device)
    }

    /// `value` everywhere in `shape`.
    package convenience init(shape: [Int], repeating value: Float, device: Device = .cpu) throws {
        _ = try checkedCount(shape, tensor: "repeating")
        self.init(uninitializedShape: shape, device: device)
        backend.fill(self, with: value)
    }

    /// `values` in row-major order; there must be exactly as many as `shape` holds.
    package convenience init(shape: [Int], values: [Float], device: Device = .cpu) throws {
        let count = try checkedCount(shape, tensor: "values")
        guard values.count == count else { throw TensorError.valueCountMismatch(tensor: "values", expected: count, found: values.count) }
        self.init(uninitializedShape: shape, device: device)
        backend.write(values, into: self)
    }

    package var rank: Int { shape.count }
    /// Every dimension but the last, flattened.
    package var rowCount: Int { shape.count <= 1 ? 1 : shape.dropLast().reduce(1, *) }
    /// The last dimension (1 for a scalar).
    package var columnCount: Int { shape.last ?? 1 }
    /// Whether the elements are one dense row-major run (rows one after another).
    package var isContiguous: Bool { rowCount <= 1 || rowStride == columnCount }

    /// The values in row-major order, copied to the host.
    package var array: [Float] { backend.read(self) }

    /// Sets every element to `value`.
    package func fill(_ value: Float) { backend.fill(self, with: value) }

    /// Copies `values` (row-major, exactly `count` of them) into this tensor.
    package func assign(_ values: [Float]) throws {
        guard values.count == count else { throw TensorError.valueCountMismatch(tensor: "values", expected: count, found: values.count) }
        backend.write(values, into: self)
    }

    /// Copies values we computed for this tensor's own shape (initialisers): a count that does
    /// not match is a bug of ours.
    package func write(_ values: [Float]) {
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        backend.write(values, into: self)
    }

    /// Copies another tensor of the same shape into this one.
    package func assign(_ source: Tensor) throws {
        guard source.shape == shape else { throw TensorError.shapeMismatch(tensor: "source", expected: shape, found: source.shape) }
        backend.copy(source, into: self)
    }

    /// Columns `range` of the last dimension, sharing this tensor's storage; its gradient is the
    /// same columns of this tensor's gradient.
    package func columns(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.rankMismatch(tensor: "tensor", expected: 1, found: shape) }
        guard range.lowerBound >= 0, range.upperBound <= columnCount else {
            throw TensorError.rowsOutOfRange(tensor: "columns", start: range.lowerBound, count: range.count, size: columnCount)
        }
        return columnsView(range)
    }

    /// `columns(_:)` behind the caller's own bounds check.
    package func columnsView(_ range: Range<Int>) -> Tensor {
        let s = Array(shape.dropLast()) + [range.count]
        return Tensor(storage: storage, shape: s, offset: offset + range.lowerBound, rowStride: rowStride,
                      slot: GradientSlot(shape: s, base: slot) { $0.columnsView(range) })
    }

    /// Entries `range` of the first dimension, sharing this tensor's storage; its gradient is
    /// the same entries of this tensor's gradient.
    package func rows(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 2 else { throw TensorError.rankMismatch(tensor: "tensor", expected: 2, found: shape) }
        guard range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw TensorError.rowsOutOfRange(tensor: "tensor", start: range.lowerBound, count: range.count, size: shape[0])
        }
        return rowsView(range)
    }

    /// `rows(_:)` behind the caller's own bounds check.
    package func rowsView(_ range: Range<Int>) -> Tensor {
        let per = rowCount / max(shape[0], 1)   // rows of the flattened view per entry
        let s = [range.count] + shape.dropFirst()
        return Tensor(storage: storage, shape: s, offset: offset + range.lowerBound * per * rowStride, rowStride: rowStride,
                      slot: GradientSlot(shape: s, base: slot) { $0.rowsView(range) })
    }

    /// The same elements under a new shape of the same count: any such shape when this tensor is
    /// contiguous, else one with the same last dimension. Shares the storage and the gradient.
    package func viewed(as newShape: [Int]) throws -> Tensor {
        guard try checkedCount(newShape, tensor: "view") == count else { throw TensorError.cannotReshape(from: shape, to: newShape) }
        guard isContiguous || newShape.last == shape.last else { throw TensorError.cannotReshape(from: shape, to: newShape) }
        return reshapedView(newShape)
    }

    package func reshapedView(_ newShape: [Int]) -> Tensor {
        let stride = isContiguous ? (newShape.last ?? 1) : rowStride
        return Tensor(storage: storage, shape: newShape, offset: offset, rowStride: stride,
                      slot: GradientSlot(shape: newShape, base: slot) { $0.reshapedView(newShape) })
    }

    /// A contiguous copy with a new shape of the same element count.
    package func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard try checkedCount(newShape, tensor: "reshape") == count else { throw TensorError.cannotReshape(from: shape, to: newShape) }
        let t = copy()
        return Tensor(storage: t.storage, shape: newShape, offset: 0, rowStride: newShape.last ?? 1, slot: GradientSlot(shape: newShape))
    }

    /// A contiguous copy of the values (no gradient link).
    package func copy() -> Tensor {
        let t = Tensor(uninitializedShape: shape, device: device)
        backend.copy(self, into: t)
        return t
    }

    /// Entries `[start, start + n)` of the first dimension, copied.
    package func rows(_ start: Int, _ n: Int) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.rankMismatch(tensor: "tensor", expected: 1, found: shape) }
        guard start >= 0, n >= 0, n <= shape[0] - start else {
            throw TensorError.rowsOutOfRange(tensor: "tensor", start: start, count: n, size: shape[0])
        }
        if rank == 1 { return try Tensor(shape: [n], values: Array(array[start..<(start + n)]), device: device) }
        return rowsView(start..<(start + n)).copy()
    }
}

/// ||a - b|| / ||b||, accumulated in double precision.
/// Infinite when the counts differ, so that a tolerance check fails.
package func relativeL2(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
    guard a.count == b.count else { return .infinity }
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return den == 0 ? num.squareRoot() : (num / den).squareRoot()
}

package func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in relativeL2(pa, pb) } }
}


/// The gradient of one tensor, apart from its values. A view's slot holds no buffer of its own:
/// its gradient is the same view of its base tensor's gradient, so what a consumer of the view
/// adds lands in the base's gradient directly.
package final class GradientSlot: @unchecked Sendable {
    package let shape: [Int]
    private var own: Tensor?
    private var ownRequiresGrad = true
    private let base: GradientSlot?
    private let view: ((Tensor) -> Tensor)?

    init(shape: [Int]) {
        self.shape = shape
        base = nil
        view = nil
    }

    init(shape: [Int], base: GradientSlot, view: @escaping (Tensor) -> Tensor) {
        self.shape = shape
        self.base = base
        self.view = view
    }

    /// Set only by our own ops: backward kernels write into it assuming `shape`.
    package var grad: Tensor? {
        get {
            if let base, let view { return base.grad.map(view) }
            return own
        }
        set {
            precondition(base == nil, "a view's gradient is its base's")
            own = newValue
        }
    }

    package var requiresGrad: Bool {
        get { base?.requiresGrad ?? ownRequiresGrad }
        set {
            if let base { base.requiresGrad = newValue } else { ownRequiresGrad = newValue }
        }
    }

    /// Adds `g` to the gradient. The first gradient of a tensor that is not a view takes `g`
    /// itself, which the caller must not use again (a gradient handed on, as by `add`).
    package func accumulate(taking g: Tensor) {
        if base == nil, own == nil, g.shape == shape, g.isContiguous { own = g; return }
        let target = buffer()
        target.backend.combine(.add, target, g, into: target, accumulate: false)
    }

    /// Adds `g` to the gradient; the first gradient of a tensor that is not a view is a copy.
    package func accumulate(copying g: Tensor) {
        if base == nil, own == nil, g.shape == shape { own = g.copy(); return }
        let target = buffer()
        target.backend.combine(.add, target, g, into: target, accumulate: false)
    }

    /// Gives up this tensor's own gradient (its consumer has used it and hands it on).
    package func release() -> Tensor? {
        guard base == nil else { return nil }
        defer { own = nil }
        return own
    }

    /// The gradient buffer, created as zeros on first use.
    package func buffer() -> Tensor {
        if let base, let view { return view(base.buffer()) }
        if let own { return own }
        let g = Tensor(zeroed: shape)
        own = g
        return g
    }
}
