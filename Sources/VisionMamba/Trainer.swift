import Foundation
import Logging
import VisionMambaModels
import VisionMambaTraining

/// Trains a classifier (the DeiT/Vim recipe, with Famba-V fusion or DyVM when its model has
/// them) or a segmentor (mmseg's iteration-based recipe), reporting through an async stream.
///
/// ```swift
/// var options = TrainOptions(model: try ModelZoo.config(named: "vim-digits"))
/// options.epochs = 10
/// let trainer = try Trainer(options, outputDirectory: URL(fileURLWithPath: "runs/digits"))
/// for try await event in trainer.run() {
///     if case .epochEnded(let metrics, _) = event { print(metrics.top1) }
/// }
/// ```
///
/// Every epoch (every evaluation, for segmentation) writes `checkpoint.safetensors`, which
/// ``Trainer/init(resuming:extendingTo:)`` continues bit for bit, and `best-checkpoint.safetensors`.
/// A new run refuses a folder that already holds one unless `overwrite` is set.
public final class Trainer: @unchecked Sendable {
    // @unchecked: the run it wraps belongs to one thread at a time: `init`'s, then the one
    // `run()` starts, which `relay.begin()` lets start once. What other threads read is either
    // set in `init` or kept by the relay under its lock.
    private enum Run {
        case classification(ClassificationTrainer)
        case segmentation(SegmentationTrainer)
    }
    private let job: Run
    private let relay: EventRelay
    // Debug level: a program that installs no log handler gets swift-log's default, which prints
    // info and above; the run's progress reaches it as events, its failure as the thrown error.
    private let logger = Logger(label: "vision-mamba.trainer")

    /// The run's folder: its checkpoints, `metrics.jsonl` and `learning-curve.svg`.
    public let outputDirectory: URL
    /// The model's name.
    public let modelName: String
    /// The model's parameter count.
    public let parameterCount: Int

    /// The best validation score so far: top-1 (%) for a classifier, mIoU (%) for a segmentor.
    /// Safe to read while the run goes on: it follows the run's events.
    public var bestScore: Double { relay.status.best }

    /// Where the run stands in its schedule: epochs for a classifier, iterations for a segmentor.
    /// Safe to read while the run goes on: it follows the run's events.
    public var progress: TrainingProgress { relay.status.progress }

    /// Whether the thread `run()` started has returned (tests wait on it after stopping a run).
    package var hasFinished: Bool { relay.hasFinished }

    /// A new classification run. `outputDirectory` nil: a fresh folder under `runs/` named from
    /// model, dataset and time. `finetune` starts from weights of another run or an official
    /// `.pth` (a head of another class count is replaced, `pos_embed` interpolated).
    public convenience init(_ options: TrainOptions, outputDirectory: URL? = nil, finetune: URL? = nil, overwrite: Bool = false) throws {
        try self.init(options, outputDirectory: outputDirectory, finetune: finetune, overwrite: overwrite,
                      interpolation: .official, world: SingleProcess())
    }

    /// A new segmentation run (see the classification initialiser for `outputDirectory`).
    public convenience init(_ options: SegmentationTrainOptions, outputDirectory: URL? = nil, overwrite: Bool = false) throws {
        try self.init(options, outputDirectory: outputDirectory, overwrite: overwrite, world: SingleProcess())
    }

    /// Continues the run whose checkpoint is `checkpoint` (or the folder holding it), with its
    /// stored settings, in its own folder. `extendingTo` lengthens its schedule (epochs or
    /// iterations).
    public convenience init(resuming checkpoint: URL, extendingTo length: Int? = nil) throws {
        try self.init(resuming: checkpoint, extendingTo: length, world: SingleProcess())
    }

    /// A classification run over the processes of `world` (the command line's data-parallel runs).
    package init(_ options: TrainOptions, outputDirectory: URL?, resume: URL? = nil, finetune: URL?, epochs: Int? = nil,
                 overwrite: Bool, interpolation: PositionEmbeddingInterpolation, world: any ProcessGroup) throws {
        let relay = EventRelay()
        let t = try ClassificationTrainer(
            options: options, outputDir: outputDirectory?.path, resume: resume?.path, finetune: finetune?.path, epochs: epochs,
            overwrite: overwrite, interpolation: interpolation, world: world, events: relay.send)
        relay.status = (TrainingProgress(done: t.state.epochsDone, total: t.options.epochs, unit: .epochs), t.state.bestTop1)
        (job, self.relay) = (.classification(t), relay)
        (self.outputDirectory, modelName, parameterCount) = (URL(fileURLWithPath: t.outputDir), t.options.model.name, t.model.parameterCount)
    }

    /// A segmentation run over the processes of `world`.
    package init(_ options: SegmentationTrainOptions, outputDirectory: URL?, resume: URL? = nil, iterations: Int? = nil,
                 overwrite: Bool, world: any ProcessGroup) throws {
        let relay = EventRelay()
        let t = try SegmentationTrainer(
            options: options, outputDir: outputDirectory?.path, resume: resume?.path, iterations: iterations,
            overwrite: overwrite, world: world, events: relay.send)
        relay.status = (TrainingProgress(done: t.state.iterationsDone, total: t.options.iterations, unit: .iterations), t.state.bestMIoU)
        (job, self.relay) = (.segmentation(t), relay)
        (self.outputDirectory, modelName, parameterCount) = (URL(fileURLWithPath: t.outputDir), t.options.model.name, t.model.parameterCount)
    }

