import Foundation

/// A value built by the restricted unpickler. Containers are classes because pickle mutates
/// them after they are memoized (EMPTY_DICT, BINPUT, then SETITEMS on the same object).
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// An allowed global, not yet called (a storage class, OrderedDict, a rebuild function).
    case global(String)
    /// An inert record such as `argparse.Namespace`: its type name and attributes.
    case object(PickleObject)
    /// A persistent-id reference to a tensor storage in the archive.
    case storage(PickleStorage)
    /// A tensor view onto a storage.
    case tensor(PickleTensor)

    public var description: String {
        switch self {
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .float(let f): String(f)
        case .string(let s): "'\(s)'"
        case .bytes(let b): "bytes(\(b.count))"
        case .tuple(let t): "(" + t.map(\.description).joined(separator: ", ") + ")"
        case .list(let l): "[" + l.items.map(\.description).joined(separator: ", ") + "]"
        case .dict(let d): "{" + zip(d.keys, d.values).map { "\($0): \($1)" }.joined(separator: ", ") + "}"
        case .global(let g): g
        case .object(let o): "\(o.type)(\(o.attributes.count) attributes)"
        case .storage(let s): "storage(\(s.dtype), \(s.key))"
        case .tensor(let t): "tensor(\(t.shape))"
        }
    }

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
}

public final class PickleList { public var items: [PickleValue] = [] }

/// An insertion-ordered dictionary with keys of any pickled value.
public final class PickleDict {
    public var keys: [PickleValue] = []
    public var values: [PickleValue] = []
    public subscript(key: String) -> PickleValue? {
        for (k, v) in zip(keys, values) { if case .string(key) = k { return v } }
        return nil
    }
    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let s) = key, let i = keys.firstIndex(where: { $0.stringValue == s }) { values[i] = value; return }
        keys.append(key); values.append(value)
    }
}

public final class PickleObject {
    public let type: String
    public var attributes: [String: PickleValue] = [:]
    init(type: String) { self.type = type }
    var asValue: PickleValue { .object(self) }
}

/// Reads a plain pickle file (not a torch archive) whose arrays were written by numpy, e.g.
/// the CIFAR python batches. Only inert data and numpy's array records are accepted.
public func readNumpyPickle(_ path: String) throws -> PickleValue {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FileError.notFound(path: path) }
    if isDir.boolValue { throw FileError.isDirectory(path: path) }
    guard let data = FileManager.default.contents(atPath: path) else { throw FileError.unreadable(path: path, reason: "cannot read the file") }
    return try data.withUnsafeBytes { raw in
        var u = Unpickler(path: path, bytes: raw)
        u.allowsNumpy = true
        return try u.load()
    }
}

extension PickleObject {
    /// The raw bytes and shape of a numpy uint8 array record; nil unless the (file-supplied) shape
    /// is non-negative and its product, computed without overflow, is the byte count.
    public func uint8Array() -> (shape: [Int], bytes: [UInt8])? {
        guard type == "numpy.ndarray", case .tuple(let s)? = attributes["__state__"], s.count >= 5,
              case .tuple(let dims) = s[1], case .bytes(let bytes) = s[4] else { return nil }
        let shape = dims.compactMap { if case .int(let i) = $0, i >= 0 { i } else { nil } }
        guard shape.count == dims.count, checkedProduct(shape) == bytes.count else { return nil }
        return (shape, bytes)
    }
}

public struct PickleStorage {
    public let dtype: StoredDType
    public let key: String
    public let count: Int
}

public struct PickleTensor {
    public let storage: PickleStorage
    public let offset: Int
    public let shape: [Int]
    public let stride: [Int]
}

