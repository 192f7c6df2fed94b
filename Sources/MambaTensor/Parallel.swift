import Dispatch
import Foundation

/// How many threads kernels use; `--threads` sets it. Results are the same bits for any number.
public enum Parallel {
    nonisolated(unsafe) private static var _threads = defaultThreads

    public static var defaultThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    public static var threads: Int {
        get { _threads }
        set {
            _threads = max(1, newValue)
        }
    }
}

/// Runs `body` over contiguous chunks of `0..<n`, one chunk per thread (the ggml split:
/// `(n + nth - 1) / nth` wide). Chunks never overlap, so kernels write without locks.
/// `grain` is the smallest amount of work worth a thread.
@inline(__always)
public func parallelFor(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    let nth = min(Parallel.threads, max(1, n / max(grain, 1)))
    if nth <= 1 || n <= 1 {
        if n > 0 { body(0..<n) }
        return
    }
    let chunk = (n + nth - 1) / nth
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: nth) { i in
            let lo = i * chunk
            let hi = min(n, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
    }
}
