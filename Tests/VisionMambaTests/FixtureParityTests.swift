import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMamba

/// The official PyTorch outputs (fixtures/README.md): logits and every block output within
/// relative L2 1e-5 of the float64 reference, from both the .pth and the .safetensors weights.
final class FixtureParityTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources")

    override func setUp() { Parallel.threads = 2 }

    func check(case name: String, weights ext: String, directory: URL = resources,
               tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try VimConfig.load(json: directory.appendingPathComponent("\(name).json").path)
        let model = VimModel(config: config)
        try model.load(weights: directory.appendingPathComponent("\(name).\(ext)").path)
        let io = try SafeTensors.read(directory.appendingPathComponent("\(name).io.safetensors").path)
        let input = try XCTUnwrap(io["input"])
        var blocks: [Int: [Float]] = [:]
        let logits = model(Tensor(shape: input.shape, values: input.floats())) { i, r in blocks[i] = r.array }
        let expected = try XCTUnwrap(io["logits"])
        XCTAssertEqual(logits.shape, expected.shape, file: file, line: line)
        let logitErr = relativeL2(logits.array, expected.floats())
        XCTAssertLessThan(logitErr, tolerance, "\(name) logits", file: file, line: line)
        XCTAssertEqual(blocks.count, config.depth, file: file, line: line)
        var worst = 0.0
        for i in 0..<config.depth {
            let ref = try XCTUnwrap(io["block.\(i).out"], "block.\(i).out")
            let err = relativeL2(try XCTUnwrap(blocks[i]), ref.floats())
            worst = max(worst, err)
            XCTAssertLessThan(err, tolerance, "\(name) block.\(i).out", file: file, line: line)
        }
        print("\(name) (\(ext)): logits rel L2 \(logitErr), worst block \(worst)")
    }

    func testVimMicroFromSafetensors() throws { try check(case: "vim-micro", weights: "safetensors") }
    func testVimMicroFromPth() throws { try check(case: "vim-micro", weights: "pth") }
    func testVimMicroOverlapFromSafetensors() throws { try check(case: "vim-micro-overlap", weights: "safetensors") }
    func testVimMicroOverlapFromPth() throws { try check(case: "vim-micro-overlap", weights: "pth") }

    /// The real Vim-T shape (24 blocks, 197 tokens), read from ../shared/fixtures or from
    /// $VISION_MAMBA_FIXTURES (the folder that holds vim/vim-tiny-224.*).
    func testVimTiny224() throws {
        let root = ProcessInfo.processInfo.environment["VISION_MAMBA_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../../shared/fixtures").standardized.path
        let dir = URL(fileURLWithPath: root).appendingPathComponent("vim")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vim-tiny-224.safetensors").path) else {
            throw XCTSkip("vim-tiny-224 fixture not found under \(dir.path); set VISION_MAMBA_FIXTURES to the fixtures folder")
        }
        try check(case: "vim-tiny-224", weights: "safetensors", directory: dir, tolerance: 1e-4)
        try check(case: "vim-tiny-224", weights: "pth", directory: dir, tolerance: 1e-4)
    }
}

/// Loss and the gradient of every parameter against the official float64 autograd: relative L2 1e-4.
final class GradientParityTests: XCTestCase {
    override func setUp() { Parallel.threads = 2 }

    func check(case name: String, weights ext: String) throws {
        let dir = FixtureParityTests.resources
        let model = VimModel(config: try VimConfig.load(json: dir.appendingPathComponent("\(name).json").path))
        try model.load(weights: dir.appendingPathComponent("\(name).\(ext)").path)
        let io = try SafeTensors.read(dir.appendingPathComponent("\(name).io.safetensors").path)
        let input = try XCTUnwrap(io["input"])
        let images = Tensor(shape: input.shape, values: input.floats())
        images.requiresGrad = false
        let labels = try XCTUnwrap(io["labels"]).int64s().map(Int.init)
        let tape = Tape()
        let loss = crossEntropy(model(images, tape: tape), labels: labels, tape: tape)
        tape.backward(from: loss)
        XCTAssertEqual(Double(loss.data[0]), Double(try XCTUnwrap(io["loss"]).floats()[0]), accuracy: 1e-5)
        var worst = (0.0, "")
        for (param, t) in model.namedParameters() {
            let ref = try XCTUnwrap(io["grad.\(param)"], "grad.\(param)")
            let err = relativeL2(try XCTUnwrap(t.grad, param).array, ref.floats())
            XCTAssertLessThan(err, 1e-4, "grad.\(param)")
            if err > worst.0 { worst = (err, param) }
        }
        print("\(name) gradients: worst rel L2 \(worst.0) (\(worst.1)), \(model.namedParameters().count) tensors")
    }

    func testVimMicroGradients() throws { try check(case: "vim-micro", weights: "pth") }
    func testVimMicroOverlapGradients() throws { try check(case: "vim-micro-overlap", weights: "safetensors") }
}
