#if canImport(CBLAS)
import CBLAS
#endif

/// BLAS runs on one thread inside our own blocks (see `gemm`): OpenBLAS's threaded split changes
/// the last bits of a product with the thread count. Its pool then never wakes, so its idle
/// workers no longer spin on the cores our kernels run on either. Accelerate (Apple platforms)
/// is called the same way, one block per call.
enum BLASThreads {
    static func useOne() { _ = singleThreaded }

    private static let singleThreaded: Void = {
        #if canImport(CBLAS)
        openblas_set_num_threads(1)
        #endif
    }()
}
