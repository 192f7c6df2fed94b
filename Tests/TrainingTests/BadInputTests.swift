import Foundation
import MambaIO
import MambaTensor
import XCTest
@testable import VisionMambaModels
@testable import VisionMambaData
@testable import VisionMambaTraining

/// Training, evaluation and the fusion study refuse options, labels and checkpoints that do not
/// fit, with the exact typed error.
final class BadInputTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        EngineSettings.configure(threads: 2)
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func expect<E: Error & Equatable, T>(_ expected: E, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, file: file, line: line)
        }
    }

    /// Three 8 px images labelled 0, 1 and 5 in a dataset that says it has `classes` classes.
    struct LabelledImages: ImageDataset {
        var labels = [0, 1, 5]
        var numClasses = 6
        var count: Int { labels.count }
        var imageShape: [Int] { [3, 8, 8] }
        var normalization: (mean: [Float], std: [Float]) { ([0, 0, 0], [1, 1, 1]) }
        func sample(_ index: Int) throws -> (image: [Float], label: Int) { ([Float](repeating: 0.5, count: 192), labels[index]) }
    }

    func twoClassModel() throws -> VimModel {
        let model = try VimModel(config: VimConfig(name: "two", imgSize: 8, patchSize: 2, stride: 2, embedDim: 16, depth: 1, numClasses: 2))
        model.resetParameters(seed: 1)
        return model
    }

    /// A dataset with more classes than the model's head is refused before the first batch; a
    /// dataset whose labels exceed its own class count is refused at the batch, not read past the logits.
    func testEvaluationLabelsOutsideTheModelsClasses() throws {
        let loader = DataLoader(dataset: LabelledImages(), batchSize: 4, shuffle: false, dropLast: false)
        expect(TrainingError.classCountMismatch(dataset: "evaluation", datasetClasses: 6, modelClasses: 2)) {
            try evaluate(twoClassModel(), loader: loader)
        }
        let mislabelled = DataLoader(dataset: LabelledImages(numClasses: 2), batchSize: 4, shuffle: false, dropLast: false)
        expect(TensorError.labelOutOfRange(label: 5, classes: 2)) { try evaluate(twoClassModel(), loader: mislabelled) }
    }

    /// The reported case: a 2-class checkpoint evaluated on the 10-class digits.
    func testTwoClassModelOnTheDigits() throws {
        let loader = DataLoader(dataset: try DigitsDataset(split: .val), batchSize: 64, shuffle: false, dropLast: false)
        expect(TrainingError.classCountMismatch(dataset: "digits", datasetClasses: 10, modelClasses: 2)) {
            try evaluate(try twoClassModel(), loader: loader, datasetName: "digits")
        }
    }

    func testTrainingOptionsOutOfRange() {
        func options(_ change: (inout TrainOptions) -> Void) -> TrainOptions {
            var o = TrainerTests.smallOptions(epochs: 1)
            change(&o)
            return o
        }
        let dir = tmp.path
        expect(TrainingError.invalidOption(name: "batchSize", value: "0", allowed: "at least 1")) {
            try ClassificationTrainer(options: options { $0.batchSize = 0 }, outputDir: dir, events: { _ in })
        }
        expect(TrainingError.invalidOption(name: "smoothing", value: "1.0", allowed: "[0, 1)")) {
            try ClassificationTrainer(options: options { $0.smoothing = 1 }, outputDir: dir, events: { _ in })
        }
        expect(TrainingError.invalidOption(name: "lr", value: "nan", allowed: "finite, at least 0")) {
            try ClassificationTrainer(options: options { $0.lr = .nan }, outputDir: dir, events: { _ in })
        }
        expect(ConfigError.invalidValue(model: "vim-digits-small", field: "patch_size", value: "0", allowed: "1...img_size (8)")) {
            try ClassificationTrainer(options: options { $0.model.patchSize = 0 }, outputDir: dir, events: { _ in })
        }
        expect(TrainingError.classCountMismatch(dataset: "digits", datasetClasses: 10, modelClasses: 3)) {
            try ClassificationTrainer(options: options { $0.model.numClasses = 3 }, outputDir: dir, events: { _ in })
        }
        expect(TrainingError.oddBatchForMixup(batchSize: 31)) {
            try ClassificationTrainer(options: options { $0.batchSize = 31; $0.mixup = 0.8 }, outputDir: dir, events: { _ in })
        }
        expect(TrainingError.dyvmWithDropPath(rate: 0.1)) {
            try ClassificationTrainer(options: options { $0.model.dyvm = DyVMConfig(pruningLoc: [1], tokenKeepRatio: 0.7); $0.dropPath = 0.1 },
                        outputDir: dir, events: { _ in })
        }
        expect(TrainingError.batchLargerThanDataset(batchSize: 4096, processes: 1, images: DigitsDataset.trainCount)) {
            try ClassificationTrainer(options: options { $0.batchSize = 4096 }, outputDir: dir, events: { _ in })
        }
    }

    func testDatasetsByName() throws {
        expect(TrainingError.unknownDataset(name: "mnist", valid: ["digits", "cifar10", "cifar100", "imagefolder", "auto", "digit-scenes", "ade20k", "segfolder"])) {
            try DatasetKind(name: "mnist")
        }
        // Any letter case, and the official code's names (its CIFAR is CIFAR-100).
        XCTAssertEqual(try ["Digits", "CIFAR-10", "cifar10", "cifar-100", "CIFAR", "IMNET", "imagefolder", "auto"].map(DatasetKind.init(name:)),
                       [.digits, .cifar10, .cifar10, .cifar100, .cifar100, .imagefolder, .imagefolder, .auto])
        expect(TrainingError.missingDataPath(dataset: "imagefolder")) { try makeDataset(.imagefolder, path: nil, train: false) }
        expect(TrainingError.invalidOption(name: "imageSize", value: "0", allowed: "1...65536")) {
            try makeDataset(.digits, path: nil, train: false, imageSize: 0)
        }
    }

    /// Checkpoints store the dataset by name; those written with a name as given on the command
    /// line still load, new ones store the canonical name, and an unknown one is refused.
    func testStoredDatasetNames() throws {
        var options = TrainOptions(model: VimConfig(name: "d", imgSize: 8, patchSize: 2, stride: 2, embedDim: 16, depth: 1, numClasses: 10))
        options.dataset = .cifar100
        let json = String(decoding: try JSONEncoder().encode(options), as: UTF8.self)
        XCTAssertTrue(json.contains(#""dataset":"cifar100""#), json)
        for (stored, kind) in [("CIFAR", DatasetKind.cifar100), ("imnet", .imagefolder), ("digits", .digits)] {
            let old = json.replacingOccurrences(of: #""dataset":"cifar100""#, with: #""dataset":"\#(stored)""#)
            XCTAssertEqual(try JSONDecoder().decode(TrainOptions.self, from: Data(old.utf8)).dataset, kind)
        }
        let unknown = json.replacingOccurrences(of: #""dataset":"cifar100""#, with: #""dataset":"mnist""#)
        XCTAssertThrowsError(try JSONDecoder().decode(TrainOptions.self, from: Data(unknown.utf8))) { error in
            XCTAssertTrue("\(error)".contains("unknown dataset 'mnist'"), "\(error)")
        }
    }

    /// Weights alone cannot resume a run: the error names the file.
    func testResumeFromWeightsThatAreNotACheckpoint() throws {
        let weights = tmp.appendingPathComponent("weights.safetensors").path
        try SafeTensors.write(twoClassModel().stateDict(), to: weights)
        expect(TrainingError.notATrainingCheckpoint(path: weights)) {
            try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: tmp.appendingPathComponent("run").path, resume: weights, events: { _ in })
        }
    }

    /// A checkpoint whose stored state was edited to values no run writes: resuming is refused with
    /// the field, the value and what is allowed, before anything trains (a negative epochsDone
    /// trapped in the data loader, a huge step count hung in AdamW's bias correction).
    func testResumeFromAnEditedCheckpoint() throws {
        let run = tmp.appendingPathComponent("run").path
        _ = try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 2), outputDir: run, events: { _ in }).run(stopAfter: 1)
        let original = try SafeTensors.read(run + "/checkpoint.safetensors")
        var edits = 0
        func edited(_ change: (inout [String: Any]) -> Void) throws -> String {
            var file = original
            var state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(file.metadata["training_state"]!.utf8)) as? [String: Any])
            change(&state)
            file.metadata["training_state"] = String(decoding: try JSONSerialization.data(withJSONObject: state), as: UTF8.self)
            edits += 1
            let path = tmp.appendingPathComponent("edited-\(edits).safetensors").path
            try SafeTensors.write(file, to: path)
            return path
        }
        func option(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { state in var o = state["options"] as! [String: Any]; o[key] = value; state["options"] = o }
        }
        func resume(_ path: String) throws -> ClassificationTrainer {
            try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 2), resume: path, events: { _ in })
        }
        func refused(_ change: @escaping (inout [String: Any]) -> Void, _ field: String, _ value: String, _ allowed: String,
                     line: UInt = #line) throws {
            let path = try edited(change)
            expect(TrainingError.invalidCheckpointState(path: path, field: field, value: value, allowed: allowed), line: line) { try resume(path) }
        }
        try refused(option("batchSize", 0), "options.batchSize", "0", "at least 1")
        try refused(option("lr", -1), "options.lr", "-1.0", "finite, at least 0")
        try refused({ state in
            var o = state["options"] as! [String: Any], m = o["model"] as! [String: Any]
            m["patchSize"] = 0; o["model"] = m; state["options"] = o
        }, "options.model.patch_size", "0", "1...img_size (8)")
        try refused({ $0["options"] = ($0["options"] as! [String: Any]).filter { $0.key != "seed" } },
                    "options.seed", "missing", "the run's random seed, an unsigned 64-bit integer")
        try refused({ $0["epochsDone"] = -5 }, "epochsDone", "-5", "0...2 (the run's epochs)")
        try refused({ $0["epochsDone"] = 3 }, "epochsDone", "3", "0...2 (the run's epochs)")
        try refused({ $0["optimizerStep"] = -1 }, "optimizerStep", "-1", "at least 0")
        try refused({ $0["bestTop1"] = 150 }, "bestTop1", "150.0", "0...100")
        try refused({ $0["history"] = [Any]() }, "history", "0 entries", "one per finished epoch (1)")
        try refused({ state in
            var h = (state["history"] as! [[String: Any]]); h[0]["epoch"] = Int.max; state["history"] = h
        }, "history[0].epoch", "\(Int.max)", "0 (entries in epoch order)")
        // Within the file's own bounds, but more steps than one epoch of 1,437 images can take.
        try refused({ $0["optimizerStep"] = 1_000_000_000_000_000 }, "optimizerStep", "1000000000000000",
                    "0...\(DigitsDataset.trainCount) (1 epochs of at most \(DigitsDataset.trainCount) steps)")
        // The unedited state resumes.
        XCTAssertEqual(try resume(try edited { _ in }).state.epochsDone, 1)
    }

    /// An output folder that cannot be created (its parent is a regular file) is refused before anything trains.
    func testOutputUnderARegularFile() throws {
        let file = tmp.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        let dir = file.appendingPathComponent("run").path
        expect(TrainingError.outputNotWritable(path: dir)) { try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: dir, events: { _ in }) }
        // The output folder itself a regular file.
        expect(TrainingError.outputNotWritable(path: file.path)) {
            try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: file.path, events: { _ in })
        }
        XCTAssertEqual("\(TrainingError.outputNotWritable(path: dir))", "\(dir): cannot create the output folder or write a file in it")
    }

    /// An output folder under a read-only folder is refused; the probe file leaves nothing behind
    /// in a writable one. Root ignores permissions, so the refusal is only checked for other users.
    func testOutputUnderAReadOnlyFolder() throws {
        let writable = tmp.appendingPathComponent("ok").path
        try prepareOutputFolder(writable)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: writable), [])
        let locked = tmp.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: locked.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: locked.path) }
        if geteuid() == 0 { throw XCTSkip("running as root, which ignores the folder's permissions") }
        for dir in [locked.appendingPathComponent("run").path, locked.path] {
            expect(TrainingError.outputNotWritable(path: dir)) {
                try ClassificationTrainer(options: TrainerTests.smallOptions(epochs: 1), outputDir: dir, events: { _ in })
            }
        }
    }

    func testFusionStudyTokens() {
        expect(TrainingError.invalidOption(name: "tokens", value: "0", allowed: "1...1073741824")) {
            try FusionStudy(base: TrainerTests.smallOptions(epochs: 1), tokens: 0, outputDir: tmp.path)
        }
    }
}
