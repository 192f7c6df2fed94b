import MambaTensor

/// Why a training run, an evaluation or a fusion study cannot start or go on.
public enum TrainingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A training option (named as `TrainOptions` names it) outside the values it may take.
    case invalidOption(name: String, value: String, allowed: String)
    /// A dataset name that is not one of `valid`.
    case unknownDataset(name: String, valid: [String])
    /// A dataset that is read from a folder, with no folder given.
    case missingDataPath(dataset: String)
    /// The dataset's class count differs from the model's.
    case classCountMismatch(dataset: String, datasetClasses: Int, modelClasses: Int)
    /// The dataset's images [C, H, W] differ from what the model takes.
    case imageShapeMismatch(dataset: String, found: [Int], expected: [Int])
    /// Mixup and CutMix pair each image with its mirror in the batch, so the batch must be even.
    case oddBatchForMixup(batchSize: Int)
    /// Not one full batch: `batchSize` per process × `processes` exceeds the `images` of the dataset.
    case batchLargerThanDataset(batchSize: Int, processes: Int, images: Int)
    /// DyVM is fine-tuned without stochastic depth, as the official scripts do.
    case dyvmWithDropPath(rate: Double)
    /// The loss became NaN or infinite; the checkpoint of the last finished epoch is kept.
    case nonFiniteLoss(value: Double, epoch: Int, step: Int, checkpoint: String)
    /// A weights file given where a training checkpoint of this package is needed.
    case notATrainingCheckpoint(path: String)
    /// A training checkpoint whose stored training state cannot be decoded.
    case unreadableTrainingState(path: String, reason: String)
    /// A training checkpoint whose stored training state holds a value no run could have written:
    /// `field` (as `TrainingState` names it, e.g. options.batchSize or epochsDone) is `value`.
    case invalidCheckpointState(path: String, field: String, value: String, allowed: String)
    /// The output folder cannot be created, or a file cannot be written into it.
    case outputNotWritable(path: String)
    /// A new run asked to write where another run's checkpoint or metrics are.
    case outputHoldsRun(path: String)
    /// A resumed run asked to write somewhere other than its checkpoint's folder.
    case resumeElsewhere(checkpoint: String, outputDir: String)
    /// A resumed run asked for a total of epochs it has already trained.
    case epochsAlreadyDone(requested: Int, done: Int, checkpoint: String)
    /// A predicted label map and its ground truth of different pixel counts.
    case labelMapMismatch(predicted: Int, labelled: Int)
    /// A segmentation dataset given to a classifier.
    case segmentationDataForClassifier(dataset: String)
    /// An image-classification dataset given to a segmentation model.
    case classificationDataForSegmentor(dataset: String)
    /// A study asked to write its results where another run of it left its own.
    case outputHoldsStudy(path: String)

    /// One line saying why the run cannot start or go on, and what to do.
    public var description: String {
        switch self {
        case let .invalidOption(name, value, allowed):
            return "training option \(name) is \(abbreviated(value)); allowed: \(allowed)"
        case let .unknownDataset(name, valid):
            return "unknown dataset '\(abbreviated(name))'; available: \(valid.joined(separator: ", "))"
        case let .missingDataPath(dataset):
            return "dataset \(abbreviated(dataset)) is read from a folder, and none was given"
        case let .classCountMismatch(dataset, datasetClasses, modelClasses):
            return "dataset \(abbreviated(dataset)) has \(datasetClasses) classes; the model has \(modelClasses)"
        case let .imageShapeMismatch(dataset, found, expected):
            return "dataset \(abbreviated(dataset)) has images of \(describe(shape: found)); the model takes \(describe(shape: expected))"
        case let .oddBatchForMixup(batchSize):
            return "mixup and cutmix need an even batch size (got \(batchSize))"
        case let .batchLargerThanDataset(batchSize, processes, images):
            return "batch size \(batchSize) × \(processes) process(es) is larger than the \(images) training images"
        case let .dyvmWithDropPath(rate):
            return "DyVM training runs without drop path (the official scripts pass 0; got \(rate))"
        case let .nonFiniteLoss(value, epoch, step, checkpoint):
            return "loss is \(value) at epoch \(epoch), step \(step); stopping. The last good checkpoint (\(abbreviated(checkpoint)), after epoch \(epoch - 1)) is untouched"
        case let .notATrainingCheckpoint(path):
            return "\(abbreviated(path)): not a training checkpoint (no training_state in its metadata); weights alone can only start a fine-tuning run"
        case let .unreadableTrainingState(path, reason):
            return "\(abbreviated(path)): unreadable training state: \(abbreviated(reason))"
        case let .invalidCheckpointState(path, field, value, allowed):
            return "\(abbreviated(path)): stored training state \(field) is \(abbreviated(value)); allowed: \(allowed)"
        case let .outputNotWritable(path):
            return "\(abbreviated(path)): cannot create the output folder or write a file in it"
        case let .outputHoldsRun(path):
            return "\(abbreviated(path)) already holds a run (checkpoint or metrics); continue it with resume, choose another output folder, or overwrite it explicitly"
        case let .resumeElsewhere(checkpoint, outputDir):
            return "a resumed run continues in its own folder: \(abbreviated(checkpoint)) is not in \(abbreviated(outputDir))"
        case let .labelMapMismatch(predicted, labelled):
            return "a prediction of \(predicted) pixels against a label map of \(labelled)"
        case let .segmentationDataForClassifier(dataset):
            return "\(dataset) labels pixels; train or evaluate it with a segmentation model (see `models`)"
        case let .classificationDataForSegmentor(dataset):
            return "\(dataset) labels whole images; a segmentation model needs digit-scenes, ade20k or segfolder"
        case let .epochsAlreadyDone(requested, done, checkpoint):
            return "\(abbreviated(checkpoint)) has already trained \(done) epochs; a schedule of \(requested) epochs would not run any more"
        case let .outputHoldsStudy(path):
            return "\(abbreviated(path)) already exists (another study's results); choose another output folder or overwrite it explicitly"
        }
    }
}
