import CMPI
import Dispatch
import Foundation
import VisionMambaTraining

/// The processes of a data-parallel run over MPI (Open MPI): every rank of MPI_COMM_WORLD.
/// Only a process started by `mpirun` joins; the single-process build of the command line
/// never links this module.
package final class MPIProcessGroup: ProcessGroup, @unchecked Sendable {
    package let rank: Int
    package let size: Int
    // Written only by the training thread (MPI is initialised THREAD_FUNNELED).
    nonisolated(unsafe) package private(set) var allreduceSeconds = 0.0

    /// Whether this process was started by mpirun (Open MPI or PMIx sets these).
    package static var isLaunchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// Joins MPI_COMM_WORLD; nil when the process was not started by mpirun.
    package static func start() -> MPIProcessGroup? {
        isLaunchedByMPI ? MPIProcessGroup() : nil
    }

    private init() {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(vm_mpi_comm_world(), &r)
        MPI_Comm_size(vm_mpi_comm_world(), &s)
        rank = Int(r)
        size = Int(s)
    }

    package func resetTimers() { allreduceSeconds = 0 }

    package func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard size > 1, count > 0 else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        MPI_Allreduce(vm_mpi_in_place(), values, Int32(count), vm_mpi_float(), vm_mpi_sum(), vm_mpi_comm_world())
        allreduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    package func sum(_ values: [Double]) -> [Double] {
        guard size > 1 else { return values }
        var v = values
        v.withUnsafeMutableBufferPointer { p in
            _ = MPI_Allreduce(vm_mpi_in_place(), p.baseAddress, Int32(p.count), vm_mpi_double(), vm_mpi_sum(), vm_mpi_comm_world())
        }
        return v
    }

    package func broadcast(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard size > 1, count > 0 else { return }
        MPI_Bcast(values, Int32(count), vm_mpi_float(), 0, vm_mpi_comm_world())
    }

    package func barrier() {
        if size > 1 { MPI_Barrier(vm_mpi_comm_world()) }
    }

    package func finish() { MPI_Finalize() }

    package func abort(code: Int32) { MPI_Abort(vm_mpi_comm_world(), code) }
}
