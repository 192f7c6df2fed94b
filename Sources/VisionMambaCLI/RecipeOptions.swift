import ArgumentParser
import VisionMambaModels
import VisionMambaData
import VisionMambaTraining

extension DatasetKind: ExpressibleByArgument {
    /// Any letter case, and the official code's cifar-10, cifar-100, cifar and imnet.
    public init?(argument: String) { try? self.init(name: argument) }
}

/// The model, data and DeiT/Vim recipe flags, named like the official main.py and timm's
/// train.py; shared by `train` and `study`. Every flag is optional: a flag not given takes the
/// default of `TrainOptions` for a new run, and the stored value for a resumed one.
struct RecipeOptions: ParsableArguments {
    @Option(help: "Model: a zoo name (see `vision-mamba models`), or a fixture-format JSON file (default: vim-digits, the small model for the bundled digits).")
    var model: String?
    @Option(name: .customLong("data-set"), help: "Dataset: digits (bundled), cifar10, cifar100, imagefolder, or auto (default: auto with --data-path, recognised from the folder; else digits); for segmentation models digit-scenes (bundled), ade20k or segfolder.")
    var dataSet: DatasetKind?
    @Option(name: [.customLong("data-path"), .customLong("data")], help: "Folder of the dataset (not needed for digits).") var dataPath: String?
    @Flag(name: .customLong("skip-bad-images"), help: "Leave out image files that cannot be read (counted) instead of stopping.")
    var skipBadImages = false
    @Option(name: .customLong("num-classes"), help: "Classes of the head (default: the dataset's).") var numClasses: Int?
    @Option(help: "Epochs in the schedule (default 30); with --resume, a larger number extends the run's schedule.") var epochs: Int?
    @Option(name: .customLong("batch-size"), help: "Images per step and process (default 64).") var batchSize: Int?
    @Option(help: "Base learning rate, scaled by batch-size / 512 unless --unscale-lr (default 5e-4).") var lr: Double?
    @Flag(name: .customLong("unscale-lr"), help: "Use --lr as given, without the batch-size / 512 scaling.") var unscaleLR = false
    @Option(name: .customLong("min-lr"), help: "Floor of the cosine schedule (default 1e-5).") var minLR: Double?
    @Option(name: .customLong("warmup-lr"), help: "Learning rate the linear warm-up starts from (default 1e-6).") var warmupLR: Double?
    @Option(name: .customLong("warmup-epochs"), help: "Epochs of linear warm-up (default 5).") var warmupEpochs: Int?
    @Option(name: .customLong("weight-decay"), help: "AdamW weight decay, not applied to biases, norms, pos_embed and cls_token (default 0.05).")
    var weightDecay: Double?
    @Option(help: "Label smoothing (default 0.1).") var smoothing: Double?
    @Option(name: .customLong("clip-grad"), help: "Clip the global gradient norm to this value (default: no clipping).") var clipGrad: Double?
    @Flag(name: .customLong("model-ema"), help: "Keep an exponential moving average of the weights.") var modelEMA = false
    @Option(name: .customLong("model-ema-decay"), help: "Decay of the weight average (default 0.99996).") var modelEMADecay: Double?
    @Option(name: .customLong("drop-path"), help: "Stochastic depth rate, linear over depth (default 0).") var dropPath: Double?
    @Option(help: "Mixup alpha (default 0: off).") var mixup: Double?
    @Option(help: "CutMix alpha (default 0: off).") var cutmix: Double?
    @Option(name: .customLong("mixup-prob"), help: "Probability of mixing a batch when mixup or cutmix is on (default 1).") var mixupProb: Double?
    @Option(name: .customLong("mixup-switch-prob"), help: "Probability of cutmix instead of mixup when both are on (default 0.5).")
    var mixupSwitchProb: Double?
    @Option(help: "Random erasing probability, pixel mode (default 0).") var reprob: Double?
    @Option(name: .customLong("repeated-aug"), help: "Repeated augmentation copies per image (default 1: off; the official recipe: 3).")
    var repeatedAug: Int?
    @Option(help: "Random translation by up to this many pixels (RandomCrop padding; default 1; 0: off).") var padding: Int?
    @Flag(name: .customLong("hflip"), help: "Random horizontal flips (off for digits).") var hflip = false
    @Option(help: "RandAugment in timm's syntax, e.g. rand-m9-mstd0.5-inc1 (the official recipe); default off.") var aa: String?
    @Option(help: "Seed of every random draw of the run (default 0).") var seed: UInt64?
    @Option(name: .customLong("input-size"), help: "Image size (default: the model's); fixed-size datasets are resized to it.") var inputSize: Int?
    @Option(name: .customLong("patch-size"), help: "Override the patch size (and stride), e.g. 4 for a CIFAR-shaped Vim at 32 px.") var patchSize: Int?

