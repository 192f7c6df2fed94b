import Foundation

/// Wall time per op name, collected only while enabled (`bench --profile`).
/// Ops are timed from the calling thread, around their whole parallel region. Passes on several
/// threads at once add to the same totals under a lock.
package enum Profiler {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var enabled = false
    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int)] = [:]

    package static var isEnabled: Bool {
        get { lock.lock(); defer { lock.unlock() }; return enabled }
        set { lock.lock(); enabled = newValue; lock.unlock() }
    }

    @inline(__always)
    package static func measure<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        guard isEnabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        lock.lock()
        let old = totals[name] ?? (0, 0)
        totals[name] = (old.seconds + seconds, old.calls + 1)
        lock.unlock()
        return result
    }

    package static func reset() { lock.lock(); totals = [:]; lock.unlock() }

    /// (name, seconds, calls), largest first.
    package static var report: [(name: String, seconds: Double, calls: Int)] {
        lock.lock(); defer { lock.unlock() }
        return totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.seconds > $1.seconds }
    }
}

/// Peak resident memory of this process in MiB: VmHWM from /proc on Linux, else getrusage's
/// maximum resident set (kilobytes on Linux, bytes on Apple platforms).
package func peakResidentMiB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kb / 1024
        }
    }
    var usage = rusage()
    #if canImport(Darwin)
    guard getrusage(RUSAGE_SELF, &usage) == 0 else { return 0 }
    return Double(usage.ru_maxrss) / (1024 * 1024)
    #else
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    return Double(usage.ru_maxrss) / 1024
    #endif
}