/// A pickle reader that only builds data. It knows the globals torch.save emits for state dicts
/// and training checkpoints and refuses every other one by name before it could matter; no
/// pickled callable is ever invoked, each allowed global maps to a fixed constructor here.
struct Unpickler {
    static let storageTypes: [String: StoredDType] = [
        "torch.FloatStorage": .float32, "torch.HalfStorage": .float16, "torch.BFloat16Storage": .bfloat16,
        "torch.DoubleStorage": .float64, "torch.LongStorage": .int64, "torch.IntStorage": .int32,
        "torch.ShortStorage": .int16, "torch.CharStorage": .int8, "torch.ByteStorage": .uint8,
        "torch.BoolStorage": .bool,
    ]
    static let callables: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "argparse.Namespace", "_codecs.encode",
    ]
    /// What numpy pickles an array with; allowed only when reading datasets (CIFAR's python
    /// batches), and even then built as inert records, never called.
    static let numpyGlobals: Set<String> = [
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    ]

    let path: String
    var allowsNumpy = false
    let bytes: UnsafeRawBufferPointer
    var pos = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]

    init(path: String, bytes: UnsafeRawBufferPointer) {
        self.path = path
        self.bytes = bytes
    }

    /// `detail` is a fixed phrase, never a value from the file.
    func fail(_ detail: String) -> FileError { .malformedPickle(path: path, offset: pos, detail: detail) }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, pos <= bytes.count - n else { throw fail("truncated") }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }
    mutating func byte() throws -> Int { Int(try take(1)[0]) }
    mutating func uint(_ n: Int) throws -> Int {
        let b = try take(n)
        var v = 0
        for i in (0..<n).reversed() { v = v << 8 | Int(b[i]) }
        return v
    }
    mutating func line() throws -> String {
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("truncated (unterminated line)") }
        defer { pos = end + 1 }
        return String(decoding: bytes[pos..<end], as: UTF8.self)
    }
    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }
    mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw fail("missing MARK") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }
    mutating func push(_ v: PickleValue) throws {
        guard stack.count < 1_000_000 else { throw fail("pickle stack too deep") }
        stack.append(v)
    }

    func global(_ module: String, _ name: String) throws -> PickleValue {
        let full = "\(module).\(name)"
        guard Self.storageTypes[full] != nil || Self.callables.contains(full) || (allowsNumpy && Self.numpyGlobals.contains(full)) else {
            throw FileError.refusedGlobal(path: path, name: full)
        }
        return .global(full)
    }

    mutating func load() throws -> PickleValue {
        while true {
            let at = pos
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E: return try pop()                                 // STOP
            case 0x28: marks.append(stack.count)                        // MARK
            case 0x7D: try push(.dict(PickleDict()))                    // EMPTY_DICT
            case 0x5D: try push(.list(PickleList()))                    // EMPTY_LIST
            case 0x29: try push(.tuple([]))                             // EMPTY_TUPLE
            case 0x4E: try push(.none)                                  // NONE
            case 0x88: try push(.bool(true))                            // NEWTRUE
            case 0x89: try push(.bool(false))                           // NEWFALSE
            case 0x4B: try push(.int(try uint(1)))                      // BININT1
            case 0x4D: try push(.int(try uint(2)))                      // BININT2
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8A, 0x8B:                                            // LONG1, LONG4
                let n = op == 0x8A ? try byte() : try uint(4)
                guard n <= 8 else { throw fail("integer of \(n) bytes is too large") }
                let b = try take(n)
                var v: UInt64 = 0
                for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << UInt64(8 * n) }  // sign-extend
                try push(.int(Int(Int64(bitPattern: v))))
            case 0x47:                                                  // BINFLOAT (big-endian)
                let b = try take(8)
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                try push(.float(Double(bitPattern: v)))
            case 0x58, 0x8C, 0x8D:                                      // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                let n = op == 0x8C ? try byte() : try uint(op == 0x8D ? 8 : 4)
                try push(.string(String(decoding: try take(n), as: UTF8.self)))
            case 0x55, 0x54:                                            // SHORT_BINSTRING, BINSTRING: Python 2 str, read as bytes
                let n = op == 0x55 ? try byte() : try uint(4)
                try push(.bytes(Array(try take(n))))
            case 0x43, 0x42, 0x8E:                                      // SHORT_BINBYTES, BINBYTES, BINBYTES8
                let n = op == 0x43 ? try byte() : try uint(op == 0x8E ? 8 : 4)
                try push(.bytes(Array(try take(n))))
            case 0x71: memo[try byte()] = stack.last                    // BINPUT
            case 0x72: memo[try uint(4)] = stack.last                   // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                    // MEMOIZE
            case 0x68, 0x6A:                                            // BINGET, LONG_BINGET
                let key = op == 0x68 ? try byte() : try uint(4)
                guard let v = memo[key] else { throw fail("memo key \(key) is not defined") }
                try push(v)
            case 0x74: try push(.tuple(try popMark()))                  // TUPLE
            case 0x85: try push(.tuple([try pop()]))                    // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b]))        // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c]))  // TUPLE3
            case 0x6C:                                                  // LIST
                let l = PickleList(); l.items = try popMark(); try push(.list(l))
            case 0x64:                                                  // DICT
                let items = try popMark(), d = PickleDict()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
                try push(.dict(d))
            case 0x61:                                                  // APPEND
                let v = try pop()
                guard case .list(let l)? = stack.last else { throw fail("APPEND to a non-list") }
                l.items.append(v)
            case 0x65:                                                  // APPENDS
                let items = try popMark()
                guard case .list(let l)? = stack.last else { throw fail("APPENDS to a non-list") }
                l.items += items
            case 0x73:                                                  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d)? = stack.last else { throw fail("SETITEM on a non-dict") }
                d.set(k, v)
            case 0x75:                                                  // SETITEMS
                let items = try popMark()
                guard case .dict(let d)? = stack.last, items.count % 2 == 0 else { throw fail("SETITEMS on a non-dict or with an odd number of items") }
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
            case 0x30: _ = try pop()                                    // POP
            case 0x31: _ = try popMark()                                // POP_MARK
            case 0x32: guard let v = stack.last else { throw fail("DUP on empty stack") }; try push(v)  // DUP
            case 0x63:                                                  // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93:                                                  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.stringValue, let n = name.stringValue else { throw fail("STACK_GLOBAL of non-strings") }
                try push(try global(m, n))
            case 0x52:                                                  // REDUCE
                let args = try pop(), callable = try pop()
                try push(try call(callable, args))
            case 0x81:                                                  // NEWOBJ
                let args = try pop(), cls = try pop()
                try push(try call(cls, args))
            case 0x62:                                                  // BUILD
                let state = try pop()
                if case .object(let o)? = stack.last {
                    if case .dict(let d) = state {
                        for (k, v) in zip(d.keys, d.values) { if let name = k.stringValue { o.attributes[name] = v } }
                    } else {
                        o.attributes["__state__"] = state       // ndarray / dtype state tuples
                    }
                }
                // Other targets (an OrderedDict's `_metadata`, a tensor's hooks) keep no state we use.
            case 0x51:                                                  // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                throw FileError.unsupportedOpcode(path: path, opcode: UInt8(op), offset: at)
            }
        }
    }

    /// The fixed constructor for each allowed callable global.
    func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let name) = callable, case .tuple(let a) = args else {
            throw fail("REDUCE of something other than an allowed global")
        }
        switch name {
        case "collections.OrderedDict":
            return .dict(PickleDict())
        case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
            return .object(PickleObject(type: "numpy.ndarray"))
        case "numpy.dtype":
            let o = PickleObject(type: "numpy.dtype")
            o.attributes["__args__"] = args
            return o.asValue
        case "argparse.Namespace":
            return .object(PickleObject(type: name))
        case "_codecs.encode":
            // How protocol 2 pickles Python 3 bytes: encode(text, "latin1").
            guard let text = a.first?.stringValue else { throw fail("bad _codecs.encode arguments") }
            return .bytes(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        case "torch._utils._rebuild_parameter":
            guard let data = a.first, case .tensor = data else { throw fail("bad _rebuild_parameter arguments") }
            return data
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4, case .storage(let storage) = a[0], case .int(let offset) = a[1],
                  case .tuple(let size) = a[2], case .tuple(let stride) = a[3] else {
                throw fail("bad tensor rebuild arguments")
            }
            let shape = try size.map { v -> Int in guard case .int(let i) = v, i >= 0 else { throw fail("bad tensor size") }; return i }
            let strides = try stride.map { v -> Int in guard case .int(let i) = v, i >= 0 else { throw fail("bad tensor stride") }; return i }
            guard shape.count == strides.count, offset >= 0 else { throw fail("tensor size and stride disagree") }
            return .tensor(PickleTensor(storage: storage, offset: offset, shape: shape, stride: strides))
        default:
            throw fail("\(name) cannot be called")   // name is from the allow-list
        }
    }

    func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count >= 5, t[0].stringValue == "storage",
              case .global(let type) = t[1], let dtype = Self.storageTypes[type],
              let key = t[2].stringValue, case .int(let count) = t[4], count >= 0 else {
            throw fail("unsupported persistent id")
        }
        return .storage(PickleStorage(dtype: dtype, key: key, count: count))
    }
}
