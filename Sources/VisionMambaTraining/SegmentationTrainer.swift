import Foundation
import MambaIO
import MambaNN
import MambaTensor
import VisionMambaModels
import VisionMambaData

/// The segmentation dataset `kind` at `path` (`numClasses` for a segfolder).
package func makeSegmentationDataset(_ kind: DatasetKind, path: String?, train: Bool, numClasses: Int?,
                                    sceneSize: Int = 64) throws -> any SegmentationDataset {
    func folder() throws -> String {
        guard let path else { throw TrainingError.missingDataPath(dataset: kind.rawValue) }
        return path
    }
    let split: SegmentationFolderDataset.Split = train ? .training : .validation
    switch kind {
    case .digitScenes: return try DigitScenesDataset(split: train ? .train : .val, size: sceneSize)
    case .ade20k: return try SegmentationFolderDataset.ade20k(root: folder(), split: split)
    case .segfolder:
        guard let numClasses else { throw TrainingError.invalidOption(name: "numClasses", value: "none", allowed: "the folder's class count (1...255)") }
        return try SegmentationFolderDataset(root: folder(), split: split, numClasses: numClasses)
    case .digits, .cifar10, .cifar100, .imagefolder, .auto: throw TrainingError.classificationDataForSegmentor(dataset: kind.rawValue)
    }
}

/// What a segmentation run is: the official UperNet recipe's settings (hustvl/Vim
/// `seg/configs/vim/upernet/*.py`) with their defaults.
public struct SegmentationTrainOptions: Codable, Equatable, Sendable {
    /// The segmentor to train.
    public var model: SegmentationConfig
    /// The dataset: `.digitScenes` (bundled), `.ade20k` or a folder in mmseg's layout.
    public var dataset: DatasetKind
    /// The dataset's folder (nil for the bundled digit scenes).
    public var dataPath: String?
    /// Optimizer steps in all (`runner.max_iters`).
    public var iterations = 60_000
    /// Images per process and step (`samples_per_gpu`).
    public var batchSize = 8
    /// The peak learning rate of AdamW.
    public var lr = 1e-4
    /// AdamW's weight decay.
    public var weightDecay = 0.05
    /// Each block deeper gets this factor more of the learning rate (layer-wise decay).
    public var layerDecayRate = 0.92
    /// How layer decay assigns parameters to layers: the official constructor's rules or the corrected ones.
    public var layerDecay = LayerDecay.official
    /// Linear warm-up iterations.
    public var warmupIterations = 1500
    /// The warm-up starts at this fraction of `lr`.
    public var warmupRatio = 1e-6
    /// The poly schedule's power.
    public var power = 1.0
    /// The learning rate the poly schedule ends at.
    public var minLR = 0.0
    /// Evaluate and checkpoint every this many iterations (and after the last).
    public var evalInterval = 1000
    /// Sliding-window stride of the evaluation (341 for a 512 crop); nil runs whole images.
    public var slideStride: Int? = 341
    /// Evaluate on the first this many validation images only (quick runs); nil: all.
    public var evalImages: Int? = nil
    /// The keep-ratio resize bounds (long, short); the crop is the model's size.
    public var scaleLong = 2048, scaleShort = 512
    /// The random rescale of training images (`ratio_range`), and PhotoMetricDistortion on or off.
    public var ratioMin = 0.5, ratioMax = 2.0
    /// PhotoMetricDistortion (brightness, contrast, saturation, hue) on training images.
    public var photometric = true
    /// The seed of every random draw: the same seed, the same run.
    public var seed: UInt64 = 0
    /// Classification weights (an official `.pth` or ours) to start the backbone from.
    public var finetune: String? = nil
    package var worldSize = 1

    /// The official recipe for `model` on `dataset`; change the fields to deviate.
    public init(model: SegmentationConfig, dataset: DatasetKind, dataPath: String? = nil) {
        self.model = model
        self.dataset = dataset
        self.dataPath = dataPath
        scaleShort = model.backbone.imgSize
        scaleLong = 4 * model.backbone.imgSize
        slideStride = model.backbone.imgSize * 2 / 3   // mmseg's 341 for a 512 crop
    }

