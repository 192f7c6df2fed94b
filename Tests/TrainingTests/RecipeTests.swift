import MambaNN
import MambaTensor
import XCTest
@testable import VisionMambaModels

final class RecipeTests: XCTestCase {
    func testScheduleMatchesTheOfficialVimTinyRun() throws {
        // spec/vim.md §5.5: 1e-6, 1e-6, 2.008e-4, …, 8.002e-4 at epoch 5, then 1e-3 · cosine.
        let s = CosineSchedule(lr: 1e-3, minLR: 1e-5, warmupLR: 1e-6, warmupEpochs: 5, epochs: 300)
        XCTAssertEqual(s.lr(forEpoch: 0), 1e-6)
        XCTAssertEqual(s.lr(forEpoch: 1), 1e-6)
        XCTAssertEqual(s.lr(forEpoch: 2), 2.008e-4, accuracy: 1e-12)
        XCTAssertEqual(s.lr(forEpoch: 5), 8.002e-4, accuracy: 1e-12)
        XCTAssertEqual(s.lr(forEpoch: 6), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + cos(Double.pi * 5 / 300)), accuracy: 1e-15)
        XCTAssertEqual(s.value(at: 300), 1e-5)
        XCTAssertEqual(scaledLR(5e-4, globalBatch: 1024), 1e-3)
    }

    func testWeightDecayGroupsOfVimTiny() throws {
        let model = try VimModel(config: try ModelZoo.config(named: "vim-tiny"))
        let opt = try AdamW(parameters: model.namedParameters(), lr: 1e-3, weightDecay: 0.1, noWeightDecay: ["pos_embed", "cls_token"])
        let sizes = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.count) })
        let noDecay = opt.groups[0].names.reduce(0) { $0 + sizes[$1]! }, decay = opt.groups[1].names.reduce(0) { $0 + sizes[$1]! }
        XCTAssertEqual(decay, 7_048_704)
        XCTAssertEqual(noDecay, 99_304)
        XCTAssertTrue(opt.groups[1].names.contains("layers.0.mixer.A_log"))     // 2-D: decayed, as timm 0.4.12 does
        XCTAssertTrue(opt.groups[0].names.contains("layers.0.mixer.D"))
        XCTAssertTrue(opt.groups[0].names.contains("pos_embed"))
        XCTAssertEqual(opt.groups[0].weightDecay, 0)
    }

    func testAdamWStepsMatchTorch() throws {
        // Two steps of torch.optim.AdamW(lr=0.1, weight_decay=0.5) on p = [1, -2] with gradients
        // [0.5, 0.25] then [-1, 2], written out by hand from the update rule.
        let p = try Tensor(shape: [2], values: [1, -2]), q = try Tensor(shape: [2, 1], values: [1, -2])
        let opt = try AdamW(parameters: [("p", p), ("q", q)], lr: 0.1, weightDecay: 0.5)
        var ref: [Double] = [1, -2]
        var m = [0.0, 0.0], v = [0.0, 0.0]
        for (step, g) in [[0.5, 0.25], [-1.0, 2.0]].enumerated() {
            p.grad = try Tensor(shape: [2], values: g.map(Float.init))
            q.grad = try Tensor(shape: [2, 1], values: g.map(Float.init))
            opt.update()
            let t = Double(step + 1)
            for i in 0..<2 {
                ref[i] *= 1 - 0.1 * 0.5
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                ref[i] -= 0.1 / (1 - pow(0.9, t)) * m[i] / ((v[i] / (1 - pow(0.999, t))).squareRoot() + 1e-8)
            }
        }
        // p is 1-D: no decay; q is 2-D: decayed.
        XCTAssertEqual(Double(q.data[0]), ref[0], accuracy: 1e-6)
        XCTAssertEqual(Double(q.data[1]), ref[1], accuracy: 1e-6)
        XCTAssertNotEqual(Double(p.data[0]), ref[0], accuracy: 1e-3)
    }
}
