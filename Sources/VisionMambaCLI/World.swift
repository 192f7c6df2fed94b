import Foundation
import VisionMambaTraining

/// The process group of this run, joined on first use: only `train` and `bench --train` ask,
/// so no other command ever starts MPI.
enum World {
    /// Set once by the executable before parsing: how to join mpirun's world (nil: this build
    /// runs one process).
    nonisolated(unsafe) static var join: (() -> ProcessGroup?)?
    nonisolated(unsafe) private(set) static var started: ProcessGroup?

    static func current() throws -> ProcessGroup {
        if let started { return started }
        let group: ProcessGroup
        if let joined = join?() {
            group = joined
        } else if let size = launchedSize, size > 1 {
            throw WorldError.noMPI(processes: size)
        } else {
            group = SingleProcess()
        }
        started = group
        return group
    }

    /// The number of processes mpirun started, when it started this one (Open MPI's variable).
    private static var launchedSize: Int? {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) }
    }
}

enum WorldError: Error, CustomStringConvertible {
    case noMPI(processes: Int)

    var description: String {
        switch self {
        case .noMPI(let n):
            return "started as one of \(n) processes, but vision-mamba runs one process: run vision-mamba-mpi under mpirun"
        }
    }
}
