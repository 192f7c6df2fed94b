import Foundation
import XCTest
@testable import MambaIO

/// Image headers read without decoding: the sizes `decode` finds, the FileError cases `decode`
/// throws for a bad header, and only the header's bytes read.
final class ImageHeaderTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources")

    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-header-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: Self.resources.appendingPathComponent(name))) }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = tmp.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func assertThrows(_ expected: FileError, _ body: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? FileError, expected, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)", file: file, line: line)
        }
    }

    /// rgb.png with IHDR bytes 16..<29 replaced by `ihdr` (from offset 16) and the CRC made right
    /// unless `crc` is given.
    func png(ihdr: [UInt8] = [], length: UInt8 = 13, crc: UInt32? = nil) throws -> [UInt8] {
        var png = try bytes("rgb.png")
        png[11] = length
        png.replaceSubrange(16..<(16 + ihdr.count), with: ihdr)
        let sum = crc ?? StoredZipWriter.crc32(Array(png[12..<29]))
        png.replaceSubrange(29..<33, with: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: sum >> UInt32($0)) })
        return png
    }

    func testHeadersGiveTheDecodedSizes() throws {
        for name in ["grey.png", "rgba.png", "palette.png", "grey-alpha.png", "rgb.png", "grey.jpg", "rgb.jpg"] {
            let path = Self.resources.appendingPathComponent(name).path
            let image = try ImageDecoder.decode(path)
            XCTAssertEqual(try ImageDecoder.header(path), ImageHeader(width: image.width, height: image.height), name)
            XCTAssertEqual(try ImageDecoder.verify(path), ImageHeader(width: image.width, height: image.height), name)
        }
        XCTAssertEqual(try ImageDecoder.header(Self.resources.appendingPathComponent("rgb.png").path), ImageHeader(width: 13, height: 9))
    }

    /// rgb.jpg's scan data starts at byte 623: cut there, the header still reads (nothing after it
    /// is looked at), but `verify` sees no EOI, decodes, and refuses it. Cut inside a marker
    /// segment, the header is truncated; cut between segments, libjpeg-turbo finds no image.
    func testJPEGCutShort() throws {
        let jpeg = try bytes("rgb.jpg")
        let afterScanHeader = write("scan.jpg", Array(jpeg.prefix(623)))
        XCTAssertEqual(try ImageDecoder.header(afterScanHeader), ImageHeader(width: 130, height: 90))
        XCTAssertThrowsError(try ImageDecoder.verify(afterScanHeader)) { error in
            guard case .decodeFailed(afterScanHeader, "JPEG", _)? = error as? FileError else { return XCTFail("\(error)") }
        }
        // Segments: DQT at 20 and 89, SOF0 at 158, DHT at 177, 210, 393, 426, SOS at 609 (12 bytes).
        for (cut, needed) in [(100, 158), (300, 393), (611, 613), (622, 623)] {
            let path = write("cut\(cut).jpg", Array(jpeg.prefix(cut)))
            assertThrows(.truncated(path: path, needed: needed, available: cut), try ImageDecoder.header(path))
        }
        for cut in [3, 158, 609] {
            let path = write("cut\(cut).jpg", Array(jpeg.prefix(cut)))
            XCTAssertThrowsError(try ImageDecoder.header(path), "\(cut)") { error in
                guard case .decodeFailed(path, "JPEG", let reason)? = error as? FileError else { return XCTFail("\(cut): \(error)") }
                XCTAssertFalse(reason.isEmpty)
            }
        }
    }

    /// Data after the end marker (a motion photo's video, padding) does not make a file bad.
    func testDataAfterTheImagePasses() throws {
        let jpeg = write("trailer.jpg", try bytes("rgb.jpg") + [UInt8](repeating: 7, count: 1 << 20))
        XCTAssertEqual(try ImageDecoder.verify(jpeg), ImageHeader(width: 130, height: 90))
        let png = write("trailer.png", try bytes("rgb.png") + Array("trailing".utf8))
        XCTAssertEqual(try ImageDecoder.verify(png), ImageHeader(width: 13, height: 9))
        // Only the header's bytes are read: one first chunk, not the megabyte after the image.
        var prefix = try FilePrefix(path: jpeg)
        _ = try ImageDecoder.header(&prefix)
        XCTAssertEqual(prefix.bytes.count, 16 << 10)
    }

    func testPNGCutShort() throws {
        let png = try bytes("rgb.png")
        let short = write("short.png", Array(png.prefix(20)))
        assertThrows(.truncated(path: short, needed: 33, available: 20), try ImageDecoder.header(short))
        let cut = write("cut.png", Array(png.prefix(60)))
        XCTAssertEqual(try ImageDecoder.header(cut), ImageHeader(width: 13, height: 9))
        XCTAssertThrowsError(try ImageDecoder.verify(cut)) { error in
            guard case .decodeFailed(cut, "PNG", _)? = error as? FileError else { return XCTFail("\(error)") }
        }
    }

    /// Each IHDR check, with the reason the error gives.
    func testBadIHDR() throws {
        let cases: [(String, [UInt8], String)] = [
            ("length.png", try png(length: 12), "the first chunk is not a 13-byte IHDR"),
            ("crc.png", try png(crc: 0x1234_5678), "IHDR: CRC error"),
            ("zero-width.png", try png(ihdr: [0, 0, 0, 0]), "IHDR: width 0 outside 1...1000000"),
            ("tall.png", try png(ihdr: [0, 0, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF]), "IHDR: height 2147483647 outside 1...1000000"),
            ("depth.png", try png(ihdr: [0, 0, 0, 13, 0, 0, 0, 9, 3, 2]), "IHDR: bit depth 3 is invalid for colour type 2"),
            ("colour.png", try png(ihdr: [0, 0, 0, 13, 0, 0, 0, 9, 8, 5]), "IHDR: invalid colour type 5"),
            ("interlace.png", try png(ihdr: [0, 0, 0, 13, 0, 0, 0, 9, 8, 2, 0, 0, 2]), "IHDR: unknown compression, filter or interlace method"),
        ]
        for (name, bytes, reason) in cases {
            let path = write(name, bytes)
            assertThrows(.decodeFailed(path: path, format: "PNG", reason: reason), try ImageDecoder.header(path))
            // The decoder refuses each of them as well.
            XCTAssertThrowsError(try ImageDecoder.decode(path), name)
        }
        let big = write("big.png", try png(ihdr: [0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60]))
        assertThrows(.imageTooLarge(path: big, width: 60000, height: 60000), try ImageDecoder.header(big))
        var jpeg = try bytes("rgb.jpg")
        jpeg.replaceSubrange(163..<167, with: [0xFD, 0xE8, 0xFD, 0xE8])               // SOF0 height, width = 65000
        let bigJPEG = write("big.jpg", jpeg)
        assertThrows(.imageTooLarge(path: bigJPEG, width: 65000, height: 65000), try ImageDecoder.header(bigJPEG))
    }

    func testWhatIsNotAnImageFile() throws {
        let text = write("text.png", Array("hello".utf8))
        assertThrows(.unsupportedImage(path: text), try ImageDecoder.header(text))
        let empty = write("empty.png", [])
        assertThrows(.empty(path: empty), try ImageDecoder.header(empty))
        let missing = tmp.appendingPathComponent("missing.png").path
        assertThrows(.notFound(path: missing), try ImageDecoder.header(missing))
        assertThrows(.isDirectory(path: tmp.path), try ImageDecoder.header(tmp.path))
        // A FIFO would block the reader forever: refused before it is opened.
        let fifo = tmp.appendingPathComponent("pipe.jpg").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertThrows(.unreadable(path: fifo, reason: "not a regular file"), try ImageDecoder.verify(fifo))
    }
}
