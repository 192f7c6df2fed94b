import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMambaModels

/// The official PyTorch outputs (fixtures/README.md): logits and every block output within
/// relative L2 1e-5 of the float64 reference, from both the .pth and the .safetensors weights.
final class FixtureParityTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources")

    /// A fixture case: its config, the model with the case's weights (`ext`: pth or safetensors)
    /// and its io tensors.
    static func loadCase(_ name: String, weights ext: String, directory: URL = resources) throws -> (VimConfig, VimModel, TensorFile) {
        let config = try VimConfig.load(json: directory.appendingPathComponent("\(name).json").path)
        let model = try VimModel(config: config)
        try model.load(weights: directory.appendingPathComponent("\(name).\(ext)").path)
        return (config, model, try SafeTensors.read(directory.appendingPathComponent("\(name).io.safetensors").path))
    }

    override func setUp() { EngineSettings.configure(threads: 2) }

    func check(case name: String, weights ext: String, directory: URL = resources,
               tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        let (config, model, io) = try Self.loadCase(name, weights: ext, directory: directory)
        let input = try XCTUnwrap(io["input"])
        var blocks: [Int: [Float]] = [:]
        let logits = try model(Tensor(shape: input.shape, values: input.floats())) { i, r in blocks[i] = r.array }
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
    override func setUp() { EngineSettings.configure(threads: 2) }

    func check(case name: String, weights ext: String) throws {
        let (_, model, io) = try FixtureParityTests.loadCase(name, weights: ext)
        let input = try XCTUnwrap(io["input"])
        let images = try Tensor(shape: input.shape, values: input.floats())
        images.requiresGrad = false
        let labels = try XCTUnwrap(io["labels"]).int64s().map(Int.init)
        let tape = Tape()
        let loss = try crossEntropy(model(images, tape: tape), labels: labels, tape: tape)
        try tape.backward(from: loss)
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

/// Famba-V against the official code (class token first, the released per-block rule):
/// logits within relative L2 1e-5 and the tokens each block's mixer sees, exactly.
final class FusionParityTests: XCTestCase {
    func check(_ name: String) throws {
        let (config, model, io) = try FixtureParityTests.loadCase(name, weights: "pth")
        let input = try XCTUnwrap(io["input"])
        let trace = ForwardTrace()
        let logits = try model(Tensor(shape: input.shape, values: input.floats()), trace: trace)
        XCTAssertLessThan(relativeL2(logits.array, try XCTUnwrap(io["logits"]).floats()), 1e-5)
        let tokens = try XCTUnwrap(trace.ints("tokens"))
        XCTAssertEqual(tokens.map(Int64.init), try XCTUnwrap(io["tokens"]).int64s())
        XCTAssertEqual(tokens, config.fusion!.schedule(tokens: config.tokens, depth: config.depth))
    }

    func testAll() throws { try check("famba-micro-all") }
    func testUpper() throws { try check("famba-micro-upper") }

    func testStrategyRules() throws {
        // spec/famba-v.md §10.12: under the official rule upper L18 = {0…17}, lower L5 = {6…23}.
        XCTAssertEqual(TokenFusion.blocks(strategy: .upper, layer: 18, depth: 24, rule: .official), Array(0...17))
        XCTAssertEqual(TokenFusion.blocks(strategy: .lower, layer: 5, depth: 24, rule: .official), Array(6...23))
        // The paper's meaning is the reverse: lower-layer fusion fuses the first blocks.
        XCTAssertEqual(TokenFusion.blocks(strategy: .lower, layer: 5, depth: 24, rule: .paper), Array(0...4))
        XCTAssertEqual(TokenFusion.blocks(strategy: .interleave, layer: 0, depth: 6, rule: .paper), [1, 3, 5])
        // The released code's names parse to the same strategies; others are refused.
        XCTAssertEqual(try TokenFusion.Strategy(name: "alternate"), .interleave)
        XCTAssertEqual(try TokenFusion.Strategy(name: "no"), TokenFusion.Strategy.none)
        XCTAssertEqual(try TokenFusion.Strategy(name: "lower"), .lower)
        XCTAssertThrowsError(try TokenFusion.Strategy(name: "uper"))
        // §10.1: the presets' token schedules.
        let all = TokenFusion(blocks: Array(0..<24), tokens: 7).schedule(tokens: 197, depth: 24)
        XCTAssertEqual(all.first, 190); XCTAssertEqual(all.last, 29)
        let alt = TokenFusion(blocks: Array(stride(from: 1, to: 24, by: 2)), tokens: 14).schedule(tokens: 197, depth: 24)
        XCTAssertEqual(alt.last, 29)
        XCTAssertEqual(TokenFusion(blocks: Array(0...17), tokens: 9).schedule(tokens: 197, depth: 24).reduce(0, +), 2217)
    }

    /// A middle class token (the released Vim checkpoints) is protected and read out wherever
    /// fusion moves it; gradients reach blocks before and after the fusing ones.
    func testMiddleClassTokenFusionTrains() throws {
        var config = VimConfig(name: "t", imgSize: 16, patchSize: 4, stride: 4, embedDim: 16, depth: 3, numClasses: 5)
        config.fusion = TokenFusion(blocks: [1], tokens: 4)
        let model = try VimModel(config: config)
        model.resetParameters(seed: 4)
        var rng = SeededGenerator(seed: 1)
        let images = try Tensor(shape: [2, 3, 16, 16], values: (0..<1536).map { _ in Float(rng.normal()) })
        images.requiresGrad = false
        let tape = Tape()
        let trace = ForwardTrace()
        let loss = try crossEntropy(model(images, tape: tape, trace: trace), labels: [1, 3], tape: tape)
        try tape.backward(from: loss)
        XCTAssertEqual(trace.ints("tokens"), [17, 13, 13])
        for name in ["layers.0.mixer.in_proj.weight", "layers.2.mixer.out_proj.weight", "cls_token"] {
            let g = try XCTUnwrap(model.namedParameters().first { $0.0 == name }?.1.grad)
            XCTAssertGreaterThan(g.array.map { abs($0) }.max()!, 0, name)
        }
        // The class token's own value reaches the head unchanged by the fusion: changing it moves the logits.
        let before = try model(images).array
        model.clsToken.data[0] += 1
        XCTAssertNotEqual(try model(images).array, before)
    }
}
