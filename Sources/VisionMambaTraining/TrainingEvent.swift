import Logging

/// What a training run reports as it goes. The library never prints: the command line's progress
/// bar is one consumer of these events, a test or an app can be another. Only the leading rank
/// of a data-parallel run reports.
public enum TrainingEvent: Sendable {
    /// A note worth telling the user (resuming on another number of processes, which tensors a
    /// fine-tune initialised afresh, which arm of a study starts).
    case note(String)
    /// Image files of the dataset folder `path` left out because they cannot be read
    /// (`TrainOptions.skipBadImages`); once per folder with any, before training starts.
    case skippedImages(path: String, count: Int)
    case epochStarted(epoch: Int, epochs: Int, steps: Int)
    /// After each optimiser step: the running mean loss of the epoch so far.
    case step(epoch: Int, epochs: Int, step: Int, steps: Int, loss: Double, lr: Double, imagesPerSecond: Double)
    case epochEnded(EpochMetrics, epochs: Int)
    /// A segmentation run's optimiser step: the running mean loss since the last evaluation.
    case iteration(iteration: Int, iterations: Int, loss: Double, lr: Double, imagesPerSecond: Double)
    /// A segmentation run's evaluation (every `evalInterval` iterations).
    case evaluated(SegmentationEvalMetrics)
    /// A checkpoint was written: after each epoch (classification) or evaluation (segmentation),
    /// and again as `best-checkpoint.safetensors` when the score improved.
    case checkpointSaved(path: String)
}

extension TrainingEvent {
    /// The events as log records too, for programs that collect logs rather than consume
    /// events: steps at trace level, the rest at debug (swift-log's default handler shows
    /// neither, so a program that installs none sees nothing).
    static let logger = Logger(label: "vision-mamba.training")

    func log() {
        switch self {
        case let .step(epoch, _, step, steps, loss, _, _):
            Self.logger.trace("step", metadata: ["epoch": "\(epoch + 1)", "step": "\(step)/\(steps)", "loss": "\(loss)"])
        case let .iteration(iteration, iterations, loss, _, _):
            Self.logger.trace("iteration", metadata: ["iteration": "\(iteration)/\(iterations)", "loss": "\(loss)"])
        case .note(let text): Self.logger.debug("\(text)")
        case let .skippedImages(path, count): Self.logger.debug("skipped unreadable images", metadata: ["path": "\(path)", "count": "\(count)"])
        case let .epochStarted(epoch, epochs, _): Self.logger.debug("epoch started", metadata: ["epoch": "\(epoch + 1)/\(epochs)"])
        case let .epochEnded(m, epochs):
            Self.logger.debug("epoch ended", metadata: ["epoch": "\(m.epoch + 1)/\(epochs)", "top1": "\(m.top1)", "val_loss": "\(m.valLoss)"])
        case .evaluated(let m): Self.logger.debug("evaluated", metadata: ["iteration": "\(m.iteration)", "mIoU": "\(m.valMIoU)"])
        case .checkpointSaved(let path): Self.logger.debug("checkpoint saved", metadata: ["path": "\(path)"])
        }
    }
}
