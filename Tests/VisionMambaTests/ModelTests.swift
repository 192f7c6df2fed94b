import MambaIO
import MambaNN
import MambaTensor
import XCTest
@testable import VisionMambaModels

final class ModelTests: XCTestCase {
    func testDyVMStagesScaleWithDepth() {
        XCTAssertEqual(DyVMConfig.pruningLoc(depth: 24), [6, 12, 18])
        XCTAssertEqual(DyVMConfig.pruningLoc(depth: 12), [3, 6, 9])
        XCTAssertEqual(DyVMConfig.pruningLoc(depth: 4), [1, 2, 3])
        XCTAssertEqual(DyVMConfig.pruningLoc(depth: 2), [1])
        XCTAssertEqual(DyVMConfig.pruningLoc(depth: 1), [])
    }

    func testZooParameterCountsMatchTheOfficialModels() throws {
        let expected: [String: Int] = [
            "vim-tiny": 7_148_008, "vim-tiny-stride8": 7_250_344, "vim-small": 25_796_584,
            "vim-small-stride8": 26_001_256, "vim-base": 97_598_440,
        ]
        for (name, count) in expected {
            XCTAssertEqual(VimModel.parameterCount(try ModelZoo.config(named: name)), count, name)
            // timm's spelling of an alias names the same model.
            XCTAssertEqual(try ModelZoo.config(named: name.replacingOccurrences(of: "-", with: "_").uppercased()), try ModelZoo.config(named: name))
        }
        XCTAssertEqual(try ModelZoo.resolve("vim-digits"), ModelZoo.digits)
        // The allocated model agrees with the formula and has the official 415 tensors.
        let tiny = try VimModel(config: try ModelZoo.config(named: "vim-tiny"))
        XCTAssertEqual(tiny.parameterCount, 7_148_008)
        XCTAssertEqual(tiny.namedParameters().count, 415)
    }

    func testStateDictOrderAndNamesAreOfficial() throws {
        let model = try VimModel(config: try ModelZoo.config(named: "vim-tiny"))
        let names = model.namedParameters().map(\.0)
        XCTAssertEqual(Array(names.prefix(6)), ["cls_token", "pos_embed", "patch_embed.proj.weight",
                                                "patch_embed.proj.bias", "head.weight", "head.bias"])
        XCTAssertEqual(Array(names[6..<23]), [
            "layers.0.mixer.A_log", "layers.0.mixer.D", "layers.0.mixer.A_b_log", "layers.0.mixer.D_b",
            "layers.0.mixer.in_proj.weight", "layers.0.mixer.conv1d.weight", "layers.0.mixer.conv1d.bias",
            "layers.0.mixer.x_proj.weight", "layers.0.mixer.dt_proj.weight", "layers.0.mixer.dt_proj.bias",
            "layers.0.mixer.conv1d_b.weight", "layers.0.mixer.conv1d_b.bias", "layers.0.mixer.x_proj_b.weight",
            "layers.0.mixer.dt_proj_b.weight", "layers.0.mixer.dt_proj_b.bias", "layers.0.mixer.out_proj.weight",
            "layers.0.norm.weight"])
        XCTAssertEqual(names.last, "norm_f.weight")
        let shapes = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(shapes["layers.5.mixer.conv1d.weight"], [384, 1, 4])
        XCTAssertEqual(shapes["layers.5.mixer.x_proj.weight"], [44, 384])
        XCTAssertEqual(shapes["pos_embed"], [1, 197, 192])
    }