    package var transform: SegmentationTransform {
        var t = SegmentationTransform.ade20k(crop: model.backbone.imgSize)
        t.scale = (scaleLong, scaleShort)
        t.ratioRange = ratioMin...max(ratioMin, ratioMax)
        t.photometric = photometric
        return t
    }

    package var schedule: PolySchedule {
        PolySchedule(lr: lr, iterations: iterations, power: power, minLR: minLR, warmupIterations: warmupIterations, warmupRatio: warmupRatio)
    }

    /// Throws a `TrainingError` naming the first setting out of its range.
    public func validate() throws {
        func check(_ ok: Bool, _ name: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw TrainingError.invalidOption(name: name, value: "\(value)", allowed: allowed) }
        }
        try model.validate()
        try check((1...100_000_000).contains(iterations), "iterations", iterations, "1...100000000")
        try check((1...4096).contains(batchSize), "batchSize", batchSize, "1...4096")
        try check(lr >= 0 && lr.isFinite, "lr", lr, "finite, at least 0")
        try check(weightDecay >= 0 && weightDecay.isFinite, "weightDecay", weightDecay, "finite, at least 0")
        try check(layerDecayRate > 0 && layerDecayRate <= 1, "layerDecayRate", layerDecayRate, "(0, 1]")
        try check(warmupIterations >= 0, "warmupIterations", warmupIterations, "at least 0")
        try check(warmupRatio >= 0 && warmupRatio <= 1, "warmupRatio", warmupRatio, "[0, 1]")
        try check(power > 0 && power.isFinite, "power", power, "finite, above 0")
        try check(minLR >= 0 && minLR <= lr, "minLR", minLR, "0...lr")
        try check(evalInterval >= 1, "evalInterval", evalInterval, "at least 1")
        if let slideStride { try check((1...model.backbone.imgSize).contains(slideStride), "slideStride", slideStride, "1...\(model.backbone.imgSize)") }
        if let evalImages { try check(evalImages >= 1, "evalImages", evalImages, "at least 1") }
        try check(scaleShort >= 1 && scaleLong >= scaleShort && scaleLong <= 65_536, "scale", "(\(scaleLong), \(scaleShort))", "1 ≤ short ≤ long ≤ 65536")
        try check(worldSize >= 1, "worldSize", worldSize, "at least 1")
        try check(ratioMin > 0 && ratioMin <= ratioMax && ratioMax <= 16, "ratioRange", "\(ratioMin)...\(ratioMax)", "0 < min ≤ max ≤ 16")
    }
}

/// One evaluation of a segmentation run (a line of metrics.jsonl).
public struct SegmentationEvalMetrics: Codable, Equatable, Sendable {
    /// The iteration this evaluation followed.
    public var iteration: Int
    /// Mean training loss since the previous evaluation.
    public var trainLoss: Double
    /// The learning rate at the evaluation.
    public var lr: Double
    /// Validation mean IoU, overall pixel accuracy and mean class accuracy, in percent.
    public var valMIoU: Double, valAAcc: Double, valMAcc: Double
    /// Per class, nil where the class is neither labelled nor predicted (mmseg's NaN).
    public var perClassIoU: [Double?]
    /// Training images per second since the previous evaluation.
    public var imagesPerSecond: Double
    /// Seconds of training since the previous evaluation.
    public var seconds: Double
    /// The process's peak resident memory in MiB so far.
    public var peakRSSMiB: Double

    enum CodingKeys: String, CodingKey {
        case iteration, lr
        case trainLoss = "train_loss", valMIoU = "val_miou", valAAcc = "val_aacc", valMAcc = "val_macc"
        case perClassIoU = "per_class_iou", imagesPerSecond = "images_per_second", seconds, peakRSSMiB = "peak_rss_mib"
    }
}

/// Where a segmentation run stands, stored in its checkpoint.
package struct SegmentationTrainingState: Codable, Equatable, Sendable {
    package var kind = "segmentation"
    package var options: SegmentationTrainOptions
    package var iterationsDone: Int
    package var bestMIoU: Double
    package var history: [SegmentationEvalMetrics]
    package var classNames: [String]
}

