import Foundation

/// How many threads kernels use; `--threads` sets it. Results are the same bits for any number.
package enum Parallel {
    package static var defaultThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// The most threads allowed: eight per core. More only adds switching, and each thread that
    /// calls BLAS keeps a packing buffer of its own.
    package static var maxThreads: Int { 8 * defaultThreads }

    /// Kernels run on this many threads: the caller's plus `threads - 1` workers started here.
    /// A value outside 1...maxThreads is clamped to it.
    package static var threads: Int {
        get { WorkerPool.shared.width }
        set { WorkerPool.shared.resize(width: min(max(1, newValue), maxThreads)) }
    }
}

/// Runs `body` over contiguous chunks of `0..<n`, one chunk per thread (the ggml split:
/// `(n + nth - 1) / nth` wide). Chunks never overlap, so kernels write without locks.
/// `grain` is the smallest amount of work worth a thread. A call made while the workers are busy
/// (from inside a chunk, or from a second thread) runs its chunks in turn on its own thread.
@inline(__always)
package func parallelFor(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    let nth = min(Parallel.threads, max(1, n / max(grain, 1)))
    if nth <= 1 || n <= 1 {
        if n > 0 { body(0..<n) }
        return
    }
    let chunk = (n + nth - 1) / nth
    withoutActuallyEscaping(body) { body in
        let run = { (i: Int) in
            let lo = i * chunk
            let hi = min(n, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
        if !WorkerPool.shared.run(width: nth, run) {
            for i in 0..<nth { run(i) }
        }
    }
}

/// A fixed set of worker threads for `parallelFor`. Dispatch's pool was used before; under CPU
/// contention it starts extra threads, and since every thread that calls single-threaded
/// OpenBLAS keeps its own packing buffer (tens of MiB), peak memory grew with them. Here the
/// threads that run kernels are the caller and `width - 1` workers, always the same ones.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(width: Parallel.defaultThreads)

    private let condition = NSCondition()
    // Everything below is guarded by `condition`.
    private var workers = 0            // running workers, of the current epoch
    private var epoch = 0              // bumped by each resize; workers of older epochs exit
    private var generation = 0         // bumped for each job and each resize
    private var job: ((Int) -> Void)?  // runs chunk i
    private var jobWidth = 0
    private var pending = 0            // workers yet to finish the current job
    private var busy = false

    private init(width: Int) { resize(width: width) }

    var width: Int {
        condition.lock(); defer { condition.unlock() }
        return workers + 1
    }

    /// Replaces the workers so that `width` threads run kernels. Waits for a running job.
    func resize(width: Int) {
        condition.lock(); defer { condition.unlock() }
        while busy { condition.wait() }
        if width - 1 == workers && epoch > 0 { return }
        epoch += 1
        generation += 1
        workers = width - 1
        for index in 1..<max(width, 1) {
            let (epoch, generation) = (epoch, generation)
            let thread = Thread { self.work(index: index, epoch: epoch, from: generation) }
            thread.stackSize = 8 << 20
            thread.start()
        }
        condition.broadcast()   // the old workers exit
    }

    /// Runs `body(0)` here and `body(1..<width)` on workers; false (and nothing run) when the
    /// workers are taken or too few.
    func run(width: Int, _ body: (Int) -> Void) -> Bool {
        condition.lock()
        guard !busy, width - 1 <= workers else { condition.unlock(); return false }
        busy = true
        return withoutActuallyEscaping(body) { body in
            job = body
            jobWidth = width
            pending = workers
            generation += 1
            condition.broadcast()
            condition.unlock()

            body(0)

            condition.lock()
            while pending > 0 { condition.wait() }
            job = nil
            busy = false
            condition.broadcast()   // a resize may be waiting
            condition.unlock()
            return true
        }
    }

    private func work(index: Int, epoch: Int, from generation: Int) {
        var seen = generation
        condition.lock()
        while true {
            while self.generation == seen { condition.wait() }
            seen = self.generation
            if epoch != self.epoch { break }
            guard let job else { continue }
            let width = jobWidth
            condition.unlock()
            if index < width { job(index) }
            condition.lock()
            pending -= 1
            if pending == 0 { condition.broadcast() }
        }
        condition.unlock()
    }
}
