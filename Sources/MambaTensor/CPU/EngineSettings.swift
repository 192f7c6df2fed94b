#if canImport(CBLAS)
import CBLAS
#endif
import Foundation

/// The process-wide settings the engine works best under, applied only when the program asks
/// (`configure`, which the public `Runtime.configure(threads:)` calls): importing or loading
/// changes nothing outside this package.
///
/// - BLAS on one thread. OpenBLAS's threaded split changes the last bits of a product with its
///   thread count, so once it is single-threaded `gemm` cuts each product into blocks whose edges
///   depend on the shape only and shares them out itself: the same bits for any thread count. Its
///   pool then never wakes, so its idle workers no longer spin on the cores our kernels run on.
///   Until then `gemm` makes one BLAS call per product and BLAS threads it as the host set it up.
/// - glibc's malloc keeps blocks up to 1 GiB in the heap instead of fresh mmap'd pages, which fault
///   in again on every use (kernels' scratch buffers, hundreds of KiB per call).
package enum EngineSettings {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var blocksProducts = false

    /// True once BLAS runs on one thread and `gemm` splits products itself.
    package static var splitsProducts: Bool { lock.lock(); defer { lock.unlock() }; return blocksProducts }

    package static func configure(threads: Int) {
        lock.lock(); defer { lock.unlock() }
        Parallel.threads = threads
        if !blocksProducts {
            #if canImport(CBLAS)
            openblas_set_num_threads(1)
            #endif
            #if canImport(Glibc)
            _ = glibcMallopt(-3, 1 << 30)  // M_MMAP_THRESHOLD
            _ = glibcMallopt(-1, 1 << 30)  // M_TRIM_THRESHOLD
            #endif
            blocksProducts = true
        }
    }
}

#if canImport(Glibc)
// glibc's mallopt (malloc.h is not part of the Glibc module).
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
