import Dispatch
import Foundation
import CBLAS

/// How many threads kernels use; `--threads` sets it. OpenBLAS is told the same number.
public enum Parallel {
    nonisolated(unsafe) private static var _threads = defaultThreads

    public static var defaultThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    public static var threads: Int {
        get { _threads }
        set {
            _ = blasWorkersConfigured
            _threads = max(1, newValue)
            openblas_set_num_threads(Int32(_threads))
        }
    }

    /// OpenBLAS's idle workers spin for 2^28 cycles (about 0.1 s) after every call before they
    /// sleep, so right after each matrix product they took the cores our own kernels run on: with
    /// 2 threads the selective scan ran 1.5x slower than it should, and a training step 1.3x.
    /// 2^12 cycles still catches back-to-back BLAS calls. OpenBLAS reads OPENBLAS_THREAD_TIMEOUT
    /// when it loads, so it is set here, re-read and the workers restarted; a value the user set
    /// is kept.
    private static let blasWorkersConfigured: Void = {
        guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil else { return }
        setenv("OPENBLAS_THREAD_TIMEOUT", "12", 1)
        openblas_read_env()
        _ = blas_thread_shutdown_()
        _ = blas_thread_init()
    }()
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
