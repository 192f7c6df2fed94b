import ArgumentParser
import VisionMamba
import VisionMambaData
import VisionMambaTraining

extension DatasetKind: ExpressibleByArgument {
    /// Any letter case, and the official code's cifar-10, cifar-100, cifar and imnet.
    public init?(argument: String) { try? self.init(name: argument) }
}

/// The model, data and DeiT/Vim recipe flags, named like the official main.py and timm's
/// train.py; shared by `train` and `study`.
struct RecipeOptions: ParsableArguments {
    @Option(help: "Model: a zoo name, `vim-digits` (the small model for the bundled digits), or a fixture-format JSON file.")
    var model: String = "vim-digits"
    @Option(name: .customLong("data-set"), help: "Dataset: digits (bundled), cifar10, cifar100, imagefolder, or auto (recognised from --data-path).")
    var dataSet: DatasetKind = .digits
    @Option(name: [.customLong("data-path"), .customLong("data")], help: "Folder of the dataset (not needed for digits).") var dataPath: String?
    @Flag(name: .customLong("skip-bad-images"), help: "Leave out image files that cannot be read (counted) instead of stopping.")
    var skipBadImages = false
    @Option(name: .customLong("num-classes"), help: "Classes of the head (default: the dataset's).") var numClasses: Int?
    @Option(help: "Epochs in the schedule (default 30); with --resume, a larger number extends the run's schedule.") var epochs: Int?
    @Option(name: .customLong("batch-size")) var batchSize: Int = 64
    @Option(help: "Base learning rate, scaled by batch-size / 512 unless --unscale-lr.") var lr: Double = 5e-4
    @Flag(name: .customLong("unscale-lr")) var unscaleLR = false
    @Option(name: .customLong("min-lr")) var minLR: Double = 1e-5
    @Option(name: .customLong("warmup-lr")) var warmupLR: Double = 1e-6
    @Option(name: .customLong("warmup-epochs")) var warmupEpochs: Int = 5
    @Option(name: .customLong("weight-decay")) var weightDecay: Double = 0.05
    @Option(help: "Label smoothing.") var smoothing: Double = 0.1
    @Option(name: .customLong("clip-grad"), help: "Clip the global gradient norm to this value.") var clipGrad: Double?
    @Flag(name: .customLong("model-ema"), help: "Keep an exponential moving average of the weights.") var modelEMA = false
    @Option(name: .customLong("model-ema-decay")) var modelEMADecay: Double = 0.99996
    @Option(name: .customLong("drop-path"), help: "Stochastic depth rate (linear over depth).") var dropPath: Double = 0
    @Option(help: "Mixup alpha (0: off).") var mixup: Double = 0
    @Option(help: "CutMix alpha (0: off).") var cutmix: Double = 0
    @Option(name: .customLong("mixup-prob")) var mixupProb: Double = 1
    @Option(name: .customLong("mixup-switch-prob")) var mixupSwitchProb: Double = 0.5
    @Option(help: "Random erasing probability (pixel mode).") var reprob: Double = 0
    @Option(name: .customLong("repeated-aug"), help: "Repeated augmentation copies per image (1: off; the official recipe: 3).")
    var repeatedAug: Int = 1
    @Option(help: "Random translation by up to this many pixels (RandomCrop padding; 0: off).") var padding: Int = 1
    @Flag(name: .customLong("hflip"), help: "Random horizontal flips (off for digits).") var hflip = false
    @Option(help: "RandAugment in timm's syntax, e.g. rand-m9-mstd0.5-inc1 (the official recipe); default off.") var aa: String?
    @Option var seed: UInt64 = 0
    @Option(name: .customLong("input-size"), help: "Image size (default: the model's); fixed-size datasets are resized to it.") var inputSize: Int?
    @Option(name: .customLong("patch-size"), help: "Override the patch size (and stride), e.g. 4 for a CIFAR-shaped Vim at 32 px.") var patchSize: Int?

