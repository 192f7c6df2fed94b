import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMambaModels

/// The real photos of fixtures/predict through the official eval transform and the 24-block
/// Vim-T: the preprocessed tensor (relative L2 below 1e-2) and the logits.
final class PhotoTests: XCTestCase {
    static let fixtures: URL = {
        let root = ProcessInfo.processInfo.environment["VISION_MAMBA_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/fixtures").standardized.path
        return URL(fileURLWithPath: root)
    }()

    func testPhotosMatchTheOfficialPipelineAndModel() throws {
        let predict = Self.fixtures.appendingPathComponent("predict")
        let weights = Self.fixtures.appendingPathComponent("vim/vim-tiny-224.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path),
              FileManager.default.fileExists(atPath: predict.appendingPathComponent("expected.safetensors").path) else {
            throw XCTSkip("fixtures/predict or vim-tiny-224 not found under \(Self.fixtures.path); set VISION_MAMBA_FIXTURES")
        }
        EngineSettings.configure(threads: 2)
        let expected = try SafeTensors.read(predict.appendingPathComponent("expected.safetensors").path)
        let model = try VimModel(config: try VimConfig.load(json: Self.fixtures.appendingPathComponent("vim/vim-tiny-224.json").path))
        try model.load(weights: weights.path)
        for (stem, file) in [("coffee", "coffee.png"), ("retina", "retina.jpg")] {
            let image = try ImageDecoder.decode(predict.appendingPathComponent(file).path)
            let pixels = EvalTransform.apply(image, imgSize: 224)
            let pre = try XCTUnwrap(expected["pre.\(stem)"]).floats()
            let preErr = relativeL2(pixels, pre)
            XCTAssertLessThan(preErr, 1e-2, "pre.\(stem)")
            let logits = try model(Tensor(shape: [1, 3, 224, 224], values: pixels)).array
            let ref = try XCTUnwrap(expected["logits.\(stem)"]).floats()
            let logitErr = relativeL2(logits, ref)
            // The logits follow the pixels: with bit-exact preprocessing this is float32 rounding.
            XCTAssertLessThan(logitErr, max(1e-4, 2 * preErr), "logits.\(stem)")
            XCTAssertEqual(logits.indices.max { logits[$0] < logits[$1] }, ref.indices.max { ref[$0] < ref[$1] }, "top-1 of \(stem)")
            print("\(stem): preprocessing rel L2 \(preErr), logits rel L2 \(logitErr)")
        }
    }
}
