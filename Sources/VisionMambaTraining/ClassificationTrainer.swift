import Foundation
import MambaIO
import MambaNN
import MambaTensor
import VisionMambaModels
import VisionMambaData

/// The dataset `kind` at `path`, at `imageSize` px (fixed-size datasets are resized; nil keeps
/// their own size, ImageFolder crops to 224). `skipBadImages`: an ImageFolder leaves out the image
/// files it cannot read (its `skipped`) instead of refusing them.
package func makeDataset(_ kind: DatasetKind, path: String?, train: Bool, imageSize: Int? = nil, skipBadImages: Bool = false) throws -> any ImageDataset {
    if let imageSize, !(1...65_536).contains(imageSize) {
        throw TrainingError.invalidOption(name: "imageSize", value: "\(imageSize)", allowed: "1...65536")
    }
    func folder() throws -> String {
        guard let path else { throw TrainingError.missingDataPath(dataset: kind.rawValue) }
        return path
    }
    switch kind {
    case .auto: return try makeDataset(resolveDataset(.auto, path: path), path: path, train: train, imageSize: imageSize, skipBadImages: skipBadImages)
    case .digits: return resized(try DigitsDataset(split: train ? .train : .val), to: imageSize)
    case .cifar10: return resized(try CIFARDataset(path: folder(), classes: 10, train: train), to: imageSize)
    case .cifar100: return resized(try CIFARDataset(path: folder(), classes: 100, train: train), to: imageSize)
    case .imagefolder:
        return try ImageFolderDataset(root: folder(), split: train ? "train" : "val", size: imageSize ?? 224, train: train,
                                      skipBadImages: skipBadImages)
    case .digitScenes, .ade20k, .segfolder: throw TrainingError.segmentationDataForClassifier(dataset: kind.rawValue)
    }
}

/// The dataset `kind` means at `path`: `.auto` recognised from the folder's contents (CIFAR
/// batches of either format, else an ImageFolder), any other kind itself.
package func resolveDataset(_ kind: DatasetKind, path: String?) throws -> DatasetKind {
    guard kind == .auto else { return kind }
    guard let root = path else { throw TrainingError.missingDataPath(dataset: kind.rawValue) }
    let fm = FileManager.default
    func has(_ names: [String]) -> Bool {
        [root, root + "/cifar-10-batches-bin", root + "/cifar-10-batches-py", root + "/cifar-100-binary", root + "/cifar-100-python"]
            .contains { dir in names.contains { fm.fileExists(atPath: dir + "/" + $0) } }
    }
    if has(["data_batch_1", "data_batch_1.bin"]) { return .cifar10 }
    if has(["train.bin", "train"]) && !fm.fileExists(atPath: root + "/train/") { return .cifar100 }
    return .imagefolder
}

/// The class count of dataset `kind` at `path`, read without loading its images (an
/// ImageFolder's class folders are listed, not walked).
package func datasetClassCount(_ kind: DatasetKind, path: String?) throws -> Int {
    switch try resolveDataset(kind, path: path) {
    case .digits, .cifar10: return 10
    case .cifar100: return 100
    case .imagefolder, .auto:
        guard let path else { throw TrainingError.missingDataPath(dataset: kind.rawValue) }
        return try ImageFolderDataset.classNames(root: path, split: "train").count
    case .digitScenes: return 11
    case .ade20k: return 150
    case .segfolder: throw TrainingError.missingDataPath(dataset: "segfolder (its class count)")
    }
}

/// Fixed-size images upsampled (or downsampled) bicubically to the model's resolution.
func resized(_ dataset: any ImageDataset, to size: Int?) -> any ImageDataset {
    guard let size else { return dataset }
    return dataset.imageShape[1] == size && dataset.imageShape[2] == size ? dataset : ResizedDataset(dataset, size: size)
}

