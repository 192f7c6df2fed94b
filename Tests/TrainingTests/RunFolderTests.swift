import Foundation
import XCTest
@testable import VisionMambaTraining

/// Runs are never lost: a new run refuses a folder that holds one, a resumed run writes only
/// into its own folder, and a larger epoch count extends a resumed schedule.
final class RunFolderTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func testANewRunDoesNotReplaceAnother() throws {
        let run = tmp.appendingPathComponent("run").path
        _ = try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: run, events: { _ in }).run()
        let before = try Data(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors"))
        XCTAssertThrowsError(try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: run, events: { _ in })) { error in
            XCTAssertEqual(error as? TrainingError, .outputHoldsRun(path: run))
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors")), before)
        // Replacing it is a choice the caller makes explicitly.
        XCTAssertNoThrow(try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: run, overwrite: true, events: { _ in }))
    }

    func testAResumedRunStaysInItsFolderAndExtendsItsSchedule() throws {
        let run = tmp.appendingPathComponent("run").path, other = tmp.appendingPathComponent("other").path
        _ = try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: run, events: { _ in }).run()
        XCTAssertThrowsError(try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: other, resume: run, events: { _ in })) { error in
            XCTAssertEqual(error as? TrainingError, .resumeElsewhere(checkpoint: run + "/checkpoint.safetensors", outputDir: other))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: other))
        var notes: [String] = []
        let trainer = try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), resume: run, epochs: 2, events: { event in
            if case .note(let text) = event { notes.append(text) }
        })
        XCTAssertEqual(trainer.outputDir, run)
        XCTAssertEqual(notes, ["extending the schedule from 1 to 2 epochs"])
        let history = try trainer.run()
        XCTAssertEqual(history.map(\.epoch), [0, 1])
        let state = try Checkpoint.load(run + "/checkpoint.safetensors").state
        XCTAssertEqual(state.epochsDone, 2)
        XCTAssertEqual(state.options.epochs, 2)
        // Fewer epochs than it has trained would not run anything.
        XCTAssertThrowsError(try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), resume: run, epochs: 1, events: { _ in })) { error in
            XCTAssertEqual(error as? TrainingError, .epochsAlreadyDone(requested: 1, done: 2, checkpoint: run + "/checkpoint.safetensors"))
        }
    }

    func testNewRunFoldersAreDistinct() throws {
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(tmp.path)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let first = ClassificationTrainer.newRunFolder(model: "vim-digits", dataset: "digits", now: now)
        XCTAssertTrue(first.hasPrefix("runs/vim-digits-digits-"), first)
        XCTAssertEqual(first.count, "runs/vim-digits-digits-".count + "yyyyMMdd-HHmmss".count, first)
        try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: true)
        XCTAssertEqual(ClassificationTrainer.newRunFolder(model: "vim-digits", dataset: "digits", now: now), first + "-2")
    }
}
