import ArgumentParser
import Foundation
import MambaTensor
import VisionMamba
import VisionMambaTraining

/// The `vision-mamba` command line. The executables call `main(joinWorld:)`: the single-process
/// one with no group, `vision-mamba-mpi` with the MPI one.
public struct VisionMambaCommand: ParsableCommand {
    public init() {}

    /// The release this source tree is, as `--version` prints it.
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "vision-mamba",
        abstract: "Run, benchmark and convert Vision Mamba (Vim) models.",
        version: VisionMambaCommand.version,
        subcommands: [Forward.self, Gradients.self, Train.self, Eval.self, Bench.self, Flops.self, Study.self, Predict.self, Features.self, Convert.self, Models.self])

    /// One place turns failures into the contract: usage errors keep argument-parser's own
    /// message and code; anything else is one line on stderr and exit code 1.
    package static func main(joinWorld: (() -> ProcessGroup?)? = nil) {
        CommandLineLogHandler.install()
        World.join = joinWorld
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if error is ExitCode || error is CleanExit || error is ValidationError || isParserError(error) {
                exit(withError: error)
            }
            // In a data-parallel run the others may be waiting on this rank: stop them all.
            if let world = World.started, world.size > 1 {
                FileHandle.standardError.write(Data("error: rank \(world.rank): \(message(for: error))\n".utf8))
                world.abort(code: 1)
            }
            FileHandle.standardError.write(Data("error: \(message(for: error))\n".utf8))
            Foundation.exit(1)
        }
    }

    /// The library's message, with the flag that fixes it where the library cannot name one.
    static func message(for error: Error) -> String {
        switch error as? TrainingError {
        case .outputHoldsRun(let path)?:
            return "\(path) already holds a run (checkpoint or metrics); pass --resume \(path) to continue it, --overwrite to replace it, or another --output-dir"
        case .notATrainingCheckpoint?:
            return "\(error); to start a new run from these weights, pass them to --finetune"
        case .epochsAlreadyDone?:
            return "\(error); pass a larger --epochs to extend it"
        default:
            return "\(error)"
        }
    }

    private static func isParserError(_ error: Error) -> Bool {
        String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
    }
}

/// `--threads N`, shared by every command that computes.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for kernels and BLAS (default: all cores; at most eight per core).")
    var threads: Int?

    func apply() {
        Runtime.configure(threads: threads ?? Runtime.defaultThreads)
    }

    func validate() throws {
        // More than Parallel.maxThreads would be clamped by the library: refused here, so that a
        // run never uses another thread count than the one it was given.
        if let threads, !(1...Parallel.maxThreads).contains(threads) {
            throw ValidationError("--threads must be in 1...\(Parallel.maxThreads) (eight per core on this machine; got \(threads))")
        }
    }
}
