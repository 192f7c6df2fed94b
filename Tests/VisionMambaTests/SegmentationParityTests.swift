import Foundation
import MambaIO
import MambaNN
import MambaTensor
import XCTest
@testable import VisionMamba

/// The official segmentation model (hustvl/Vim's VisionMambaSeg with mmseg's UPerHead and
/// FCNHead, make_segmentation_fixtures.py) in float64: features, logits, losses, every gradient
/// and the BatchNorm running statistics of a training step, and the evaluation logits.
final class SegmentationParityTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources/segmentation")

    override func setUp() { Parallel.threads = 2 }

    /// The fixture's JSON as a SegmentationConfig (drop path and dropout off, as the fixtures ran).
    static func config(_ name: String) throws -> SegmentationConfig {
        let data = try Data(contentsOf: resources.appendingPathComponent("\(name).json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let b = try XCTUnwrap(json["backbone"] as? [String: Any])
        func int(_ d: [String: Any], _ k: String) throws -> Int { try XCTUnwrap(d[k] as? Int, k) }
        let classes = try int(json, "num_classes")
        let backbone = VimConfig(name: name, imgSize: try int(b, "img_size"), patchSize: try int(b, "patch_size"), stride: try int(b, "patch_size"),
                                 embedDim: try int(b, "embed_dim"), depth: try int(b, "depth"), numClasses: classes)
        var c = SegmentationConfig(name: name, backbone: backbone, outIndices: try XCTUnwrap(b["out_indices"] as? [Int]),
                                   numClasses: classes, decodeChannels: try int(json, "channels"))
        c.auxiliaryChannels = try int(json, "auxiliary_channels")
        c.rope = try XCTUnwrap(b["if_rope"] as? Bool)
        c.ropeResidual = try XCTUnwrap(b["if_rope_residual"] as? Bool)
        c.dropPathRate = 0
        c.dropoutRatio = 0
        return c
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try Self.config(name)
        let model = try Segmentor(config: config)
        let weights = try SafeTensors.read(Self.resources.appendingPathComponent("\(name).safetensors").path)
        if let rope = model.backbone.rope {
            // Our tables, computed as the official float32 code computes them, before the load replaces them.
            XCTAssertLessThan(relativeL2(rope.freqsCos.array, try XCTUnwrap(weights["backbone.rope.freqs_cos"]).floats()), 1e-6, file: file, line: line)
            XCTAssertLessThan(relativeL2(rope.freqsSin.array, try XCTUnwrap(weights["backbone.rope.freqs_sin"]).floats()), 1e-6, file: file, line: line)
        }
        try model.load(stateDict: weights.tensors, source: name)
        let io = try SafeTensors.read(Self.resources.appendingPathComponent("\(name).io.safetensors").path)
        func expect(_ t: Tensor, _ key: String, _ tolerance: Double = 1e-5) throws {
            let ref = try XCTUnwrap(io[key], key)
            XCTAssertEqual(t.shape, ref.shape, key, file: file, line: line)
            let err = relativeL2(t.array, ref.floats())
            XCTAssertLessThan(err, tolerance, "\(name) \(key): relative L2 \(err)", file: file, line: line)
        }
        let input = try XCTUnwrap(io["input"])
        let images = try Tensor(shape: input.shape, values: input.floats())
        images.requiresGrad = false
        let labels = try XCTUnwrap(io["labels"]).int64s().map(Int.init)
        let size = input.shape[2]

        // A training step.
        let tape = Tape()
        let out = try model.forward(images, training: true, auxiliary: true, tape: tape)
        for (i, f) in out.features.enumerated() { try expect(f, "features.\(i)") }
        try expect(out.decodeLogits, "decode_logits")
        try expect(try XCTUnwrap(out.auxiliaryLogits), "aux_logits")
        let loss = try model.loss(out, labels: labels, height: size, width: size, tape: tape)
        try expect(loss.decode, "loss_decode")
        try expect(try XCTUnwrap(loss.auxiliary), "loss_aux")
        try expect(loss.total, "loss")
        try tape.backward(from: loss.total)
        var worst = (0.0, "")
        for (param, t) in model.namedParameters() {
            let ref = try XCTUnwrap(io["grad.\(param)"], "grad.\(param)").floats()
            let g = t.grad?.array ?? [Float](repeating: 0, count: t.count)
            // Some gradients are zero in exact arithmetic: norm_f takes no part, and a bias that a
            // training-mode BatchNorm follows (directly, or through a 1×1 conv) is cancelled by
            // its mean. The reference holds rounding noise there (below 1e-16), ours float32
            // noise: those are compared absolutely.
            let norm = ref.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let err = norm < 1e-9 ? g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() * 1e-3 : relativeL2(g, ref)
            if err > worst.0 { worst = (err, param) }
            XCTAssertLessThan(err, 1e-4, "\(name) grad.\(param)", file: file, line: line)
        }
        for (key, t) in model.namedBuffers() where key.contains("running") { try expect(t, "after.\(key)") }
        print("\(name): loss \(loss.total.array[0]), worst gradient \(worst.1) at \(worst.0)")

        // Evaluation with the stored running statistics.
        try model.load(stateDict: weights.tensors, source: name)
        let eval = try model.forward(images)
        for (i, f) in eval.features.enumerated() { try expect(f, "eval.features.\(i)") }
        try expect(eval.decodeLogits, "eval.decode_logits")
        try expect(try model.logits(images), "eval.seg_logits")
    }

    func testUperNetVimMicro() throws { try check("upernet-vim-micro") }
    func testUperNetVimMicroWithRoPE() throws { try check("upernet-vim-micro-rope") }
}