    /// The tokens a dense head reads: every token after norm_f, whose class row is the feature
    /// the classifier reads; DyVM's keep only the tokens that survived, with their patches.
    func testForwardTokens() throws {
        var config = VimConfig(name: "t", imgSize: 8, patchSize: 2, stride: 2, embedDim: 16, depth: 2, numClasses: 3)
        let plain = try VimModel(config: config)
        plain.resetParameters(seed: 4)
        var rng = SeededGenerator(seed: 5)
        let images = try Tensor(shape: [2, 3, 8, 8], values: (0..<384).map { _ in Float(rng.normal()) })
        let out = try plain.forwardTokens(images)
        XCTAssertEqual(out.tokens.shape, [2, 17, 16])
        XCTAssertEqual(out.cls, [8, 8])
        XCTAssertEqual(out.patches ?? [], [[Int]](repeating: Array(0..<16), count: 2))
        let feature = try plain.forwardFeatures(images).array
        let clsRows = try selectToken(out.tokens, indices: out.cls, tape: nil).array
        XCTAssertLessThan(relativeL2(clsRows, feature), 1e-6)
        config.dyvm = DyVMConfig(pruningLoc: [1], tokenKeepRatio: 0.5)
        let dyvm = try VimModel(config: config)
        dyvm.resetParameters(seed: 4)
        let pruned = try dyvm.forwardTokens(images)
        XCTAssertEqual(pruned.tokens.shape, [2, 9, 16])
        XCTAssertEqual(pruned.cls, [4, 4])
        XCTAssertEqual(pruned.patches?.map(\.count), [8, 8])
        XCTAssertTrue(pruned.patches!.allSatisfy { $0 == $0.sorted() && Set($0).count == 8 })
    }

    func testClassTokenIndexAndGrid() throws {
        let stride8 = try ModelZoo.config(named: "vim-tiny-stride8")
        XCTAssertEqual(stride8.grid, 27)
        XCTAssertEqual(stride8.tokens, 730)
        XCTAssertEqual(stride8.clsIndex, 364)
        XCTAssertEqual(try ModelZoo.config(named: "vim-tiny").clsIndex, 98)
        XCTAssertThrowsError(try ModelZoo.config(named: "vim-huge")) { error in
            XCTAssertTrue("\(error)".contains("vim-tiny"))
        }
    }

    func testStrictLoadReportsEveryProblemByName() throws {
        let config = VimConfig(name: "t", imgSize: 32, patchSize: 8, stride: 8, embedDim: 16, depth: 1, numClasses: 3)
        let model = try VimModel(config: config)
        var dict: [String: StoredTensor] = [:]
        for (name, t) in model.namedParameters() { dict[name] = StoredTensor(shape: t.shape, floats: t.array) }
        dict["head.weight"] = StoredTensor(shape: [5, 16], floats: [Float](repeating: 0, count: 80))
        dict.removeValue(forKey: "norm_f.weight")
        dict["head_dist.weight"] = StoredTensor(shape: [2], floats: [0, 0])
        XCTAssertThrowsError(try model.load(stateDict: dict)) { error in
            XCTAssertEqual(error as? StateDictError, .mismatch(source: "", problems: [
                .shapeMismatch(key: "head.weight", expected: [3, 16], found: [5, 16]),
                .missingKey(key: "norm_f.weight", expected: [16]),
                .unexpectedKey(key: "head_dist.weight", found: [2]),
            ]))
            let text = "\(error)"
            XCTAssertTrue(text.contains("head.weight: expected [3, 16], found [5, 16]"), text)
            XCTAssertTrue(text.contains("missing norm_f.weight [16]"), text)
            XCTAssertTrue(text.contains("unexpected head_dist.weight [2]"), text)
        }
        // Non-strict still refuses a wrong shape, but accepts missing and unexpected names.
        dict["head.weight"] = StoredTensor(shape: [3, 16], floats: [Float](repeating: 0.5, count: 48))
        let skipped = try model.load(stateDict: dict, strict: false)
        XCTAssertEqual(skipped.missing, ["norm_f.weight"])
        XCTAssertEqual(model.head.weight.data[7], 0.5)
    }

