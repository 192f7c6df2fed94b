import CMPI
import Foundation
import MambaTensor

/// The processes of a data-parallel run, over MPI (Open MPI). A process started by `mpirun`
/// joins MPI_COMM_WORLD; any other process is a world of one and never touches MPI, so the
/// single-process path needs no MPI runtime.
public final class Distributed: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let usesMPI: Bool
    /// Seconds spent in gradient allreduces since the last reset.
    public private(set) var allreduceSeconds = 0.0

    public static var world: Distributed {
        lock.lock(); defer { lock.unlock() }
        if let w = shared { return w }
        let w = Distributed()
        shared = w
        return w
    }
    /// The world, if something has asked for it (an error path must not start MPI).
    public static var started: Distributed? { lock.lock(); defer { lock.unlock() }; return shared }
    nonisolated(unsafe) private static var shared: Distributed?
    private static let lock = NSLock()

    private init() {
        let env = ProcessInfo.processInfo.environment
        guard env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil else {
            rank = 0; size = 1; usesMPI = false
            return
        }
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(vm_mpi_comm_world(), &r)
        MPI_Comm_size(vm_mpi_comm_world(), &s)
        rank = Int(r); size = Int(s); usesMPI = true
    }

    public var isLeader: Bool { rank == 0 }

    /// In place: every rank ends with the element-wise sum over ranks.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard usesMPI, size > 1, count > 0 else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        MPI_Allreduce(vm_mpi_in_place(), values, Int32(count), vm_mpi_float(), vm_mpi_sum(), vm_mpi_comm_world())
        allreduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    /// Sum over ranks of a few doubles (metrics).
    public func sum(_ values: [Double]) -> [Double] {
        guard usesMPI, size > 1 else { return values }
        var v = values
        v.withUnsafeMutableBufferPointer { p in
            _ = MPI_Allreduce(vm_mpi_in_place(), p.baseAddress, Int32(p.count), vm_mpi_double(), vm_mpi_sum(), vm_mpi_comm_world())
        }
        return v
    }

    /// Rank 0's values on every rank.
    public func broadcast(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard usesMPI, size > 1, count > 0 else { return }
        MPI_Bcast(values, Int32(count), vm_mpi_float(), 0, vm_mpi_comm_world())
    }

    /// Averages the gradients of `parameters` over ranks, in buckets of about 4 MiB packed into
    /// one buffer (one allreduce per bucket, as DDP's buckets).
    public func averageGradients(_ parameters: [Tensor]) {
        guard usesMPI, size > 1 else { return }
        let bucket = 1 << 20
        var i = 0
        while i < parameters.count {
            var group: [Tensor] = [], n = 0
            while i < parameters.count && (group.isEmpty || n + parameters[i].count <= bucket) {
                group.append(parameters[i]); n += parameters[i].count; i += 1
            }
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { buffer.deallocate() }
            var offset = 0
            for p in group {
                let g = p.gradBuffer()
                (buffer + offset).update(from: g.data, count: p.count)
                offset += p.count
            }
            sum(buffer, count: n)
            let scale = 1 / Float(size)
            offset = 0
            for p in group {
                let g = p.gradBuffer()
                for k in 0..<p.count { g.data[k] = buffer[offset + k] * scale }
                offset += p.count
            }
        }
    }

    public func resetTimers() { allreduceSeconds = 0 }

    /// Waits for every rank.
    public func barrier() {
        if usesMPI && size > 1 { MPI_Barrier(vm_mpi_comm_world()) }
    }

    /// Seconds one allreduce of `count` floats takes with every rank already waiting (the
    /// network's share, without the time a rank spends waiting for slower ones).
    public func measureAllreduce(count: Int, repeats: Int = 5) -> Double {
        guard usesMPI, size > 1 else { return 0 }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        var best = Double.infinity
        for _ in 0..<repeats {
            barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            MPI_Allreduce(vm_mpi_in_place(), buffer, Int32(count), vm_mpi_float(), vm_mpi_sum(), vm_mpi_comm_world())
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return best
    }

    /// Ends MPI cleanly after a successful run.
    public func finish() {
        if usesMPI { MPI_Finalize() }
    }

    /// Stops every rank at once (the others may be waiting in a collective).
    public func abort(code: Int32) {
        if usesMPI { MPI_Abort(vm_mpi_comm_world(), code) }
    }
}
