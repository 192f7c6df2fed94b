import CTurboJPEG
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An image's size as its file header states it, read without decoding any pixels.
package struct ImageHeader: Sendable, Equatable {
    package let width: Int
    package let height: Int

    package init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }
}

extension ImageDecoder {
    /// The size a JPEG or PNG file declares, read from its header alone: for JPEG the markers up
    /// to the start of the scan, checked by libjpeg-turbo (`tjDecompressHeader3`); for PNG the
    /// signature and the IHDR chunk (length 13, CRC, sizes, bit depth and colour type), checked
    /// as libpng checks them. A header that `decode` would refuse is refused here too (a marker
    /// segment cut by the end of the file as `truncated`); damage inside the compressed pixels
    /// is not seen.
    package static func header(_ path: String) throws -> ImageHeader {
        var prefix = try FilePrefix(path: path)
        return try header(&prefix)
    }

    /// `header`, and a file that does not end with its format's end marker (JPEG EOI, PNG IEND)
    /// is decoded in full: a file cut short, the usual damage, is refused as `decode` would refuse
    /// it, while one with data after the image (a motion photo's video) still passes. A whole
    /// file costs its header and its last 2 (JPEG) or 12 (PNG) bytes.
    package static func verify(_ path: String) throws -> ImageHeader {
        var prefix = try FilePrefix(path: path)
        let found = try header(&prefix)
        let isJPEG = prefix.bytes.starts(with: jpegSignature)
        let end = isJPEG ? [0xFF, 0xD9] : pngEnd
        if try prefix.tail(end.count) != end { _ = try decode(path) }
        return found
    }

    /// In-memory form of `header`, for tests and fuzzing; `path` names the bytes in errors.
    static func header(_ bytes: [UInt8], path: String, maxPixels: Int = maxPixels) throws -> ImageHeader {
        var prefix = FilePrefix(bytes: bytes, path: path)
        return try header(&prefix, maxPixels: maxPixels)
    }

    static let jpegSignature: [UInt8] = [0xFF, 0xD8, 0xFF]
    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The IEND chunk every PNG ends with: length 0, type, CRC.
    static let pngEnd: [UInt8] = [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]

    static func header(_ prefix: inout FilePrefix, maxPixels: Int = maxPixels) throws -> ImageHeader {
        _ = try prefix.ensure(pngSignature.count)
        if prefix.bytes.starts(with: jpegSignature) { return try jpegHeader(&prefix, maxPixels: maxPixels) }
        if prefix.bytes.starts(with: pngSignature) { return try pngHeader(&prefix, maxPixels: maxPixels) }
        throw prefix.bytes.isEmpty ? FileError.empty(path: prefix.path) : FileError.unsupportedImage(path: prefix.path)
    }

    /// Reads the marker segments up to the end of the first SOS, then lets libjpeg-turbo judge
    /// them, so the verdict is the decoder's own. A segment cut by the end of the file is refused
    /// here: libjpeg would read the missing bytes as the end-of-file marker it fakes, and could
    /// accept a scan header cut that way.
    static func jpegHeader(_ prefix: inout FilePrefix, maxPixels: Int) throws -> ImageHeader {
        var position = 2                                          // after SOI
        var headerEnd: Int? = nil
        while headerEnd == nil, try prefix.ensure(position + 2) {
            // libjpeg skips stray bytes and 0xFF fill between segments (with a warning).
            guard prefix.bytes[position] == 0xFF else { position += 1; continue }
            let marker = prefix.bytes[position + 1]
            switch marker {
            case 0xFF: position += 1
            case 0x00: position += 2                                  // a stuffed zero, no marker: stray data
            case 0x01, 0xD0...0xD8: position += 2                     // TEM, RSTn, SOI: no length
            case 0xD9: headerEnd = position + 2                       // EOI before any scan
            default:
                guard try prefix.ensure(position + 4) else {
                    throw FileError.truncated(path: prefix.path, needed: position + 4, available: prefix.bytes.count)
                }
                position += 2 + (Int(prefix.bytes[position + 2]) << 8 | Int(prefix.bytes[position + 3]))
                guard try prefix.ensure(position) else {
                    throw FileError.truncated(path: prefix.path, needed: position, available: prefix.bytes.count)
                }
                if marker == 0xDA { headerEnd = position }            // SOS: the header ends with it
            }
        }
        let bytes = Array(prefix.bytes.prefix(headerEnd ?? prefix.bytes.count))
        guard let handle = tjInitDecompress() else { throw FileError.decodeFailed(path: prefix.path, format: "JPEG", reason: "cannot start the decoder") }
        defer { tjDestroy(handle) }
        let size = try jpegSize(handle, bytes, path: prefix.path)
        guard byteCount(width: size.width, height: size.height, channels: 1, maxPixels: maxPixels) != nil else {
            throw FileError.imageTooLarge(path: prefix.path, width: size.width, height: size.height)
        }
        return ImageHeader(width: size.width, height: size.height)
    }

