import Foundation
import MambaIO
import MambaNN
import MambaTensor
import XCTest
@testable import VisionMambaModels

/// The official segmentation models, built by mmsegmentation 0.29.1 and mmcv 1.7.2 from hustvl/Vim's
/// configs and run in float64 (make_seg_fixtures.py, Resources/seg/README.md): features, logits,
/// losses, every gradient and the BatchNorm running statistics of a training step, the evaluation
/// logits, and the real-shape upernet-vim-tiny at 512 px on formula weights.
final class SegmentationParityTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources/seg")

    override func setUp() { EngineSettings.configure(threads: 2) }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: resources.appendingPathComponent("\(name).json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The case's mmseg model config (`model` in its JSON) as a SegmentationConfig.
    static func config(_ name: String) throws -> SegmentationConfig {
        let description = try json(name)
        let model = try XCTUnwrap(description["model"] as? [String: Any])
        // What the built model used, defaults included (the small config leaves if_divide_out unset).
        let effective = try XCTUnwrap(description["effective"] as? [String: Any])
        let b = try XCTUnwrap(model["backbone"] as? [String: Any])
        let decode = try XCTUnwrap(model["decode_head"] as? [String: Any])
        let aux = try XCTUnwrap(model["auxiliary_head"] as? [String: Any])
        func value<T>(_ d: [String: Any], _ k: String) throws -> T { try XCTUnwrap(d[k] as? T, k) }
        let classes: Int = try value(decode, "num_classes"), patch: Int = try value(b, "patch_size")
        var backbone = VimConfig(name: name, imgSize: try value(b, "img_size"), patchSize: patch, stride: patch,
                                 embedDim: try value(b, "embed_dim"), depth: try value(b, "depth"), numClasses: classes)
        backbone.divideOut = try value(effective, "if_divide_out")
        var c = SegmentationConfig(name: name, backbone: backbone, outIndices: try value(b, "out_indices"),
                                   numClasses: classes, decodeChannels: try value(decode, "channels"))
        c.poolScales = try value(decode, "pool_scales")
        c.auxiliaryChannels = try value(aux, "channels")
        c.auxiliaryIndex = try value(aux, "in_index")
        c.rope = try value(b, "if_rope")
        c.ropeResidual = try value(b, "if_rope_residual")
        c.dropPathRate = try value(b, "drop_path_rate")
        c.dropoutRatio = try value(decode, "dropout_ratio")
        if let loc = b["pruning_loc"] as? [Int] {
            // DyVM's backbone takes its last feature after the last block only when 23 is among
            // out_indices (hard-coded), so its depth-4 configs list 23 for block 3.
            c.outIndices = c.outIndices.map { $0 == 23 ? backbone.depth - 1 : $0 }
            let ratios: [Double] = try value(b, "token_ratio")
            var dyvm = DyVMConfig(pruningLoc: loc, tokenKeepRatio: ratios[0], blockKeepRatio: 0.8)
            (dyvm.tokenPruningWeight, dyvm.blockPruningWeight, dyvm.tokenRatioDivisor) = (20, 20, Double(loc.count))
            // (Foundation's JSON reader can be an ulp or two off Python's 0.8 ** 2.)
            for (ours, official) in zip(dyvm.tokenRatios, ratios) { XCTAssertEqual(ours, official, accuracy: 1e-15) }
            c.backbone.dyvm = dyvm
        }
        return c
    }

    static func io(_ name: String) throws -> TensorFile { try SafeTensors.read(resources.appendingPathComponent("\(name).io.safetensors").path) }

    func expect(_ t: Tensor, _ io: TensorFile, _ key: String, _ tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try XCTUnwrap(io[key], key)
        XCTAssertEqual(t.shape, ref.shape, key, file: file, line: line)
        let err = relativeL2(t.array, ref.floats())
        XCTAssertLessThan(err, tolerance, "\(key): relative L2 \(err)", file: file, line: line)
    }

    /// Every gradient within 1e-4 relative L2, except the exact zeros (norm_f takes no part; a
    /// bias that a training-mode BatchNorm follows, directly or through a 1×1 conv, is cancelled
    /// by its mean): the reference holds float64 round-off there, ours float32 noise, so those are
    /// compared absolutely. Returns the worst relative error.
    @discardableResult
    func expectGradients(_ model: Module, _ io: TensorFile, prefix: String, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        var worst = 0.0
        for (param, t) in model.namedParameters() {
            let ref = try XCTUnwrap(io["\(prefix)\(param)"], "\(prefix)\(param)").floats()
            let g = t.grad?.array ?? [Float](repeating: 0, count: t.count)
            let norm = ref.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let err = norm < 1e-9 ? g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() * 1e-3 : relativeL2(g, ref)
            if norm >= 1e-9 { worst = max(worst, err) }
            XCTAssertLessThan(err, 1e-4, "\(prefix)\(param)", file: file, line: line)
        }
        return worst
    }

    func checkVim(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try Self.config(name)
        let model = try Segmentor(config: config)
        let weights = try SafeTensors.read(Self.resources.appendingPathComponent("\(name).safetensors").path)
        if let rope = (model.backbone as? SegmentationBackbone)?.rope {
            // Our tables, computed as the official float32 code computes them, before the load replaces them.
            XCTAssertLessThan(relativeL2(rope.freqsCos.array, try XCTUnwrap(weights["backbone.rope.freqs_cos"]).floats()), 1e-6, file: file, line: line)
            XCTAssertLessThan(relativeL2(rope.freqsSin.array, try XCTUnwrap(weights["backbone.rope.freqs_sin"]).floats()), 1e-6, file: file, line: line)
        }
        // mmseg checkpoints hold num_batches_tracked; these weights leave it out.
        try model.load(stateDict: weights.tensors, strict: false, source: name)
        let io = try Self.io(name)
        let input = try XCTUnwrap(io["input"])
        let images = try Tensor(shape: input.shape, values: input.floats())
        let labels = try XCTUnwrap(io["labels"]).int64s().map(Int.init)
        let size = input.shape[2]

        // A training step.
        let tape = Tape()
        let out = try model.forward(images, training: true, auxiliary: true, tape: tape)
        for (i, f) in out.features.enumerated() { try expect(f, io, "features.\(i)", file: file, line: line) }
        try expect(out.decodeLogits, io, "decode_logits", file: file, line: line)
        try expect(try XCTUnwrap(out.auxiliaryLogits), io, "aux_logits", file: file, line: line)
        let loss = try model.loss(out, labels: labels, height: size, width: size, tape: tape)
        try expect(loss.decode, io, "loss_decode", file: file, line: line)
        try expect(try XCTUnwrap(loss.auxiliary), io, "loss_aux", file: file, line: line)
        try expect(loss.total, io, "loss", file: file, line: line)
        try tape.backward(from: loss.total)
        let worst = try expectGradients(model, io, prefix: "grad.", file: file, line: line)
        for (key, t) in model.namedBuffers() where key.contains("running") { try expect(t, io, "after.\(key)", file: file, line: line) }
        XCTAssertLessThan(worst, 1e-4)

        // Evaluation with the stored running statistics.
        try model.load(stateDict: weights.tensors, strict: false, source: name)
        let eval = try model.forward(images)
        for (i, f) in eval.features.enumerated() { try expect(f, io, "eval.features.\(i)", file: file, line: line) }
        try expect(eval.decodeLogits, io, "eval.decode_logits", file: file, line: line)
        try expect(try model.logits(images), io, "eval.seg_logits", file: file, line: line)
    }

    func testUperNetVimMicro() throws { try checkVim("upernet-vim-micro") }

    /// The small config's flags: RoPE on tokens and residual, and no /2 on the two directions.
    func testUperNetVimMicroWithRoPE() throws {
        XCTAssertFalse(try Self.config("upernet-vim-micro-rope").backbone.divideOut)
        try checkVim("upernet-vim-micro-rope")
    }

    /// The zoo's models carry the official configs' flags.
    func testZooMatchesTheOfficialConfigs() throws {
        let tiny = try ModelZoo.segmentationEntry(named: "upernet-vim-tiny").config
        let small = try ModelZoo.segmentationEntry(named: "upernet-vim-small").config
        XCTAssertEqual(tiny.outIndices, [5, 11, 17, 23])
        XCTAssertTrue(tiny.backbone.divideOut)
        XCTAssertFalse(tiny.rope)
        XCTAssertFalse(small.backbone.divideOut)
        XCTAssertTrue(small.rope && small.ropeResidual)
        var official = try Self.config("upernet-vim-tiny-512")
        (official.name, official.backbone.name) = (tiny.name, tiny.backbone.name)
        (official.dropPathRate, official.dropoutRatio) = (0.1, 0.1)
        XCTAssertEqual(tiny, official)
    }

    /// DyVM's segmentation backbone at inference (top-k pruning to 28, 23, 18 of 36 tokens, the
    /// direction gates, features with the pruned tokens' last outputs), then a training step on
    /// the official run's recorded noise: decisions, gates, features, logits, the four losses,
    /// every gradient and the BatchNorm statistics.
    func testUperNetDyVMMicro() throws {
        let name = "upernet-dyvm-micro"
        let model = try Segmentor(config: try Self.config(name))
        let weights = try SafeTensors.read(Self.resources.appendingPathComponent("\(name).safetensors").path)
        try model.load(stateDict: weights.tensors, strict: false, source: name)
        let io = try Self.io(name)
        let input = try XCTUnwrap(io["input"])
        let images = try Tensor(shape: input.shape, values: input.floats())
        let size = input.shape[2]

        let trace = ForwardTrace()
        let eval = try model.forward(images, trace: trace)
        for (i, f) in eval.features.enumerated() { try expect(f, io, "features.\(i)") }
        try expect(eval.decodeLogits, io, "decode_logits")
        try expect(try model.logits(images), io, "seg_logits")
        try assertTraceMatches(trace, io, name)
        XCTAssertEqual(Set(trace.entries.map(\.name)), ["prune.0.logp", "prune.1.logp", "prune.2.logp", "prune.0.keep", "prune.1.keep", "prune.2.keep",
                                                       "block.0.head_logits", "block.1.head_logits", "block.2.head_logits", "block.3.head_logits",
                                                       "tokens", "directions"])

        let stages = 3, depth = 4
        let noise = DyVMNoise(token: try (0..<stages).map { try XCTUnwrap(io["train.noise.token.\($0)"]).floats() },
                              block: try (0..<depth).map { try XCTUnwrap(io["train.noise.block.\($0)"]).floats() })
        let tape = Tape(), trainTrace = ForwardTrace()
        let out = try model.forward(images, training: true, auxiliary: true, tape: tape, noise: noise, trace: trainTrace)
        try assertTraceMatches(trainTrace, io, name, prefix: "train.")
        for (i, f) in out.features.enumerated() { try expect(f, io, "train.features.\(i)") }
        try expect(out.decodeLogits, io, "train.decode_logits")
        try expect(try XCTUnwrap(out.auxiliaryLogits), io, "train.aux_logits")
        let labels = try XCTUnwrap(io["labels"]).int64s().map(Int.init)
        let loss = try model.loss(out, labels: labels, height: size, width: size, tape: tape)
        try expect(loss.decode, io, "train.loss_decode")
        try expect(try XCTUnwrap(loss.auxiliary), io, "train.loss_aux")
        try expect(try XCTUnwrap(loss.tokenRatio), io, "train.loss_token_ratio")
        try expect(try XCTUnwrap(loss.blockRatio), io, "train.loss_block_ratio")
        try expect(loss.total, io, "train.loss")
        try tape.backward(from: loss.total)
        try expectGradients(model, io, prefix: "train.grad.")
        for (key, t) in model.namedBuffers() where key.contains("running") { try expect(t, io, "train.after.\(key)") }

        // Training without its draws is refused.
        XCTAssertThrowsError(try model.forward(images, training: true, tape: Tape()))
    }

    /// The analytic count, layer by layer for the micro shapes (D 32, channels 16, 5 classes,
    /// levels 16, 8, 4, 2), and DyVM's token schedule.
    func testFLOPsOfTheHeadsAndTheDyVMSchedule() throws {
        let f = try Self.config("upernet-vim-micro").forwardFLOPs()
        let ppm: Double = 2 * 50 * 32 * 16                  // 1×1 convs on 1², 2², 3², 6² pooled maps
        let bottleneck: Double = 2 * 4 * 9 * 96 * 16        // 3×3 over 32 + 4·16 channels on 2×2
        let laterals: Double = 2 * 336 * 32 * 16            // 1×1 on 16² + 8² + 4² pixels
        let fpnConvs: Double = 2 * 336 * 9 * 16 * 16        // 3×3 on the same
        let fuse: Double = 2 * 256 * 9 * 64 * 16            // 3×3 over 4·16 channels on 16×16
        let classify: Double = 2 * 256 * 16 * 5
        XCTAssertEqual(f.decodeHead, ppm + bottleneck + laterals + fpnConvs + fuse + classify)
        let pyramid: Double = 2 * 32 * 32 * 4 * 96         // transposed convs from 4², 8² and 4² inputs
        XCTAssertEqual(f.pyramid, pyramid)
        let auxiliary: Double = 2 * 16 * (9 * 32 * 8 + 8 * 5)
        XCTAssertEqual(f.auxiliaryHead, auxiliary)
        XCTAssertEqual(f.total, f.backbone.total + f.pyramid + f.decodeHead)
        let dyvm = try Self.config("upernet-dyvm-micro")
        XCTAssertEqual(dyvm.tokenSchedule, [36, 28, 23, 18])
        // Both directions of d_inner 64, d_state 16, at 6 per state update, over 36 + 28 + 23 + 18 tokens.
        let scan: Double = 2 * 105 * 64 * 16 * 6
        XCTAssertEqual(dyvm.forwardFLOPs().backbone.scan, scan)
        XCTAssertEqual(dyvm.forwardFLOPs(directionRate: 0.5).backbone.scan * 2, dyvm.forwardFLOPs().backbone.scan)
        XCTAssertEqual(try ModelZoo.segmentationEntry(named: "upernet-dyvm-tiny").config.tokenSchedule,
                       Array(repeating: 1024, count: 6) + Array(repeating: 819, count: 6) + Array(repeating: 655, count: 6) + Array(repeating: 524, count: 6))
    }

    /// A released-format classification checkpoint (the official vim-micro .pth: grid 4×4, class
    /// token in the middle) starts a backbone of the same width and depth: the blocks exactly;
    /// head and class token dropped; pos_embed without its class row (`.classTokenAware`), or
    /// with row 0 taken for it as the official init does (`.official`); at another grid,
    /// resampled (a constant stays constant); the pyramid is what is left to train.
    func testBackboneStartsFromAReleasedClassificationCheckpoint() throws {
        let root = Bundle.module.bundleURL.appendingPathComponent("Resources")
        let pth = root.appendingPathComponent("vim-micro.pth").path
        let classifier = try VimModel(config: try VimConfig.load(json: root.appendingPathComponent("vim-micro.json").path))
        try classifier.load(weights: pth)
        func backbone(imgSize: Int) throws -> SegmentationBackbone {
            let c = VimConfig(name: "seg-micro", imgSize: imgSize, patchSize: 8, stride: 8, embedDim: 32, depth: 4, numClasses: 5)
            return try SegmentationBackbone(config: SegmentationConfig(name: "seg-micro", backbone: c, outIndices: [0, 1, 2, 3], numClasses: 5, decodeChannels: 16))
        }
        let seg = try backbone(imgSize: 32)
        let missing = try seg.loadClassificationWeights(pth)
        XCTAssertEqual(Set(missing), Set(seg.namedState().map(\.0).filter { $0.hasPrefix("fpn") }))
        let ours = Dictionary(uniqueKeysWithValues: seg.namedState().map { ($0.0, $0.1.array) })
        for (name, t) in classifier.namedState() where name.hasPrefix("layers.") || name.hasPrefix("patch_embed.") || name == "norm_f.weight" {
            XCTAssertEqual(ours[name], t.array, name)
        }
        let rows = classifier.posEmbed.array, D = 32
        XCTAssertEqual(classifier.config.clsIndex, 8)
        let withoutClass = Array(rows[0..<(8 * D)] + rows[(9 * D)...])
        XCTAssertLessThan(relativeL2(seg.posEmbed.array, withoutClass), 1e-6)
        let official = try backbone(imgSize: 32)
        try official.loadClassificationWeights(pth, interpolation: .official)
        XCTAssertLessThan(relativeL2(official.posEmbed.array, Array(rows[D...])), 1e-6)

        // Our own checkpoint format, at twice the grid: a constant position embedding stays one.
        classifier.posEmbed.fill(0.25)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vim-micro-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        var tensors = TensorFile()
        for (name, t) in classifier.namedState() { tensors.append(name, StoredTensor(shape: t.shape, floats: t.array)) }
        try SafeTensors.write(tensors, to: file)
        let larger = try backbone(imgSize: 64)
        try larger.loadClassificationWeights(file)
        XCTAssertEqual(larger.posEmbed.shape, [1, 64, D])
        XCTAssertTrue(larger.posEmbed.array.allSatisfy { abs($0 - 0.25) < 1e-6 })
    }

    // MARK: upernet-vim-tiny at 512 px on formula weights

    /// The fixture's weight formula (Resources/seg/README.md): an integer hash of the tensor's name
    /// and the element index, mapped to (-1, 1), scaled and centred by the tensor's rule.
    static func formula(name: String, shape: [Int]) -> [Float] {
        var seed: UInt32 = 0x811C_9DC5
        for b in name.utf8 { seed = (seed ^ UInt32(b)) &* 0x0100_0193 }
        let fanIn = Double(shape.dropFirst().reduce(1, *))
        let (center, scale): (Double, Double) = {
            func ends(_ s: String...) -> Bool { s.contains { name.hasSuffix($0) } }
            if ends(".running_var") { return (1, 0.5) }
            if ends(".running_mean") { return (0, 0.2) }
            if ends(".A_log", ".A_b_log") { return (1.4, 1.3) }
            if ends(".D", ".D_b") { return (1, 0.5) }
            if ends(".dt_proj.bias", ".dt_proj_b.bias") { return (-4, 1.5) }
            if ends(".dt_proj.weight", ".dt_proj_b.weight") { return (0, 1 / fanIn.squareRoot()) }
            if ends(".conv1d.weight", ".conv1d_b.weight") { return (0, 0.5) }
            if name == "backbone.pos_embed" { return (0, 0.5) }
            if shape.count == 1 && ends(".weight") { return (1, 0.2) }
            if ends(".bias") { return (0, 0.1) }
            if ends(".mixer.out_proj.weight") { return (0, 6 * (3 / fanIn).squareRoot()) }
            if name.hasPrefix("backbone.fpn") && shape.count == 4 { return (0, (3 / Double(shape[0])).squareRoot()) }
            return (0, (3 / fanIn).squareRoot())
        }()
        return (0..<shape.reduce(1, *)).map { i in
            Float(scale * uniform(seed: seed, index: i) + center)
        }
    }

    static func uniform(seed: UInt32, index: Int) -> Double {
        var x = seed &+ UInt32(truncatingIfNeeded: index) &* 0x9E37_79B9
        x ^= x >> 16; x = x &* 0x7FEB_352D
        x ^= x >> 15; x = x &* 0x846C_A68B
        x ^= x >> 16
        return 2 * ((Double(x) + 0.5) / 4_294_967_296) - 1
    }

    /// Every feature level, the decoder's logits and its label map at the real shapes: 24 blocks of
    /// width 192 on a 32×32 grid, UPerHead with 192 channels and 150 classes, in eval mode.
    func testUperNetVimTinyAt512() throws {
        let name = "upernet-vim-tiny-512"
        let model = try Segmentor(config: try Self.config(name))
        let io = try Self.io(name)
        var state: [String: StoredTensor] = [:]
        for (key, t) in model.namedState() where !key.hasSuffix("num_batches_tracked") {
            let values = Self.formula(name: key, shape: t.shape)
            XCTAssertEqual(Array(values.prefix(8)), try XCTUnwrap(io["check.\(key)"], key).floats(), key)
            state[key] = StoredTensor(shape: t.shape, floats: values)
        }
        XCTAssertEqual(state.count, io.tensors.keys.filter { $0.hasPrefix("check.") }.count)
        try model.load(stateDict: state, strict: false, source: name)

        let side = 512
        let inputSeed: UInt32 = "input".utf8.reduce(0x811C_9DC5) { ($0 ^ UInt32($1)) &* 0x0100_0193 }
        let pixels = (0..<(3 * side * side)).map { Float(1.5 * Self.uniform(seed: inputSeed, index: $0)) }
        XCTAssertEqual(Float(pixels.reduce(0.0) { $0 + Double($1) }), try XCTUnwrap(io["input.sum"]).floats()[0])
        let images = try Tensor(shape: [1, 3, side, side], values: pixels)
        let out = try model.forward(images)

        /// Per-channel means and every `step`-th row and column of [1, C, S, S].
        func summary(_ t: Tensor, step: Int) -> (mean: [Float], sub: [Float]) {
            let (C, S) = (t.shape[1], t.shape[2]), a = t.array
            let mean = (0..<C).map { c in Float(a[(c * S * S)..<((c + 1) * S * S)].reduce(0.0) { $0 + Double($1) } / Double(S * S)) }
            let sub = (0..<C).flatMap { c in stride(from: 0, to: S, by: step).flatMap { y in stride(from: 0, to: S, by: step).map { x in a[(c * S + y) * S + x] } } }
            return (mean, sub)
        }
        func expectValues(_ values: [Float], _ key: String) throws {
            let err = relativeL2(values, try XCTUnwrap(io[key], key).floats())
            XCTAssertLessThan(err, 1e-4, "\(key): relative L2 \(err)")
        }
        try expect(out.features[3], io, "features.3", 1e-4)
        try expect(out.features[2], io, "features.2", 1e-4)
        for (level, step) in [(1, 4), (0, 8)] {
            let s = summary(out.features[level], step: step)
            try expectValues(s.mean, "features.\(level).mean")
            try expectValues(s.sub, "features.\(level).sub\(step)")
        }
        let logits = summary(out.decodeLogits, step: 8)
        try expectValues(logits.mean, "decode_logits.mean")
        try expectValues(logits.sub, "decode_logits.sub8")

        // The label map wherever the reference's top two classes are apart by more than 1e-4.
        let pred = try argmaxChannels(out.decodeLogits)
        let reference = try XCTUnwrap(io["pred"]).int64s().map(Int.init), margin = try XCTUnwrap(io["pred_margin"]).floats()
        let decided = margin.indices.filter { margin[$0] > 1e-4 }
        XCTAssertGreaterThan(decided.count, 16_000)
        XCTAssertEqual(decided.filter { pred[$0] != reference[$0] }.count, 0)
    }
}
