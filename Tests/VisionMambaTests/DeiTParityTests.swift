import Foundation
import MambaIO
import MambaNN
import MambaTensor
import XCTest
@testable import VisionMamba

/// timm's VisionTransformer with deit_tiny_patch16_224's structure at a micro size
/// (make_deit_fixtures.py, float64): block outputs, logits, the cross-entropy, every parameter
/// gradient and timm's pos_embed resampling; and the attention op against finite differences.
final class DeiTParityTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources/deit")

    override func setUp() { Parallel.threads = 2 }

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

    // MARK: The attention op against finite differences

    /// Central differences of L = Σ seed · out(x), L summed in double, each element moved by ±ε.
    func numericGradient(_ values: [Float], eps: Float, _ loss: ([Float]) throws -> Double) rethrows -> [Double] {
        var v = values
        return try values.indices.map { i in
            let (up, down) = (values[i] + eps, values[i] - eps)
            v[i] = up; let lossUp = try loss(v)
            v[i] = down; let lossDown = try loss(v)
            v[i] = values[i]
            return (lossUp - lossDown) / (Double(up) - Double(down))
        }
    }

    func relativeError(_ analytic: [Float], _ expected: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (a, e) in zip(analytic, expected) { num += (Double(a) - e) * (Double(a) - e); den += e * e }
        return den == 0 ? num.squareRoot() : (num / den).squareRoot()
    }

    /// The op's backward against finite differences of its float32 forward, on odd shapes (T = 7,
    /// head width 5, rows of 7 run the softmax's SIMD tail) and a strided qkv (a column view).
    func testAttentionGradientsMatchFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 5)
        let (B, T, H, d) = (2, 7, 3, 5), W = 3 * H * d
        let values = (0..<(B * T * (W + 4))).map { _ in Float(rng.normal()) }
        let seed = (0..<(B * T * H * d)).map { _ in Float(rng.normal()) }
        func run(_ v: [Float], _ tape: Tape?) throws -> (Tensor, Tensor) {
            let wide = try Tensor(shape: [B, T, W + 4], values: v)
            let qkv = try wide.columns(2..<(2 + W))                 // a strided view
            return (wide, try attention(qkv, heads: H, scale: 0.45, tape: tape))
        }
        let tape = Tape()
        let (wide, out) = try run(values, tape)
        try tape.backward(from: out, seed: seed)
        let analytic = try XCTUnwrap(wide.grad).array
        let numeric = try numericGradient(values, eps: 1e-2) { v in
            zip(try run(v, nil).1.array, seed).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let err = relativeError(analytic, numeric)
        print("attention: finite-difference relative L2 \(err)")
        XCTAssertLessThan(err, 1e-3)
        // The two unused columns of each row get nothing.
        for r in 0..<(B * T) { XCTAssertEqual(Array(analytic[(r * (W + 4))..<(r * (W + 4) + 2)]), [0, 0]) }
    }

    func testSoftmaxGradientsMatchFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 6)
        let values = (0..<(3 * 11)).map { _ in Float(rng.normal() * 2) }
        let seed = (0..<(3 * 11)).map { _ in Float(rng.normal()) }
        let tape = Tape()
        let x = try Tensor(shape: [3, 11], values: values)
        let y = try softmax(x, tape: tape)
        try tape.backward(from: y, seed: seed)
        let numeric = try numericGradient(values, eps: 1e-2) { v in
            zip(try softmax(Tensor(shape: [3, 11], values: v), tape: nil).array, seed).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let err = relativeError(try XCTUnwrap(x.grad).array, numeric)
        XCTAssertLessThan(err, 1e-3)
        // Forward against the textbook formula in double, and the same bits on one and two threads.
        let ys = y.array
        for r in 0..<3 {
            let row = values[(r * 11)..<(r * 11 + 11)].map(Double.init), m = row.max()!
            let s = row.reduce(0) { $0 + exp($1 - m) }
            for c in 0..<11 { XCTAssertEqual(Double(ys[r * 11 + c]), exp(row[c] - m) / s, accuracy: 1e-6) }
        }
        Parallel.threads = 1
        XCTAssertEqual(try softmax(Tensor(shape: [3, 11], values: values), tape: nil).array, ys)
    }

    func testAttentionRefusesBadShapes() throws {
        let qkv = try Tensor(zeros: [1, 4, 10])
        XCTAssertThrowsError(try attention(qkv, heads: 3, scale: 1, tape: nil)) { error in
            XCTAssertTrue("\(error)".contains("10"), "\(error)")
        }
        XCTAssertThrowsError(try attention(try Tensor(zeros: [4, 9]), heads: 3, scale: 1, tape: nil))
        XCTAssertThrowsError(try attention(try Tensor(zeros: [1, 4, 9]), heads: 0, scale: 1, tape: nil))
        let model = try DeiT(config: try Self.config().0)
        XCTAssertThrowsError(try model(try Tensor(zeros: [1, 3, 16, 16]))) { error in
            XCTAssertTrue("\(error)".contains("[1, 3, 16, 16]") && "\(error)".contains("32"), "\(error)")
        }
        var bad = try Self.config().0
        bad.numHeads = 5
        XCTAssertThrowsError(try DeiT(config: bad)) { error in XCTAssertTrue("\(error)".contains("num_heads"), "\(error)") }
    }
}