    // Comparisons are written so that NaN fails them.
    func validate() throws {
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let warmupEpochs, warmupEpochs < 0 { throw ValidationError("--warmup-epochs must not be negative") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be positive") }
        for (flag, value) in [("--min-lr", minLR), ("--warmup-lr", warmupLR), ("--weight-decay", weightDecay),
                              ("--mixup", mixup), ("--cutmix", cutmix)] {
            if let value, !(value >= 0 && value.isFinite) { throw ValidationError("\(flag) must be a finite number, at least 0") }
        }
        for (flag, value) in [("--reprob", reprob), ("--mixup-prob", mixupProb), ("--mixup-switch-prob", mixupSwitchProb),
                              ("--model-ema-decay", modelEMADecay)] {
            if let value, !(value >= 0 && value <= 1) { throw ValidationError("\(flag) must be in [0, 1]") }
        }
        if let smoothing, !(smoothing >= 0 && smoothing < 1) { throw ValidationError("--smoothing must be in [0, 1)") }
        if let dropPath, !(dropPath >= 0 && dropPath < 1) { throw ValidationError("--drop-path must be in [0, 1)") }
        if let clipGrad, !(clipGrad > 0 && clipGrad.isFinite) { throw ValidationError("--clip-grad must be positive") }
        if let repeatedAug, repeatedAug < 1 { throw ValidationError("--repeated-aug must be at least 1") }
        if let padding, padding < 0 { throw ValidationError("--padding must not be negative") }
        if let numClasses, numClasses < 1 { throw ValidationError("--num-classes must be at least 1") }
        try validateSizes(imgSize: inputSize, patchSize: patchSize, imgFlag: "--input-size")
        // Parsed now, so that a bad setting is refused before a model or dataset is loaded.
        if let aa, aa != "none" {
            do { _ = try RandAugment(config: aa) } catch { throw ValidationError("--aa: \(error)") }
        }
        if let dataSet, dataSet != .digits, dataSet != .digitScenes, dataPath == nil {
            throw ValidationError("--data-set \(dataSet.rawValue) needs --data-path")
        }
    }

    /// The dataset the flags name: --data-set, else what --data-path holds, else the bundled digits.
    var dataset: DatasetKind { dataSet ?? (dataPath == nil ? .digits : .auto) }

    /// The recipe flags given on the command line, each with the change it makes to a run's options.
    var settings: [(flag: String, apply: (inout TrainOptions) -> Void)] {
        var out: [(flag: String, apply: (inout TrainOptions) -> Void)] = []
        func set<T>(_ flag: String, _ value: T?, _ field: WritableKeyPath<TrainOptions, T>) {
            if let value { out.append((flag, { $0[keyPath: field] = value })) }
        }
        func flag(_ name: String, _ on: Bool, _ field: WritableKeyPath<TrainOptions, Bool>) { set(name, on ? true : nil, field) }
        set("--batch-size", batchSize, \.batchSize)
        set("--lr", lr, \.lr)
        flag("--unscale-lr", unscaleLR, \.unscaleLR)
        set("--min-lr", minLR, \.minLR)
        set("--warmup-lr", warmupLR, \.warmupLR)
        set("--warmup-epochs", warmupEpochs, \.warmupEpochs)
        set("--weight-decay", weightDecay, \.weightDecay)
        set("--smoothing", smoothing, \.smoothing)
        set("--clip-grad", clipGrad.map { Optional($0) }, \.clipGrad)
        flag("--model-ema", modelEMA, \.modelEMA)
        set("--model-ema-decay", modelEMADecay, \.modelEMADecay)
        set("--drop-path", dropPath, \.dropPath)
        set("--mixup", mixup, \.mixup)
        set("--cutmix", cutmix, \.cutmix)
        set("--mixup-prob", mixupProb, \.mixupProb)
        set("--mixup-switch-prob", mixupSwitchProb, \.mixupSwitchProb)
        set("--reprob", reprob, \.reprob)
        set("--repeated-aug", repeatedAug, \.repeatedAug)
        set("--padding", padding, \.cropPadding)
        flag("--hflip", hflip, \.horizontalFlip)
        set("--aa", aa.map { Optional($0) }, \.aa)
        set("--seed", seed, \.seed)
        flag("--skip-bad-images", skipBadImages, \.skipBadImages)
        return out
    }

    /// The training options these flags describe; `adjust` changes the model (fusion, DyVM).
    /// Without --num-classes the head has the dataset's classes (read from its folder listing).
    func makeOptions(adjust: (inout VimConfig) throws -> Void = { _ in }) throws -> TrainOptions {
        let dataset = try resolveDataset(self.dataset, path: dataPath)
        var config = try ModelZoo.resolve(model ?? ModelZoo.digits.name)
        config.numClasses = try numClasses ?? datasetClassCount(dataset, path: dataPath)
        if let inputSize { config.imgSize = inputSize }
        if let patchSize { config.patchSize = patchSize; config.stride = patchSize }
        try adjust(&config)
        var options = TrainOptions(model: config)
        options.dataset = dataset
        options.dataPath = dataPath
        if let epochs { options.epochs = epochs }
        for setting in settings { setting.apply(&options) }
        return options
    }

    /// The flags that would change a stored run's settings, by name: a resumed run keeps its own.
    /// --epochs is not among them (it extends the schedule), nor --data-path (the same data may
    /// have moved).
    func conflicts(with stored: TrainOptions) throws -> [String] {
        var out: [String] = []
        for setting in settings {
            var changed = stored
            setting.apply(&changed)
            if changed != stored { out.append(setting.flag) }
        }
        if let model, try ModelZoo.resolve(model).name != stored.model.name { out.append("--model") }
        if let dataSet, try resolveDataset(dataSet, path: dataPath ?? stored.dataPath) != stored.dataset { out.append("--data-set") }
        if let numClasses, numClasses != stored.model.numClasses { out.append("--num-classes") }
        if let inputSize, inputSize != stored.model.imgSize { out.append("--input-size") }
        if let patchSize, patchSize != stored.model.patchSize || patchSize != stored.model.stride { out.append("--patch-size") }
        return out
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
