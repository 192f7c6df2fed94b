import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMambaModels

/// Every traced tensor against the fixture's: floats within relative L2 1e-5, integers exactly.
/// Returns the worst float error.
/// `prefix` is the fixture's name for the mode (`train.`).
func assertTraceMatches(_ trace: ForwardTrace, _ io: TensorFile, _ name: String, prefix: String = "",
                        file: StaticString = #filePath, line: UInt = #line) throws -> Double {
    var worst = 0.0
    for entry in trace.entries {
        let ref = try XCTUnwrap(io[prefix + entry.name], "fixture has no \(prefix + entry.name)", file: file, line: line)
        XCTAssertEqual(entry.shape, ref.shape, entry.name, file: file, line: line)
        switch entry.values {
        case .floats(let v):
            let err = relativeL2(v, ref.floats())
            XCTAssertLessThan(err, 1e-5, "\(name) \(entry.name)", file: file, line: line)
            worst = max(worst, err)
        case .ints(let v):
            XCTAssertEqual(v.map(Int64.init), ref.int64s(), "\(name) \(entry.name)", file: file, line: line)
        }
    }
    return worst
}

/// DyVM's inference path against the official code (fixtures/dyvm): logits, block outputs and
/// predictor outputs within relative L2 1e-5; kept indices, patch positions, token counts, class
/// positions and direction decisions exactly.
final class DyVMParityTests: XCTestCase {
    override func setUp() { EngineSettings.configure(threads: 2) }

    func check(_ name: String, weights ext: String) throws {
        let (config, model, io) = try FixtureParityTests.loadCase(name, weights: ext)
        let input = try XCTUnwrap(io["input"])
        let trace = ForwardTrace()
        var blocks: [Int: [Float]] = [:]
        let logits = try model(Tensor(shape: input.shape, values: input.floats()), trace: trace) { i, r in blocks[i] = r.array }
        var worst = relativeL2(logits.array, try XCTUnwrap(io["logits"]).floats())
        XCTAssertLessThan(worst, 1e-5, "\(name) logits")
        for i in 0..<config.depth {
            let err = relativeL2(try XCTUnwrap(blocks[i]), try XCTUnwrap(io["block.\(i).out"]).floats())
            XCTAssertLessThan(err, 1e-5, "\(name) block.\(i).out")
            worst = max(worst, err)
        }
        worst = max(worst, try assertTraceMatches(trace, io, name))
        // Every stage's logp/index/patch, every block's head logits, tokens, cls_position, directions.
        XCTAssertEqual(trace.entries.count, 3 * config.dyvm!.pruningLoc.count + config.depth + 3)
        let schedule = config.dyvm!.schedule(numPatches: config.numPatches, depth: config.depth)
        XCTAssertEqual(trace.ints("tokens"), schedule.tokens)
        print("\(name) (\(ext)): worst rel L2 \(worst)")
    }

    func testMicro() throws { try check("dyvm-micro", weights: "safetensors") }
    func testMicroFromPth() throws { try check("dyvm-micro", weights: "pth") }
    func testMicroOverlap() throws { try check("dyvm-micro-overlap", weights: "pth") }

    /// Keep counts are int(r^s · M) of the original patch count, truncated (spec/dyvm.md §0.2).
    func testKeepCounts() {
        XCTAssertEqual(DyVMConfig(tokenKeepRatio: 0.7).keepTokens(numPatches: 196), [137, 96, 67])
        XCTAssertEqual(DyVMConfig(tokenKeepRatio: 0.9).keepTokens(numPatches: 196), [176, 158, 142])
        XCTAssertEqual(DyVMConfig(tokenKeepRatio: 0.7).keepTokens(numPatches: 100), [70, 48, 34])
        XCTAssertEqual(DyVMConfig(pruningLoc: [1, 2, 3], tokenKeepRatio: 0.7).schedule(numPatches: 16, depth: 4).clsIndex, [8, 5, 3, 2])
    }

