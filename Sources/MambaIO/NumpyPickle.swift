import Foundation

/// Reads a plain pickle file (not a torch archive) whose arrays were written by numpy, e.g.
/// the CIFAR python batches. Only inert data and numpy's array records are accepted.
package func readNumpyPickle(_ path: String) throws -> PickleValue {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FileError.notFound(path: path) }
    if isDir.boolValue { throw FileError.isDirectory(path: path) }
    guard let data = FileManager.default.contents(atPath: path) else { throw FileError.unreadable(path: path, reason: "cannot read the file") }
    return try readNumpyPickle(data, path: path)
}

/// The same for pickle bytes already in memory; `path` names them in errors.
package func readNumpyPickle(_ data: Data, path: String) throws -> PickleValue {
    try data.withUnsafeBytes { raw in
        var u = Unpickler(path: path, bytes: raw)
        u.allowsNumpy = true
        return try u.load()
    }
}

extension PickleObject {
    /// The raw bytes and shape of a numpy uint8 array record in C order; nil unless its dtype is
    /// uint8, its (file-supplied) shape is non-negative and the shape's product, computed
    /// without overflow, is the byte count.
    package func uint8Array() -> (shape: [Int], bytes: [UInt8])? {
        // numpy's state: (version, shape, dtype, is_fortran, data).
        guard type == "numpy.ndarray", let s = state.items, s.count >= 5, let dims = s[1].items,
              case .object(let dtype) = s[2], dtype.isUInt8, case .bytes(let bytes) = s[4] else { return nil }
        switch s[3] {
        case .bool(false), .int(0): break          // Python 2 may write the flag as an int
        default: return nil                        // Fortran order would need a transpose
        }
        let shape = dims.compactMap { if case .int(let i) = $0, i >= 0 { i } else { nil } }
        guard shape.count == dims.count, checkedProduct(shape) == bytes.count else { return nil }
        return (shape, bytes)
    }

    /// A numpy dtype record for uint8: numpy pickles it as dtype('u1', False, True), Python 2
    /// with 'u1' as a byte string.
    var isUInt8: Bool {
        guard type == "numpy.dtype", let first = args.items?.first else { return false }
        switch first {
        case .string(let s): return s == "u1" || s == "|u1"
        case .bytes(let b): return b == Array("u1".utf8) || b == Array("|u1".utf8)
        default: return false
        }
    }
}