    func testPositionEmbeddingInterpolation() throws {
        // A 2×2 grid (M = 4, class index 2) with recognisable rows, moved to a 4×4 grid.
        let config = VimConfig(name: "t", imgSize: 16, patchSize: 8, stride: 8, embedDim: 1, depth: 1, numClasses: 1)
        XCTAssertEqual(config.clsIndex, 2)
        let rows: [Float] = [1, 2, 100, 3, 4]   // patches (0,0)=1, (0,1)=2, cls=100, (1,0)=3, (1,1)=4
        let aware = try interpolatePositionEmbedding(rows, config: config, newGrid: 4, mode: .classTokenAware)
        XCTAssertEqual(aware.count, 17)
        XCTAssertEqual(aware[8], 100)   // new class index 16 / 2
        let grid = bicubicResize([1, 2, 3, 4], inH: 2, inW: 2, channels: 1, outH: 4, outW: 4)
        XCTAssertEqual(Array(aware[0..<8]), Array(grid[0..<8]))
        XCTAssertEqual(Array(aware[9...]), Array(grid[8...]))
        // Official: row 0 is taken as the class row and rows 1… as the grid, class row first.
        let official = try interpolatePositionEmbedding(rows, config: config, newGrid: 4, mode: .official)
        XCTAssertEqual(official[0], 1)
        XCTAssertEqual(Array(official[1...]), bicubicResize([2, 100, 3, 4], inH: 2, inW: 2, channels: 1, outH: 4, outW: 4))
        // Same grid: unchanged.
        XCTAssertEqual(try interpolatePositionEmbedding(rows, config: config, newGrid: 2, mode: .classTokenAware), rows)
    }

    func testRunsAtAnotherResolution() throws {
        let model = try VimModel(config: VimConfig(name: "t", imgSize: 32, patchSize: 8, stride: 8, embedDim: 16, depth: 2, numClasses: 3))
        model.resetParameters(seed: 3)
        try model.setImageSize(48, interpolation: .classTokenAware)
        XCTAssertEqual(model.config.tokens, 37)
        XCTAssertEqual(model.posEmbed.shape, [1, 37, 16])
        let logits = try model(Tensor(shape: [1, 3, 48, 48], repeating: 0.1))
        XCTAssertEqual(logits.shape, [1, 3])
        XCTAssertTrue(logits.array.allSatisfy(\.isFinite))
    }
}

final class FineTuneLoadTests: XCTestCase {
    /// --finetune semantics: a head of another class count stays fresh, pos_embed is interpolated
    /// to the new grid (official: row 0 as class row), every other tensor is the checkpoint's.
    func testFineTuneLoadReplacesHeadAndInterpolatesPositions() throws {
        let dir = FixtureParityTests.resources
        let source = try VimConfig.load(json: dir.appendingPathComponent("vim-micro.json").path)  // 32 px, patch 8: 4×4 grid
        var target = source
        target.imgSize = 48                                                                      // 6×6 grid
        target.numClasses = 7
        let model = try VimModel(config: target)
        model.resetParameters(seed: 1)
        let freshHead = model.head.weight.array
        let fresh = try model.loadForFineTuning(weights: dir.appendingPathComponent("vim-micro.pth").path, interpolation: .official)
        XCTAssertEqual(fresh, ["head.weight", "head.bias"])
        XCTAssertEqual(model.head.weight.array, freshHead)
        let file = try CheckpointFile.readStateDict(dir.appendingPathComponent("vim-micro.pth").path)
        XCTAssertEqual(model.namedParameters().first { $0.0 == "layers.1.mixer.A_log" }!.1.array, file["layers.1.mixer.A_log"]!.floats())
        let expected = try interpolatePositionEmbedding(file["pos_embed"]!.floats(), config: source, newGrid: 6, mode: .official)
        XCTAssertEqual(model.posEmbed.shape, [1, 37, 32])
        XCTAssertEqual(model.posEmbed.array, expected)
        XCTAssertEqual(Array(model.posEmbed.array[0..<32]), Array(file["pos_embed"]!.floats()[0..<32]))  // row 0 kept as is
    }
}