    /// Parameter counts of the official builders (spec/dyvm.md §2.2) and FLOPs as the official
    /// calc_flops.py counts them (§8.2).
    func testZooCountsAndOfficialFLOPs() throws {
        let expected: [(String, Int, Double)] = [("dyvm-tiny", 7_367_086, 1_278_972_096), ("dyvm-small", 26_594_110, 3_345_413_568),
                                                 ("dyvm-base", 100_631_134, 12_426_017_664)]
        for (name, params, macs) in expected {
            let c = try ModelZoo.config(named: name)
            XCTAssertEqual(VimModel.parameterCount(c), params, name)
            XCTAssertEqual(try VimModel(config: c).parameterCount, params, name)
            XCTAssertEqual(c.officialMACs(), macs, name)
        }
        XCTAssertEqual(try ModelZoo.config(named: "vim-small").officialMACs(), 5_076_593_664)
        XCTAssertEqual(try ModelZoo.config(named: "vim-tiny").officialMACs(), 1_448_965_632)
        var s8 = try ModelZoo.config(named: "dyvm-small")
        s8.dyvm!.tokenKeepRatio = 0.8
        XCTAssertEqual(s8.officialMACs(blockKeepRatio: 0.8), 3_749_555_443, accuracy: 1)
    }
}

/// DyVM's training path against the official code with the fixture's noise (fixtures/dyvm/train):
/// the five loss parts and the loss within 1e-5, every gradient within relative L2 1e-4 (straight-
/// through estimators included), decisions, orders, masks and gates exactly.
final class DyVMTrainingParityTests: XCTestCase {
    override func setUp() { EngineSettings.configure(threads: 2) }

    func testMicroTrain() throws {
        let name = "dyvm-micro-train"
        let (config, model, io) = try FixtureParityTests.loadCase(name, weights: "pth")
        let input = try XCTUnwrap(io["input"])
        let images = try Tensor(shape: input.shape, values: input.floats())
        images.requiresGrad = false
        let dyvm = try XCTUnwrap(config.dyvm)
        let noise = DyVMNoise(token: try (0..<dyvm.pruningLoc.count).map { try XCTUnwrap(io["noise.token.\($0)"]).floats() },
                              block: try (0..<config.depth).map { try XCTUnwrap(io["noise.block.\($0)"]).floats() })
        let trace = ForwardTrace(), tape = Tape()
        var blocks: [Int: [Float]] = [:]
        let (loss, parts) = try model.dyvmTrainingStep(images, targets: try XCTUnwrap(io["targets"]).floats(), teacher: try model.denseCopy(),
                                                   noise: noise, tape: tape, trace: trace) { i, r in blocks[i] = r.array }
        try tape.backward(from: loss)
        for (key, value) in parts.named + [("loss", Double(loss.data[0]))] {
            let ref = Double(try XCTUnwrap(io[key]).floats()[0])
            XCTAssertEqual(value, ref, accuracy: 1e-5 * max(1, abs(ref)), key)
        }
        var worst = 0.0
        for i in 0..<config.depth {
            let err = relativeL2(try XCTUnwrap(blocks[i]), try XCTUnwrap(io["block.\(i).out"]).floats())
            XCTAssertLessThan(err, 1e-5, "block.\(i).out")
            worst = max(worst, err)
        }
        worst = max(worst, try assertTraceMatches(trace, io, name))
        var worstGrad = (0.0, "")
        for (param, t) in model.namedParameters() {
            let ref = try XCTUnwrap(io["grad.\(param)"], "grad.\(param)").floats()
            let err = relativeL2((t.grad ?? Tensor(zeroed: t.shape)).array, ref)
            XCTAssertLessThan(err, 1e-4, "grad.\(param)")
            if err > worstGrad.0 { worstGrad = (err, param) }
        }
        print("\(name): worst output rel L2 \(worst), worst gradient \(worstGrad.0) (\(worstGrad.1))")
    }
}

/// Finite differences of DyVM's differentiable pieces: the token predictor (input, policy and
/// weights through the LayerNorm, GELUs and the policy-weighted mean) and the masked mixer (input
/// and mask; gates held on by a zero head so their straight-through term adds nothing).
final class DyVMGradientCheckTests: XCTestCase {
    var rng = SeededGenerator(seed: 5)
    override func setUp() { EngineSettings.configure(threads: 2) }

