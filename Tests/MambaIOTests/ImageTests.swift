import Foundation
import XCTest
@testable import MambaIO

/// Decoding as PIL's convert("RGB") does, and the eval transform as torchvision does on PIL.
final class ImageTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources")
    func resource(_ name: String) -> String { Self.resources.appendingPathComponent(name).path }

    func testEveryColourTypeDecodesLikePIL() throws {
        let expected = try SafeTensors.read(resource("decoded.safetensors"))
        for name in ["grey.png", "rgba.png", "palette.png", "grey-alpha.png", "rgb.png", "grey.jpg", "rgb.jpg"] {
            let image = try ImageDecoder.decode(resource(name))
            let ref = try XCTUnwrap(expected[name], name)
            XCTAssertEqual([image.height, image.width, 3], ref.shape, name)
            let differing = zip(image.pixels, Array(ref.rawBytes)).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name): bytes differing from PIL")
        }
    }

    func testEvalTransformIsBitExactWithTorchvisionOnPIL() throws {
        let pre = try SafeTensors.read(resource("rgb-eval64.safetensors"))["pre"]!
        let out = EvalTransform.apply(try ImageDecoder.decode(resource("rgb.jpg")), imgSize: 64)
        XCTAssertEqual(out.count, 3 * 64 * 64)
        let differing = zip(out, pre.floats()).filter { $0 != $1 }.count
        XCTAssertEqual(differing, 0, "values differing from torchvision on PIL")
    }

    func testCenterCropRoundsHalfToEven() {
        // (5 − 2) / 2 = 1.5 rounds to 2; (7 − 2) / 2 = 2.5 rounds to 2 (Python's round).
        let image = RGBImage(width: 7, height: 5, pixels: (0..<105).map { UInt8($0) })
        let crop = EvalTransform.centerCrop(image, size: 2)
        XCTAssertEqual(Array(crop.pixels.prefix(3)), Array(image.pixels[((2 * 7) + 2) * 3..<((2 * 7) + 2) * 3 + 3]))
    }

    /// Resizing only the window the crop keeps gives the same bits as resizing the whole image.
    func testResizedCenterCropMatchesResizeThenCrop() {
        var g = SeededBytes(seed: 3)
        let cases = [(7, 5, 4, 3), (5, 7, 9, 8), (20, 3, 6, 5), (3, 20, 6, 5), (4, 4, 8, 10), (9, 9, 9, 4), (1, 40, 8, 7), (33, 17, 18, 16), (6, 9, 6, 6)]
        for (w, h, resize, crop) in cases {
            let image = RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { _ in g.next() })
            let full = EvalTransform.centerCrop(EvalTransform.resizeShorterSide(image, to: resize), size: crop)
            let window = EvalTransform.resizedCenterCrop(image, resize: resize, crop: crop)
            XCTAssertEqual([window.width, window.height], [crop, crop])
            XCTAssertEqual(window.pixels, full.pixels, "\(w)x\(h) resized to \(resize), cropped to \(crop)")
        }
    }

    /// A 1 × 60,000 image (a few hundred bytes of PNG) resized whole would be 256 × 15,360,000.
    func testThinImageIsNotResizedWhole() {
        let image = RGBImage(width: 1, height: 60_000, pixels: [UInt8](repeating: 200, count: 180_000))
        let out = EvalTransform.apply(image, imgSize: 224)
        XCTAssertEqual(out.count, 3 * 224 * 224)
        XCTAssertEqual(out[0], (200 / 255 - EvalTransform.mean[0]) / EvalTransform.std[0], accuracy: 0.02)  // bicubic weights round
    }
}
