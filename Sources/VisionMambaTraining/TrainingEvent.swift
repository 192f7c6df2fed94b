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
}
