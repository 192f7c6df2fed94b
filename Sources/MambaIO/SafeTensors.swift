import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping names
/// to {dtype, shape, data_offsets}, then the raw little-endian data.
public enum SafeTensors {
    /// Headers larger than this are refused before anything is allocated.
    public static let maxHeaderBytes = 100 << 20

    /// Memory-maps `path` and checks every entry against the file.
    public static func read(_ path: String) throws -> TensorFile {
        let map = try MappedFile(path)
        guard map.count >= 8 else { throw IOFailure(path, "too short for a safetensors file (\(map.count) bytes)") }
        let headerLength = UInt64(littleEndian: map.pointer.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw IOFailure(path, "safetensors header claims \(headerLength) bytes (limit \(maxHeaderBytes)); not a safetensors file or damaged")
        }
        guard 8 + Int(headerLength) <= map.count else {
            throw IOFailure(path, "truncated: header of \(headerLength) bytes but the file has \(map.count)")
        }
        let headerData = Data(bytes: map.pointer + 8, count: Int(headerLength))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw IOFailure(path, "safetensors header is not a JSON object")
        }
        let dataStart = 8 + Int(headerLength), dataCount = map.count - dataStart
        var file = TensorFile()
        var entries: [(offset: Int, name: String, tensor: StoredTensor)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { file.metadata[k] = "\(v)" }
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw IOFailure(path, "tensor '\(name)': malformed header entry") }
            guard let dtype = StoredDType(rawValue: dtypeName) else {
                throw IOFailure(path, "tensor '\(name)': unsupported dtype \(dtypeName)")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else { throw IOFailure(path, "tensor '\(name)': invalid shape \(shape)") }
            let (begin, end) = (offsets[0], offsets[1])
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (v, o) = acc.0.multipliedReportingOverflow(by: d); return (v, acc.1 || o)
            }
            guard !overflow, begin >= 0, end >= begin, end <= dataCount, end - begin == elements * dtype.byteCount else {
                throw IOFailure(path, "tensor '\(name)': data_offsets [\(begin), \(end)) do not fit shape \(shape) \(dtypeName) inside the \(dataCount)-byte data section")
            }
            entries.append((begin, name, StoredTensor(dtype: dtype, shape: shape, storage: map.storage, offset: dataStart + begin)))
        }
        for e in entries.sorted(by: { ($0.offset, $0.name) < ($1.offset, $1.name) }) { file.append(e.name, e.tensor) }
        return file
    }

    /// Writes `file` (a temporary file in the same folder, then renamed over `path`).
    public static func write(_ file: TensorFile, to path: String) throws {
        var header: [String: Any] = [:]
        var offset = 0
        for name in file.names {
            let t = file.tensors[name]!
            header[name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.byteCount]]
            offset += t.byteCount
        }
        if !file.metadata.isEmpty { header["__metadata__"] = file.metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }  // pad so the data section is 8-byte aligned
        var out = Data()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in file.names { out.append(contentsOf: file.tensors[name]!.rawBytes) }
        try writeAtomically(out, to: path)
    }
}

/// Writes `data` to a temporary file beside `path`, flushes it to disk, and renames it over
/// `path`, so a reader never sees a half-written file.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
        throw IOFailure(path, "cannot create a file in \(url.deletingLastPathComponent().path)")
    }
    do {
        let handle = try FileHandle(forWritingTo: tmp)
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        if rename(tmp.path, path) != 0 { throw IOFailure(path, "cannot write: \(String(cString: strerror(errno)))") }
    } catch let error as IOFailure {
        try? FileManager.default.removeItem(at: tmp)
        throw error
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw IOFailure(path, "cannot write: \(error.localizedDescription)")
    }
}

/// A read-only memory map of a whole file.
final class MappedFile {
    let storage: StorageBytes
    var pointer: UnsafeRawPointer { storage.pointer }
    var count: Int { storage.count }

    init(_ path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw IOFailure(path, "no such file") }
        if isDir.boolValue { throw IOFailure(path, "is a directory, not a file") }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw IOFailure(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IOFailure(path, "cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(st.st_size)
        guard size > 0 else { throw IOFailure(path, "empty file") }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw IOFailure(path, "cannot map: \(String(cString: strerror(errno)))")
        }
        storage = StorageBytes(pointer: UnsafeRawPointer(base), count: size, release: { munmap(base, size) })
    }
}
