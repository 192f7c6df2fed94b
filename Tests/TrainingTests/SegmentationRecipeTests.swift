import Foundation
import MambaNN
import MambaTensor
import XCTest

/// The official segmentation recipe's optimizer groups and schedule (hustvl/Vim seg configs).
final class SegmentationRecipeTests: XCTestCase {
    /// Names as the upernet-vim-tiny segmentor has them, with their shapes.
    let names: [(String, [Int])] = [
        ("backbone.pos_embed", [1, 1024, 192]),
        ("backbone.patch_embed.proj.weight", [192, 3, 16, 16]), ("backbone.patch_embed.proj.bias", [192]),
        ("backbone.layers.0.mixer.A_log", [384, 16]), ("backbone.layers.0.mixer.D", [384]),
        ("backbone.layers.3.mixer.in_proj.weight", [768, 192]), ("backbone.layers.23.norm.weight", [192]),
        ("backbone.norm_f.weight", [192]), ("backbone.fpn1.0.weight", [192, 192, 2, 2]), ("backbone.fpn1.0.bias", [192]),
        ("decode_head.conv_seg.weight", [150, 192, 1, 1]), ("decode_head.conv_seg.bias", [150]),
        ("auxiliary_head.convs.0.conv.weight", [256, 192, 3, 3]),
    ]

    func group(_ groups: [AdamW.Group], of name: String) -> AdamW.Group? { groups.first { $0.names.contains(name) } }

    /// The official constructor on Vim's names: ids 0 (embeddings) and 25 (everything else),
    /// and pos_embed decayed because its bare-name test never matches.
    func testOfficialLayerDecayKeepsItsQuirks() throws {
        let groups = LayerDecay.official.groups(names, numLayers: 24, rate: 0.92, weightDecay: 0.05)
        XCTAssertEqual(groups.count, 4)
        XCTAssertEqual(groups.map(\.names.count).reduce(0, +), names.count)
        let embedScale = Float(pow(0.92, 25.0))
        for name in ["backbone.pos_embed", "backbone.patch_embed.proj.weight"] {
            XCTAssertEqual(group(groups, of: name)?.weightDecay, 0.05, name)
            XCTAssertEqual(Double(group(groups, of: name)!.lrScale), Double(embedScale), accuracy: 1e-9, name)
        }
        XCTAssertEqual(group(groups, of: "backbone.patch_embed.proj.bias")?.weightDecay, 0)
        for name in ["backbone.layers.0.mixer.A_log", "backbone.layers.3.mixer.in_proj.weight", "backbone.fpn1.0.weight",
                     "decode_head.conv_seg.weight", "auxiliary_head.convs.0.conv.weight"] {
            XCTAssertEqual(group(groups, of: name), AdamW.Group(names: group(groups, of: name)!.names, weightDecay: 0.05, lrScale: 1), name)
        }
        for name in ["backbone.layers.0.mixer.D", "backbone.layers.23.norm.weight", "backbone.norm_f.weight", "decode_head.conv_seg.bias"] {
            XCTAssertEqual(group(groups, of: name)?.weightDecay, 0, name)
            XCTAssertEqual(group(groups, of: name)?.lrScale, 1, name)
        }
    }

    /// The intended rule: block i at rate^(25 − (i + 1)), pos_embed without decay.
    func testPerBlockLayerDecay() throws {
        let groups = LayerDecay.perBlock.groups(names, numLayers: 24, rate: 0.92, weightDecay: 0.05)
        XCTAssertEqual(group(groups, of: "backbone.pos_embed")?.weightDecay, 0)
        XCTAssertEqual(Double(group(groups, of: "backbone.layers.0.mixer.A_log")!.lrScale), pow(0.92, 24), accuracy: 1e-7)
        XCTAssertEqual(Double(group(groups, of: "backbone.layers.3.mixer.in_proj.weight")!.lrScale), pow(0.92, 21), accuracy: 1e-7)
        XCTAssertEqual(Double(group(groups, of: "backbone.layers.23.norm.weight")!.lrScale), pow(0.92, 1), accuracy: 1e-7)
        XCTAssertEqual(group(groups, of: "decode_head.conv_seg.weight")?.lrScale, 1)
        XCTAssertEqual(LayerDecay.perBlock.layerID("backbone.layers.17.mixer.D", numLayers: 24), 18)
        XCTAssertEqual(LayerDecay.official.layerID("backbone.layers.17.mixer.D", numLayers: 24), 25)
    }

    /// A group's lr scale reaches both the step and the decoupled decay (torch uses the group lr).
    func testAdamWGroupLearningRateScale() throws {
        let p = try Tensor(shape: [2], values: [1, -2]), q = try Tensor(shape: [2], values: [1, -2])
        let optimizer = try AdamW(parameters: [("p", p), ("q", q)], lr: 0.1,
                                  groups: [AdamW.Group(names: ["p"], weightDecay: 0.5, lrScale: 0.25), AdamW.Group(names: ["q"], weightDecay: 0.5)])
        for t in [p, q] { t.requiresGrad = true; try t.gradBuffer().assign([0.5, 0.5]) }
        optimizer.update()
        // Step 1: m̂/√v̂ = sign(g) = 1, so p ← p(1 − lr·s·wd) − lr·s (up to eps).
        for (t, s) in [(p, 0.25), (q, 1.0)] {
            let lr = 0.1 * s
            XCTAssertEqual(Double(t.array[0]), 1 * (1 - lr * 0.5) - lr, accuracy: 1e-6)
            XCTAssertEqual(Double(t.array[1]), -2 * (1 - lr * 0.5) - lr, accuracy: 1e-6)
        }
        XCTAssertThrowsError(try AdamW(parameters: [], lr: 0.1, groups: [AdamW.Group(names: [], weightDecay: 0, lrScale: -1)]))
    }

    /// mmcv's poly schedule with linear warm-up as the Vim configs set it (power 1, min 0,
    /// 1500 warm-up iterations from ratio 1e-6), over 60k iterations.
    func testPolyScheduleWithWarmup() {
        let s = PolySchedule(lr: 1e-4, iterations: 60_000)
        XCTAssertEqual(s.lr(forIteration: 0), 1e-4 * 1e-6, accuracy: 1e-18)
        XCTAssertEqual(s.lr(forIteration: 750), 1e-4 * (1 - 750.0 / 60_000) * (1 - 0.5 * (1 - 1e-6)), accuracy: 1e-16)
        XCTAssertEqual(s.lr(forIteration: 1500), 1e-4 * (1 - 1500.0 / 60_000), accuracy: 1e-16)
        XCTAssertEqual(s.lr(forIteration: 30_000), 0.5e-4, accuracy: 1e-16)
        XCTAssertEqual(s.lr(forIteration: 60_000), 0)
        let squared = PolySchedule(lr: 0.01, iterations: 100, power: 0.9, minLR: 1e-4, warmupIterations: 0)
        XCTAssertEqual(squared.lr(forIteration: 50), (0.01 - 1e-4) * pow(0.5, 0.9) + 1e-4, accuracy: 1e-15)
    }
}
