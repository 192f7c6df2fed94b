import Foundation

/// Element types that checkpoint files carry. Raw values are the safetensors dtype strings.
package enum StoredDType: String, Sendable, CaseIterable {
    case float32 = "F32", float16 = "F16", bfloat16 = "BF16", float64 = "F64"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8", uint8 = "U8", bool = "BOOL"

    package var byteCount: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }
}

/// Bytes that outlive the reader: a memory-mapped file region or an owned copy.
package final class StorageBytes: @unchecked Sendable {
    package let pointer: UnsafeRawPointer
    package let count: Int
    private let release: () -> Void

    package init(pointer: UnsafeRawPointer, count: Int, release: @escaping () -> Void) {
        self.pointer = pointer
        self.count = count
        self.release = release
    }

    /// An owned, 64-byte-aligned copy of `data`.
    package convenience init(copying data: UnsafeRawBufferPointer) {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        if data.count > 0 { p.copyMemory(from: data.baseAddress!, byteCount: data.count) }
        self.init(pointer: UnsafeRawPointer(p), count: data.count, release: { p.deallocate() })
    }

    deinit { release() }
}

/// One tensor as a file stores it: dtype, shape and a view into bytes (little-endian, row-major).
///
/// The readers build one only after checking its shape, dtype and offset against the file, and
/// `floats()` then reads without checks: so the fields are read-only outside the package and the
/// view initialiser is not public.
package struct StoredTensor: @unchecked Sendable {
    package private(set) var dtype: StoredDType
    package private(set) var shape: [Int]
    package private(set) var storage: StorageBytes
    /// Byte offset of element 0 inside `storage`.
    package private(set) var offset: Int

    package init(dtype: StoredDType, shape: [Int], storage: StorageBytes, offset: Int = 0) {
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.offset = offset
    }

    /// The readers check shape × dtype size against the file with overflow-checked arithmetic
    /// before they build a StoredTensor, so these products cannot overflow.
    package var elementCount: Int { shape.reduce(1, *) }
    package var byteCount: Int { elementCount * dtype.byteCount }
    package var rawBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.pointer + offset, count: byteCount)
    }

    /// A float32 tensor owning a copy of `values`. Only this package calls it (not public), always
    /// with a tensor's own shape and values (nothing from a file), so a mismatch is a programming
    /// error and traps.
    package init(shape: [Int], floats values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        let bytes = values.withUnsafeBytes { StorageBytes(copying: $0) }
        self.init(dtype: .float32, shape: shape, storage: bytes)
    }

    /// An int64 tensor owning a copy of `values`.
    package init(shape: [Int], int64s values: [Int64]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        let bytes = values.withUnsafeBytes { StorageBytes(copying: $0) }
        self.init(dtype: .int64, shape: shape, storage: bytes)
    }

    /// The values converted to float32 (float16, bfloat16 and float64 are converted; integers cast).
    package func floats() -> [Float] {
        let n = elementCount
        let base = storage.pointer + offset
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            switch dtype {
            case .float32:
                for i in 0..<n { out[i] = base.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
            case .float64:
                for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            case .float16:
                for i in 0..<n {
                    let bits = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    out[i] = floatFromHalf(bits)
                }
            case .bfloat16:
                for i in 0..<n {
                    let bits = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    out[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            case .int64:
                for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
            case .int32:
                for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
            case .int16:
                for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
            case .int8:
                for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: i, as: Int8.self)) }
            case .uint8, .bool:
                for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: i, as: UInt8.self)) }
            }
            count = n
        }
    }

    /// The values as int64 (integer dtypes only; floats are truncated).
    package func int64s() -> [Int64] {
        switch dtype {
        case .int64:
            let base = storage.pointer + offset
            return (0..<elementCount).map { base.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }
        default:
            return floats().map { Int64($0) }
        }
    }
}

/// Named tensors in file order.
package struct TensorFile: Sendable {
    package var names: [String]
    package var tensors: [String: StoredTensor]
    package var metadata: [String: String]

    package init(names: [String] = [], tensors: [String: StoredTensor] = [:], metadata: [String: String] = [:]) {
        self.names = names
        self.tensors = tensors
        self.metadata = metadata
    }

    package subscript(name: String) -> StoredTensor? { tensors[name] }

    package mutating func append(_ name: String, _ tensor: StoredTensor) {
        if tensors[name] == nil { names.append(name) }
        tensors[name] = tensor
    }
}

/// IEEE half-precision bits widened to float32, exactly. Swift's Float16 is not available on
/// Intel Macs, so the bits are moved by hand: the 5-bit exponent is rebiased (15 → 127) and the
/// 10-bit mantissa shifted up; subnormal halves are mantissa · 2⁻²⁴, exact in float32.
@inline(__always)
func floatFromHalf(_ bits: UInt16) -> Float {
    let sign = UInt32(bits >> 15) << 31
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits) & 0x3FF
    switch exponent {
    case 0:
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    case 0x1F:
        return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)  // infinity or NaN, payload kept
    default:
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }
}
