/// How much a pickle may ask of the reader, in proportion to its size: a pickle cannot
/// legitimately build more values than it has bytes, give or take a constant factor, while a
/// few bytes of memo references (BINGET, DUP) can ask for unbounded work if nothing counts it.
package enum PickleLimits {
    /// Containers nested deeper than this are refused. torch.save and numpy data nest fewer
    /// than 10 levels (Python's pickler itself stops near 1,000, its recursion limit). Swift
    /// releases a value recursively, about 400 bytes of stack a level in a debug build (200
    /// optimised), so 256 levels stay near 100 KiB, well inside a 512 KiB secondary thread.
    package static let maxDepth = 256
    /// Work (values pushed or moved, key bytes hashed, nodes visited) allowed per byte. Reading a
    /// torch.save or numpy pickle takes fewer than 4; long memoized keys reused often take more.
    package static let stepsPerByte = 64
    /// Values a constructor copies out of values already built (bytes encoded from a string,
    /// tensor sizes and strides) allowed per byte: each is at most one per byte of the file it
    /// came from, unless a memo reference asks for the same copy again and again.
    package static let copiesPerByte = 2
    /// Allowed on top, so that tiny pickles are never refused.
    package static let baseAllowance = 1 << 16

    static func steps(forBytes n: Int) -> Int { n * stepsPerByte + baseAllowance }      // n is a buffer's size: no overflow
    static func copies(forBytes n: Int) -> Int { n * copiesPerByte + baseAllowance }
}

