import Foundation
import MambaIO
import MambaNN
import MambaTensor
import XCTest
@testable import VisionMambaModels

/// timm's VisionTransformer with deit_tiny_patch16_224's structure at a micro size
/// (make_deit_fixtures.py, float64): block outputs, logits, the cross-entropy, every parameter
/// gradient and timm's pos_embed resampling; and the attention op against finite differences.
final class DeiTParityTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources/deit")

    override func setUp() { EngineSettings.configure(threads: 2) }

    static func config() throws -> (DeiTConfig, batch: Int, resampledGrid: Int) {
        let data = try Data(contentsOf: resources.appendingPathComponent("deit-micro.json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        func int(_ k: String) throws -> Int { try XCTUnwrap(json[k] as? Int, k) }
        var c = DeiTConfig(name: "deit-micro", imgSize: try int("img_size"), patchSize: try int("patch_size"), embedDim: try int("embed_dim"),
                           depth: try int("depth"), numHeads: try int("num_heads"), numClasses: try int("num_classes"))
        c.mlpRatio = try int("mlp_ratio")
        c.normEps = Float(try XCTUnwrap(json["eps"] as? Double))
        return (c, try int("batch"), try int("resampled_grid"))
    }

    func testMicroDeiTMatchesTimm() throws {
        let (config, batch, resampledGrid) = try Self.config()
        let model = try DeiT(config: config)
        let weights = try SafeTensors.read(Self.resources.appendingPathComponent("deit-micro.safetensors").path)
        try model.load(stateDict: weights.tensors, source: "deit-micro.safetensors")
        let io = try SafeTensors.read(Self.resources.appendingPathComponent("deit-micro.io.safetensors").path)
        var unread = Set(io.names)
        var worst: [String: (Double, String)] = [:]
        func expect(_ t: Tensor, _ key: String, _ tolerance: Double, _ group: String) throws {
            let ref = try XCTUnwrap(io[key], key)
            unread.remove(key)
            XCTAssertEqual(t.shape, ref.shape, key)
            let ours = t.array, theirs = ref.floats()
            let err = relativeL2(ours, theirs)
            if err > worst[group, default: (0, "")].0 { worst[group] = (err, key) }
            let (index, diff) = zip(ours, theirs).enumerated().map { ($0.offset, abs(Double($0.element.0) - Double($0.element.1))) }
                .max { $0.1 < $1.1 } ?? (0, 0)
            XCTAssertLessThan(err, tolerance, "\(key): relative L2 \(err), largest difference \(diff) at \(index)")
        }

        let input = try XCTUnwrap(io["input"])
        unread.remove("input")
        XCTAssertEqual(input.shape, [batch, 3, config.imgSize, config.imgSize])
        let images = try Tensor(shape: input.shape, values: input.floats())
        images.requiresGrad = false
        let labels = try XCTUnwrap(io["labels"]).int64s().map(Int.init)
        unread.remove("labels")

        let tape = Tape()
        var blocks: [(Int, Tensor)] = []
        let logits = try model(images, tape: tape) { blocks.append(($0, $1)) }
        XCTAssertEqual(blocks.count, config.depth)
        for (i, out) in blocks { try expect(out, "block.\(i).out", 1e-5, "outputs") }
        try expect(logits, "logits", 1e-5, "outputs")
        let loss = try crossEntropy(logits, labels: labels, tape: tape)
        try expect(loss, "loss", 1e-5, "outputs")
        try tape.backward(from: loss)
        for (name, p) in model.namedParameters() {
            try expect(try XCTUnwrap(p.grad, "grad of \(name)"), "grad.\(name)", 1e-4, "gradients")
        }

        let rows = try resamplePositionEmbedding(model.posEmbed.array, embedDim: config.embedDim, grid: config.grid, newGrid: resampledGrid)
        try expect(try Tensor(shape: [1, resampledGrid * resampledGrid + 1, config.embedDim], values: rows), "pos_embed.resampled", 1e-5, "resampling")
        XCTAssertEqual(unread, [], "fixture tensors nothing read")
        for (group, w) in worst.sorted(by: { $0.key < $1.key }) { print("deit-micro \(group): worst relative L2 \(w.0) (\(w.1))") }

        // The model at the resampled size runs, with its resampled pos_embed.
        try model.setImageSize(resampledGrid * config.patchSize)
        XCTAssertEqual(model.posEmbed.array, rows)
        let big = try Tensor(zeros: [1, 3, resampledGrid * config.patchSize, resampledGrid * config.patchSize])
        XCTAssertEqual(try model(big).shape, [1, config.numClasses])
    }

    /// upernet-deit-tiny's backbone at 64 px: four levels of strides 4 to 32, from the outputs of
    /// blocks 3, 5, 7 and 11 without the class token (the identity level is block 7's patch rows).
    func testDeiTBackbonePyramid() throws {
        var c = try ModelZoo.deitBackbone(named: "upernet-deit-tiny")
        XCTAssertEqual(c.outIndices, [3, 5, 7, 11])
        c.backbone.imgSize = 64
        let backbone = try DeiTSegmentationBackbone(config: c)
        backbone.resetParameters(seed: 3)
        var rng = SeededGenerator(seed: 4)
        let images = try Tensor(shape: [2, 3, 64, 64], values: (0..<(2 * 3 * 64 * 64)).map { _ in Float(rng.normal()) })
        let features = try backbone(images)
        XCTAssertEqual(features.map(\.shape), [[2, 192, 16, 16], [2, 192, 8, 8], [2, 192, 4, 4], [2, 192, 2, 2]])
        // The same transformer as a classifier, for block 7's tokens.
        var classifier = c.backbone
        classifier.imgSize = 64
        let deit = try DeiT(config: classifier)
        let shared = Dictionary(uniqueKeysWithValues: backbone.namedParameters().map { ($0.0, $0.1) })
        for (name, t) in deit.namedParameters() { if let s = shared[name] { try t.assign(s) } }
        let tokens = try deit.forwardTokens(images, features: [7]).features[0].array   // [2, 17, 192]
        let level = features[2].array                                                  // [2, 192, 4, 4]
        for b in 0..<2 { for m in 0..<16 { for d in [0, 77, 191] {
            XCTAssertEqual(level[(b * 192 + d) * 16 + m], tokens[(b * 17 + 1 + m) * 192 + d])
        } } }
        c.backbone.imgSize = 80
        XCTAssertThrowsError(try DeiTSegmentationBackbone(config: c)) { XCTAssertTrue("\($0)".contains("multiple of 32"), "\($0)") }
    }

    /// Images of another size and a width the heads do not divide are refused by name.
    func testDeiTRefusesBadShapes() throws {
        let model = try DeiT(config: try Self.config().0)
        XCTAssertThrowsError(try model(try Tensor(zeros: [1, 3, 16, 16]))) { error in
            XCTAssertTrue("\(error)".contains("[1, 3, 16, 16]") && "\(error)".contains("32"), "\(error)")
        }
        var bad = try Self.config().0
        bad.numHeads = 5
        XCTAssertThrowsError(try DeiT(config: bad)) { error in XCTAssertTrue("\(error)".contains("num_heads"), "\(error)") }
    }
}
