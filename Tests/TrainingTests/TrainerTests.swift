import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMambaModels
@testable import VisionMambaTraining

final class TrainerTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        EngineSettings.configure(threads: 2)
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    static func smallOptions(epochs: Int) -> TrainOptions {
        var o = TrainOptions(model: VimConfig(name: "vim-digits-small", imgSize: 8, patchSize: 2, stride: 2, embedDim: 32, depth: 2, numClasses: 10))
        o.epochs = epochs
        o.batchSize = 32
        o.lr = 4e-2
        o.warmupEpochs = 1
        return o
    }

    /// A small Vim learns the bundled digits: at least 90% validation top-1.
    func testLearnsDigits() throws {
        let trainer = try ClassificationTrainer(options: Self.smallOptions(epochs: 20), outputDir: tmp.path, events: { _ in })
        let history = try trainer.run()
        XCTAssertEqual(history.count, 20)
        XCTAssertGreaterThanOrEqual(history.last!.top1, 90, "final top-1 \(history.last!.top1)")
        XCTAssertLessThan(history.last!.trainLoss, history.first!.trainLoss)
        let lines = try String(contentsOf: tmp.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 20)
        XCTAssertTrue(lines[0].contains("\"top5\""))
        let svg = try String(contentsOf: tmp.appendingPathComponent("learning-curve.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("<polyline") && svg.contains("<circle"))
    }

    /// Progress comes as events, never as output: one start and one end per epoch, a step event per
    /// batch with its running loss, and the end events carry the metrics the run returns.
    func testReportsProgressAsEvents() throws {
        let box = EventBox()
        let trainer = try ClassificationTrainer(options: Self.smallOptions(epochs: 2), outputDir: tmp.path, events: box.append)
        let history = try trainer.run()
        let steps = 1437 / 32   // the loader drops the last partial batch
        var started = 0, stepped = 0, ended: [EpochMetrics] = [], saved: [String] = []
        for event in box.events {
            switch event {
            case let .epochStarted(_, epochs, n): started += 1; XCTAssertEqual(epochs, 2); XCTAssertEqual(n, steps)
            case let .step(_, _, step, n, loss, _, _): stepped += 1; XCTAssertLessThanOrEqual(step, n); XCTAssertTrue(loss.isFinite)
            case let .epochEnded(m, _): ended.append(m)
            case .note: break
            case .skippedImages: XCTFail("the digits have no files to skip")
            case .iteration, .evaluated: XCTFail("a classification run reports epochs, not iterations")
            case .checkpointSaved(let path): saved.append((path as NSString).lastPathComponent)
            }
        }
        // Each epoch's checkpoint; the best one again whenever top-1 improved (the first always does).
        XCTAssertEqual(saved.filter { $0 == "checkpoint.safetensors" }.count, 2)
        XCTAssertEqual(saved.first, "checkpoint.safetensors")
        XCTAssertEqual(Array(saved.prefix(2)), ["checkpoint.safetensors", "best-checkpoint.safetensors"])
        XCTAssertEqual(started, 2)
        XCTAssertEqual(stepped, 2 * steps)
        XCTAssertEqual(ended, history)
    }

    /// Resuming from an epoch's checkpoint gives the same numbers as never stopping.
    func testResumeContinuesExactly() throws {
        let whole = tmp.appendingPathComponent("whole").path, split = tmp.appendingPathComponent("split").path
        let a = try ClassificationTrainer(options: Self.smallOptions(epochs: 3), outputDir: whole, events: { _ in }).run()
        _ = try ClassificationTrainer(options: Self.smallOptions(epochs: 3), outputDir: split, events: { _ in }).run(stopAfter: 1)
        let b = try ClassificationTrainer(options: Self.smallOptions(epochs: 3), outputDir: split, resume: split, events: { _ in }).run()
        XCTAssertEqual(a.map(\.trainLoss), b.map(\.trainLoss))
        XCTAssertEqual(a.map(\.valLoss), b.map(\.valLoss))
        XCTAssertEqual(a.map(\.top1), b.map(\.top1))
    }

    /// A non-finite loss stops the run with a clear message and leaves the last checkpoint as it was.
    func testNaNStopsAndKeepsTheCheckpoint() throws {
        let trainer = try ClassificationTrainer(options: Self.smallOptions(epochs: 3), outputDir: tmp.path, events: { _ in })
        try trainer.run(stopAfter: 1)
        let path = tmp.appendingPathComponent("checkpoint.safetensors").path
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        trainer.model.head.bias!.data[0] = .nan
        XCTAssertThrowsError(try trainer.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("nan") && text.contains("epoch 2") && text.contains("untouched"), text)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        let (_, state) = try Checkpoint.load(path)
        XCTAssertEqual(state.epochsDone, 1)
    }
}

final class EventBox: @unchecked Sendable {
    var events: [TrainingEvent] = []
    func append(_ event: TrainingEvent) { events.append(event) }
}
