import Foundation

/// A float32 tensor: a shape and a contiguous, row-major, 64-byte-aligned buffer it owns.
///
/// Kernels take `data` pointers directly; model code works with whole tensors.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// Where d(loss)/d(self) accumulates. Backward steps that need only this tensor's gradient,
    /// not its values, keep the slot alone, so the values are freed as soon as the forward pass
    /// is done with them.
    public let slot: GradientSlot
    /// d(loss)/d(self), filled by `Tape.backward` for tensors that reach the loss.
    /// Set only by our own ops (backward kernels write into it assuming the tensor's shape).
    public package(set) var grad: Tensor? {
        get { slot.grad }
        set { slot.grad = newValue }
    }
    /// Whether backward steps should fill `grad` (parameters and activations; not input images).
    public var requiresGrad: Bool {
        get { slot.requiresGrad }
        set { slot.requiresGrad = newValue }
    }

    /// An uninitialised tensor for our own kernels, which write all of it. Its shape comes from
    /// tensors that already exist, so a negative dimension here is a bug of ours; shapes from
    /// callers go through the throwing initialisers.
    package init(uninitializedShape shape: [Int]) {
        _ = Tensor.allocatorConfigured
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.slot = GradientSlot(shape: shape)
        TensorMemory.allocated(count * 4)
    }

    /// Zeros of a shape of our own making (see `init(uninitializedShape:)`).
    package convenience init(zeroed shape: [Int]) {
        self.init(uninitializedShape: shape)
        data.initialize(repeating: 0, count: count)
    }

    /// Zeros of `shape`.
    public convenience init(zeros shape: [Int]) throws {
        _ = try checkedCount(shape, tensor: "zeros")
        self.init(zeroed: shape)
    }

    /// `value` everywhere in `shape`.
    public convenience init(shape: [Int], repeating value: Float) throws {
        _ = try checkedCount(shape, tensor: "repeating")
        self.init(uninitializedShape: shape)
        data.initialize(repeating: value, count: count)
    }

    /// `values` in row-major order; there must be exactly as many as `shape` holds.
    public convenience init(shape: [Int], values: [Float]) throws {
        let count = try checkedCount(shape, tensor: "values")
        guard values.count == count else { throw TensorError.valueCountMismatch(tensor: "values", expected: count, found: values.count) }
        self.init(uninitializedShape: shape)
        if count > 0 { values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) } }
    }

    deinit {
        UnsafeMutableRawPointer(data).deallocate()
        TensorMemory.freed(count * 4)
    }

    /// glibc serves blocks over 128 KiB-32 MiB with fresh mmap'd pages and returns them on free,
    /// so every activation buffer of a forward pass paid its page faults again (a third of the
    /// conv kernel's time at batch 8). Keeping large blocks on the heap lets them be reused.
    private static let allocatorConfigured: Void = {
        #if canImport(Glibc)
        _ = glibcMallopt(-3, 1 << 30)  // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)  // M_TRIM_THRESHOLD
        #endif
    }()

    public var rank: Int { shape.count }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    /// A copy with a new shape of the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard try checkedCount(newShape, tensor: "reshape") == count else { throw TensorError.cannotReshape(from: shape, to: newShape) }
        let t = Tensor(uninitializedShape: newShape)
        t.data.update(from: data, count: count)
        return t
    }

    public func copy() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Rows `[start, start + n)` of the first dimension, copied.
    public func rows(_ start: Int, _ n: Int) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.rankMismatch(tensor: "tensor", expected: 1, found: shape) }
        guard start >= 0, n >= 0, n <= shape[0] - start else {
            throw TensorError.rowsOutOfRange(tensor: "tensor", start: start, count: n, size: shape[0])
        }
        let rowSize = shape.dropFirst().reduce(1, *)
        let t = Tensor(uninitializedShape: [n] + shape.dropFirst())
        t.data.update(from: data + start * rowSize, count: n * rowSize)
        return t
    }
}

/// ||a - b|| / ||b||, accumulated in double precision.
/// Infinite when the counts differ, so that a tolerance check fails.
public func relativeL2(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
    guard a.count == b.count else { return .infinity }
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return den == 0 ? num.squareRoot() : (num / den).squareRoot()
}

public func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in relativeL2(pa, pb) } }
}

#if canImport(Glibc)
// glibc's mallopt (malloc.h is not part of the Glibc module).
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif

/// The gradient of one tensor, apart from its values.
public final class GradientSlot: @unchecked Sendable {
    public let shape: [Int]
    /// Set only by our own ops: backward kernels write into it assuming `shape`.
    public package(set) var grad: Tensor?
    public var requiresGrad = true

    init(shape: [Int]) { self.shape = shape }

    /// The gradient buffer, created as zeros on first use.
    public func buffer() -> Tensor {
        if let grad { return grad }
        let g = Tensor(zeroed: shape)
        grad = g
        return g
    }
}

/// Bytes held by live tensors now and at most since the last reset (what PyTorch reports as
/// `max_memory_allocated`): the model's own memory, apart from the process's other allocations.
public enum TensorMemory {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0

    static func allocated(_ bytes: Int) {
        lock.lock(); live += bytes; peak = max(peak, live); lock.unlock()
    }
    static func freed(_ bytes: Int) { lock.lock(); live -= bytes; lock.unlock() }

    public static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }
    public static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    /// Starts a new peak from the current live bytes.
    public static func resetPeak() { lock.lock(); peak = live; lock.unlock() }
}
