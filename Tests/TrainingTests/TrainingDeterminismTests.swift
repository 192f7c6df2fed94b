import Foundation
import MambaTensor
import XCTest
@testable import VisionMambaModels
@testable import VisionMambaTraining

/// A short training run reports the same metrics and ends on the same weights, bit for bit, on
/// 1 and 2 threads: plain Vim, Famba-V token fusion and DyVM.
final class TrainingDeterminismTests: XCTestCase {
    var tmp: URL!
    var savedThreads = 1

    override func setUpWithError() throws {
        savedThreads = Parallel.threads
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-train-det-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        EngineSettings.configure(threads: savedThreads)
        try? FileManager.default.removeItem(at: tmp)
    }

    /// One epoch of the bundled digits. Embed 36 gives E = 72: four 16-channel blocks and a tail.
    func options(fusion: TokenFusion? = nil, dyvm: DyVMConfig? = nil) -> TrainOptions {
        var o = TrainerTests.smallOptions(epochs: 1)
        o.model.embedDim = 36
        o.model.fusion = fusion
        o.model.dyvm = dyvm
        o.warmupEpochs = 0
        return o
    }

    func assertSameRun(_ what: String, _ options: TrainOptions) throws {
        var runs: [(metrics: [EpochMetrics], weights: [String: [UInt32]])] = []
        for threads in [1, 2] {
            EngineSettings.configure(threads: threads)
            let trainer = try ClassificationTrainer(options: options, outputDir: tmp.appendingPathComponent("\(what)-\(threads)").path, events: { _ in })
            let history = try trainer.run()
            let weights = Dictionary(uniqueKeysWithValues:
                trainer.model.namedParameters().map { ($0.0, $0.1.array.map(\.bitPattern)) })
            runs.append((history, weights))
        }
        let (a, b) = (runs[0].metrics, runs[1].metrics)
        XCTAssertEqual(a.map(\.trainLoss.bitPattern), b.map(\.trainLoss.bitPattern),
                       "\(what): train loss \(a.map(\.trainLoss)) vs \(b.map(\.trainLoss))")
        XCTAssertEqual(a.map(\.valLoss.bitPattern), b.map(\.valLoss.bitPattern),
                       "\(what): validation loss \(a.map(\.valLoss)) vs \(b.map(\.valLoss))")
        XCTAssertEqual(a.map(\.top1), b.map(\.top1), what)
        XCTAssertEqual(a.map(\.top5), b.map(\.top5), what)
        XCTAssertEqual(a.map(\.tokens), b.map(\.tokens), what)
        XCTAssertEqual(a.map(\.directionRate), b.map(\.directionRate), what)
        for (name, bits) in runs[0].weights {
            let other = runs[1].weights[name] ?? []
            let differing = zip(bits, other).filter { $0 != $1 }.count
            XCTAssertTrue(differing == 0 && bits.count == other.count, "\(what): \(name): \(differing) of \(bits.count) weights differ")
        }
    }

    func testVimTrainsTheSameOnOneAndTwoThreads() throws {
        try assertSameRun("vim", options())
    }

    func testFambaVTrainsTheSameOnOneAndTwoThreads() throws {
        try assertSameRun("famba-v", options(fusion: TokenFusion(blocks: [0, 1], tokens: 2)))
    }

    func testDyVMTrainsTheSameOnOneAndTwoThreads() throws {
        try assertSameRun("dyvm", options(dyvm: DyVMConfig(pruningLoc: [1], tokenKeepRatio: 0.7)))
    }
}