    // Comparisons are written so that NaN fails them.
    func validate() throws {
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if warmupEpochs < 0 { throw ValidationError("--warmup-epochs must not be negative") }
        if !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be positive") }
        for (flag, value) in [("--min-lr", minLR), ("--warmup-lr", warmupLR), ("--weight-decay", weightDecay),
                              ("--mixup", mixup), ("--cutmix", cutmix)] where !(value >= 0 && value.isFinite) {
            throw ValidationError("\(flag) must be a finite number, at least 0")
        }
        for (flag, value) in [("--reprob", reprob), ("--mixup-prob", mixupProb), ("--mixup-switch-prob", mixupSwitchProb),
                              ("--model-ema-decay", modelEMADecay)] where !(value >= 0 && value <= 1) {
            throw ValidationError("\(flag) must be in [0, 1]")
        }
        if !(smoothing >= 0 && smoothing < 1) { throw ValidationError("--smoothing must be in [0, 1)") }
        if !(dropPath >= 0 && dropPath < 1) { throw ValidationError("--drop-path must be in [0, 1)") }
        if let clipGrad, !(clipGrad > 0 && clipGrad.isFinite) { throw ValidationError("--clip-grad must be positive") }
        if repeatedAug < 1 { throw ValidationError("--repeated-aug must be at least 1") }
        if padding < 0 { throw ValidationError("--padding must not be negative") }
        if let numClasses, numClasses < 1 { throw ValidationError("--num-classes must be at least 1") }
        try validateSizes(imgSize: inputSize, patchSize: patchSize, imgFlag: "--input-size")
        // Parsed now, so that a bad setting is refused before a model or dataset is loaded.
        if let aa, aa != "none" {
            do { _ = try RandAugment(config: aa) } catch { throw ValidationError("--aa: \(error)") }
        }
        if dataSet != .digits && dataPath == nil { throw ValidationError("--data-set \(dataSet.rawValue) needs --data-path") }
    }

    /// The training options these flags describe; `adjust` changes the model (fusion, DyVM).
    func makeOptions(adjust: (inout VimConfig) throws -> Void = { _ in }) throws -> TrainOptions {
        var config = try ModelZoo.resolve(model)
        if let numClasses { config.numClasses = numClasses } else if dataSet == .digits { config.numClasses = 10 }
        if let inputSize { config.imgSize = inputSize }
        if let patchSize { config.patchSize = patchSize; config.stride = patchSize }
        try adjust(&config)
        var options = TrainOptions(model: config)
        options.dataset = dataSet
        options.dataPath = dataPath
        options.skipBadImages = skipBadImages
        options.epochs = epochs ?? 30
        options.batchSize = batchSize
        options.lr = lr
        options.unscaleLR = unscaleLR
        options.minLR = minLR
        options.warmupLR = warmupLR
        options.warmupEpochs = warmupEpochs
        options.weightDecay = weightDecay
        options.smoothing = smoothing
        options.clipGrad = clipGrad
        options.modelEMA = modelEMA
        options.modelEMADecay = modelEMADecay
        options.seed = seed
        options.dropPath = dropPath
        options.mixup = mixup
        options.cutmix = cutmix
        options.mixupProb = mixupProb
        options.mixupSwitchProb = mixupSwitchProb
        options.reprob = reprob
        options.repeatedAug = repeatedAug
        options.cropPadding = padding
        options.horizontalFlip = hflip
        options.aa = aa
        return options
    }
}

/// `--patch-size` and an image size flag, checked before any model is built: both positive, and
/// the image a whole number of patches (the patch embedding must cover every pixel).
func validateSizes(imgSize: Int?, patchSize: Int?, imgFlag: String = "--img-size") throws {
    if let imgSize, imgSize < 1 { throw ValidationError("\(imgFlag) must be at least 1") }
    if let patchSize, patchSize < 1 { throw ValidationError("--patch-size must be at least 1") }
    if let imgSize, let patchSize, imgSize % patchSize != 0 {
        throw ValidationError("\(imgFlag) \(imgSize) is not a multiple of --patch-size \(patchSize)")
    }
}
