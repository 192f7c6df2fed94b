import ArgumentParser
import Foundation
import MambaTensor
import VisionMamba
import VisionMambaModels
import VisionMambaTraining

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a Vim model (the DeiT/Vim recipe); checkpoints, metrics.jsonl and a learning-curve SVG go to --output-dir.")

    @OptionGroup var recipe: RecipeOptions
    @Option(name: .customLong("output-dir"), help: "Folder for checkpoints, metrics.jsonl and the plot (default: a new runs/<model>-<dataset>-<time>); one that holds a run is refused without --overwrite.")
    var outputDir: String?
    @Flag(help: "Let a new run replace the run already in --output-dir.") var overwrite = false
    @Option(help: "A checkpoint, or a run folder meaning its latest checkpoint, to continue from; the run continues in that folder.") var resume: String?
    @Option(help: "Weights to fine-tune from (e.g. an official .pth): the head is replaced when the class count differs and pos_embed is interpolated to the new grid.")
    var finetune: String?
    @Option(name: .customLong("pos-embed-interp"), help: "pos_embed interpolation for --finetune: official (row 0 as class row, as main.py) or cls-aware.")
    var posEmbedInterp: PositionEmbeddingInterpolation = .official
    @OptionGroup var fusionOptions: FusionOptions
    @OptionGroup var dyvmOptions: DyVMOptions
    @OptionGroup var dyvmLossOptions: DyVMLossOptions
    @OptionGroup var segmentationOptions: SegmentationOptions
    @Option(name: .customLong("log-interval"), help: "When the output is not a terminal, print a progress line every N steps (default: about ten per epoch).")
    var logInterval: Int?
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if let logInterval, logInterval < 1 { throw ValidationError("--log-interval must be at least 1") }
    }

    func run() throws {
        threadOptions.apply()
        let storedSegmentation = try resume.flatMap(SegmentationTrainer.storedState)
        if storedSegmentation != nil || recipe.dataSet?.isSegmentation == true || recipe.model.map(ModelZoo.isSegmentation) == true {
            return try runSegmentation(resumed: storedSegmentation)
        }
        if segmentationOptions.isSet { throw ValidationError("--iterations and the other segmentation flags need a segmentation model (see `vision-mamba models`)") }
        let options: TrainOptions
        if let resume {
            // A resumed run keeps its settings: a flag that would change them is refused by name.
            options = try Checkpoint.trainingState(resume).options
            var conflicts = try recipe.conflicts(with: options)
            if let dataPath = recipe.dataPath, dataPath != options.dataPath { conflicts.append("--data-path") }
            if let finetune, finetune != options.finetune { conflicts.append("--finetune") }
            if fusionOptions.isSet { conflicts.append("--fusion-*") }
            if dyvmOptions.isSet || dyvmLossOptions.isSet { conflicts.append("the DyVM flags") }
            guard conflicts.isEmpty else {
                throw ValidationError("--resume continues \(resume) with its stored settings; remove \(conflicts.joined(separator: ", ")) (only --epochs may change, to extend the schedule)")
            }
        } else {
            options = try recipe.makeOptions { config in
                if let fusion = try fusionOptions.make(depth: config.depth) { config.fusion = fusion }
                config = try dyvmLossOptions.apply(to: dyvmOptions.apply(to: config))
            }
        }
        let world = try World.current()
        let printer = ProgressPrinter(logInterval: logInterval)
        let trainer = try Trainer(options, outputDirectory: outputDir.map(URL.init(fileURLWithPath:)), resume: resume.map(URL.init(fileURLWithPath:)),
                                  finetune: finetune.map(URL.init(fileURLWithPath:)), epochs: resume == nil ? nil : recipe.epochs,
                                  overwrite: overwrite, interpolation: posEmbedInterp, world: world)
        let outputDir = trainer.outputDirectory.relativePath
        if world.isLeader {
            announce(trainer, dataset: options.dataset, world: world)
        }
        var history: [EpochMetrics] = []
        try drain(trainer.run()) { event in
            if case .epochEnded(let m, _) = event { history.append(m) }
            printer.handle(event)
        }
        if world.isLeader {
            if let last = history.last {
                print(String(format: "done: top-1 %.2f%% (best %.2f%%)", last.top1, trainer.bestScore))
            }
            print("checkpoint: \(outputDir)/checkpoint.safetensors (best: \(outputDir)/best-checkpoint.safetensors)")
            print("metrics: \(outputDir)/metrics.jsonl, plot: \(outputDir)/learning-curve.svg")
        }
        world.finish()
    }

    /// mmseg's iteration-based recipe for a segmentation model.
    func runSegmentation(resumed: SegmentationTrainingState?) throws {
        let options: SegmentationTrainOptions
        if let resumed {
            var conflicts = recipe.settings.map(\.flag)
            for (flag, given) in [("--model", recipe.model != nil), ("--data-set", recipe.dataSet != nil), ("--num-classes", recipe.numClasses != nil),
                                  ("--epochs", recipe.epochs != nil)] where given { conflicts.append(flag) }
            let s = segmentationOptions
            if s.evalInterval != nil || s.evalImages != nil || s.layerDecay != nil || s.layerDecayRate != nil || s.warmupIters != nil || s.slideStride != nil {
                conflicts.append("the segmentation flags other than --iterations")
            }
            if fusionOptions.isSet || dyvmOptions.isSet || dyvmLossOptions.isSet { conflicts.append("the Famba-V and DyVM flags") }
            if finetune != nil { conflicts.append("--finetune") }
            guard conflicts.isEmpty else {
                throw ValidationError("--resume continues \(resume!) with its stored settings; remove \(conflicts.joined(separator: ", ")) (only --iterations may change, to extend the schedule)")
            }
            options = resumed.options
        } else {
            if fusionOptions.isSet || dyvmOptions.isSet || dyvmLossOptions.isSet {
                throw ValidationError("Famba-V and DyVM flags apply to classification models")
            }
            options = try segmentationOptions.makeOptions(recipe: recipe, finetune: finetune)
        }
        let world = try World.current()
        let printer = ProgressPrinter(logInterval: logInterval)
        let trainer = try Trainer(options, outputDirectory: outputDir.map(URL.init(fileURLWithPath:)), resume: resume.map(URL.init(fileURLWithPath:)),
                                  iterations: resume == nil ? nil : segmentationOptions.iterations, overwrite: overwrite, world: world)
        let outputDir = trainer.outputDirectory.relativePath
        if world.isLeader {
            announce(trainer, dataset: options.dataset, world: world)
        }
        var history: [SegmentationEvalMetrics] = []
        try drain(trainer.run()) { event in
            if case .evaluated(let m) = event { history.append(m) }
            printer.handle(event)
        }
        if world.isLeader {
            if let last = history.last {
                print(String(format: "done: mIoU %.2f%% (best %.2f%%), aAcc %.2f%%, mAcc %.2f%%", last.valMIoU, trainer.bestScore, last.valAAcc, last.valMAcc))
            }
            print("checkpoint: \(outputDir)/checkpoint.safetensors (best: \(outputDir)/best-checkpoint.safetensors)")
            print("metrics: \(outputDir)/metrics.jsonl, plot: \(outputDir)/learning-curve.svg")
        }
        world.finish()
    }

    /// The run's first line: what trains, from where, on how many threads, into which folder.
    private func announce(_ trainer: Trainer, dataset: DatasetKind, world: ProcessGroup) {
        let processes = world.size > 1 ? "\(world.size) processes × " : ""
        let progress = trainer.progress, unit = progress.unit.rawValue
        print("training \(trainer.modelName) (\(trainer.parameterCount) parameters) on \(dataset.rawValue) for \(progress.total) \(unit), from \(unit.dropLast()) \(progress.done + 1); \(processes)\(Runtime.threads) threads; writing to \(trainer.outputDirectory.relativePath)")
        fflush(stdout)
    }
}

/// Runs the consumer of an async stream to its end from synchronous code: the commands run on
/// the main thread, outside Swift concurrency.
func drain<Element>(_ stream: AsyncThrowingStream<Element, Error>, _ body: @escaping (Element) -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    var failure: Error?
    Task {
        do { for try await element in stream { body(element) } } catch { failure = error }
        done.signal()
    }
    done.wait()
    if let failure { throw failure }
}
