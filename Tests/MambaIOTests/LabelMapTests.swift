import Foundation
import XCTest
@testable import MambaIO

/// Label maps read as class indices: grey values as they are, palette indices never turned into
/// colours, anything else refused.
final class LabelMapTests: XCTestCase {
    /// A PNG of `rows` (already in the colour type's byte layout), stored uncompressed.
    func png(width: Int, height: Int, bitDepth: UInt8 = 8, colorType: UInt8, rows: [[UInt8]], palette: [UInt8]? = nil) -> [UInt8] {
        func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
        func crc32(_ bytes: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return be32(data.count) + body + be32(Int(crc32(body)))
        }
        let raw: [UInt8] = rows.flatMap { [UInt8(0)] + $0 }   // filter type 0 on every row
        var a: UInt32 = 1, b: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        let n = UInt16(raw.count), notN = ~n
        let header: [UInt8] = [0x78, 0x01, 0x01, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(notN & 0xFF), UInt8(notN >> 8)]
        let zlib: [UInt8] = header + raw + be32(Int((b << 16) | a))
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
            + (palette.map { chunk("PLTE", $0) } ?? [])
            + chunk("IDAT", zlib) + chunk("IEND", [])
    }

    func testGreyValuesAreTheLabels() throws {
        let map = try LabelMap.decode(png(width: 3, height: 2, colorType: 0, rows: [[0, 1, 2], [150, 254, 255]]), path: "grey.png")
        XCTAssertEqual(map, LabelMap(width: 3, height: 2, labels: [0, 1, 2, 150, 254, 255]))
    }

    /// Palette entries out of colour order and repeated colours keep their own indices.
    func testPaletteIndicesAreTheLabels() throws {
        let palette: [UInt8] = [0, 255, 0, 255, 0, 0, 0, 255, 0, 0, 0, 0]
        let map = try LabelMap.decode(png(width: 3, height: 2, colorType: 3, rows: [[3, 2, 1], [0, 2, 3]], palette: palette), path: "palette.png")
        XCTAssertEqual(map.labels, [3, 2, 1, 0, 2, 3])
    }

    func testColourAndSixteenBitMapsAreRefused() {
        let rgb = png(width: 1, height: 1, colorType: 2, rows: [[1, 2, 3]])
        XCTAssertThrowsError(try LabelMap.decode(rgb, path: "rgb.png")) {
            XCTAssertEqual($0 as? FileError, .unsupportedLabelMap(path: "rgb.png", reason: "a colour PNG; label maps are 8-bit grey or palette PNGs"))
        }
        let deep = png(width: 1, height: 1, bitDepth: 16, colorType: 0, rows: [[0, 7]])
        XCTAssertThrowsError(try LabelMap.decode(deep, path: "deep.png")) {
            XCTAssertEqual($0 as? FileError, .unsupportedLabelMap(path: "deep.png", reason: "a 16-bit PNG; label maps are 8-bit grey or palette PNGs"))
        }
        XCTAssertThrowsError(try LabelMap.decode([0xFF, 0xD8, 0xFF, 0xE0], path: "a.jpg")) {
            XCTAssertEqual($0 as? FileError, .unsupportedLabelMap(path: "a.jpg", reason: "not a PNG file"))
        }
        XCTAssertThrowsError(try LabelMap.decode("/no/such/map.png")) { XCTAssertEqual($0 as? FileError, .notFound(path: "/no/such/map.png")) }
    }
}