/// A pickle reader that only builds data. It knows the globals torch.save emits for state dicts
/// and training checkpoints and refuses every other one by name before it could matter; no
/// pickled callable is ever invoked, each allowed global maps to a fixed constructor here.
///
/// Nothing here recurses on the input: the opcode loop is a stack machine, the graph check
/// after STOP walks with an explicit stack, and when a load fails every container it built is
/// emptied, so that releasing them never recurses either. Work and copies are counted against
/// `PickleLimits`, so no pickle can take time or memory out of proportion to its size.
struct Unpickler {
    static let storageTypes: [String: StoredDType] = [
        "torch.FloatStorage": .float32, "torch.HalfStorage": .float16, "torch.BFloat16Storage": .bfloat16,
        "torch.DoubleStorage": .float64, "torch.LongStorage": .int64, "torch.IntStorage": .int32,
        "torch.ShortStorage": .int16, "torch.CharStorage": .int8, "torch.ByteStorage": .uint8,
        "torch.BoolStorage": .bool,
    ]
    static let callables: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "argparse.Namespace",
        // How protocol 2 writes Python 3 bytes: encode(text, "latin1"), or bytes() when empty
        // (`__builtin__` is Python 2's name for `builtins`, which fix_imports writes).
        "_codecs.encode", "__builtin__.bytes", "builtins.bytes",
    ]
    /// What numpy pickles arrays, dtypes and scalars with; allowed only when reading datasets
    /// (CIFAR's python batches), and even then built as inert records, never called.
    static let numpyGlobals: Set<String> = [
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",      // protocol 5
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.ndarray", "numpy.dtype",
    ]

    let path: String
    var allowsNumpy = false
    let bytes: UnsafeRawBufferPointer
    var pos = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    /// Every container built, so that a failed load can empty them all (see `dismantle`).
    var made: [PickleValue] = []
    var steps = 0, copies = 0
    let maxSteps: Int, maxCopies: Int

    init(path: String, bytes: UnsafeRawBufferPointer) {
        self.path = path
        self.bytes = bytes
        maxSteps = PickleLimits.steps(forBytes: bytes.count)
        maxCopies = PickleLimits.copies(forBytes: bytes.count)
    }

    /// `detail` is a fixed phrase; a value from the file only ever enters it through
    /// PickleValue.description, which is bounded and escaped.
    func fail(_ detail: String) -> FileError { .malformedPickle(path: path, offset: pos, detail: detail) }

    mutating func spend(_ n: Int) throws {
        steps += n
        guard steps <= maxSteps else { throw FileError.pickleTooComplex(path: path, offset: pos, limit: maxSteps) }
    }
    mutating func copy(_ n: Int) throws {
        copies += n
        guard copies <= maxCopies else { throw FileError.pickleTooLarge(path: path, offset: pos, limit: maxCopies) }
        try spend(n)
    }

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
    /// Pops one value, never one below the last MARK (Python refuses that too).
    mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }
    mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw fail("missing MARK") }
        try spend(stack.count - m)
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }
    mutating func push(_ v: PickleValue) throws {
        guard stack.count < 1_000_000 else { throw fail("pickle stack too deep") }
        try spend(1)
        stack.append(v)
    }
    /// A new container: pushed and remembered for `dismantle`.
    mutating func pushNew(_ v: PickleValue) throws {
        made.append(v)
        try push(v)
    }
    mutating func memoize(_ key: Int) throws {
        guard let v = stack.last else { throw fail("memo of an empty stack") }
        try spend(1)
        memo[key] = v
    }
    /// Sets a dict item; hashing a key costs its length.
    mutating func set(_ d: PickleDict, _ key: PickleValue, _ value: PickleValue) throws {
        switch key {
        case .string(let s): try spend(1 + s.utf8.count)
        case .bytes(let b): try spend(1 + b.count)
        case .global(let g): try spend(1 + g.utf8.count)
        default: try spend(1)
        }
        d.set(key, value)
    }

    mutating func global(_ module: String, _ name: String) throws -> PickleValue {
        try spend(module.utf8.count + name.utf8.count)
        let full = "\(module).\(name)"
        guard Self.storageTypes[full] != nil || Self.callables.contains(full) || (allowsNumpy && Self.numpyGlobals.contains(full)) else {
            throw FileError.refusedGlobal(path: path, name: full)
        }
        return .global(full)
    }

    /// Reads the pickle; what it returns is acyclic and at most `PickleLimits.maxDepth` deep.
    mutating func load() throws -> PickleValue {
        do {
            let root = try run()
            let reachable = try checkGraph(root)
            dismantle(keeping: reachable)
            return root
        } catch {
            dismantle(keeping: [])
            throw error
        }
    }

    /// Empties every container built except those in `keeping`. After a failed load that is all
    /// of them, so that releasing what the stack and memo hold never recurses (a pickle can
    /// nest 100,000 deep or hold a list that contains itself); after a load that succeeded it
    /// is whatever the root does not reach.
    mutating func dismantle(keeping: Set<ObjectIdentifier>) {
        for v in made {
            switch v {
            case .tuple(let t) where !keeping.contains(ObjectIdentifier(t)): t.items = []
            case .list(let l) where !keeping.contains(ObjectIdentifier(l)): l.items = []
            case .dict(let d) where !keeping.contains(ObjectIdentifier(d)): d.removeAll()
            case .object(let o) where !keeping.contains(ObjectIdentifier(o)): o.args = .none; o.state = .none
            default: break
            }
        }
        made = []
    }

    /// Walks the graph under `root` with an explicit stack, visiting each container once: refuses
    /// a container that contains itself and nesting deeper than `PickleLimits.maxDepth`, and
    /// returns the containers it reached.
    mutating func checkGraph(_ root: PickleValue) throws -> Set<ObjectIdentifier> {
        /// Height of each finished container (1 for one holding no container); -1 while on the path.
        var height: [ObjectIdentifier: Int] = [:]
        var chain: [(id: ObjectIdentifier, children: [PickleValue], next: Int, height: Int)] = []
        func identity(_ v: PickleValue) -> ObjectIdentifier? {
            switch v {
            case .tuple(let t): ObjectIdentifier(t)
            case .list(let l): ObjectIdentifier(l)
            case .dict(let d): ObjectIdentifier(d)
            case .object(let o): ObjectIdentifier(o)
            default: nil
            }
        }
        // Only for a container not seen before: a dict shared a million times is copied once.
        func children(_ v: PickleValue) -> [PickleValue] {
            switch v {
            case .tuple(let t): t.items
            case .list(let l): l.items
            case .dict(let d): d.keys + d.values
            case .object(let o): [o.args, o.state]
            default: []
            }
        }
        if let id = identity(root) { height[id] = -1; chain.append((id, children(root), 0, 0)) }
        while let top = chain.last {
            if top.next < top.children.count {
                chain[chain.count - 1].next += 1
                try spend(1)
                let child = top.children[top.next]
                guard let id = identity(child) else { continue }
                if let h = height[id] {
                    guard h >= 0 else { throw FileError.pickleCycle(path: path) }
                    // The chain so far plus the child's own height is one chain of nesting.
                    guard chain.count + h <= PickleLimits.maxDepth else { throw FileError.pickleTooDeep(path: path, limit: PickleLimits.maxDepth) }
                    chain[chain.count - 1].height = max(top.height, h)
                } else {
                    guard chain.count < PickleLimits.maxDepth else { throw FileError.pickleTooDeep(path: path, limit: PickleLimits.maxDepth) }
                    height[id] = -1
                    let grandchildren = children(child)
                    try spend(grandchildren.count)
                    chain.append((id, grandchildren, 0, 0))
                }
            } else {
                chain.removeLast()
                height[top.id] = top.height + 1
                if !chain.isEmpty { chain[chain.count - 1].height = max(chain[chain.count - 1].height, top.height + 1) }
            }
        }
        return Set(height.keys)
    }

    mutating func run() throws -> PickleValue {
        while true {
            let at = pos
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E: return try pop()                                 // STOP
            case 0x28: try spend(1); marks.append(stack.count)          // MARK
            case 0x7D: try pushNew(.dict(PickleDict()))                 // EMPTY_DICT
            case 0x5D: try pushNew(.list(PickleList()))                 // EMPTY_LIST
            case 0x29: try pushNew(.tuple(PickleTuple([])))             // EMPTY_TUPLE
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
            case 0x43, 0x42, 0x8E, 0x96:                                // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
                let n = op == 0x43 ? try byte() : try uint(op == 0x42 ? 4 : 8)
                try push(.bytes(Array(try take(n))))
            case 0x71: try memoize(try byte())                          // BINPUT
            case 0x72: try memoize(try uint(4))                         // LONG_BINPUT
            case 0x94: try memoize(memo.count)                          // MEMOIZE
            case 0x68, 0x6A:                                            // BINGET, LONG_BINGET
                let key = op == 0x68 ? try byte() : try uint(4)
                guard let v = memo[key] else { throw fail("memo key \(key) is not defined") }
                try push(v)
            case 0x74: try pushNew(.tuple(PickleTuple(try popMark())))  // TUPLE
            case 0x85: try pushNew(.tuple(PickleTuple([try pop()])))    // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try pushNew(.tuple(PickleTuple([a, b])))        // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try pushNew(.tuple(PickleTuple([a, b, c])))  // TUPLE3
            case 0x6C: try pushNew(.list(PickleList(try popMark())))    // LIST
            case 0x64:                                                  // DICT
                let items = try popMark(), d = PickleDict()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                for i in stride(from: 0, to: items.count, by: 2) { try set(d, items[i], items[i + 1]) }
                try pushNew(.dict(d))
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
                try set(d, k, v)
            case 0x75:                                                  // SETITEMS
                let items = try popMark()
                guard case .dict(let d)? = stack.last, items.count % 2 == 0 else { throw fail("SETITEMS on a non-dict or with an odd number of items") }
                for i in stride(from: 0, to: items.count, by: 2) { try set(d, items[i], items[i + 1]) }
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
            case 0x52, 0x81:                                            // REDUCE, NEWOBJ
                let args = try pop(), callable = try pop()
                let value = try call(callable, args)
                switch value {
                case .tuple, .list, .dict, .object: try pushNew(value)
                default: try push(value)
                }
            case 0x62:                                                  // BUILD
                let state = try pop()
                if case .object(let o)? = stack.last { o.state = state }
                // Other targets (an OrderedDict's `_metadata`, a tensor's hooks) keep no state we use.
            case 0x51:                                                  // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                throw FileError.unsupportedOpcode(path: path, opcode: UInt8(op), offset: at)
            }
        }
    }

    /// The fixed constructor for each allowed callable global.
    mutating func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let name) = callable, case .tuple(let t) = args else {
            throw fail("REDUCE of something other than an allowed global")
        }
        let a = t.items
        switch name {
        case "collections.OrderedDict":
            return .dict(PickleDict())
        case "argparse.Namespace", "numpy.dtype":
            return .object(PickleObject(type: name, args: args))
        case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
            return .object(PickleObject(type: "numpy.scalar", args: args))
        case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
            return .object(PickleObject(type: "numpy.ndarray", args: args))   // BUILD gives its state
        case "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer":
            // _frombuffer(buffer, dtype, shape, order): recorded in the state layout that
            // _reconstruct's BUILD gives, (version, shape, dtype, is_fortran, data).
            guard a.count == 4, case .bytes = a[0], case .object = a[1], case .tuple = a[2], let order = a[3].stringValue else {
                throw fail("bad _frombuffer arguments")
            }
            let state = PickleTuple([.int(1), a[2], a[1], .bool(order == "F"), a[0]])
            made.append(.tuple(state))
            let array = PickleObject(type: "numpy.ndarray", args: args)
            array.state = .tuple(state)
            return .object(array)
        case "_codecs.encode":
            guard a.count == 2, let text = a[0].stringValue, ["latin1", "latin-1"].contains(a[1].stringValue) else {
                throw fail("bad _codecs.encode arguments")
            }
            try copy(text.utf8.count)
            var out = [UInt8]()
            out.reserveCapacity(text.utf8.count)
            for c in text.unicodeScalars {
                guard c.value < 256 else { throw fail("_codecs.encode of a character outside latin-1") }
                out.append(UInt8(c.value))
            }
            return .bytes(out)
        case "__builtin__.bytes", "builtins.bytes":
            guard a.isEmpty else { throw fail("bad bytes arguments") }
            return .bytes([])
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = a.first, case .tensor = data else { throw fail("bad _rebuild_parameter arguments") }
            return data
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4, case .storage(let storage) = a[0], case .int(let offset) = a[1],
                  case .tuple(let size) = a[2], case .tuple(let stride) = a[3] else {
                throw fail("bad tensor rebuild arguments")
            }
            try copy(size.items.count + stride.items.count)
            let shape = try size.items.map { v -> Int in guard case .int(let i) = v, i >= 0 else { throw fail("bad tensor size") }; return i }
            let strides = try stride.items.map { v -> Int in guard case .int(let i) = v, i >= 0 else { throw fail("bad tensor stride") }; return i }
            guard shape.count == strides.count, offset >= 0 else { throw fail("tensor size and stride disagree") }
            return .tensor(PickleTensor(storage: storage, offset: offset, shape: shape, stride: strides))
        default:
            throw fail("\(name) cannot be called")   // name is from the allow-list
        }
    }

    func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        let t = if case .tuple(let tuple) = pid { tuple.items } else { [PickleValue]() }
        guard t.count >= 5, t[0].stringValue == "storage", case .global(let type) = t[1], let dtype = Self.storageTypes[type],
              let key = t[2].stringValue, case .int(let count) = t[4], count >= 0 else {
            throw fail("unsupported persistent id \(pid)")
        }
        return .storage(PickleStorage(dtype: dtype, key: key, count: count))
    }
}