    func random(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * scale) } }
    func weightedSum(_ out: [Float], _ seed: [Float]) -> Double { zip(out, seed).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
    func numeric(_ t: Tensor, eps: Float = 1e-2, _ loss: () throws -> Double) rethrows -> [Float] {
        try (0..<t.count).map { i in
            let v = t.data[i]
            t.data[i] = v + eps; let up = try loss()
            t.data[i] = v - eps; let down = try loss()
            t.data[i] = v
            return Float((up - down) / Double(2 * eps))
        }
    }

    func testTokenPredictorBackward() throws {
        let (B, N, D) = (2, 5, 8)
        let predictor = try TokenPredictor(dim: D)
        for (_, p) in predictor.namedParameters() { for i in 0..<p.count { p.data[i] = Float(rng.normal() * 0.5) } }
        let x = try Tensor(shape: [B, N, D], values: random(B * N * D))
        let policy = try Tensor(shape: [B, N], values: (0..<(B * N)).map { _ in Float(rng.uniform()) })
        let seed = random(B * N * 2)
        let loss = { try self.weightedSum(predictor(x, policy: policy).array, seed) }
        let tape = Tape()
        let out = try predictor(x, policy: policy, tape: tape)
        out.gradBuffer().buffer.update(from: seed)
        try tape.backward(from: try Tensor(shape: [1], values: [0]))
        XCTAssertLessThan(relativeL2(x.grad!.array, try numeric(x, loss)), 5e-3, "x")
        XCTAssertLessThan(relativeL2(policy.grad!.array, try numeric(policy, loss)), 5e-3, "policy")
        for (name, p) in predictor.namedParameters() {
            XCTAssertLessThan(relativeL2(p.grad!.array, try numeric(p, loss)), 5e-3, name)
        }
    }

    func testMaskedMixerBackward() throws {
        var config = VimConfig(name: "t", imgSize: 8, patchSize: 2, stride: 2, embedDim: 8, depth: 2, numClasses: 3)
        config.dyvm = DyVMConfig(pruningLoc: [1], tokenKeepRatio: 0.5)
        config.dyvm!.gateTemperature = 2
        let mixer = try DyVMMixer(config: config, dyvm: config.dyvm!)
        var g = SeededGenerator(seed: 3)
        mixer.resetParameters(depth: 2, using: &g)
        let (B, L, D) = (2, 6, 8)
        let u = try Tensor(shape: [B, L, D], values: random(B * L * D))
        let mask = try Tensor(shape: [B, L], values: (0..<(B * L)).map { _ in Float(0.2 + 0.8 * rng.uniform()) })
        let cls = [2, 3], noise = [Float](repeating: 0, count: 2 * B), seed = random(B * L * D)
        func forward(_ tape: Tape?) throws -> Tensor {
            var context = MixerContext(tape: tape, cls: cls, mask: mask, gateNoise: noise)
            return try mixer(u, context: &context)
        }
        let loss = { try self.weightedSum(forward(nil).array, seed) }
        let tape = Tape()
        let out = try forward(tape)
        out.gradBuffer().buffer.update(from: seed)
        try tape.backward(from: try Tensor(shape: [1], values: [0]))
        XCTAssertLessThan(relativeL2(u.grad!.array, try numeric(u, loss)), 5e-3, "u")
        XCTAssertLessThan(relativeL2(mask.grad!.array, try numeric(mask, eps: 1e-3, loss)), 5e-3, "mask")
        // The parameters' gradients on this path are checked against the official ones
        // (DyVMTrainingParityTests), whose masks and gates exercise every branch here.
    }
}

/// A DyVM built from a released-format Vim checkpoint (the vim-tiny-224 fixture, a full
/// `torch.save` training checkpoint layout): the backbone loads, predictors and heads start fresh.
final class DyVMFineTuneLoadTests: XCTestCase {
    func testDyVMTinyFromAVimTinyCheckpoint() throws {
        let root = ProcessInfo.processInfo.environment["VISION_MAMBA_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/fixtures").standardized.path
        let path = URL(fileURLWithPath: root).appendingPathComponent("vim/vim-tiny-224.pth").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("vim-tiny-224 fixture not found under \(root); set VISION_MAMBA_FIXTURES to the fixtures folder")
        }
        let student = try VimModel(config: try ModelZoo.config(named: "dyvm-tiny"))
        student.resetParameters(seed: 0)
        let fresh = try student.loadForFineTuning(weights: path, interpolation: .official)
        XCTAssertEqual(fresh.count, 3 * 10 + 24 * 2, "\(fresh)")
        XCTAssertTrue(fresh.allSatisfy { $0.hasPrefix("score_predictors.") || $0.contains(".mixer.block_head.") })
        // Direction heads start open: weight 0, bias 5.
        XCTAssertEqual((student.layers[7].mixer as! DyVMMixer).blockHead.bias!.array, [5, 5])
        XCTAssertEqual((student.layers[7].mixer as! DyVMMixer).blockHead.weight.array.reduce(0) { $0 + abs($1) }, 0)
        // The teacher is the loaded dense backbone.
        let dense = try VimModel(config: try ModelZoo.config(named: "vim-tiny"))
        try dense.load(weights: path)
        XCTAssertEqual((try student.denseCopy().layers[3].mixer as! MambaMixer).inProj.weight.array, (dense.layers[3].mixer as! MambaMixer).inProj.weight.array)
    }
}
