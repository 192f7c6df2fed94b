import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping names
/// to {dtype, shape, data_offsets}, then the raw little-endian data.
package enum SafeTensors {
    /// Headers larger than this are refused before anything is allocated.
    package static let maxHeaderBytes = 100 << 20

    /// Memory-maps `path` and checks every entry against the file.
    package static func read(_ path: String) throws -> TensorFile {
        try read(MappedFile(path), path: path)
    }

    static func read(_ map: MappedFile, path: String) throws -> TensorFile {
        guard map.count >= 8 else { throw FileError.truncated(path: path, needed: 8, available: map.count) }
        let headerLength = UInt64(littleEndian: map.pointer.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw FileError.headerTooLarge(path: path, length: headerLength, limit: maxHeaderBytes)
        }
        let dataStart = 8 + Int(headerLength)           // at most 8 + maxHeaderBytes: no overflow
        guard dataStart <= map.count else { throw FileError.truncated(path: path, needed: dataStart, available: map.count) }
        let headerData = Data(bytes: map.pointer + 8, count: Int(headerLength))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw FileError.malformedHeader(path: path, detail: "not a JSON object")
        }
        let dataCount = map.count - dataStart
        var file = TensorFile()
        var entries: [(offset: Int, name: String, tensor: StoredTensor)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { file.metadata[k] = "\(v)" }
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw FileError.malformedEntry(path: path, tensor: name) }
            guard let dtype = StoredDType(rawValue: dtypeName) else {
                throw FileError.unsupportedDType(path: path, tensor: name, dtype: dtypeName)
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw FileError.invalidShape(path: path, tensor: name, shape: shape) }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= dataCount else {
                throw FileError.dataOutOfBounds(path: path, tensor: name, begin: begin, end: end, available: dataCount)
            }
            // Shape × dtype size, checked: [2^31, 2^31] F32 must not wrap to a size that fits.
            guard let bytes = checkedProduct(shape + [dtype.byteCount]) else { throw FileError.sizeOverflow(path: path, tensor: name) }
            guard bytes == end - begin else {
                throw FileError.byteCountMismatch(path: path, tensor: name, expected: bytes, found: end - begin)
            }
            entries.append((begin, name, StoredTensor(dtype: dtype, shape: shape, storage: map.storage, offset: dataStart + begin)))
        }
        for e in entries.sorted(by: { ($0.offset, $0.name) < ($1.offset, $1.name) }) { file.append(e.name, e.tensor) }
        return file
    }

    /// Writes `file` (a temporary file in the same folder, then renamed over `path`).
    package static func write(_ file: TensorFile, to path: String) throws {
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
package func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
        throw FileError.unwritable(path: path, reason: "cannot create a temporary file in its folder")
    }
    do {
        let handle = try FileHandle(forWritingTo: tmp)
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        if rename(tmp.path, path) != 0 { throw FileError.unwritable(path: path, reason: String(cString: strerror(errno))) }
    } catch let error as FileError {
        try? FileManager.default.removeItem(at: tmp)
        throw error
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw FileError.unwritable(path: path, reason: error.localizedDescription)
    }
}

/// A read-only memory map of a whole file.
final class MappedFile {
    let storage: StorageBytes
    var pointer: UnsafeRawPointer { storage.pointer }
    var count: Int { storage.count }

    init(_ path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FileError.notFound(path: path) }
        if isDir.boolValue { throw FileError.isDirectory(path: path) }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size > 0 else { throw FileError.empty(path: path) }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw FileError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        storage = StorageBytes(pointer: UnsafeRawPointer(base), count: size, release: { munmap(base, size) })
    }

    /// A copy of bytes already in memory, read as if they were a file.
    init(copying bytes: UnsafeRawBufferPointer) {
        storage = StorageBytes(copying: bytes)
    }
}

/// The product of sizes read from a file, or nil when it does not fit in an Int.
func checkedProduct(_ factors: [Int]) -> Int? {
    var product = 1
    for f in factors {
        let (p, overflow) = product.multipliedReportingOverflow(by: f)
        if overflow { return nil }
        product = p
    }
    return product
}
