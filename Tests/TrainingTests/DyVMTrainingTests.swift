import Foundation
import MambaTensor
import XCTest
@testable import VisionMambaModels
@testable import VisionMambaTraining

/// DyVM fine-tuned from a trained dense Vim on the bundled digits, as the official recipe starts
/// from a released Vim checkpoint.
final class DyVMTrainingTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        EngineSettings.configure(threads: 2)
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-dyvm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func dyvmOptions(epochs: Int) -> TrainOptions {
        var o = TrainerTests.smallOptions(epochs: epochs)
        o.model.dyvm = DyVMConfig(pruningLoc: [1], tokenKeepRatio: 0.7)
        o.lr = 4e-2
        o.warmupEpochs = 0
        return o
    }

    func testFineTunesFromADenseVimAndResumesExactly() throws {
        let dense = tmp.appendingPathComponent("dense").path
        let denseTop1 = try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 20), outputDir: dense, events: { _ in }).run().last!.top1
        let start = dense + "/checkpoint.safetensors"

        let whole = tmp.appendingPathComponent("dyvm").path
        let trainer = try ClassificationTrainer(options: dyvmOptions(epochs: 8), outputDir: whole, finetune: start, events: { _ in })
        // The teacher is the dense model the student started from, frozen.
        XCTAssertEqual(trainer.teacher!.namedParameters().count, try VimModel(config: TrainerTests.smallOptions(epochs: 1).model).namedParameters().count)
        let history = try trainer.run()
        let last = history.last!
        XCTAssertEqual(last.tokens, [17, 12])            // int(0.7 · 16) = 11 kept + the class token
        print("DyVM top-1 per epoch \(history.map(\.top1)), dense \(denseTop1)")
        XCTAssertGreaterThan(last.top1, denseTop1 - 12, "DyVM \(last.top1)% against dense \(denseTop1)%")
        let rate = try XCTUnwrap(last.directionRate)
        XCTAssertTrue(rate > 0 && rate <= 1)

        // Stopped after two epochs and resumed: the same metrics (the teacher is rebuilt from the start weights).
        let split = tmp.appendingPathComponent("split").path
        _ = try ClassificationTrainer(options: dyvmOptions(epochs: 8), outputDir: split, finetune: start, events: { _ in }).run(stopAfter: 2)
        let resumed = try ClassificationTrainer(options: dyvmOptions(epochs: 8), outputDir: split, resume: split, events: { _ in }).run()
        XCTAssertEqual(resumed.map(\.trainLoss), history.map(\.trainLoss))
        XCTAssertEqual(resumed.map(\.top1), history.map(\.top1))
    }
}
