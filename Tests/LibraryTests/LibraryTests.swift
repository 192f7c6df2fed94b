import Foundation
import VisionMamba
import XCTest

/// The public API as a program sees it: only `import VisionMamba`. One small Vim is trained
/// through `Trainer` once and shared by the tests that classify.
final class LibraryTests: XCTestCase {
    /// The ten validation digits the examples bundle, named `digit-<label>-….png`.
    static let images: [(url: URL, label: Int)] = {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Examples/ClassifyDigits/Images").standardized
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".png") }.sorted().map { name in
            (folder.appendingPathComponent(name), Int(String(name.dropFirst("digit-".count).prefix(1)))!)
        }
    }()

    override func setUp() { Runtime.configure(threads: 2) }

    static func scratchFolder(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vision-mamba-library-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Trains vim-digits for `epochs` epochs into a fresh folder, collecting every event.
    static func trainDigits(epochs: Int) async throws -> (trainer: Trainer, events: [TrainingEvent]) {
        var options = TrainOptions(model: try ModelZoo.config(named: "vim-digits"))
        options.epochs = epochs
        options.lr = 2e-2
        options.warmupEpochs = 1
        let trainer = try Trainer(options, outputDirectory: try scratchFolder("train").appendingPathComponent("run"))
        var events: [TrainingEvent] = []
        for try await event in trainer.run() {
            events.append(event)
            // Progress and best score are readable while the run goes on, and follow its events.
            if case .epochEnded(let m, let total) = event {
                XCTAssertEqual(trainer.progress, TrainingProgress(done: m.epoch + 1, total: total, unit: .epochs))
                XCTAssertGreaterThanOrEqual(trainer.bestScore, m.top1)
            }
        }
        return (trainer, events)
    }

    func testTrainingStreamsEveryEventLearnsTheDigitsAndItsCheckpointClassifiesPhotos() async throws {
        let (trainer, events) = try await Self.trainDigits(epochs: 12)
        let epochs = events.compactMap { event -> EpochMetrics? in
            if case .epochEnded(let m, _) = event { return m } else { return nil }
        }
        XCTAssertEqual(epochs.map(\.epoch), Array(0..<12))
        XCTAssertEqual(events.filter { if case .epochStarted = $0 { return true } else { return false } }.count, 12)
        let steps = events.filter { if case .step = $0 { return true } else { return false } }.count
        XCTAssertEqual(steps, 12 * (1437 / 64))   // 22 full batches an epoch
        let saved = events.compactMap { event -> String? in
            if case .checkpointSaved(let path) = event { return path } else { return nil }
        }
        let checkpoint = trainer.outputDirectory.appendingPathComponent("checkpoint.safetensors")
        XCTAssertEqual(saved.filter { $0.hasSuffix("/checkpoint.safetensors") }.count, 12)
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path))
        XCTAssertGreaterThan(epochs.last!.top1, 85, "validation top-1 after 12 epochs: \(epochs.map(\.top1))")

        // The checkpoint alone names its model, classes and transform.
        let classifier = try ImageClassifier(checkpoint: checkpoint)
        XCTAssertEqual(classifier.modelName, "vim-digits")
        XCTAssertEqual(classifier.imageSize, 8)
        XCTAssertEqual(Self.images.count, 10)
        let results = try classifier.classify(Self.images.map { .file($0.url) }, top: 3)
        let correct = zip(results, Self.images).filter { $0.0[0].classIndex == $0.1.label }.count
        XCTAssertGreaterThanOrEqual(correct, 8, "bundled validation digits classified right")
        for top in results {
            XCTAssertEqual(top.count, 3)
            XCTAssertTrue(top[0].probability >= top[1].probability && top[1].probability >= top[2].probability)
            XCTAssertLessThanOrEqual(top.map(\.probability).reduce(0, +), 1.0001)
            XCTAssertEqual(top[0].label, classifier.classNames[top[0].classIndex])
        }
        // One image at a time: the batch's classes, its probabilities to float rounding (a batch of
        // another size cuts the matrix products into other tiles, which moves the last bits).
        let single = try Self.images.map { try classifier.classify($0.url, top: 3) }
        for (one, batched) in zip(single, results) {
            XCTAssertEqual(one.map(\.classIndex), batched.map(\.classIndex))
            for (a, b) in zip(one, batched) { XCTAssertEqual(a.probability, b.probability, accuracy: 1e-5) }
        }
        // The same file as encoded bytes, to the bit.
        XCTAssertEqual(try classifier.classify(try Data(contentsOf: Self.images[3].url), top: 3), single[3])

        // Concurrent requests on one shared classifier get the serial answers, to the bit.
        let shared = classifier, inputs = Self.images.map { ImageInput.file($0.url) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, [Prediction]).self) { group in
            for i in 0..<40 { group.addTask { (i, try shared.classify(inputs[i % 10], top: 3)) } }
            var out: [Int: [Prediction]] = [:]
            for try await (i, p) in group { out[i] = p }
            return out
        }
        XCTAssertEqual(concurrent.count, 40)
        for (i, p) in concurrent { XCTAssertEqual(p, single[i % 10], "request \(i)") }

        // Features of the same model: the pooled vector is the class token among all tokens.
        let extractor = try FeatureExtractor(checkpoint: checkpoint)
        let pooled = try extractor.pooled([.file(Self.images[0].url), .file(Self.images[1].url)])
        XCTAssertEqual(pooled.map(\.count), [64, 64])
        let tokens = try extractor.tokens(.file(Self.images[0].url))
        XCTAssertEqual(tokens.count, 17)    // 4 × 4 patches and the class token
        XCTAssertEqual(tokens.dimension, 64)
        for (a, b) in zip(tokens[token: tokens.classTokenIndex], pooled[0]) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        XCTAssertThrowsError(try extractor.pyramid(.file(Self.images[0].url))) { error in
            guard case VisionMambaError.wrongModelKind = error else { return XCTFail("\(error)") }
        }

        // Resuming continues the run in its folder where it stopped.
        let resumed = try Trainer(resuming: trainer.outputDirectory, extendingTo: 13)
        XCTAssertEqual(resumed.outputDirectory.standardized.path, trainer.outputDirectory.standardized.path)
        XCTAssertEqual(resumed.progress.done, 12)
        var more: [Int] = []
        for try await event in resumed.run() { if case .epochEnded(let m, _) = event { more.append(m.epoch) } }
        XCTAssertEqual(more, [12])
        // A trainer runs once.
        do {
            for try await _ in resumed.run() {}
            XCTFail("a second run was accepted")
        } catch VisionMambaError.alreadyRunning {}
        // A folder holding a run is not overwritten.
        var options = TrainOptions(model: try ModelZoo.config(named: "vim-digits"))
        options.epochs = 1
        XCTAssertThrowsError(try Trainer(options, outputDirectory: trainer.outputDirectory)) { error in
            guard case TrainingError.outputHoldsRun = error else { return XCTFail("\(error)") }
        }
    }

    /// The efficiency methods are options of the loaded model: DyVM's keep ratio and Famba-V's
    /// fusion change the tokens the last block sees, exactly as their schedules say.
    func testKeepRatioAndFusionAreInferenceOptions() async throws {
        var options = TrainOptions(model: try ModelZoo.config(named: "vim-digits"))
        options.model.dyvm = DyVMConfig(pruningLoc: [1, 2], tokenKeepRatio: 0.7)
        options.epochs = 1
        let trainer = try Trainer(options, outputDirectory: try Self.scratchFolder("dyvm").appendingPathComponent("run"))
        for try await _ in trainer.run() {}
        let dyvm = trainer.outputDirectory.appendingPathComponent("checkpoint.safetensors")
        let photo = ImageInput.file(Self.images[7].url)
        // 16 patches: stage 2 keeps int(0.7² · 16) = 7, or int(0.5² · 16) = 4; and the class token.
        XCTAssertEqual(try FeatureExtractor(checkpoint: dyvm).tokens(photo).count, 8)
        XCTAssertEqual(try FeatureExtractor(checkpoint: dyvm, options: InferenceOptions(tokenKeepRatio: 0.5)).tokens(photo).count, 5)
        let pruned = try ImageClassifier(checkpoint: dyvm, options: InferenceOptions(tokenKeepRatio: 0.5)).classify(photo, top: 10)
        XCTAssertEqual(Double(pruned.map(\.probability).reduce(0, +)), 1, accuracy: 1e-5)

        // Famba-V on the dense model: block 1 merges 4 of the 17 tokens, block 2 4 more.
        let dense = try await Self.oneEpochCheckpoint()
        let fusion = TokenFusion(blocks: [1, 2], tokens: 4)
        XCTAssertEqual(try FeatureExtractor(checkpoint: dense).tokens(photo).count, 17)
        XCTAssertEqual(try FeatureExtractor(checkpoint: dense, options: InferenceOptions(fusion: fusion)).tokens(photo).count, 9)
        XCTAssertThrowsError(try ImageClassifier(checkpoint: dense, options: InferenceOptions(fusion: TokenFusion(blocks: [9], tokens: 4)))) { error in
            guard error is ConfigError else { return XCTFail("\(error)") }
        }
    }

    func testPixelBuffersInEitherLayoutGiveTheSameAnswer() async throws {
        let checkpoint = try await Self.oneEpochCheckpoint()
        let classifier = try ImageClassifier(checkpoint: checkpoint)
        var rgb: [UInt8] = [], rgba: [UInt8] = []
        for i in 0..<(12 * 10) {
            let v = UInt8((i * 37) % 256), w = UInt8((i * 11) % 256), z = UInt8((i * 5) % 256)
            rgb += [v, w, z]
            rgba += [v, w, z, UInt8(i % 256)]
        }
        let a = try classifier.classify(PixelBuffer(width: 12, height: 10, layout: .rgb, bytes: rgb), top: 10)
        let b = try classifier.classify(PixelBuffer(width: 12, height: 10, layout: .rgba, bytes: rgba), top: 10)
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set(a.map(\.classIndex)), Set(0..<10))
        XCTAssertEqual(Double(a.map(\.probability).reduce(0, +)), 1, accuracy: 1e-5)
    }

    func testBadInputIsATypedErrorBeforeAnythingRuns() async throws {
        XCTAssertThrowsError(try PixelBuffer(width: 4, height: 4, layout: .rgb, bytes: [UInt8](repeating: 0, count: 47))) { error in
            XCTAssertEqual(error as? VisionMambaError, .pixelBufferSize(width: 4, height: 4, expected: 48, found: 47))
        }
        XCTAssertThrowsError(try PixelBuffer(width: 0, height: 4, layout: .rgba, bytes: [])) { error in
            XCTAssertEqual(error as? VisionMambaError, .pixelBufferDimensions(width: 0, height: 4))
        }
        let checkpoint = try await Self.oneEpochCheckpoint()
        let classifier = try ImageClassifier(checkpoint: checkpoint)
        XCTAssertThrowsError(try classifier.classify(.file(Self.images[0].url), top: 11)) { error in
            XCTAssertEqual(error as? VisionMambaError, .topOutOfRange(top: 11, classes: 10))
        }
        XCTAssertThrowsError(try classifier.classify([], top: 1)) { error in
            XCTAssertEqual(error as? VisionMambaError, .noImages)
        }
        XCTAssertThrowsError(try classifier.classify(URL(fileURLWithPath: "/nonexistent/photo.png"))) { error in
            guard case FileError.notFound = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try classifier.classify(Data("not an image".utf8))) { error in
            guard case FileError.unsupportedImage = error else { return XCTFail("\(error)") }
        }
        // An image over the caller's pixel limit is refused from its header (the photos are 8 × 8).
        let small = try ImageClassifier(checkpoint: checkpoint, options: InferenceOptions(maxImagePixels: 63))
        XCTAssertThrowsError(try small.classify(try Data(contentsOf: Self.images[0].url))) { error in
            XCTAssertEqual(error as? FileError, .imageTooLarge(path: "image data", width: 8, height: 8))
        }
        XCTAssertThrowsError(try small.classify(PixelBuffer(width: 8, height: 8, layout: .rgb, bytes: [UInt8](repeating: 0, count: 192)))) { error in
            XCTAssertEqual(error as? FileError, .imageTooLarge(path: "pixel buffer", width: 8, height: 8))
        }
        XCTAssertEqual(try small.classify(PixelBuffer(width: 9, height: 7, layout: .rgb, bytes: [UInt8](repeating: 0, count: 189))).count, 5)
        // A run that kept no moving average has none to load.
        XCTAssertThrowsError(try ImageClassifier(checkpoint: checkpoint, options: InferenceOptions(useEMA: true))) { error in
            guard case StateDictError.missingEMA = error else { return XCTFail("\(error)") }
        }
        // DyVM's keep ratio needs a DyVM; a ratio outside (0, 1] is refused by name.
        XCTAssertThrowsError(try ImageClassifier(checkpoint: checkpoint, options: InferenceOptions(tokenKeepRatio: 0.5))) { error in
            guard case VisionMambaError.optionNeedsOtherModel = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ImageClassifier(checkpoint: checkpoint, options: InferenceOptions(tokenKeepRatio: .nan))) { error in
            guard case VisionMambaError.invalidOption(name: "tokenKeepRatio", _, _) = error else { return XCTFail("\(error)") }
        }
        // A checkpoint of a classifier is not a segmenter's, and weights alone name no model.
        XCTAssertThrowsError(try Segmenter(checkpoint: checkpoint)) { error in
            guard case VisionMambaError.wrongModelKind = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ImageClassifier(model: "upernet-vim-tiny", weights: checkpoint)) { error in
            guard case VisionMambaError.wrongModelKind = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ImageClassifier(model: "no-such-model", weights: checkpoint)) { error in
            guard error is ConfigError else { return XCTFail("\(error)") }
        }
    }

    func testStoppingTheStreamStopsTheRunBeforeItsNextStep() async throws {
        var options = TrainOptions(model: try ModelZoo.config(named: "vim-digits"))
        options.epochs = 50
        let folder = try Self.scratchFolder("stop").appendingPathComponent("run")
        let trainer = try Trainer(options, outputDirectory: folder)
        var steps = 0
        for try await event in trainer.run() {
            if case .step = event { steps += 1 }
            if steps == 2 { break }
        }
        // The run notices at its next step and returns without finishing the epoch: it writes
        // neither a checkpoint nor metrics.
        while !trainer.hasFinished { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("metrics.jsonl").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("checkpoint.safetensors").path))
        XCTAssertEqual(steps, 2)
    }

    func testSegmentationTrainsThroughTheTrainerAndSegmentsAndExtractsItsPyramid() async throws {
        var options = SegmentationTrainOptions(model: ModelZoo.digitScenes, dataset: .digitScenes)
        options.iterations = 20
        options.evalInterval = 20
        options.evalImages = 8
        options.warmupIterations = 2
        options.lr = 5e-3
        options.slideStride = nil   // the scenes are drawn at the crop size
        let trainer = try Trainer(options, outputDirectory: try Self.scratchFolder("seg").appendingPathComponent("run"))
        var evaluations: [SegmentationEvalMetrics] = [], iterations = 0
        for try await event in trainer.run() {
            if case .evaluated(let m) = event { evaluations.append(m) }
            if case .iteration = event { iterations += 1 }
        }
        XCTAssertEqual(iterations, 20)
        XCTAssertEqual(evaluations.map(\.iteration), [20])
        let checkpoint = trainer.outputDirectory.appendingPathComponent("checkpoint.safetensors")
        let segmenter = try Segmenter(checkpoint: checkpoint)
        XCTAssertEqual(segmenter.classNames.count, 11)
        let map = try segmenter.segment(Self.images[0].url)
        XCTAssertEqual([map.width, map.height], [8, 8])
        XCTAssertEqual(map.labels.count, 64)
        XCTAssertTrue(map.labels.allSatisfy { (0..<11).contains($0) })
        XCTAssertEqual(map.classShares.map(\.share).reduce(0, +), 1, accuracy: 1e-9)
        let pyramid = try FeatureExtractor(checkpoint: checkpoint).pyramid(.file(Self.images[0].url))
        XCTAssertEqual(pyramid.map(\.height), [16, 8, 4, 2])   // strides 4, 8, 16, 32 of the 64 px crop
        XCTAssertEqual(pyramid.map(\.channels), [64, 64, 64, 64])
        XCTAssertThrowsError(try ImageClassifier(checkpoint: checkpoint)) { error in
            guard case VisionMambaError.wrongModelKind = error else { return XCTFail("\(error)") }
        }
    }

    /// A checkpoint of vim-digits after one epoch, in a folder of its own (for tests that need a
    /// model, not a good one).
    static func oneEpochCheckpoint() async throws -> URL {
        try await trainDigits(epochs: 1).trainer.outputDirectory.appendingPathComponent("checkpoint.safetensors")
    }
}
