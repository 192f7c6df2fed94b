/// A value built by the restricted unpickler. It is flat: every container is a class, so a
/// value never nests other values inline. Containers are classes because pickle mutates them
/// after they are memoized (EMPTY_DICT, BINPUT, then SETITEMS on the same object), and because
/// identity lets every walk over the graph visit each container once (a memo can share one
/// container many times over: a 570-byte pickle can describe a DAG of 2^40 paths).
///
/// What the unpickler returns is acyclic and nested at most `PickleLimits.maxDepth` deep.
package enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    /// An allowed global, not yet called (a storage class, OrderedDict, a rebuild function).
    case global(String)
    /// An inert record such as `argparse.Namespace` or a numpy array: its type, constructor
    /// arguments and state.
    case object(PickleObject)
    /// A persistent-id reference to a tensor storage in the archive.
    case storage(PickleStorage)
    /// A tensor view onto a storage.
    case tensor(PickleTensor)

    /// A short, one-line, Python-like rendering: at most `PickleFormat.maxLength` characters,
    /// `PickleFormat.maxDepth` levels and `PickleFormat.maxItems` items per container, with
    /// control and non-ASCII bytes escaped. Safe on any graph the unpickler can build.
    package var description: String {
        var f = PickleFormat()
        f.value(self, depth: 0)
        return f.finish()
    }

    /// The string, if this is one.
    package var stringValue: String? { if case .string(let s) = self { s } else { nil } }

    /// The items of a tuple or list.
    package var items: [PickleValue]? {
        switch self {
        case .tuple(let t): t.items
        case .list(let l): l.items
        default: nil
        }
    }
}

package final class PickleTuple {
    package internal(set) var items: [PickleValue]
    package init(_ items: [PickleValue]) { self.items = items }
}

package final class PickleList {
    package internal(set) var items: [PickleValue] = []
    package init(_ items: [PickleValue] = []) { self.items = items }
}

/// An insertion-ordered dictionary with keys of any pickled value. Keys hash by value as
/// Python's do for None, bools, numbers, strings, bytes and globals (so `True`, `1` and `1.0`
/// are one key); containers and records are keys by identity (Python would compare tuples by
/// value, but torch.save and numpy never write tuple keys).
package final class PickleDict {
    package private(set) var keys: [PickleValue] = []
    package private(set) var values: [PickleValue] = []
    private var index: [Key: Int] = [:]

    package init() {}

    package var count: Int { keys.count }

    package subscript(key: String) -> PickleValue? { index[.string(key)].map { values[$0] } }

    package subscript(key: PickleValue) -> PickleValue? { Key(key).flatMap { index[$0] }.map { values[$0] } }

    /// The value under `key` written as a string or (by Python 2, or Python 3 with bytes keys)
    /// as its UTF-8 bytes, as CIFAR's python batches are.
    package func value(forText key: String) -> PickleValue? { self[key] ?? index[.bytes(Array(key.utf8))].map { values[$0] } }

    /// Average O(1): a pickle of 100,000 keys sets 100,000 times.
    func set(_ key: PickleValue, _ value: PickleValue) {
        if let k = Key(key) {
            if let i = index[k] { values[i] = value; return }
            index[k] = keys.count
        }
        keys.append(key)
        values.append(value)
    }

    func removeAll() { keys = []; values = []; index = [:] }

    /// The hashable form of a key; nil for a key that never equals another (NaN, a storage).
    enum Key: Hashable {
        case none, number(Int), float(UInt64), string(String), bytes([UInt8]), global(String), identity(ObjectIdentifier)

        init?(_ v: PickleValue) {
            switch v {
            case .none: self = .none
            case .bool(let b): self = .number(b ? 1 : 0)
            case .int(let i): self = .number(i)
            case .float(let f):
                if f.isNaN { return nil }
                // Python: 2.0 == 2, and -0.0 == 0.
                if f == f.rounded(), let i = Int(exactly: f) { self = .number(i) } else { self = .float(f.bitPattern) }
            case .string(let s): self = .string(s)
            case .bytes(let b): self = .bytes(b)
            case .global(let g): self = .global(g)
            case .tuple(let t): self = .identity(ObjectIdentifier(t))
            case .list(let l): self = .identity(ObjectIdentifier(l))
            case .dict(let d): self = .identity(ObjectIdentifier(d))
            case .object(let o): self = .identity(ObjectIdentifier(o))
            case .storage, .tensor: return nil
            }
        }
    }
}

