import VisionMambaModels

/// Everything that decides a training run, named as in timm's train.py / the official main.py.
/// Stored in every checkpoint so `--resume` continues the same run.
public struct TrainOptions: Codable, Equatable, Sendable {
    /// The model to train (a zoo config, with Famba-V fusion or DyVM settings if wanted).
    public var model: VimConfig
    /// The dataset: the bundled `.digits`, CIFAR, an ImageFolder, or `.auto` to recognise a folder.
    public var dataset: DatasetKind = .digits
    /// The dataset's folder (nil for the bundled digits).
    public var dataPath: String? = nil
    /// Epochs of the schedule.
    public var epochs: Int = 30
    /// Images per step (per process in a data-parallel run).
    public var batchSize: Int = 64
    /// Base learning rate; the run uses lr · batch / 512 unless `unscaleLR` (DeiT's rule).
    public var lr: Double = 5e-4
    /// Use `lr` as given instead of scaling it by the global batch / 512.
    public var unscaleLR: Bool = false
    /// The learning rate the cosine schedule ends at.
    public var minLR: Double = 1e-5
    /// The learning rate the warm-up starts from.
    public var warmupLR: Double = 1e-6
    /// Linear warm-up epochs.
    public var warmupEpochs: Int = 5
    /// AdamW's weight decay (not on biases, norms, tokens and position embeddings, as timm).
    public var weightDecay: Double = 0.05
    /// Label smoothing.
    public var smoothing: Double = 0.1
    /// Clip the global gradient norm to this (nil: no clipping).
    public var clipGrad: Double? = nil
    /// Keep an exponential moving average of the weights (timm's ModelEma) and save it beside them.
    public var modelEMA: Bool = false
    /// The moving average's decay per step.
    public var modelEMADecay: Double = 0.99996
    /// The seed of every random draw: the same seed, the same run, on any thread count.
    public var seed: UInt64 = 0
    /// Random translation (RandomCrop with this padding) for small images; 0 turns it off.
    public var cropPadding: Int = 1
    /// Random horizontal flips of training images.
    public var horizontalFlip: Bool = false
    /// Stochastic depth rate (timm drop_path; linear over depth).
    public var dropPath: Double = 0
    /// Mixup / CutMix Beta parameters (0 turns each off), probability of mixing a batch, and of
    /// choosing CutMix when both are on.
    public var mixup: Double = 0
    /// CutMix alpha (0: off).
    public var cutmix: Double = 0
    /// The probability of mixing a batch at all.
    public var mixupProb: Double = 1
    /// The probability of CutMix rather than mixup when both are on.
    public var mixupSwitchProb: Double = 0.5
    /// Random erasing probability (timm --reprob, pixel mode).
    public var reprob: Double = 0
    /// Repeated augmentation copies per sample (1 = off; the official recipe uses 3).
    public var repeatedAug: Int = 1
    /// RandAugment config in timm's syntax (the official recipe: rand-m9-mstd0.5-inc1); nil = off.
    public var aa: String? = nil
    /// The weights the run started from (`--finetune`); a DyVM run's frozen teacher is rebuilt
    /// from them when it resumes.
    public var finetune: String? = nil
    /// Data-parallel processes: `batchSize` is per process, as DDP's per-GPU batch.
    package var worldSize: Int = 1
    /// Leave out image files that cannot be read (reported as a `skippedImages` event) instead of
    /// refusing the dataset.
    public var skipBadImages: Bool = false

    /// The DeiT/Vim recipe for `model` on the bundled digits; change the fields to deviate.
    ///
    /// ```swift
    /// var options = TrainOptions(model: try ModelZoo.config(named: "vim-tiny"))
    /// options.dataset = .imagefolder
    /// options.dataPath = "/data/imagenet"
    /// ```
    public init(model: VimConfig) { self.model = model }

    enum CodingKeys: String, CodingKey { case model, dataset, dataPath, epochs, batchSize, lr, unscaleLR, minLR, warmupLR, warmupEpochs, weightDecay, smoothing, clipGrad, modelEMA, modelEMADecay, seed, cropPadding, horizontalFlip, dropPath, mixup, cutmix, mixupProb, mixupSwitchProb, reprob, repeatedAug, aa, finetune, worldSize, skipBadImages }

