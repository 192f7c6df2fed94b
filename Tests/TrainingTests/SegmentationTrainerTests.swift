import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMambaModels
@testable import VisionMambaTraining

/// Iteration-based segmentation training on the bundled digit scenes: events, checkpoints and
/// metrics, exact resume, and a run that learns.
final class SegmentationTrainerTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        EngineSettings.configure(threads: 2)
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("segtrain-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    static func options(iterations: Int) -> SegmentationTrainOptions {
        var o = SegmentationTrainOptions(model: ModelZoo.digitScenes, dataset: .digitScenes)
        o.iterations = iterations
        o.batchSize = 4
        o.evalInterval = 3
        o.evalImages = 6
        o.slideStride = nil
        o.warmupIterations = 2
        o.lr = 1e-3
        return o
    }

    func testRunsEvaluatesAndResumesBitForBit() throws {
        let whole = try SegmentationTrainer(options: Self.options(iterations: 6), outputDir: tmp.appendingPathComponent("whole").path)
        let history = try whole.run()
        XCTAssertEqual(history.map(\.iteration), [3, 6])
        for m in history {
            XCTAssertTrue(m.trainLoss.isFinite && m.trainLoss > 0)
            XCTAssertTrue((0...100).contains(m.valMIoU) && (0...100).contains(m.valAAcc))
            XCTAssertEqual(m.perClassIoU.count, 11)
        }
        let folder = tmp.appendingPathComponent("whole").path
        for file in ["checkpoint.safetensors", "best-checkpoint.safetensors", "metrics.jsonl", "learning-curve.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + file), file)
        }
        let lines = try String(contentsOfFile: folder + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].contains("\"val_miou\"") && lines[0].contains("\"val_aacc\"") && lines[0].contains("\"val_macc\""))

        // Stopped after the first evaluation, resumed in its folder: the same run, bit for bit.
        let parts = tmp.appendingPathComponent("parts").path
        _ = try SegmentationTrainer(options: Self.options(iterations: 6), outputDir: parts).run(stopAfter: 3)
        var events: [TrainingEvent] = []
        let resumed = try SegmentationTrainer(options: Self.options(iterations: 6), resume: parts) { events.append($0) }
        XCTAssertEqual(resumed.state.iterationsDone, 3)
        // Everything but the timings.
        func results(_ h: [SegmentationEvalMetrics]) -> [[Double?]] {
            h.map { [Double($0.iteration), $0.trainLoss, $0.lr, $0.valMIoU, $0.valAAcc, $0.valMAcc] + $0.perClassIoU }
        }
        XCTAssertEqual(results(try resumed.run()), results(history))
        for ((name, a), (_, b)) in zip(whole.model.namedState(), resumed.model.namedState()) { XCTAssertEqual(a.array, b.array, name) }
        XCTAssertEqual(events.compactMap { if case let .iteration(i, n, _, _, _) = $0 { return [i, n] } else { return nil } },
                       [[4, 6], [5, 6], [6, 6]])
        // A folder that holds a run is not overwritten.
        XCTAssertThrowsError(try SegmentationTrainer(options: Self.options(iterations: 6), outputDir: parts)) {
            XCTAssertEqual($0 as? TrainingError, .outputHoldsRun(path: parts))
        }
    }

    /// The DyVM segmentation backbone trains through the same loop: random keep decisions and
    /// gates each step (the ratio losses reach the scorers and direction heads), evaluation by
    /// top-k pruning, and an exact resume.
    func testDyVMBackboneTrainsAndResumesBitForBit() throws {
        var o = Self.options(iterations: 4)
        o.evalInterval = 2
        var dyvm = DyVMConfig(pruningLoc: [1, 2, 3], tokenKeepRatio: 0.8)
        (dyvm.tokenPruningWeight, dyvm.blockPruningWeight, dyvm.tokenRatioDivisor) = (20, 20, 3)
        o.model.backbone.dyvm = dyvm
        let whole = try SegmentationTrainer(options: o, outputDir: tmp.appendingPathComponent("whole").path)
        let before = Dictionary(uniqueKeysWithValues: whole.model.namedParameters().map { ($0.0, $0.1.array) })
        let history = try whole.run()
        XCTAssertEqual(history.map(\.iteration), [2, 4])
        XCTAssertTrue(history.allSatisfy { $0.trainLoss.isFinite && (0...100).contains($0.valMIoU) })
        for (name, p) in whole.model.namedParameters() where name.contains("score_predictors") || name.contains("block_head") {
            XCTAssertNotEqual(p.array, before[name], "\(name) did not train")
        }
        let parts = tmp.appendingPathComponent("parts").path
        _ = try SegmentationTrainer(options: o, outputDir: parts).run(stopAfter: 2)
        let resumed = try SegmentationTrainer(options: o, resume: parts)
        XCTAssertEqual(try resumed.run().map { [$0.trainLoss, $0.valMIoU, $0.valAAcc] }, history.map { [$0.trainLoss, $0.valMIoU, $0.valAAcc] })
        for ((name, a), (_, b)) in zip(whole.model.namedState(), resumed.model.namedState()) { XCTAssertEqual(a.array, b.array, name) }
    }

    /// `finetune` from one of our classification checkpoints (a Vim of the backbone's width and
    /// depth trained on digits at 8 px, patch 2): the blocks start from it, the patch embedding
    /// of the other patch size and the pyramid do not, and the run says so.
    func testFineTunesFromOurClassificationCheckpoint() throws {
        var classification = TrainerTests.smallOptions(epochs: 1)
        classification.model.depth = 4
        let classifierRun = tmp.appendingPathComponent("classifier").path
        _ = try ClassificationTrainer(options: classification, outputDir: classifierRun, events: { _ in }).run()
        var o = Self.options(iterations: 1)
        o.model.backbone.embedDim = 32
        o.finetune = classifierRun + "/checkpoint.safetensors"
        var notes: [String] = []
        let trainer = try SegmentationTrainer(options: o, outputDir: tmp.appendingPathComponent("seg").path) {
            if case let .note(text) = $0 { notes.append(text) }
        }
        let classifier = try VimModel(config: classification.model)
        try classifier.load(weights: o.finetune!)
        let backbone = Dictionary(uniqueKeysWithValues: trainer.model.backbone.namedState().map { ($0.0, $0.1.array) })
        for (name, t) in classifier.namedState() where name.hasPrefix("layers.") || name == "norm_f.weight" {
            XCTAssertEqual(backbone[name], t.array, name)
        }
        XCTAssertNotEqual(backbone["patch_embed.proj.weight"]?.count, classifier.patchEmbed.proj.weight.count)
        let note = try XCTUnwrap(notes.first { $0.hasPrefix("backbone from") })
        XCTAssertTrue(note.contains("patch_embed.proj.weight") && note.contains("fpn1.0.weight"), note)
    }

    /// A DeiT backbone under the same pyramid and heads trains through the same loop (the
    /// official layer decay, written for ViT names, reaches its blocks), and resumes exactly.
    func testDeiTSegmentorTrainsAndResumesBitForBit() throws {
        var o = Self.options(iterations: 4)
        o.evalInterval = 2
        let shape = VimConfig(name: "upernet-deit-micro", imgSize: 64, patchSize: 16, stride: 16, embedDim: 48, depth: 4, numClasses: 11)
        var config = SegmentationConfig(name: "upernet-deit-micro", backbone: shape, outIndices: [0, 1, 2, 3], numClasses: 11, decodeChannels: 32)
        config.deit = DeiTConfig(name: "upernet-deit-micro", imgSize: 64, patchSize: 16, embedDim: 48, depth: 4, numHeads: 3, numClasses: 11)
        (config.auxiliaryChannels, config.dropPathRate) = (16, 0)
        o.model = config
        let whole = try SegmentationTrainer(options: o, outputDir: tmp.appendingPathComponent("whole").path)
        XCTAssertTrue(whole.model.backbone is DeiTSegmentationBackbone)
        let history = try whole.run()
        XCTAssertEqual(history.map(\.iteration), [2, 4])
        XCTAssertTrue(history.allSatisfy { $0.trainLoss.isFinite && (0...100).contains($0.valMIoU) })
        let scales = Dictionary(whole.optimizer.groups.flatMap { g in g.names.map { ($0, g.lrScale) } }, uniquingKeysWith: { a, _ in a })
        // num_layers = depth + 2 = 6: block i has layer id i + 1 and lr scale 0.92^(6 − (i + 1) − 1).
        XCTAssertEqual(try XCTUnwrap(scales["backbone.blocks.0.attn.qkv.weight"]), Float(pow(0.92, 4.0)), accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(scales["backbone.blocks.3.mlp.fc2.weight"]), Float(pow(0.92, 1.0)), accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(scales["decode_head.conv_seg.weight"]), 1)
        let parts = tmp.appendingPathComponent("parts").path
        _ = try SegmentationTrainer(options: o, outputDir: parts).run(stopAfter: 2)
        let resumed = try SegmentationTrainer(options: o, resume: parts)
        XCTAssertEqual(try resumed.run().map { [$0.trainLoss, $0.valMIoU, $0.valAAcc] }, history.map { [$0.trainLoss, $0.valMIoU, $0.valAAcc] })
        for ((name, a), (_, b)) in zip(whole.model.namedState(), resumed.model.namedState()) { XCTAssertEqual(a.array, b.array, name) }
        // Stochastic depth is refused up front, before a run folder is made.
        var withDropPath = o
        withDropPath.model.dropPathRate = 0.1
        XCTAssertThrowsError(try SegmentationTrainer(options: withDropPath, outputDir: tmp.appendingPathComponent("drop").path)) {
            XCTAssertTrue("\($0)".contains("drop_path_rate"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("drop").path))
        // The zoo's DeiT segmentor lists and builds.
        let zoo = try ModelZoo.segmentationEntry(named: "upernet-deit-tiny").config
        XCTAssertEqual(zoo.deit?.numHeads, 3)
        XCTAssertEqual(zoo.tokens, 1025)
    }

    /// The fuzzer's segmentation seeds are states the checker accepts, one per backbone kind, so
    /// that fuzzing starts from inputs that reach the model configs; damaged ones are typed errors.
    func testStoredStatesOfEachBackboneKindAreCheckedFromJSON() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/training-state")
        var kinds: [String] = []
        for name in ["segmentation", "segmentation-dyvm", "segmentation-deit"] {
            let json = try String(contentsOf: corpus.appendingPathComponent("\(name).json"), encoding: .utf8)
            let model = try SegmentationTrainer.state(json: json, path: name).options.model
            kinds.append(model.deit != nil ? "deit" : model.backbone.dyvm != nil ? "dyvm" : "vim")
            XCTAssertGreaterThan(model.forwardFLOPs().total, 0)
            XCTAssertThrowsError(try SegmentationTrainer.state(json: json.replacingOccurrences(of: "\"depth\": 4", with: "\"depth\": -4"), path: name)) {
                XCTAssertTrue($0 is ConfigError || $0 is TrainingError, "\($0)")
            }
        }
        XCTAssertEqual(kinds, ["vim", "dyvm", "deit"])
    }

    /// 80 iterations of the digit-scenes recipe take the loss (decode + 0.4 · auxiliary) from
    /// ln 11 · 1.4 ≈ 3.4 to below what the best constant prediction, the class frequencies, scores
    /// (about 1.2): the model learns from the pixels, not just the class balance.
    func testLearnsDigitScenes() throws {
        var o = Self.options(iterations: 80)
        o.lr = 5e-3
        o.evalInterval = 80
        o.warmupIterations = 5
        var losses: [Double] = []
        _ = try SegmentationTrainer(options: o, outputDir: tmp.path) { event in
            if case let .iteration(_, _, loss, _, _) = event { losses.append(loss) }
        }.run()
        // The events carry the running mean since the last evaluation: the last 20 iterations'
        // own mean follows from the running means at 60 and 80.
        let lastTwenty = (losses[79] * 80 - losses[59] * 60) / 20
        print(String(format: "digit scenes: first loss %.3f, mean of iterations 61-80 %.3f", losses[0], lastTwenty))
        XCTAssertGreaterThan(losses[0], 3)
        XCTAssertLessThan(lastTwenty, 1.1)
    }
}