/// An inert record: what an allowed constructor was given, never the result of running it.
package final class PickleObject {
    package let type: String
    /// The constructor's arguments (a tuple).
    package internal(set) var args: PickleValue
    /// The state BUILD gave it (`.none` if none): a dict of attributes for `argparse.Namespace`,
    /// numpy's state tuple for an array or a dtype. Of several BUILDs the last one counts.
    package internal(set) var state: PickleValue = .none

    package init(type: String, args: PickleValue = .none) {
        self.type = type
        self.args = args
    }

    /// An attribute set by a dict state (as `argparse.Namespace` has them).
    package subscript(attribute: String) -> PickleValue? {
        if case .dict(let d) = state { return d[attribute] }
        return nil
    }
}

package struct PickleStorage {
    package let dtype: StoredDType
    package let key: String
    package let count: Int
}

package struct PickleTensor {
    package let storage: PickleStorage
    package let offset: Int
    package let shape: [Int]
    package let stride: [Int]
}

/// Renders a value for a message: bounded in depth, items, visited nodes and length whatever
/// the graph, on one line (control characters and non-ASCII bytes are escaped as Python does).
struct PickleFormat {
    static let maxLength = 200
    static let maxDepth = 3
    static let maxItems = 6
    /// Strings and bytes are cut to this many characters before escaping.
    static let maxText = 40

    private var out = ""
    /// Whether something was left out because `out` was full.
    private var isCut = false
    private var isFull: Bool { out.utf8.count >= Self.maxLength }

    mutating func finish() -> String {
        isCut || out.count > Self.maxLength ? String(out.prefix(Self.maxLength)) + "…" : out
    }

    private mutating func emit(_ s: String) { if isFull { isCut = true } else { out += s } }

    /// Recursion depth is at most `maxDepth` + 1 and each container shows at most `maxItems`
    /// items, so at most maxItems^maxDepth nodes are visited, however the memo shares them.
    mutating func value(_ v: PickleValue, depth: Int) {
        if isFull { isCut = true; return }
        switch v {
        case .none: emit("None")
        case .bool(let b): emit(b ? "True" : "False")
        case .int(let i): emit(String(i))
        case .float(let f): emit(String(f))
        case .string(let s): emit(Self.quoted(s))
        case .bytes(let b): emit(Self.quoted(b))
        case .global(let g): emit(Self.escaped(g))
        case .tuple(let t): items(t.items, "(", t.items.count == 1 ? ",)" : ")", depth)
        case .list(let l): items(l.items, "[", "]", depth)
        case .dict(let d):
            if depth >= Self.maxDepth { emit(d.count == 0 ? "{}" : "{…}"); return }
            emit("{")
            for i in 0..<min(d.count, Self.maxItems) {
                if i > 0 { emit(", ") }
                value(d.keys[i], depth: depth + 1)
                emit(": ")
                value(d.values[i], depth: depth + 1)
            }
            if d.count > Self.maxItems { emit(", … (\(d.count) items)") }
            emit("}")
        case .object(let o):
            emit(Self.escaped(o.type))
            items(o.args.items ?? [o.args], "(", ")", depth)
        case .storage(let s): emit("storage(\(s.dtype.rawValue), \(Self.quoted(s.key)), \(s.count))")
        case .tensor(let t): emit("tensor(\(t.storage.dtype.rawValue), \(shortList(t.shape)))")
        }
    }

    private mutating func items(_ items: [PickleValue], _ open: String, _ close: String, _ depth: Int) {
        if depth >= Self.maxDepth { emit(items.isEmpty ? open + close : open + "…" + close); return }
        emit(open)
        for (i, item) in items.prefix(Self.maxItems).enumerated() {
            if i > 0 { emit(", ") }
            value(item, depth: depth + 1)
        }
        if items.count > Self.maxItems { emit(", … (\(items.count) items)") }
        emit(close)
    }

    /// `'text'` with quotes, backslashes, control and non-printable characters escaped.
    static func quoted(_ s: String) -> String {
        let cut = s.unicodeScalars.count > maxText
        return "'" + escaped(String(String.UnicodeScalarView(s.unicodeScalars.prefix(maxText)))) + (cut ? "…" : "") + "'"
    }

    static func escaped(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars.prefix(maxLength) {
            switch c {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                switch c.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                    out += c.value < 0x100 ? "\\x" + hex(c.value, 2) : c.value < 0x10000 ? "\\u" + hex(c.value, 4) : "\\U" + hex(c.value, 8)
                default: out.unicodeScalars.append(c)
                }
            }
        }
        return out
    }

    /// `b'bytes'`: printable ASCII as is, everything else as \xNN.
    static func quoted(_ b: [UInt8]) -> String {
        var out = "b'"
        for c in b.prefix(maxText) {
            switch c {
            case 0x5C: out += "\\\\"
            case 0x27: out += "\\'"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(c))
            default: out += "\\x" + hex(UInt32(c), 2)
            }
        }
        return out + (b.count > maxText ? "…'" : "'")
    }

    static func hex(_ v: UInt32, _ digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
