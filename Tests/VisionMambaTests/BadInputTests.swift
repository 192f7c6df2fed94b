import Foundation
import MambaIO
import MambaNN
import MambaTensor
import XCTest
@testable import VisionMambaModels

/// Model configs, inputs, indices and noise that do not fit are refused with the exact typed
/// error before any kernel runs.
final class BadInputTests: XCTestCase {
    static let small = VimConfig(name: "t", imgSize: 32, patchSize: 8, stride: 8, embedDim: 16, depth: 2, numClasses: 3)

    static var smallDyVM: VimConfig {
        var c = small
        c.dyvm = DyVMConfig(pruningLoc: [1], tokenKeepRatio: 0.5)
        return c
    }

    func expect<E: Error & Equatable, T>(_ expected: E, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, file: file, line: line)
        }
    }

    func images(_ shape: [Int]) throws -> Tensor { try Tensor(shape: shape, repeating: 0.1) }

    func model(_ config: VimConfig = small) throws -> VimModel {
        let m = try VimModel(config: config)
        m.resetParameters(seed: 1)
        return m
    }

    /// The reported case: a 16 px image into a model built for 32 px gave plausible logits.
    func testImageOfAnotherSize() throws {
        let m = try model()
        let expected = ConfigError.inputShapeMismatch(model: "t", channels: 3, size: 32, found: [1, 3, 16, 16])
        expect(expected) { try m(images([1, 3, 16, 16])) }
        expect(expected) { try m.forwardFeatures(images([1, 3, 16, 16])) }
        expect(ConfigError.inputShapeMismatch(model: "t", channels: 3, size: 32, found: [1, 1, 32, 32])) { try m(images([1, 1, 32, 32])) }
        expect(ConfigError.inputShapeMismatch(model: "t", channels: 3, size: 32, found: [3, 32, 32])) { try m(images([3, 32, 32])) }
        expect(ConfigError.inputShapeMismatch(model: "t", channels: 3, size: 32, found: [0, 3, 32, 32])) { try m(images([0, 3, 32, 32])) }
        expect(ConfigError.inputShapeMismatch(model: "t", channels: 3, size: 32, found: [1, 3, 32, 16])) { try m.checkInput(shape: [1, 3, 32, 16]) }
    }

    /// After a resolution override the model takes the new size only.
    func testImageSizeAfterOverride() throws {
        let m = try model()
        try m.setImageSize(48, interpolation: .classTokenAware)
        expect(ConfigError.inputShapeMismatch(model: "t", channels: 3, size: 48, found: [1, 3, 32, 32])) { try m(images([1, 3, 32, 32])) }
        XCTAssertEqual(try m(images([2, 3, 48, 48])).shape, [2, 3])
        // 50 px is not a whole number of 8 px patches.
        expect(ConfigError.invalidValue(model: "t", field: "img_size", value: "50", allowed: "patch_size (8) plus a multiple of stride (8)")) {
            try m.setImageSize(50, interpolation: .classTokenAware)
        }
        expect(ConfigError.invalidValue(model: "t", field: "img_size", value: "0", allowed: "1...65536")) {
            try m.setImageSize(0, interpolation: .official)
        }
    }

    func testConfigValuesOutOfRange() {
        func with(_ change: (inout VimConfig) -> Void) -> VimConfig { var c = Self.small; change(&c); return c }
        expect(ConfigError.invalidValue(model: "t", field: "patch_size", value: "0", allowed: "1...img_size (32)")) {
            try VimModel(config: with { $0.patchSize = 0 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "stride", value: "0", allowed: "1...img_size (32)")) {
            try VimModel(config: with { $0.stride = 0 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "img_size", value: "30", allowed: "patch_size (8) plus a multiple of stride (8)")) {
            try VimModel(config: with { $0.imgSize = 30 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "embed_dim", value: "-4", allowed: "1...65536")) {
            try VimModel(config: with { $0.embedDim = -4 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "num_classes", value: "0", allowed: "1...16777216")) {
            try VimModel(config: with { $0.numClasses = 0 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "depth", value: "0", allowed: "1...4096")) { try VimModel(config: with { $0.depth = 0 }) }
        expect(ConfigError.invalidValue(model: "t", field: "channels", value: "0", allowed: "1...64")) { try VimModel(config: with { $0.inChannels = 0 }) }
        // A config that validate refuses still answers its derived sizes without trapping.
        XCTAssertEqual(with { $0.stride = 0 }.tokens, 1)
        XCTAssertEqual(with { $0.imgSize = .max; $0.patchSize = 1; $0.stride = 1 }.tokens, 1)
        _ = with { $0.embedDim = .max; $0.expand = 64 }.dInner + with { $0.embedDim = .max }.dtRank
    }

    func testDyVMKeepRatios() {
        func dyvm(_ change: (inout DyVMConfig) -> Void) -> VimConfig {
            var c = Self.smallDyVM
            change(&c.dyvm!)
            return c
        }
        expect(ConfigError.invalidValue(model: "t", field: "dyvm.token_keep_ratio", value: "0.0", allowed: "(0, 1]")) {
            try VimModel(config: dyvm { $0.tokenKeepRatio = 0 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "dyvm.token_keep_ratio", value: "1.5", allowed: "(0, 1]")) {
            try VimModel(config: dyvm { $0.tokenKeepRatio = 1.5 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "dyvm.block_keep_ratio", value: "0.0", allowed: "(0, 1]")) {
            try VimModel(config: dyvm { $0.blockKeepRatio = 0 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "dyvm.token_keep_ratio", value: "0.01",
                                        allowed: "large enough to keep a patch token of 16 at every stage")) {
            try VimModel(config: dyvm { $0.tokenKeepRatio = 0.01 })
        }
        expect(ConfigError.invalidValue(model: "t", field: "dyvm.pruning_loc", value: "0", allowed: "block indices in 1..<2")) {
            try VimModel(config: dyvm { $0.pruningLoc = [0] })
        }
        var both = Self.smallDyVM
        both.fusion = TokenFusion(blocks: [0], tokens: 1)
        expect(ConfigError.incompatible(model: "t", first: "DyVM pruning", second: "Famba-V fusion")) { try VimModel(config: both) }
        // Ratios of a config validate refuses do not trap where they are only computed.
        XCTAssertEqual(DyVMConfig(pruningLoc: [], tokenKeepRatio: .nan).tokenRatios, [])
        XCTAssertEqual(DyVMConfig(pruningLoc: [1, 2], tokenKeepRatio: .nan).keepTokens(numPatches: 16), [0, 0])
        XCTAssertEqual(DyVMConfig(pruningLoc: [1], tokenKeepRatio: 3).keepTokens(numPatches: 16), [16])
    }

    func testFusionSizes() {
        var c = Self.small
        c.fusion = TokenFusion(blocks: [0, 5], tokens: 2)
        expect(ConfigError.invalidValue(model: "t", field: "fusion.blocks", value: "5", allowed: "block indices in 0..<2")) { try VimModel(config: c) }
        c.fusion = TokenFusion(blocks: [1], tokens: -1)
        expect(ConfigError.invalidValue(model: "t", field: "fusion.tokens", value: "-1", allowed: "at least 0")) { try VimModel(config: c) }
        expect(ConfigError.unknownFusionStrategy(name: "uper", valid: ["none", "all", "interleave", "alternate", "lower", "upper"])) {
            try TokenFusion.Strategy(name: "uper")
        }
        XCTAssertEqual(TokenFusion.blocks(strategy: .all, layer: 0, depth: -1, rule: .paper), [])
    }

    /// r above what the first fusing block can remove ((T − 1) / 2 of its T = 17 tokens) is refused;
    /// an r that only later blocks cap is the official behaviour and runs.
    func testFusionTokensAboveTheFirstBlocksCap() throws {
        var c = Self.small
        c.fusion = TokenFusion(blocks: [1], tokens: 9)
        expect(ConfigError.tooManyFusionTokens(model: "t", requested: 9, maximum: 8, tokens: 17)) { try VimModel(config: c) }
        XCTAssertEqual("\(ConfigError.tooManyFusionTokens(model: "t", requested: 9, maximum: 8, tokens: 17))",
                       "t: fusion.tokens is 9; a fusion of its 17 tokens removes at most 8 ((T − 1) / 2, the class token kept)")
        // 8 in both blocks: block 0 removes 8 (17 → 9), block 1 is capped at (9 − 1) / 2 = 4.
        c.fusion = TokenFusion(blocks: [0, 1], tokens: 8)
        let model = try VimModel(config: c)
        model.resetParameters(seed: 0)
        let trace = ForwardTrace()
        _ = try model(Tensor(zeros: [1, 3, 32, 32]), trace: trace)
        XCTAssertEqual(trace.ints("tokens"), [9, 5])
        // No fusing block: r does nothing and is not checked.
        c.fusion = TokenFusion(blocks: [], tokens: 1000)
        XCTAssertNoThrow(try c.validate())
        // A smaller resolution lowers the cap: 16 px has 4 + 1 tokens, so r = 8 is refused there.
        expect(ConfigError.tooManyFusionTokens(model: "t", requested: 8, maximum: 2, tokens: 5)) {
            try model.setImageSize(16, interpolation: .classTokenAware)
        }
    }

    func testUnknownModelName() throws {
        XCTAssertThrowsError(try ModelZoo.resolve("vim-huge")) { error in
            guard case ConfigError.unknownModel(let name, let valid)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "vim-huge")
            XCTAssertTrue(valid.contains("vim-tiny"))
        }
    }

    func testConfigFileErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vm-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.json").path
        expect(ConfigError.unreadableFile(path: missing)) { try VimConfig.load(json: missing) }
        let list = dir.appendingPathComponent("list.json").path
        try "[1, 2]".write(toFile: list, atomically: true, encoding: .utf8)
        expect(ConfigError.notAJSONObject(path: list)) { try VimConfig.load(json: list) }
        let partial = dir.appendingPathComponent("partial.json").path
        try #"{"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2}"#.write(toFile: partial, atomically: true, encoding: .utf8)
        expect(ConfigError.missingField(path: partial, field: "num_classes", expected: "integer")) { try VimConfig.load(json: partial) }
        let bad = dir.appendingPathComponent("bad.json").path
        try #"{"name": "b", "img_size": 32, "patch_size": 0, "embed_dim": 16, "depth": 2, "num_classes": 3}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        expect(ConfigError.invalidValue(model: "b", field: "patch_size", value: "0", allowed: "1...img_size (32)")) { try VimConfig.load(json: bad) }
        // The depth is checked before the fusion blocks are listed per block: 2^62 blocks would never end.
        let deep = dir.appendingPathComponent("deep.json").path
        try #"{"name": "d", "img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 4611686018427387904, "num_classes": 3, "fusion": {"strategy": "all", "tokens": 1}}"#
            .write(toFile: deep, atomically: true, encoding: .utf8)
        expect(ConfigError.invalidValue(model: "d", field: "depth", value: "4611686018427387904", allowed: "1...4096")) { try VimConfig.load(json: deep) }
    }

    /// The fixture JSON format field by field: which fields are required, what each defaults to,
    /// which take integers and which any number, and the error each malformed field gives.
    func testConfigFileFields() throws {
        func parse(_ fields: String) throws -> VimConfig {
            try VimConfig.parse(json: Data("{\(fields)}".utf8), path: "cases/c.json")
        }
        let sizes = #""img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 6, "num_classes": 3"#
        // Defaults: the file's name, stride = patch size, d_state 16, d_conv 4, expand 2, middle class token.
        var expected = VimConfig(name: "c", imgSize: 32, patchSize: 8, stride: 8, embedDim: 16, depth: 6, numClasses: 3)
        XCTAssertEqual(try parse(sizes), expected)
        // Integer fields take integral numbers in any spelling; an optional field of another type
        // keeps its default, as the format has always been read.
        XCTAssertEqual(try parse(#""img_size": 32.0, "patch_size": 8, "embed_dim": 1.6e1, "depth": 6, "num_classes": 3"#), expected)
        XCTAssertEqual(try parse(sizes + #", "d_state": "8", "expand": 2.5, "stride": null, "cls_token_position": 1, "name": 7"#), expected)
        expected.name = "n"; expected.stride = 4; expected.dState = 8; expected.dConv = 3; expected.expand = 1; expected.clsPosition = .first
        XCTAssertEqual(try parse(sizes + #", "name": "n", "stride": 4, "d_state": 8, "d_conv": 3, "expand": 1, "cls_token_position": "first""#), expected)
        // Required fields in order; a fraction or a string is not an integer.
        expect(ConfigError.missingField(path: "cases/c.json", field: "img_size", expected: "integer")) { try parse(#""img_size": 32.5"#) }
        expect(ConfigError.missingField(path: "cases/c.json", field: "patch_size", expected: "integer")) { try parse(#""img_size": 32, "patch_size": "8""#) }
        expect(ConfigError.missingField(path: "cases/c.json", field: "embed_dim", expected: "integer")) { try parse(#""img_size": 32, "patch_size": 8"#) }
        expect(ConfigError.missingField(path: "cases/c.json", field: "num_classes", expected: "integer")) {
            try parse(#""img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 6, "num_classes": 9223372036854775808"#)
        }
        // The class token position is read before the sizes.
        expect(ConfigError.invalidValue(model: "cases/c.json", field: "cls_token_position", value: "last", allowed: "middle or first")) {
            try parse(#""cls_token_position": "last""#)
        }
        for text in ["", "[]", "3", "{", #"{"img_size": 32} x"#] {
            expect(ConfigError.notAJSONObject(path: "c.json")) { try VimConfig.parse(json: Data(text.utf8), path: "c.json") }
        }

        // Fusion: the fixture's {strategy, layer, tokens} under the released code's rule unless
        // rule_name says paper; explicit blocks instead of the strategy; a value that is not an
        // object is no fusion.
        XCTAssertEqual(try parse(sizes + #", "fusion": {"strategy": "upper", "layer": 3, "tokens": 2}"#).fusion,
                       TokenFusion(blocks: [0, 1, 2], tokens: 2))
        XCTAssertEqual(try parse(sizes + #", "fusion": {"strategy": "upper", "layer": 3, "tokens": 2, "rule_name": "paper", "order": "preserve"}"#).fusion,
                       TokenFusion(blocks: [4, 5], tokens: 2, preserveOrder: true))
        XCTAssertEqual(try parse(sizes + #", "fusion": {"strategy": "alternate", "tokens": 1}"#).fusion, TokenFusion(blocks: [1, 3, 5], tokens: 1))
        XCTAssertEqual(try parse(sizes + #", "fusion": {"strategy": "no", "tokens": 1}"#).fusion, TokenFusion(blocks: [], tokens: 1))
        XCTAssertEqual(try parse(sizes + #", "fusion": {"strategy": "uper", "blocks": [4, 2], "tokens": 1}"#).fusion, TokenFusion(blocks: [2, 4], tokens: 1))
        XCTAssertNil(try parse(sizes + #", "fusion": "all""#).fusion)
        expect(ConfigError.unknownFusionStrategy(name: "uper", valid: ["none", "all", "interleave", "alternate", "lower", "upper"])) {
            try parse(sizes + #", "fusion": {"strategy": "uper", "tokens": 1}"#)
        }
        expect(ConfigError.missingField(path: "cases/c.json", field: "fusion.strategy", expected: "string")) {
            try parse(sizes + #", "fusion": {"blocks": [1], "tokens": 1}"#)
        }
        expect(ConfigError.missingField(path: "cases/c.json", field: "fusion.tokens", expected: "integer")) {
            try parse(sizes + #", "fusion": {"strategy": "all", "tokens": 1.5}"#)
        }
        expect(ConfigError.invalidValue(model: "c", field: "fusion.blocks", value: "6", allowed: "block indices in 0..<6")) {
            try parse(sizes + #", "fusion": {"strategy": "all", "blocks": [6], "tokens": 1}"#)
        }

        // DyVM: ratios and weights take any number; loss and block_selection are optional.
        var dyvm = DyVMConfig(pruningLoc: [2, 4], tokenKeepRatio: 1, blockKeepRatio: 0.8)
        XCTAssertEqual(try parse(sizes + #", "dyvm": {"pruning_loc": [2, 4.0], "token_keep_ratio": 1}"#).dyvm, dyvm)
        dyvm.blockKeepRatio = 0.5
        dyvm.tokenPruningWeight = 2; dyvm.blockPruningWeight = 3.5; dyvm.distillWeight = 0; dyvm.tokenRatioDivisor = 2
        dyvm.gateTemperature = 1.5; dyvm.gateThreshold = 0.25
        XCTAssertEqual(try parse(sizes + #", "dyvm": {"pruning_loc": [2, 4], "token_keep_ratio": 1, "block_keep_ratio": 0.5, "#
                                 + #""loss": {"token_pruning_weight": 2, "block_pruning_weight": 3.5, "distill_weight": 0, "token_ratio_divisor": 2}, "#
                                 + #""block_selection": {"tau": 1.5, "threshold": 0.25}}"#).dyvm, dyvm)
        expect(ConfigError.missingField(path: "cases/c.json", field: "dyvm.pruning_loc", expected: "list of integers")) {
            try parse(sizes + #", "dyvm": {"pruning_loc": [2.5], "token_keep_ratio": 0.5}"#)
        }
        expect(ConfigError.missingField(path: "cases/c.json", field: "dyvm.token_keep_ratio", expected: "number")) {
            try parse(sizes + #", "dyvm": {"pruning_loc": [2], "token_keep_ratio": "0.5"}"#)
        }
        expect(ConfigError.invalidValue(model: "c", field: "dyvm.block_selection.tau", value: "inf", allowed: "positive and finite")) {
            try parse(sizes + #", "dyvm": {"pruning_loc": [2], "token_keep_ratio": 0.5, "block_selection": {"tau": 1e300}}"#)
        }
    }

    func testDropPathSeedsAndRate() throws {
        let m = try model()
        let x = try images([2, 3, 32, 32])
        expect(TensorError.valueCountMismatch(tensor: "sampleSeeds", expected: 2, found: 1)) {
            try m(x, tape: Tape(), dropPath: DropPathDraw(rate: 0.1, sampleSeeds: [1]))
        }
        expect(TensorError.invalidArgument(name: "drop path rate", value: 1, allowed: "[0, 1)")) {
            try m(x, tape: Tape(), dropPath: DropPathDraw(rate: 1, sampleSeeds: [1, 2]))
        }
    }

    func testMixerTokensAndClassIndices() throws {
        let plain = try model(), dyvm = try model(Self.smallDyVM)
        let u = try Tensor(shape: [2, 5, 16], repeating: 0.1)
        let mamba = try XCTUnwrap(plain.layers[0].mixer as? MambaMixer)
        expect(TensorError.dimensionMismatch(tensor: "u", axis: 2, expected: 16, found: [2, 5, 8])) {
            try mamba(Tensor(shape: [2, 5, 8], repeating: 0.1))
        }
        expect(TensorError.rankMismatch(tensor: "u", expected: 3, found: [10, 16])) { try mamba(Tensor(shape: [10, 16], repeating: 0)) }
        let mixer = try XCTUnwrap(dyvm.layers[0].mixer as? DyVMMixer)
        func run(cls: [Int], mask: Tensor? = nil, noise: [Float]? = nil) throws {
            var context = MixerContext(tape: nil, cls: cls, mask: mask, gateNoise: noise)
            _ = try mixer(u, context: &context)
        }
        expect(TensorError.indexOutOfRange(tensor: "cls", index: 5, count: 5)) { try run(cls: [2, 5]) }
        expect(TensorError.valueCountMismatch(tensor: "cls", expected: 2, found: 1)) { try run(cls: [2]) }
        let mask = try Tensor(shape: [2, 4], repeating: 1)
        expect(TensorError.shapeMismatch(tensor: "mask", expected: [2, 5], found: [2, 4])) {
            try run(cls: [2, 2], mask: mask, noise: [0, 0, 0, 0])
        }
        expect(TensorError.valueCountMismatch(tensor: "noise", expected: 4, found: 3)) {
            try run(cls: [2, 2], mask: try Tensor(shape: [2, 5], repeating: 1), noise: [0, 0, 0])
        }
    }

    func testTokenPredictorShapes() throws {
        let predictor = try TokenPredictor(dim: 16)
        expect(TensorError.dimensionMismatch(tensor: "x", axis: 2, expected: 16, found: [1, 4, 8])) {
            try predictor(Tensor(shape: [1, 4, 8], repeating: 0))
        }
        expect(TensorError.shapeMismatch(tensor: "policy", expected: [1, 4], found: [1, 5])) {
            try predictor(Tensor(shape: [1, 4, 16], repeating: 0), policy: try Tensor(shape: [1, 5], repeating: 1))
        }
    }

    func testDyVMNoiseAndPaths() throws {
        let plain = try model(), dyvm = try model(Self.smallDyVM)
        let x = try images([2, 3, 32, 32])
        let good = try DyVMNoise.draw(sampleSeeds: [1, 2], numPatches: 16, stages: 1, depth: 2)
        expect(ConfigError.requiresDyVM(model: "t")) { try plain.dyvmTrainingForward(x, noise: good, tape: nil) }
        expect(ConfigError.dyvmForwardWithTape(model: "t")) { try dyvm(x, tape: Tape()) }
        expect(ConfigError.requiresPlainVim(model: "t")) { try dyvm.teacherOutputs(x) }
        var short = good
        short.token[0].removeLast()
        expect(TensorError.valueCountMismatch(tensor: "noise.token.0", expected: 64, found: 63)) { try dyvm.dyvmTrainingForward(x, noise: short, tape: nil) }
        var fewBlocks = good
        fewBlocks.block.removeLast()
        expect(TensorError.valueCountMismatch(tensor: "noise.block", expected: 2, found: 1)) { try dyvm.dyvmTrainingForward(x, noise: fewBlocks, tape: nil) }
        expect(TensorError.invalidArgument(name: "numPatches", value: -1, allowed: "at least 0")) {
            try DyVMNoise.draw(sampleSeeds: [1], numPatches: -1, stages: 1, depth: 2)
        }
        // The teacher's outputs must have the student's shapes.
        let student = try dyvm.dyvmTrainingForward(x, noise: good, tape: nil)
        let teacher = try dyvm.denseCopy().teacherOutputs(x)
        expect(TensorError.shapeMismatch(tensor: "teacherLogits", expected: [2, 3], found: [1, 3])) {
            try dyvmLoss(student, targets: [Float](repeating: 0, count: 6), teacherLogits: try teacher.logits.rows(0, 1),
                         teacherOther: teacher.other, config: Self.smallDyVM.dyvm!, tape: nil)
        }
        expect(TensorError.valueCountMismatch(tensor: "targets", expected: 6, found: 5)) {
            try dyvm.dyvmTrainingStep(x, targets: [Float](repeating: 0, count: 5), teacher: try dyvm.denseCopy(), noise: good, tape: nil)
        }
    }

    func testPositionEmbeddingRows() {
        expect(TensorError.valueCountMismatch(tensor: "pos_embed", expected: 17 * 16, found: 5)) {
            try interpolatePositionEmbedding([1, 2, 3, 4, 5], config: Self.small, newGrid: 6, mode: .official)
        }
    }

    func testStateDictsThatDoNotFit() throws {
        let m = try model()
        let before = m.head.weight.array
        var dict: [String: StoredTensor] = [:]
        for (name, t) in m.namedParameters() { dict[name] = StoredTensor(shape: t.shape, floats: [Float](repeating: 9, count: t.count)) }
        dict["pos_embed"] = StoredTensor(shape: [1, 5, 16], floats: [Float](repeating: 0, count: 80))
        expect(StateDictError.mismatch(source: "w", problems: [.shapeMismatch(key: "pos_embed", expected: [1, 17, 16], found: [1, 5, 16])])) {
            try m.load(stateDict: dict, source: "w")
        }
        XCTAssertEqual(m.head.weight.array, before, "a refused load changes nothing")
        let weights = FixtureParityTests.resources.appendingPathComponent("vim-micro.safetensors").path
        expect(StateDictError.missingEMA(source: weights)) { try VimModel.modelTensors(weights, ema: true) }
    }
}