    /// Resumes a classification or segmentation run over the processes of `world`.
    package convenience init(resuming checkpoint: URL, extendingTo length: Int?, world: any ProcessGroup) throws {
        if let stored = try SegmentationTrainer.storedState(checkpoint.path) {
            try self.init(stored.options, outputDirectory: nil, resume: checkpoint, iterations: length, overwrite: false, world: world)
        } else {
            let stored = try Checkpoint.trainingState(checkpoint.path)
            try self.init(stored.options, outputDirectory: nil, resume: checkpoint, finetune: nil, epochs: length, overwrite: false,
                          interpolation: .official, world: world)
        }
    }

    /// Starts the run on a thread of its own and streams its events: steps, epochs (or
    /// evaluations), checkpoints, notes. The stream ends when the run does, or with the error
    /// that stopped it. Ending the iteration early (or cancelling its task) stops the run before
    /// its next step; the last checkpoint stays as it was written. A trainer runs once.
    public func run() -> AsyncThrowingStream<TrainingEvent, any Error> {
        AsyncThrowingStream { continuation in
            guard relay.begin(continuation) else {
                continuation.finish(throwing: VisionMambaError.alreadyRunning)
                return
            }
            continuation.onTermination = { [relay] _ in relay.stop() }
            let job = UncheckedBox(self.job), relay = self.relay, logger = self.logger
            let thread = Thread {
                do {
                    switch job.value {
                    case .classification(let t): try t.run(shouldStop: relay.isStopped)
                    case .segmentation(let t): try t.run(shouldStop: relay.isStopped)
                    }
                    logger.debug("training finished", metadata: ["stopped early": "\(relay.isStopped())"])
                    continuation.finish()
                } catch {
                    logger.debug("training failed: \(error)")
                    continuation.finish(throwing: error)
                }
                relay.finish()
            }
            thread.stackSize = 16 << 20
            thread.name = "vision-mamba training"
            thread.start()
        }
    }
}

/// How far a run has come through its schedule.
public struct TrainingProgress: Sendable, Equatable, CustomStringConvertible {
    /// What a run's schedule counts.
    public enum Unit: String, Sendable {
        /// A classification run's passes over its dataset.
        case epochs
        /// A segmentation run's optimizer steps.
        case iterations
    }

    /// Epochs or iterations done (the checkpoint's, for a resumed run).
    public let done: Int
    /// The schedule's length.
    public let total: Int
    /// What `done` and `total` count.
    public let unit: Unit

    /// `done` of `total` epochs or iterations.
    public init(done: Int, total: Int, unit: Unit) {
        (self.done, self.total, self.unit) = (done, total, unit)
    }

    /// `12/30 epochs`.
    public var description: String { "\(done)/\(total) \(unit.rawValue)" }
}

/// Carries the run's events to the stream: those sent before `run()` (notes from resuming) wait
/// for it. Also carries the stop request back, and keeps the progress and best score the events
/// report, for readers on other threads.
private final class EventRelay: @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    private let lock = NSLock()
    private var current = (progress: TrainingProgress(done: 0, total: 0, unit: .epochs), best: 0.0)

    var status: (progress: TrainingProgress, best: Double) {
        get { lock.lock(); defer { lock.unlock() }; return current }
        set { lock.lock(); current = newValue; lock.unlock() }
    }
    private var continuation: AsyncThrowingStream<TrainingEvent, any Error>.Continuation?
    private var pending: [TrainingEvent] = []
    private var started = false, stopped = false, finished = false

    func send(_ event: TrainingEvent) {
        lock.lock(); defer { lock.unlock() }
        switch event {
        case let .epochEnded(m, epochs):
            current = (TrainingProgress(done: m.epoch + 1, total: epochs, unit: .epochs), max(current.best, m.top1))
        case let .evaluated(m):
            current = (TrainingProgress(done: m.iteration, total: current.progress.total, unit: .iterations), max(current.best, m.valMIoU))
        default: break
        }
        if let continuation { continuation.yield(event) } else { pending.append(event) }
    }

    /// Attaches the stream the first time; false after that.
    func begin(_ c: AsyncThrowingStream<TrainingEvent, any Error>.Continuation) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !started else { return false }
        started = true
        for event in pending { c.yield(event) }
        pending = []
        continuation = c
        return true
    }

    func stop() { lock.lock(); stopped = true; lock.unlock() }
    func finish() { lock.lock(); finished = true; lock.unlock() }
    var hasFinished: Bool { lock.lock(); defer { lock.unlock() }; return finished }
    func isStopped() -> Bool { lock.lock(); defer { lock.unlock() }; return stopped }
}

/// A value handed to the training thread, which is its only user from then on.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
