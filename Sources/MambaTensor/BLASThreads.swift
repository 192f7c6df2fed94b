#if canImport(CBLAS)
import CBLAS
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The BLAS library's own thread pool, told the same thread count as our kernels.
/// Accelerate (Apple platforms) sizes its pool itself; OpenBLAS is told.
enum BLASThreads {
    static func set(_ threads: Int) {
        #if canImport(CBLAS)
        _ = idleSpinShortened
        openblas_set_num_threads(Int32(threads))
        #endif
    }

    #if canImport(CBLAS)
    /// OpenBLAS's idle workers spin for 2^28 cycles (about 0.1 s) after every call before they
    /// sleep, so right after each matrix product they took the cores our own kernels run on: with
    /// 2 threads the selective scan ran 1.5x slower than it should, and a training step 1.3x.
    /// 2^12 cycles still catches back-to-back BLAS calls. OpenBLAS reads OPENBLAS_THREAD_TIMEOUT
    /// when it loads, so it is set here, re-read and the workers restarted; a value the user set
    /// is kept. The functions that re-read and restart are internal to OpenBLAS's pthreads build,
    /// so they are looked up, and skipped where a build does not export them.
    private static let idleSpinShortened: Void = {
        guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil,
              let readEnv = symbol("openblas_read_env", as: (@convention(c) () -> Void).self),
              let shutdown = symbol("blas_thread_shutdown_", as: (@convention(c) () -> Int32).self),
              let initialise = symbol("blas_thread_init", as: (@convention(c) () -> Int32).self)
        else { return }
        setenv("OPENBLAS_THREAD_TIMEOUT", "12", 1)
        readEnv()
        _ = shutdown()
        _ = initialise()
    }()

    private static func symbol<F>(_ name: String, as type: F.Type) -> F? {
        guard let process = dlopen(nil, RTLD_NOW), let address = dlsym(process, name) else { return nil }
        return unsafeBitCast(address, to: type)
    }
    #endif
}