/// mmseg's iteration-based training of a Vim UperNet: AdamW with the layer-decay groups, the
/// poly schedule with warm-up, decode + 0.4 · auxiliary cross-entropy, evaluation (mIoU) and an
/// atomic checkpoint every `evalInterval` iterations, resumable bit for bit. BatchNorm is
/// synchronised across the processes of a data-parallel run, as SyncBN is.
package final class SegmentationTrainer {
    package let options: SegmentationTrainOptions
    package let outputDir: String
    package let model: Segmentor
    let optimizer: AdamW
    package private(set) var state: SegmentationTrainingState
    let train: any SegmentationDataset, val: any SegmentationDataset
    let report: (TrainingEvent) -> Void
    package let world: ProcessGroup

    package init(options: SegmentationTrainOptions, outputDir: String? = nil, resume: String? = nil, iterations: Int? = nil,
                overwrite: Bool = false, world: ProcessGroup = SingleProcess(), events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        var options = options
        var resumed: (file: TensorFile, state: SegmentationTrainingState)? = nil
        let folder: String
        if let resume {
            let path = Checkpoint.resolve(resume)
            resumed = try Self.loadCheckpoint(path)
            options = resumed!.state.options
            let runFolder = (path as NSString).deletingLastPathComponent
            folder = runFolder.isEmpty ? "." : runFolder
            if let outputDir, !samePath(outputDir, folder) { throw TrainingError.resumeElsewhere(checkpoint: path, outputDir: outputDir) }
            if let iterations, iterations != options.iterations {
                let done = resumed!.state.iterationsDone
                guard iterations > done else { throw TrainingError.epochsAlreadyDone(requested: iterations, done: done, checkpoint: path) }
                if world.isLeader { events(.note("extending the schedule from \(options.iterations) to \(iterations) iterations")) }
                options.iterations = iterations
            }
        } else {
            if let iterations { options.iterations = iterations }
            folder = outputDir ?? ClassificationTrainer.newRunFolder(model: options.model.name, dataset: options.dataset.rawValue)
            if !overwrite && ClassificationTrainer.holdsRun(folder) { throw TrainingError.outputHoldsRun(path: folder) }
        }
        options.worldSize = world.size
        try options.validate()
        self.options = options
        self.outputDir = folder
        self.world = world
        self.report = world.isLeader ? { event in event.log(); events(event) } : { _ in }

        // Digit scenes are drawn at the model's crop size.
        let size = options.model.backbone.imgSize
        train = try makeSegmentationDataset(options.dataset, path: options.dataPath, train: true, numClasses: options.model.numClasses, sceneSize: size)
        val = try makeSegmentationDataset(options.dataset, path: options.dataPath, train: false, numClasses: options.model.numClasses, sceneSize: size)
        for dataset in [train, val] where dataset.numClasses != options.model.numClasses {
            throw TrainingError.classCountMismatch(dataset: options.dataset.rawValue, datasetClasses: dataset.numClasses,
                                                   modelClasses: options.model.numClasses)
        }
        guard train.count > 0, val.count > 0 else {
            throw TrainingError.batchLargerThanDataset(batchSize: options.batchSize, processes: world.size, images: min(train.count, val.count))
        }
        try prepareOutputFolder(folder)

        model = try Segmentor(config: options.model)
        model.resetParameters(seed: options.seed)
        if let start = options.finetune, resumed == nil {
            let fresh = try model.backbone.loadClassificationWeights(start)
            report(.note("backbone from \(start); not in it: \(fresh.isEmpty ? "nothing" : fresh.joined(separator: ", "))"))
        }
        if world.size > 1 {
            for bn in model.batchNorms { bn.synchronize = { [world] in world.sum($0) } }
        }
        let named = model.namedParameters()
        let groups = options.layerDecay.groups(named.map { ($0.0, $0.1.shape) }, numLayers: options.model.backbone.depth,
                                               rate: options.layerDecayRate, weightDecay: Float(options.weightDecay))
        optimizer = try AdamW(parameters: named, lr: Float(options.lr), groups: groups)
        state = SegmentationTrainingState(options: options, iterationsDone: 0, bestMIoU: 0, history: [], classNames: val.classNames)
        if let (file, saved) = resumed {
            try model.load(stateDict: file.tensors.filter { !$0.key.hasPrefix("optimizer.") }, source: resume!)
            var m: [String: [Float]] = [:], v: [String: [Float]] = [:]
            for (name, _) in named {
                m[name] = file["optimizer.exp_avg.\(name)"]?.floats()
                v[name] = file["optimizer.exp_avg_sq.\(name)"]?.floats()
            }
            try optimizer.restore(step: saved.iterationsDone, m: m, v: v)
            state = saved
            state.options = options
        }
        for (_, t) in model.namedState() { world.broadcast(t) }
    }

    /// The stored state of a segmentation run's checkpoint (a file or a run folder); nil for any
    /// other weights file.
    package static func storedState(_ path: String) throws -> SegmentationTrainingState? {
        let path = Checkpoint.resolve(path)
        if try CheckpointFile.isTorchFile(path) { return nil }
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["training_state"], json.contains("\"kind\"") && json.contains("\"segmentation\"") else { return nil }
        return try loadCheckpoint(path).state
    }

    static func loadCheckpoint(_ path: String) throws -> (file: TensorFile, state: SegmentationTrainingState) {
        if try CheckpointFile.isTorchFile(path) { throw TrainingError.notATrainingCheckpoint(path: path) }
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["training_state"] else { throw TrainingError.notATrainingCheckpoint(path: path) }
        return (file, try state(json: json, path: path))
    }

    /// A segmentation run's state from the JSON a checkpoint stores, decoded and checked (`path`
    /// names the checkpoint in errors).
    static func state(json: String, path: String) throws -> SegmentationTrainingState {
        let state: SegmentationTrainingState
        do { state = try JSONDecoder().decode(SegmentationTrainingState.self, from: Data(json.utf8)) }
        catch { throw TrainingError.unreadableTrainingState(path: path, reason: "\(error)") }
        try state.options.validate()
        guard (0...state.options.iterations).contains(state.iterationsDone) else {
            throw TrainingError.invalidCheckpointState(path: path, field: "iterationsDone", value: "\(state.iterationsDone)",
                                                       allowed: "0...\(state.options.iterations)")
        }
        return state
    }

    /// The images and labels of iteration `t` on this rank: the global batch of that iteration
    /// taken from a per-pass permutation of the training set, each sample augmented with draws
    /// that depend on its position only (so neither threads nor process count change them).
    func batch(iteration t: Int) throws -> (images: Tensor, labels: [Int]) {
        let B = options.batchSize, crop = options.model.backbone.imgSize, n = train.count
        let transform = options.transform
        var images: [Float] = [], labels: [Int] = []
        images.reserveCapacity(B * 3 * crop * crop)
        labels.reserveCapacity(B * crop * crop)
        var orders: [Int: [Int]] = [:]
        for j in 0..<B {
            let position = (t * world.size + world.rank) * B + j
            let pass = position / n
            if orders[pass] == nil {
                var g = SeededGenerator(seed: options.seed ^ 0x0DE5_1C0D ^ UInt64(pass) &* 0x9E37_79B9_7F4A_7C15)
                orders[pass] = Array(0..<n).shuffled(using: &g)
            }
            var rng = sampleGenerator(seed: options.seed ^ 0x5E6_A0C, epoch: pass, index: position % n)
            let sample = transform.train(try train.sample(orders[pass]![position % n]), rng: &rng)
            images += sample.image
            labels += sample.labels.map(Int.init)
        }
        return (try Tensor(shape: [B, 3, crop, crop], values: images), labels)
    }

    /// Trains to `options.iterations` (or `stopAfter` iterations done), evaluating and
    /// checkpointing every `evalInterval` iterations and after the last. `shouldStop` is asked
    /// before each iteration: when it answers true the run returns there, its last checkpoint
    /// untouched.
    @discardableResult
    package func run(stopAfter: Int? = nil, shouldStop: () -> Bool = { false }) throws -> [SegmentationEvalMetrics] {
        let params = model.namedParameters()
        let crop = options.model.backbone.imgSize
        let end = min(options.iterations, stopAfter ?? .max)
        var lossSum = 0.0, steps = 0, seen = 0
        var start = DispatchTime.now().uptimeNanoseconds
        while state.iterationsDone < end && !shouldStop() {
            let t = state.iterationsDone
            let lr = options.schedule.lr(forIteration: t)
            optimizer.lr = Float(lr)
            let (images, labels) = try batch(iteration: t)
            let tape = Tape()
            let sampleSeeds = (0..<options.batchSize).map { j -> UInt64 in
                var g = sampleGenerator(seed: options.seed ^ 0x5851_F42D_4C95_7F2D, epoch: t, index: world.rank * options.batchSize + j)
                return g.next()
            }
            let drop = options.model.dropPathRate > 0 ? DropPathDraw(rate: options.model.dropPathRate, sampleSeeds: sampleSeeds) : nil
            let outputs = try model.forward(images, training: true, auxiliary: true, tape: tape, dropPath: drop,
                                            dropoutSeeds: sampleSeeds.map { $0 ^ 0xD50 },
                                            noise: model.trainingNoise(sampleSeeds: sampleSeeds))
            let loss = try model.loss(outputs, labels: labels, height: crop, width: crop, tape: tape).total
            let total = world.sum([Double(loss.array[0]), 1])
            let value = total[0] / total[1]
            guard value.isFinite else {
                throw TrainingError.nonFiniteLoss(value: value, epoch: 0, step: t + 1, checkpoint: outputDir + "/" + Checkpoint.fileName)
            }
            for (_, p) in params { p.zeroGrad() }
            try tape.backward(from: loss)
            world.averageGradients(params.map(\.1))
            optimizer.update()
            state.iterationsDone = t + 1
            lossSum += value
            steps += 1
            seen += options.batchSize * world.size
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            report(.iteration(iteration: t + 1, iterations: options.iterations, loss: lossSum / Double(steps), lr: lr,
                              imagesPerSecond: Double(seen) / elapsed))
            if state.iterationsDone % options.evalInterval == 0 || state.iterationsDone == options.iterations {
                let metrics = try evaluateAndSave(trainLoss: lossSum / Double(steps), lr: lr, imagesPerSecond: Double(seen) / elapsed,
                                                  seconds: elapsed)
                report(.evaluated(metrics))
                (lossSum, steps, seen) = (0, 0, 0)
                start = DispatchTime.now().uptimeNanoseconds
            }
        }
        return state.history
    }

    /// mIoU on the validation set (each rank a shard, areas summed), then the checkpoint,
    /// best-checkpoint and metrics files.
    func evaluateAndSave(trainLoss: Double, lr: Double, imagesPerSecond: Double, seconds: Double) throws -> SegmentationEvalMetrics {
        let count = min(val.count, options.evalImages ?? .max)
        let mine = Array(stride(from: world.rank, to: count, by: world.size))
        var metrics = try evaluateSegmentation(model, on: val, name: options.dataset.rawValue, transform: options.transform,
                                               stride: options.slideStride, indices: mine)
        // Areas are whole numbers far below 2^53: their sums as doubles are exact.
        let K = metrics.numClasses
        let areas = world.sum((metrics.intersection + metrics.predicted + metrics.labelled).map(Double.init)).map { Int64($0) }
        metrics = SegmentationMetrics(numClasses: K, ignoreIndex: metrics.ignoreIndex, intersection: Array(areas[0..<K]),
                                      predicted: Array(areas[K..<(2 * K)]), labelled: Array(areas[(2 * K)...]))
        let m = SegmentationEvalMetrics(iteration: state.iterationsDone, trainLoss: trainLoss, lr: lr, valMIoU: 100 * metrics.meanIoU,
                                        valAAcc: 100 * metrics.allAccuracy, valMAcc: 100 * metrics.meanAccuracy,
                                        perClassIoU: metrics.iou.map { $0.isNaN ? nil : 100 * $0 }, imagesPerSecond: imagesPerSecond, seconds: seconds,
                                        peakRSSMiB: peakResidentMiB())
        state.history.append(m)
        let improved = m.valMIoU > state.bestMIoU
        state.bestMIoU = max(state.bestMIoU, m.valMIoU)
        if world.isLeader {
            try Checkpoint.save(model: model, optimizer: optimizer, ema: nil, state: state, to: outputDir + "/" + Checkpoint.fileName)
            report(.checkpointSaved(path: outputDir + "/" + Checkpoint.fileName))
            if improved {
                try Checkpoint.save(model: model, optimizer: optimizer, ema: nil, state: state, to: outputDir + "/best-checkpoint.safetensors")
                report(.checkpointSaved(path: outputDir + "/best-checkpoint.safetensors"))
            }
            try MetricsWriter.write(segmentation: state.history, to: outputDir)
        }
        return m
    }
}