    /// libjpeg-turbo's reading of a JPEG header: size and colour space, or its error message.
    static func jpegSize(_ handle: tjhandle, _ bytes: [UInt8], path: String) throws -> (width: Int, height: Int, colorspace: Int32) {
        var width: Int32 = 0, height: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        let ok = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsamp, &colorspace)
        }
        guard ok == 0, width > 0, height > 0 else {
            throw FileError.decodeFailed(path: path, format: "JPEG", reason: String(cString: tjGetErrorStr2(handle)).trimmingCharacters(in: .whitespaces))
        }
        return (Int(width), Int(height), colorspace)
    }

    /// The signature and IHDR, checked as libpng's png_handle_IHDR and png_check_IHDR do.
    static func pngHeader(_ prefix: inout FilePrefix, maxPixels: Int) throws -> ImageHeader {
        let needed = 33                                          // signature, IHDR's length, type, 13 bytes, CRC
        guard try prefix.ensure(needed) else { throw FileError.truncated(path: prefix.path, needed: needed, available: prefix.bytes.count) }
        let b = prefix.bytes
        func u32(_ at: Int) -> UInt32 { b[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        func bad(_ reason: String) -> FileError { .decodeFailed(path: prefix.path, format: "PNG", reason: reason) }
        guard u32(8) == 13, b[12..<16].elementsEqual("IHDR".utf8) else { throw bad("the first chunk is not a 13-byte IHDR") }
        guard StoredZipWriter.crc32(Array(b[12..<29])) == u32(29) else { throw bad("IHDR: CRC error") }
        let width = Int(u32(16)), height = Int(u32(20))
        let depth = Int(b[24]), colourType = Int(b[25])
        // PNG allows up to 2^31 − 1; libpng by default refuses more than a million (PNG_USER_WIDTH_MAX).
        for (name, value) in [("width", width), ("height", height)] where !(1...1_000_000).contains(value) {
            throw bad("IHDR: \(name) \(value) outside 1...1000000")
        }
        let depths: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let allowed = depths[colourType] else { throw bad("IHDR: invalid colour type \(colourType)") }
        guard allowed.contains(depth) else { throw bad("IHDR: bit depth \(depth) is invalid for colour type \(colourType)") }
        guard b[26] == 0, b[27] == 0, b[28] <= 1 else { throw bad("IHDR: unknown compression, filter or interlace method") }
        guard byteCount(width: width, height: height, channels: 1, maxPixels: maxPixels) != nil else {
            throw FileError.imageTooLarge(path: prefix.path, width: width, height: height)
        }
        return ImageHeader(width: width, height: height)
    }
}

/// The first bytes of a file, read as far as a parser asks and no further, so that checking a
/// header reads a few kilobytes of a large image.
struct FilePrefix {
    let path: String
    private(set) var bytes: [UInt8]
    private let handle: FileHandle?
    private var atEnd: Bool

    /// Opens a regular file (following links); anything else (a folder, a FIFO that would block,
    /// a device) is refused before it is opened.
    init(path: String) throws {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw FileError.notFound(path: path) }
            throw FileError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFDIR { throw FileError.isDirectory(path: path) }
        guard type == S_IFREG else { throw FileError.unreadable(path: path, reason: "not a regular file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw FileError.unreadable(path: path, reason: "cannot open the file") }
        self.handle = handle
        bytes = []
        atEnd = false
    }

    init(bytes: [UInt8], path: String) {
        self.path = path
        self.bytes = bytes
        handle = nil
        atEnd = true
    }

    /// Reads until at least `count` bytes are held; false when the file is shorter.
    mutating func ensure(_ count: Int) throws -> Bool {
        while bytes.count < count && !atEnd {
            // Doubling keeps the number of reads logarithmic in a header's size.
            let chunk = max(count - bytes.count, bytes.count, 16 << 10)
            let data: Data?
            do { data = try handle?.read(upToCount: chunk) } catch { throw FileError.unreadable(path: path, reason: "\(error)") }
            guard let data, !data.isEmpty else { atEnd = true; break }
            bytes += data
        }
        return bytes.count >= count
    }

    /// The last `count` bytes of the file (fewer when it is shorter).
    mutating func tail(_ count: Int) throws -> [UInt8] {
        guard let handle else { return Array(bytes.suffix(count)) }
        do {
            let size = try handle.seekToEnd()
            if size <= UInt64(bytes.count) { return Array(bytes.prefix(Int(size)).suffix(count)) }
            try handle.seek(toOffset: size - min(size, UInt64(count)))
            return [UInt8](try handle.read(upToCount: count) ?? Data())
        } catch {
            throw FileError.unreadable(path: path, reason: "\(error)")
        }
    }
}
