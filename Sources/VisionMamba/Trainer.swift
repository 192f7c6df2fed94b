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
    // `run()` starts, which `relay.begin()` lets start once.
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
    public var outputDirectory: URL {
        switch job {
        case .classification(let t): return URL(fileURLWithPath: t.outputDir)
        case .segmentation(let t): return URL(fileURLWithPath: t.outputDir)
        }
    }

    /// The model's name.
    public var modelName: String {
        switch job {
        case .classification(let t): return t.options.model.name
        case .segmentation(let t): return t.options.model.name
        }
    }

    /// The model's parameter count.
    public var parameterCount: Int {
        switch job {
        case .classification(let t): return t.model.parameterCount
        case .segmentation(let t): return t.model.parameterCount
        }
    }

    /// The best validation score so far: top-1 (%) for a classifier, mIoU (%) for a segmentor.
    public var bestScore: Double {
        switch job {
        case .classification(let t): return t.state.bestTop1
        case .segmentation(let t): return t.state.bestMIoU
        }
    }

    /// Whether the thread `run()` started has returned (tests wait on it after stopping a run).
    package var hasFinished: Bool { relay.hasFinished }

    /// Where the run stands in its schedule: epochs for a classifier, iterations for a segmentor.
    public var progress: TrainingProgress {
        switch job {
        case .classification(let t): return TrainingProgress(done: t.state.epochsDone, total: t.options.epochs, unit: .epochs)
        case .segmentation(let t): return TrainingProgress(done: t.state.iterationsDone, total: t.options.iterations, unit: .iterations)
        }
    }

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
        job = .classification(try ClassificationTrainer(
            options: options, outputDir: outputDirectory?.path, resume: resume?.path, finetune: finetune?.path, epochs: epochs,
            overwrite: overwrite, interpolation: interpolation, world: world, events: relay.send))
        self.relay = relay
    }

    /// A segmentation run over the processes of `world`.
    package init(_ options: SegmentationTrainOptions, outputDirectory: URL?, resume: URL? = nil, iterations: Int? = nil,
                 overwrite: Bool, world: any ProcessGroup) throws {
        let relay = EventRelay()
        job = .segmentation(try SegmentationTrainer(
            options: options, outputDir: outputDirectory?.path, resume: resume?.path, iterations: iterations,
            overwrite: overwrite, world: world, events: relay.send))
        self.relay = relay
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

    /// `12/30 epochs`.
    public var description: String { "\(done)/\(total) \(unit.rawValue)" }
}

/// Carries the run's events to the stream: those sent before `run()` (notes from resuming) wait
/// for it. Also carries the stop request back.
private final class EventRelay: @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    private let lock = NSLock()
    private var continuation: AsyncThrowingStream<TrainingEvent, any Error>.Continuation?
    private var pending: [TrainingEvent] = []
    private var started = false, stopped = false, finished = false

    func send(_ event: TrainingEvent) {
        lock.lock(); defer { lock.unlock() }
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
