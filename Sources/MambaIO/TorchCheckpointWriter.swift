import Foundation

/// Writes tensors as `torch.save({key: state_dict})` does, so PyTorch users can `torch.load` them:
/// a stored zip with `<prefix>/data.pkl` (pickle protocol 2: each tensor rebuilt by
/// torch._utils._rebuild_tensor_v2 from a persistent-id storage), `<prefix>/data/<i>` holding
/// each tensor's bytes (aligned to 64 bytes, as torch writes them), `<prefix>/version` and
/// `<prefix>/byteorder`. Float32, float64, float16, bfloat16 and int64 tensors are supported.
package enum TorchCheckpointWriter {
    static let storageType: [StoredDType: String] = [
        .float32: "FloatStorage", .float64: "DoubleStorage", .float16: "HalfStorage",
        .bfloat16: "BFloat16Storage", .int64: "LongStorage", .int32: "IntStorage", .uint8: "ByteStorage", .bool: "BoolStorage",
    ]

    package static func write(_ file: TensorFile, to path: String, key: String? = "model", prefix: String = "archive") throws {
        var pickle = Pickle()
        pickle.op(0x80); pickle.byte(2)                                        // PROTO 2
        if let key { pickle.op(0x7D); pickle.string(key) }                     // {key: …
        pickle.op(0x7D)                                                        // state dict
        pickle.op(0x28)                                                        // MARK
        for (i, name) in file.names.enumerated() {
            let t = file.tensors[name]!
            guard let storage = storageType[t.dtype] else {
                throw FileError.unsupportedDType(path: path, tensor: name, dtype: t.dtype.rawValue)
            }
            pickle.string(name)
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            pickle.op(0x28)                                                    // MARK (args)
            pickle.op(0x28)                                                    // MARK (persistent id)
            pickle.string("storage"); pickle.global("torch", storage); pickle.string(String(i)); pickle.string("cpu"); pickle.int(t.elementCount)
            pickle.op(0x74)                                                    // TUPLE
            pickle.op(0x51)                                                    // BINPERSID
            pickle.int(0)                                                      // storage offset
            pickle.tuple(t.shape)
            var stride = [Int](repeating: 1, count: t.shape.count)
            for d in stride.indices.reversed().dropFirst() { stride[d] = stride[d + 1] * t.shape[d + 1] }
            pickle.tuple(stride)
            pickle.op(0x89)                                                    // requires_grad False
            pickle.global("collections", "OrderedDict"); pickle.op(0x29); pickle.op(0x52)  // OrderedDict()
            pickle.op(0x74)                                                    // TUPLE
            pickle.op(0x52)                                                    // REDUCE
        }
        pickle.op(0x75)                                                        // SETITEMS
        if key != nil { pickle.op(0x73) }                                      // SETITEM
        pickle.op(0x2E)                                                        // STOP

        var zip = StoredZipWriter()
        zip.add("\(prefix)/data.pkl", pickle.bytes)
        zip.add("\(prefix)/byteorder", Array("little".utf8))
        for (i, name) in file.names.enumerated() { zip.add("\(prefix)/data/\(i)", Array(file.tensors[name]!.rawBytes)) }
        zip.add("\(prefix)/version", Array("3\n".utf8))
        try writeAtomically(Data(zip.finish()), to: path)
    }
}

/// A protocol-2 pickle under construction.
struct Pickle {
    var bytes: [UInt8] = []
    mutating func op(_ o: UInt8) { bytes.append(o) }
    mutating func byte(_ b: UInt8) { bytes.append(b) }
    mutating func u32(_ v: Int) { for s in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> s)) } }
    mutating func string(_ s: String) { let u = Array(s.utf8); op(0x58); u32(u.count); bytes += u }  // BINUNICODE
    mutating func global(_ module: String, _ name: String) { op(0x63); bytes += Array("\(module)\n\(name)\n".utf8) }
    mutating func int(_ v: Int) {
        if v >= 0 && v < 256 { op(0x4B); byte(UInt8(v)) }
        else if v >= Int(Int32.min) && v <= Int(Int32.max) { op(0x4A); u32(v) }
        else { op(0x8A); byte(8); for s in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> s)) } }
    }
    mutating func tuple(_ values: [Int]) {
        switch values.count {
        case 0: op(0x29)
        case 1: int(values[0]); op(0x85)
        case 2: int(values[0]); int(values[1]); op(0x86)
        case 3: values.forEach { int($0) }; op(0x87)
        default: op(0x28); values.forEach { int($0) }; op(0x74)
        }
    }
}

/// A zip archive of stored (uncompressed) entries with CRC-32s, data aligned to 64 bytes by
/// padding the local header's extra field, as PyTorch's writer does.
struct StoredZipWriter {
    var out: [UInt8] = []
    var central: [UInt8] = []
    var count = 0

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    private static func le(_ v: Int, _ n: Int, _ a: inout [UInt8]) { for i in 0..<n { a.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }

    mutating func add(_ name: String, _ data: [UInt8]) {
        let n = Array(name.utf8), offset = out.count, crc = Int(Self.crc32(data))
        let headerEnd = offset + 30 + n.count + 4                       // with an extra-field header of 4 bytes
        let pad = (64 - headerEnd % 64) % 64
        Self.le(0x0403_4b50, 4, &out); Self.le(20, 2, &out); Self.le(0, 2, &out); Self.le(0, 2, &out)
        Self.le(0, 2, &out); Self.le(0, 2, &out); Self.le(crc, 4, &out); Self.le(data.count, 4, &out); Self.le(data.count, 4, &out)
        Self.le(n.count, 2, &out); Self.le(4 + pad, 2, &out); out += n
        Self.le(0x4246, 2, &out); Self.le(pad, 2, &out); out += [UInt8](repeating: 0x5A, count: pad)   // "FB" padding
        out += data
        Self.le(0x0201_4b50, 4, &central); Self.le(20, 2, &central); Self.le(20, 2, &central); Self.le(0, 2, &central)
        Self.le(0, 2, &central); Self.le(0, 2, &central); Self.le(0, 2, &central); Self.le(crc, 4, &central)
        Self.le(data.count, 4, &central); Self.le(data.count, 4, &central); Self.le(n.count, 2, &central)
        Self.le(0, 2, &central); Self.le(0, 2, &central); Self.le(0, 2, &central); Self.le(0, 2, &central)
        Self.le(0, 4, &central); Self.le(offset, 4, &central); central += n
        count += 1
    }

    mutating func finish() -> [UInt8] {
        let dirOffset = out.count
        out += central
        Self.le(0x0605_4b50, 4, &out); Self.le(0, 2, &out); Self.le(0, 2, &out); Self.le(count, 2, &out); Self.le(count, 2, &out)
        Self.le(central.count, 4, &out); Self.le(dirOffset, 4, &out); Self.le(0, 2, &out)
        return out
    }
}