/// The DeiT/Vim training loop: AdamW with timm's groups, per-epoch warm-up + cosine, label
/// smoothing, optional gradient clipping and EMA, evaluation after every epoch, an atomic
/// checkpoint per epoch holding everything `--resume` needs to continue bit for bit.
package final class ClassificationTrainer {
    package let options: TrainOptions
    package let outputDir: String
    package let model: VimModel
    let optimizer: AdamW
    var ema: [String: Tensor]?
    package private(set) var state: TrainingState
    let trainLoader: DataLoader
    let valLoader: DataLoader
    let schedule: CosineSchedule
    let mixup: Mixup
    let report: (TrainingEvent) -> Void
    /// DyVM's frozen dense teacher.
    let teacher: VimModel?
    /// The processes of a data-parallel run (one when not started by mpirun).
    package let world: ProcessGroup

    /// `finetune`: weights to start from (an official .pth or any weights file), loaded as the
    /// official main.py `--finetune` does: a head of another class count is replaced and pos_embed
    /// interpolated to the new grid (`interpolation`).
    ///
    /// Runs are never lost. A resumed run continues in its checkpoint's folder and nowhere else,
    /// with its own settings; `epochs` may extend its schedule. A new run goes to `outputDir`, or
    /// when nil to a fresh folder named from model, dataset and time (`ClassificationTrainer.newRunFolder`),
    /// and a folder that already holds a run is refused unless `overwrite` is set.
    package init(options: TrainOptions, outputDir: String? = nil, resume: String? = nil, finetune: String? = nil,
                epochs: Int? = nil, overwrite: Bool = false,
                interpolation: PositionEmbeddingInterpolation = .official, world: ProcessGroup = SingleProcess(),
                events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        var options = options
        var resumed: (file: TensorFile, state: TrainingState)? = nil
        let resumePath = resume.map(Checkpoint.resolve)
        let folder: String
        if let resumePath {
            resumed = try Checkpoint.load(resumePath)
            options = resumed!.state.options        // a resumed run continues with its own settings
            let runFolder = (resumePath as NSString).deletingLastPathComponent
            folder = runFolder.isEmpty ? "." : runFolder
            if let outputDir, !samePath(outputDir, folder) {
                throw TrainingError.resumeElsewhere(checkpoint: resumePath, outputDir: outputDir)
            }
            if let epochs, epochs != options.epochs {
                let done = resumed!.state.epochsDone
                guard epochs > done else { throw TrainingError.epochsAlreadyDone(requested: epochs, done: done, checkpoint: resumePath) }
                if world.isLeader { events(.note("extending the schedule from \(options.epochs) to \(epochs) epochs")) }
                options.epochs = epochs
                resumed!.state.options.epochs = epochs
            }
        } else {
            if let finetune { options.finetune = finetune }
            if let epochs { options.epochs = epochs }
            folder = outputDir ?? ClassificationTrainer.newRunFolder(model: options.model.name, dataset: options.dataset.rawValue)
            if !overwrite && ClassificationTrainer.holdsRun(folder) { throw TrainingError.outputHoldsRun(path: folder) }
        }
        let outputDir = folder
        if resumed != nil && options.worldSize != world.size {
            if world.isLeader { events(.note("resuming a run of \(options.worldSize) process(es) on \(world.size): the global batch is now \(options.batchSize * world.size)")) }
        }
        options.worldSize = world.size
        self.world = world
        self.options = options
        self.outputDir = outputDir
        self.report = world.isLeader ? { event in event.log(); events(event) } : { _ in }
        try options.validate()
        if options.model.dyvm != nil && options.dropPath > 0 { throw TrainingError.dyvmWithDropPath(rate: options.dropPath) }
        // Before the model or a batch is allocated: a training step, and the evaluation, which
        // runs batches of at least 64.
        try options.model.checkFitsInMemory(batch: options.batchSize, training: true, parameterCopies: options.modelEMA ? 1 : 0)
        try options.model.checkFitsInMemory(batch: max(options.batchSize, 64), training: false)
        try prepareOutputFolder(outputDir)

        model = try VimModel(config: options.model)
        model.resetParameters(seed: options.seed)
        // A resumed DyVM run reloads its starting weights too: the teacher is rebuilt from them.
        if let start = options.finetune, resume == nil || options.model.dyvm != nil {
            let fresh = try model.loadForFineTuning(weights: start, interpolation: interpolation)
            if resume == nil && !fresh.isEmpty { report(.note("fine-tuning from \(start); newly initialised: \(fresh.joined(separator: ", "))")) }
        }
        // DyVM distils from the dense model it started as, frozen.
        teacher = options.model.dyvm == nil ? nil : try model.denseCopy()
        if teacher != nil && options.finetune == nil && resume == nil {
            report(.note("warning: DyVM is starting from random weights, so its frozen teacher is untrained and the distillation losses teach nothing; start from trained weights to fine-tune it as the official recipe does"))
        }
        optimizer = try AdamW(parameters: model.namedParameters(), lr: Float(options.effectiveLR),
                          weightDecay: Float(options.weightDecay), noWeightDecay: ["pos_embed", "cls_token"])
        schedule = CosineSchedule(lr: options.effectiveLR, minLR: options.minLR, warmupLR: options.warmupLR,
                                  warmupEpochs: options.warmupEpochs, epochs: options.epochs)

        let train = try makeDataset(options.dataset, path: options.dataPath, train: true, imageSize: options.model.imgSize,
                                    skipBadImages: options.skipBadImages)
        let val = try makeDataset(options.dataset, path: options.dataPath, train: false, imageSize: options.model.imgSize,
                                  skipBadImages: options.skipBadImages)
        for case let folder as ImageFolderDataset in [train, val] where !folder.skipped.isEmpty {
            report(.skippedImages(path: folder.folder, count: folder.skipped.count))
        }
        // Validation labels too, before the first step rather than after the first epoch.
        for dataset in [train, val] where dataset.numClasses != options.model.numClasses {
            throw TrainingError.classCountMismatch(dataset: options.dataset.rawValue, datasetClasses: dataset.numClasses, modelClasses: options.model.numClasses)
        }
        let imageShape = [options.model.inChannels, options.model.imgSize, options.model.imgSize]
        for dataset in [train, val] where dataset.imageShape != imageShape {
            throw TrainingError.imageShapeMismatch(dataset: options.dataset.rawValue, found: dataset.imageShape, expected: imageShape)
        }
        var transforms: [any SampleTransform] = []
        if options.cropPadding > 0 { transforms.append(RandomCropWithPadding(padding: options.cropPadding)) }
        if options.horizontalFlip { transforms.append(RandomHorizontalFlip()) }
        if let aa = options.aa, aa != "none" { transforms.append(try RandAugment(config: aa)) }
        trainLoader = DataLoader(dataset: train, batchSize: options.batchSize, shuffle: true, dropLast: true,
                                 transforms: transforms,
                                 postTransforms: options.reprob > 0 ? [RandomErasing(probability: options.reprob)] : [],
                                 seed: options.seed, repeats: options.repeatedAug, rank: world.rank, worldSize: world.size)
        mixup = Mixup(mixupAlpha: options.mixup, cutmixAlpha: options.cutmix, prob: options.mixupProb,
                      switchProb: options.mixupSwitchProb, smoothing: options.smoothing, classes: options.model.numClasses)
        if mixup.isActive && options.batchSize % 2 != 0 {
            throw TrainingError.oddBatchForMixup(batchSize: options.batchSize)
        }
        valLoader = DataLoader(dataset: val, batchSize: max(options.batchSize, 64), shuffle: false, dropLast: false,
                               rank: world.rank, worldSize: world.size)
        guard trainLoader.batchCount() > 0 else {
            throw TrainingError.batchLargerThanDataset(batchSize: options.batchSize, processes: world.size, images: train.count)
        }
        if let resumePath, let saved = resumed?.state {
            // An optimizer step takes at least one image, so a run has made at most epochsDone ×
            // (images per epoch) of them, whatever its batch size and process count were. AdamW's
            // bias correction costs one multiplication per step taken, so an absurd count would hang.
            let perEpoch = trainLoader.order(epoch: 0).count
            let most = saved.epochsDone.multipliedReportingOverflow(by: perEpoch)
            guard most.overflow || saved.optimizerStep <= most.partialValue else {
                throw TrainingError.invalidCheckpointState(path: resumePath, field: "optimizerStep", value: "\(saved.optimizerStep)",
                                                           allowed: "0...\(most.partialValue) (\(saved.epochsDone) epochs of at most \(perEpoch) steps)")
            }
        }

        state = TrainingState(options: options, epochsDone: 0, optimizerStep: 0, bestTop1: 0, history: [],
                              classNames: val.classNames, transform: val.inputTransform(size: options.model.imgSize))
        if options.modelEMA {
            var e: [String: Tensor] = [:]
            for (name, p) in model.namedParameters() { e[name] = p.copy() }
            ema = e
        }
        if let (file, saved) = resumed {
            try model.load(stateDict: file.tensors.filter { !$0.key.hasPrefix("optimizer.") && !$0.key.hasPrefix("model_ema.") },
                           source: resume!)
            var m: [String: [Float]] = [:], v: [String: [Float]] = [:]
            for (name, _) in model.namedParameters() {
                m[name] = file["optimizer.exp_avg.\(name)"]?.floats()
                v[name] = file["optimizer.exp_avg_sq.\(name)"]?.floats()
                if let e = ema, let stored = file["model_ema.\(name)"] {
                    let p = e[name]!
                    guard stored.shape == p.shape else {
                        throw StateDictError.mismatch(source: resume!, problems: [.shapeMismatch(key: "model_ema.\(name)", expected: p.shape, found: stored.shape)])
                    }
                    try p.assign(stored.floats())
                }
            }
            try optimizer.restore(step: saved.optimizerStep, m: m, v: v)
            // A checkpoint of an older release gains the description it lacked.
            state = saved
            state.classNames = saved.classNames ?? val.classNames
            state.transform = saved.transform ?? val.inputTransform(size: options.model.imgSize)
        }
        // Every rank starts from rank 0's parameters (and EMA), as DDP does.
        for (_, p) in model.namedParameters() { world.broadcast(p) }
        for (_, e) in (ema ?? [:]).sorted(by: { $0.key < $1.key }) { world.broadcast(e) }
    }

    /// Trains from the current epoch to `options.epochs` (or to `stopAfter` epochs), evaluating
    /// and checkpointing each epoch. `shouldStop` is asked before each step: when it answers true
    /// the run returns there, its last checkpoint (the previous epoch's) untouched.
    @discardableResult
    package func run(stopAfter: Int? = nil, shouldStop: () -> Bool = { false }) throws -> [EpochMetrics] {
        let params = model.namedParameters()
        while state.epochsDone < min(options.epochs, stopAfter ?? .max) {
            let epoch = state.epochsDone
            let lr = schedule.lr(forEpoch: epoch)
            optimizer.lr = Float(lr)
            let start = DispatchTime.now().uptimeNanoseconds
            TensorMemory.resetPeak()
            var lossSum = 0.0, seen = 0
            let steps = trainLoader.batchCount()
            report(.epochStarted(epoch: epoch, epochs: options.epochs, steps: steps))
            do {
                try trainLoader.forEachBatch(epoch: epoch) { step, batch in
                    if shouldStop() { throw StopRequested() }
                    let tape = Tape()
                    // Batch-level draws (mixup, drop path) depend on seed, epoch and step only.
                    var rng = SeededGenerator(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(epoch) << 32 ^ UInt64(step))
                    // A label past the head would index outside the logits (a dataset file can hold any byte).
                    try validateLabels(batch.labels, classes: options.model.numClasses)
                    let targets = mixup.isActive
                        ? mixup.apply(batch.images, labels: batch.labels, rng: &rng).targets
                        : try smoothedTargets(batch.labels, classes: options.model.numClasses, smoothing: Float(options.smoothing))
                    // Per-sample draws (drop path, DyVM's noise) depend on the sample's position in the epoch.
                    let sampleSeeds = batch.positions.map { position -> UInt64 in
                        var g = sampleGenerator(seed: options.seed ^ 0x5851_F42D_4C95_7F2D, epoch: epoch, index: position)
                        return g.next()
                    }
                    let loss: Tensor
                    if let teacher, let dyvm = options.model.dyvm {
                        let noise = try DyVMNoise.draw(sampleSeeds: sampleSeeds, numPatches: options.model.numPatches,
                                                       stages: dyvm.pruningLoc.count, depth: options.model.depth)
                        loss = try model.dyvmTrainingStep(batch.images, targets: targets, teacher: teacher, noise: noise, tape: tape).loss
                    } else {
                        let drop = options.dropPath > 0 ? DropPathDraw(rate: options.dropPath, sampleSeeds: sampleSeeds) : nil
                        loss = try softTargetCrossEntropy(model(batch.images, tape: tape, dropPath: drop), targets: targets, tape: tape)
                    }
                    // The global batch's loss: every rank sees the same value, so all stop together on a NaN.
                    let total = world.sum([Double(loss.array[0]) * Double(batch.labels.count), Double(batch.labels.count)])
                    let value = total[0] / total[1]
                    guard value.isFinite else {
                        throw TrainingError.nonFiniteLoss(value: value, epoch: epoch + 1, step: step + 1, checkpoint: outputDir + "/" + Checkpoint.fileName)
                    }
                    for (_, p) in params { p.zeroGrad() }
                    try tape.backward(from: loss)
                    world.averageGradients(params.map(\.1))
                    if let clip = options.clipGrad { clipGradNorm(params.map(\.1), maxNorm: clip) }
                    optimizer.update()
                    if let ema { updateEMA(ema, params: params, decay: options.modelEMADecay) }
                    lossSum += total[0]
                    seen += Int(total[1])
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                    report(.step(epoch: epoch, epochs: options.epochs, step: step + 1, steps: steps,
                                 loss: lossSum / Double(seen), lr: lr, imagesPerSecond: Double(seen) / elapsed))
                }
            } catch is StopRequested { return state.history }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let eval = try evaluate(model, loader: valLoader, world: world)
            let metrics = EpochMetrics(epoch: epoch, trainLoss: lossSum / Double(max(seen, 1)), valLoss: eval.loss,
                                       top1: eval.top1, top5: eval.top5, lr: lr, imagesPerSecond: Double(seen) / seconds,
                                       epochSeconds: seconds, peakRSSMiB: peakResidentMiB(),
                                       peakTensorMiB: Double(TensorMemory.peakBytes) / 1_048_576,
                                       tokens: options.model.fusion == nil && options.model.dyvm == nil ? nil : options.model.tokenSchedule,
                                       directionRate: eval.directionRate)
            report(.epochEnded(metrics, epochs: options.epochs))
            state.history.append(metrics)
            state.epochsDone = epoch + 1
            state.optimizerStep = optimizer.step
            let improved = eval.top1 > state.bestTop1
            state.bestTop1 = max(state.bestTop1, eval.top1)
            guard world.isLeader else { continue }
            try Checkpoint.save(model: model, optimizer: optimizer, ema: ema, state: state, to: outputDir + "/" + Checkpoint.fileName)
            report(.checkpointSaved(path: outputDir + "/" + Checkpoint.fileName))
            if improved {
                try Checkpoint.save(model: model, optimizer: optimizer, ema: ema, state: state, to: outputDir + "/best-checkpoint.safetensors")
                report(.checkpointSaved(path: outputDir + "/best-checkpoint.safetensors"))
            }
            try MetricsWriter.write(state.history, to: outputDir)
        }
        return state.history
    }
}

