/// A read-only view of a ZIP archive as torch.save writes it: entries STORED (uncompressed),
/// possibly ZIP64. The file is memory-mapped and entry data are views into the map, so a
/// checkpoint's tensors are never copied on load.
struct ZipArchive {
    struct Entry {
        let name: String
        let method: UInt16
        let size: Int
        let dataOffset: Int
    }

    let path: String
    let map: MappedFile
    private(set) var entries: [String: Entry] = [:]
    private(set) var names: [String] = []

    init(_ path: String) throws {
        try self.init(MappedFile(path), path: path)
    }

    /// An archive already in memory (`path` names it in errors).
    init(_ map: MappedFile, path: String) throws {
        self.path = path
        self.map = map
        try readCentralDirectory()
    }

    /// Bytes of a STORED entry, as a view into the map.
    func data(_ name: String) throws -> (storage: StorageBytes, offset: Int, count: Int) {
        guard let e = entries[name] else { throw FileError.missingEntry(path: path, entry: name) }
        guard e.method == 0 else { throw FileError.compressedEntry(path: path, entry: name, method: Int(e.method)) }
        return (map.storage, e.dataOffset, e.size)
    }

    // MARK: - Reading the directory

    private func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: map.pointer.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
    private func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: map.pointer.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
    private func u64(_ at: Int) -> Int {
        let v = UInt64(littleEndian: map.pointer.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        return v > UInt64(Int.max) ? Int.max : Int(v)
    }

    /// `count` bytes at `offset` must lie inside the file (both values may come from the file).
    private func need(_ offset: Int, _ count: Int) throws {
        guard offset >= 0, count >= 0, offset <= map.count - count else {
            let (end, overflow) = offset.addingReportingOverflow(count)
            throw FileError.truncated(path: path, needed: overflow || offset < 0 || count < 0 ? Int.max : end, available: map.count)
        }
    }

    private mutating func readCentralDirectory() throws {
        let n = map.count
        guard n >= 22, u32(0) == 0x0403_4b50 else { throw FileError.damagedArchive(path: path, detail: "no local file header at the start") }
        // End of central directory: the last 0x06054b50 within the final 64 KiB + 22 bytes.
        var eocd = -1
        var i = n - 22
        while i >= max(0, n - 22 - 65535) {
            if u32(i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw FileError.damagedArchive(path: path, detail: "no end-of-central-directory record (truncated?)") }
        var count = u16(eocd + 10), dirSize = u32(eocd + 12), dirOffset = u32(eocd + 16)
        // ZIP64: a locator just before the EOCD points at the 64-bit record.
        if eocd >= 20 && u32(eocd - 20) == 0x0706_4b50 {
            let rec = u64(eocd - 20 + 8)
            try need(rec, 56)
            guard u32(rec) == 0x0606_4b50 else { throw FileError.damagedArchive(path: path, detail: "bad ZIP64 end-of-central-directory record") }
            count = u64(rec + 32); dirSize = u64(rec + 40); dirOffset = u64(rec + 48)
        }
        try need(dirOffset, dirSize)
        guard count <= dirSize / 46 + 1 else { throw FileError.damagedArchive(path: path, detail: "\(count) entries cannot fit in \(dirSize) bytes") }
        var p = dirOffset
        for _ in 0..<count {
            try need(p, 46)
            guard u32(p) == 0x0201_4b50 else { throw FileError.damagedArchive(path: path, detail: "bad central directory entry") }
            let method = UInt16(u16(p + 10))
            var compSize = u32(p + 20), size = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var local = u32(p + 42)
            try need(p + 46, nameLen + extraLen + commentLen)
            let name = String(decoding: UnsafeRawBufferPointer(start: map.pointer + p + 46, count: nameLen), as: UTF8.self)
            // ZIP64 extra field: 64-bit values for whichever 32-bit fields are 0xFFFFFFFF, in order.
            var x = p + 46 + nameLen
            let extraEnd = x + extraLen
            while x + 4 <= extraEnd {
                let id = u16(x), len = u16(x + 2)
                if id == 0x0001 {
                    // A field may claim more bytes than the extra area holds: read only inside both.
                    let fieldEnd = min(x + 4 + len, extraEnd)
                    var q = x + 4
                    if size == 0xFFFF_FFFF && q + 8 <= fieldEnd { size = u64(q); q += 8 }
                    if compSize == 0xFFFF_FFFF && q + 8 <= fieldEnd { compSize = u64(q); q += 8 }
                    if local == 0xFFFF_FFFF && q + 8 <= fieldEnd { local = u64(q) }
                }
                x += 4 + len
            }
            // The local header has its own name and extra lengths (torch pads data with them).
            try need(local, 30)
            guard u32(local) == 0x0403_4b50 else { throw FileError.damagedArchive(path: path, detail: "bad local file header") }
            let dataOffset = local + 30 + u16(local + 26) + u16(local + 28)
            let stored = method == 0 ? size : compSize
            try need(dataOffset, stored)
            if entries[name] == nil { names.append(name) }
            entries[name] = Entry(name: name, method: method, size: stored, dataOffset: dataOffset)
            p += 46 + nameLen + extraLen + commentLen
        }
    }
}
