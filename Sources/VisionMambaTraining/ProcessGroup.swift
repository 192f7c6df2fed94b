import Dispatch
import MambaTensor

/// The processes of a data-parallel run, as the trainer sees them: a rank among `size`, sums
/// and broadcasts over all of them. A single process is a group of one (`SingleProcess`); the
/// MPI implementation lives in VisionMambaDistributed, so nothing here links an MPI runtime.
package protocol ProcessGroup: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// Seconds spent in gradient sums since the last `resetTimers()`.
    var allreduceSeconds: Double { get }
    func resetTimers()
    /// In place: every rank ends with the element-wise sum over ranks.
    func sum(_ values: UnsafeMutablePointer<Float>, count: Int)
    /// Sum over ranks of a few doubles (metrics).
    func sum(_ values: [Double]) -> [Double]
    /// Rank 0's values on every rank.
    func broadcast(_ values: UnsafeMutablePointer<Float>, count: Int)
    /// Waits for every rank.
    func barrier()
    /// Ends the group cleanly after a successful run.
    func finish()
    /// Stops every rank at once (the others may be waiting in a collective).
    func abort(code: Int32)
}

extension ProcessGroup {
    package var isLeader: Bool { rank == 0 }

    /// Averages the gradients of `parameters` over ranks, in buckets of about 4 MiB packed into
    /// one buffer (one sum per bucket, as DDP's buckets).
    package func averageGradients(_ parameters: [Tensor]) {
        guard size > 1 else { return }
        let bucket = 1 << 20
        var i = 0
        while i < parameters.count {
            var group: [Tensor] = [], n = 0
            while i < parameters.count && (group.isEmpty || n + parameters[i].count <= bucket) {
                group.append(parameters[i]); n += parameters[i].count; i += 1
            }
            var buffer: [Float] = []
            buffer.reserveCapacity(n)
            for p in group { buffer += p.gradBuffer().array }
            buffer.withUnsafeMutableBufferPointer { sum($0.baseAddress!, count: n) }
            let scale = 1 / Float(size)
            var offset = 0
            for p in group {
                p.gradBuffer().write(buffer[offset..<(offset + p.count)].map { $0 * scale })
                offset += p.count
            }
        }
    }

    /// Rank 0's values of `t` on every rank.
    func broadcast(_ t: Tensor) {
        guard t.count > 0 else { return }
        var values = t.array
        values.withUnsafeMutableBufferPointer { broadcast($0.baseAddress!, count: $0.count) }
        t.write(values)
    }

    /// Seconds one sum of `count` floats takes with every rank already waiting (the network's
    /// share, without the time a rank spends waiting for slower ones).
    package func measureAllreduce(count: Int, repeats: Int = 5) -> Double {
        guard size > 1 else { return 0 }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        var best = Double.infinity
        for _ in 0..<repeats {
            barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            sum(buffer, count: count)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return best
    }
}

/// A run of one process: every collective is the identity.
package final class SingleProcess: ProcessGroup {
    package init() {}
    package var rank: Int { 0 }
    package var size: Int { 1 }
    package var allreduceSeconds: Double { 0 }
    package func resetTimers() {}
    package func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {}
    package func sum(_ values: [Double]) -> [Double] { values }
    package func broadcast(_ values: UnsafeMutablePointer<Float>, count: Int) {}
    package func barrier() {}
    package func finish() {}
    package func abort(code: Int32) {}
}