/// Thrown inside a training step to leave the batch loop when the caller asked the run to stop.
struct StopRequested: Error {}

/// Creates the output folder (and its parents) and writes and removes a probe file in it, so that
/// a run that could not save its checkpoint fails before it trains, not after its first epoch.
extension ClassificationTrainer {
    /// A folder for a new run that no other run uses: runs/<model>-<dataset>-<yyyyMMdd-HHmmss>,
    /// with -2, -3, ... when two runs start in the same second.
    package static func newRunFolder(model: String, dataset: String, now: Date = Date()) -> String {
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.dateFormat = "yyyyMMdd-HHmmss"
        let base = "runs/\(model)-\(dataset)-\(format.string(from: now))"
        var name = base, n = 1
        while FileManager.default.fileExists(atPath: name) { n += 1; name = "\(base)-\(n)" }
        return name
    }

    /// Whether `folder` holds a run's checkpoint or metrics.
    package static func holdsRun(_ folder: String) -> Bool {
        [Checkpoint.fileName, "best-checkpoint.safetensors", "metrics.jsonl"].contains {
            FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0))
        }
    }
}

/// Whether two paths name the same folder (after resolving `.`, `..` and links).
func samePath(_ a: String, _ b: String) -> Bool {
    URL(fileURLWithPath: a).standardizedFileURL.resolvingSymlinksInPath().path
        == URL(fileURLWithPath: b).standardizedFileURL.resolvingSymlinksInPath().path
}

func prepareOutputFolder(_ path: String) throws {
    let fm = FileManager.default
    let probe = (path as NSString).appendingPathComponent(".write-probe-\(UUID().uuidString)")
    do {
        try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard fm.createFile(atPath: probe, contents: Data()) else { throw TrainingError.outputNotWritable(path: path) }
        try fm.removeItem(atPath: probe)
    } catch {
        throw TrainingError.outputNotWritable(path: path)
    }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_).
func clipGradNorm(_ params: [Tensor], maxNorm: Double) {
    let grads = params.compactMap(\.grad)
    let norm = grads.reduce(0.0) { $0 + $1.backend.sumOfSquares($1) }.squareRoot(), coef = maxNorm / (norm + 1e-6)
    guard coef < 1 else { return }
    for g in grads { g.backend.map(.scale(Float(coef)), g, into: g, accumulate: false) }
}

/// timm ModelEma: ema ← decay·ema + (1 − decay)·model after every optimizer step.
func updateEMA(_ ema: [String: Tensor], params: [(String, Tensor)], decay: Double) {
    for (name, p) in params {
        let e = ema[name]!
        e.backend.combine(.interpolate(Float(decay)), e, p, into: e, accumulate: false)
    }
}
