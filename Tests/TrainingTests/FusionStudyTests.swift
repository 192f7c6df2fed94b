import Foundation
import MambaTensor
import XCTest
@testable import VisionMambaModels
@testable import VisionMambaData
@testable import VisionMambaTraining

final class FusionStudyTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        EngineSettings.configure(threads: 2)
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-study-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// The study's arms have the paper's meaning of lower and upper and a matched token budget.
    func testArmsMatchTheTokenBudget() throws {
        let o = TrainOptions(model: try ModelZoo.config(named: "vim-tiny"))
        let arms = try FusionStudy(base: o, tokens: 7, outputDir: tmp.path).arms()
        XCTAssertEqual(arms.map(\.0), [.none, .all, .interleave, .lower, .upper])
        // spec/famba-v.md §4.3: all r7 = 168, alternate r14 = 168, lower/upper over 18 blocks r9 = 162.
        XCTAssertEqual(arms.map { ($0.1?.blocks.count ?? 0) * ($0.1?.tokens ?? 0) }, [0, 168, 168, 162, 162])
        XCTAssertEqual(arms[3].1!.blocks, Array(0..<18))      // lower layers fuse, upper conserved
        XCTAssertEqual(arms[4].1!.blocks, Array(6..<24))
        XCTAssertEqual(arms[2].1!.blocks, stride(from: 1, to: 24, by: 2).map { $0 })
        // The tokens each mixer sees at 224 px (197 tokens), as the spec's table.
        var c = o.model
        c.fusion = arms[1].1
        XCTAssertEqual(c.tokenLayers, 2628)
        c.fusion = arms[2].1
        XCTAssertEqual(c.tokenLayers, 2712)
    }

    /// An r whose interleave arm (2r) exceeds what a fusion can remove is refused before any arm trains.
    func testTokensTooManyForAnArmAreRefusedUpFront() throws {
        // 8 px, patch 2: 17 tokens, at most 8 per fusion; the all arm's 5 fits, interleave's 10 does not.
        let o = TrainOptions(model: VimConfig(name: "d", imgSize: 8, patchSize: 2, stride: 2, embedDim: 16, depth: 4, numClasses: 10))
        XCTAssertThrowsError(try FusionStudy(base: o, tokens: 5, outputDir: tmp.path)) {
            XCTAssertEqual($0 as? ConfigError, .tooManyFusionTokens(model: "d", requested: 10, maximum: 8, tokens: 17))
        }
        XCTAssertNoThrow(try FusionStudy(base: o, tokens: 4, outputDir: tmp.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("none").path))
    }

    /// A CI-sized study on the bundled digits: every arm trains, the schedules are exact, fusion
    /// lowers peak tensor memory, and the table and plot are written.
    func testDigitsStudy() throws {
        var o = TrainOptions(model: VimConfig(name: "vim-digits-small", imgSize: 8, patchSize: 2, stride: 2, embedDim: 32, depth: 4, numClasses: 10))
        o.epochs = 4
        o.batchSize = 32
        o.lr = 4e-2
        o.warmupEpochs = 1
        let study = try FusionStudy(base: o, tokens: 1, outputDir: tmp.path)
        let rows = try study.run(events: { _ in })
        XCTAssertEqual(rows.map(\.strategy), [.none, .all, .interleave, .lower, .upper])
        XCTAssertEqual(rows.map(\.schedule), [[17, 17, 17, 17], [16, 15, 14, 13], [17, 15, 15, 13], [16, 15, 14, 14], [17, 16, 15, 14]])
        for r in rows {
            XCTAssertEqual(r.history.count, 4)
            XCTAssertGreaterThan(r.top1, 30, "\(r.strategy) learned nothing")
            XCTAssertEqual(r.history.last!.tokens, r.fusion == nil ? nil : r.schedule)
        }
        let none = rows[0].peakTensorMiB
        for r in rows.dropFirst() { XCTAssertLessThan(r.peakTensorMiB, none, "\(r.strategy) peak tensor memory") }
        let md = try String(contentsOf: tmp.appendingPathComponent("fusion-study.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| interleave | 1,3 | 2 | 17 15 15 13 | 60 |"), md)
        let svg = try String(contentsOf: tmp.appendingPathComponent("fusion-study.svg"), encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 5)
    }

    /// Fixed-size datasets are resized to the model's resolution (CIFAR-shaped Vim on digits).
    func testDigitsResizedTo32Pixels() throws {
        let d = try makeDataset(.digits, path: nil, train: false, imageSize: 32)
        XCTAssertEqual(d.imageShape, [3, 32, 32])
        let native = try makeDataset(.digits, path: nil, train: false)
        XCTAssertEqual(native.imageShape[1], 8)
        let (big, label) = try d.sample(5), (small, label0) = try native.sample(5)
        XCTAssertEqual(label, label0)
        // Bicubic upsampling by 4 keeps each plane's mean close to the original's.
        let mean = { (x: ArraySlice<Float>) in x.reduce(0, +) / Float(x.count) }
        XCTAssertEqual(mean(big[0..<1024]), mean(small[0..<64]), accuracy: 0.05)
    }
}
