import MambaTensor

/// The process-wide settings of the compute engine.
///
/// Importing the library or loading a model changes nothing outside it. A program calls
/// ``configure(threads:)`` once, at start-up, before the first model runs:
///
/// ```swift
/// Runtime.configure(threads: 4)
/// ```
///
/// It sets the number of threads the kernels use, runs BLAS on one thread (the engine then cuts
/// every matrix product into blocks of its own, so results are the same bits for any thread
/// count), and on Linux keeps large blocks in glibc's heap rather than fresh pages. Without it,
/// kernels use every core and BLAS threads each product as its own settings say: correct, but
/// the last bits may follow the thread count.
public enum Runtime {
    /// Threads a program gets unless it asks for another number: one per core.
    public static var defaultThreads: Int { Parallel.defaultThreads }

    /// The most threads ``configure(threads:)`` accepts: eight per core.
    public static var maxThreads: Int { Parallel.maxThreads }

    /// The threads kernels run on now.
    public static var threads: Int { Parallel.threads }

    /// Applies the engine's process-wide settings with `threads` kernel threads (clamped to
    /// `1...maxThreads`). Safe to call again to change the thread count.
    public static func configure(threads: Int = defaultThreads) {
        EngineSettings.configure(threads: threads)
    }
}
