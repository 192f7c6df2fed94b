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
}