    /// Missing keys take their defaults, so checkpoints written before an option existed still load.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(VimConfig.self, forKey: .model)
        if let v = try c.decodeIfPresent(DatasetKind.self, forKey: .dataset) { dataset = v }
        if let v = try c.decodeIfPresent(String.self, forKey: .dataPath) { dataPath = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .epochs) { epochs = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .batchSize) { batchSize = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .lr) { lr = v }
        if let v = try c.decodeIfPresent(Bool.self, forKey: .unscaleLR) { unscaleLR = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .minLR) { minLR = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .warmupLR) { warmupLR = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .warmupEpochs) { warmupEpochs = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .weightDecay) { weightDecay = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .smoothing) { smoothing = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .clipGrad) { clipGrad = v }
        if let v = try c.decodeIfPresent(Bool.self, forKey: .modelEMA) { modelEMA = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .modelEMADecay) { modelEMADecay = v }
        if let v = try c.decodeIfPresent(UInt64.self, forKey: .seed) { seed = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .cropPadding) { cropPadding = v }
        if let v = try c.decodeIfPresent(Bool.self, forKey: .horizontalFlip) { horizontalFlip = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .dropPath) { dropPath = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .mixup) { mixup = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .cutmix) { cutmix = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .mixupProb) { mixupProb = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .mixupSwitchProb) { mixupSwitchProb = v }
        if let v = try c.decodeIfPresent(Double.self, forKey: .reprob) { reprob = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .repeatedAug) { repeatedAug = v }
        if let v = try c.decodeIfPresent(String.self, forKey: .aa) { aa = v }
        if let v = try c.decodeIfPresent(String.self, forKey: .finetune) { finetune = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .worldSize) { worldSize = v }
        if let v = try c.decodeIfPresent(Bool.self, forKey: .skipBadImages) { skipBadImages = v }
    }

    /// Rejects values a run cannot use, naming the option as this type does (the model's own
    /// fields are checked by `VimConfig.validate()`).
    public func validate() throws {
        try model.validate()
        func check(_ ok: Bool, _ name: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw TrainingError.invalidOption(name: name, value: "\(value)", allowed: allowed) }
        }
        try check(epochs >= 1, "epochs", epochs, "at least 1")
        try check(batchSize >= 1, "batchSize", batchSize, "at least 1")
        try check(warmupEpochs >= 0, "warmupEpochs", warmupEpochs, "at least 0")
        for (name, value) in [("lr", lr), ("minLR", minLR), ("warmupLR", warmupLR), ("weightDecay", weightDecay),
                              ("mixup", mixup), ("cutmix", cutmix)] {
            try check(value >= 0 && value.isFinite, name, value, "finite, at least 0")
        }
        for (name, value) in [("modelEMADecay", modelEMADecay), ("mixupProb", mixupProb), ("mixupSwitchProb", mixupSwitchProb),
                              ("reprob", reprob)] {
            try check(value >= 0 && value <= 1, name, value, "[0, 1]")
        }
        try check(smoothing >= 0 && smoothing < 1, "smoothing", smoothing, "[0, 1)")
        try check(dropPath >= 0 && dropPath < 1, "dropPath", dropPath, "[0, 1)")
        if let clipGrad { try check(clipGrad > 0 && clipGrad.isFinite, "clipGrad", clipGrad, "positive and finite") }
        try check((0...model.imgSize).contains(cropPadding), "cropPadding", cropPadding, "0...img_size (\(model.imgSize))")
        try check((1...64).contains(repeatedAug), "repeatedAug", repeatedAug, "1...64")
        try check(worldSize >= 1, "worldSize", worldSize, "at least 1")
    }

    /// The learning rate the optimizer starts from after the batch-size rule (the global batch,
    /// per-process batch × processes, as the official main.py).
    public var effectiveLR: Double { unscaleLR ? lr : lr * Double(batchSize * worldSize) / 512 }
}
