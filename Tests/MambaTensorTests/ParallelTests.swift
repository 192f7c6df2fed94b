import Foundation
import XCTest
@testable import MambaTensor

/// parallelFor's worker pool: every index runs exactly once, on at most `threads` distinct
/// threads, also when calls nest, come from several threads at once, or the count changes.
final class ParallelTests: XCTestCase {
    var savedThreads = 1
    override func setUp() { savedThreads = Parallel.threads }
    override func tearDown() { EngineSettings.configure(threads: savedThreads) }

    /// Counts how often each index of 0..<n ran, and on which threads.
    final class Record: @unchecked Sendable {
        let lock = NSLock()
        var hits: [Int]
        var threads = Set<ObjectIdentifier>()
        init(_ n: Int) { hits = Array(repeating: 0, count: n) }
        func visit(_ range: Range<Int>) {
            lock.lock(); defer { lock.unlock() }
            for i in range { hits[i] += 1 }
            threads.insert(ObjectIdentifier(Thread.current))
        }
    }

    func testEveryIndexOnceOnAtMostThreadsThreads() {
        for threads in [1, 2, 3, 5, 8] {
            EngineSettings.configure(threads: threads)
            XCTAssertEqual(Parallel.threads, threads)
            let record = Record(1000)
            for _ in 0..<200 { parallelFor(1000) { record.visit($0) } }
            XCTAssertEqual(Set(record.hits), [200], "threads \(threads)")
            XCTAssertLessThanOrEqual(record.threads.count, threads, "threads \(threads)")
            if threads > 1 { XCTAssertGreaterThan(record.threads.count, 1, "threads \(threads)") }
        }
    }

    func testNestedCallsRunInline() {
        EngineSettings.configure(threads: 4)
        let record = Record(64 * 64)
        parallelFor(64) { rows in
            for r in rows { parallelFor(64) { cols in record.visit((r * 64 + cols.lowerBound)..<(r * 64 + cols.upperBound)) } }
        }
        XCTAssertEqual(Set(record.hits), [1])
        XCTAssertLessThanOrEqual(record.threads.count, 4)
    }

    func testCallsFromSeveralThreadsAtOnce() {
        EngineSettings.configure(threads: 3)
        let records = (0..<6).map { _ in Record(5000) }
        DispatchQueue.concurrentPerform(iterations: records.count) { k in
            for _ in 0..<50 { parallelFor(5000) { records[k].visit($0) } }
        }
        for record in records { XCTAssertEqual(Set(record.hits), [50]) }
    }

    /// Passes timed on several threads at once add up: no call is lost to a race.
    func testProfilerCountsCallsFromSeveralThreads() {
        Profiler.reset()
        Profiler.isEnabled = true
        defer { Profiler.isEnabled = false; Profiler.reset() }
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<2000 { Profiler.measure("concurrent") { } }
        }
        XCTAssertEqual(Profiler.report.first { $0.name == "concurrent" }?.calls, 16_000)
    }

    func testThreadCountIsClamped() {
        EngineSettings.configure(threads: 0)
        XCTAssertEqual(Parallel.threads, 1)
        EngineSettings.configure(threads: Parallel.maxThreads + 1000)
        XCTAssertEqual(Parallel.threads, Parallel.maxThreads)
        let record = Record(100)
        parallelFor(100) { record.visit($0) }
        XCTAssertEqual(Set(record.hits), [1])
    }
}
