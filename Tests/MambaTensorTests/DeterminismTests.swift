import Foundation
import XCTest
@testable import MambaTensor

/// The kernels that sum across the work parallelFor splits give the same bits on 1, 2, 3 and 4
/// threads: each shape puts the thread chunk edges at different channels, rows or blocks.
final class DeterminismTests: XCTestCase {
    var rng = SeededGenerator(seed: 23)
    var savedThreads = 1

    override func setUp() { savedThreads = Parallel.threads }
    override func tearDown() { EngineSettings.configure(threads: savedThreads) }

    func random(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * scale) } }

    /// `compute` on each thread count; every result must equal the one-thread result bit for bit.
    func assertSameBitsForAnyThreadCount(_ what: String, file: StaticString = #filePath, line: UInt = #line,
                                         _ compute: () -> [Float]) {
        var first: [UInt32]? = nil
        for threads in [1, 2, 3, 4] {
            EngineSettings.configure(threads: threads)
            let bits = compute().map(\.bitPattern)
            guard let want = first else { first = bits; continue }
            let differing = zip(bits, want).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(what): \(differing) of \(bits.count) values differ between 1 and \(threads) threads",
                           file: file, line: line)
        }
    }

    /// Every gradient of the selective scan backward, both directions. E = 328 is 20 blocks of 16
    /// (groups of 2 blocks) plus a tail of 8 channels; E = 152 is 9 blocks (groups of 1) plus 8.
    func testSelectiveScanBackward() {
        for E in [152, 328] {
            let (batch, L, N) = (2, 9, 16), P = 3 + 2 * N
            let u = random(batch * L * E), delta = random(batch * L * E), bias = random(E, scale: 0.5)
            let A = random(E * N).map { -abs($0) - 0.1 }, D = random(E), xdbl = random(batch * L * P), z = random(batch * L * 2 * E)
            let seed = random(batch * L * E)
            for reverse in [false, true] {
                for simd in [true, false] {
                    assertSameBitsForAnyThreadCount("scan backward E=\(E) reverse=\(reverse) simd=\(simd)") {
                        let scan = ScanCase(u: u, delta: delta, bias: bias, A: A, D: D, xdbl: xdbl, z: z,
                                            batch: batch, length: L, channels: E, states: N, P: P, bOffset: 3)
                        var start = scan.gradients(startingAt: 0)
                        start.u = [Float](repeating: 0.5, count: u.count)
                        start.xdbl = [Float](repeating: 0.125, count: xdbl.count)
                        start.z = [Float](repeating: 0.25, count: z.count)
                        return scan.backward(seed: seed, scale: 0.5, reverse: reverse, start: start, reference: !simd).all
                    }
                }
            }
        }
    }

    /// The matrix products of a linear layer at Vim-T training shapes (2080 rows: batch 32 of 65
    /// tokens; in_proj forward, input and weight gradients, x_proj and dt_proj gradients) and odd
    /// shapes in all four transpose cases, with strides wider than the operands.
    func testGemm() {
        var cases: [(m: Int, n: Int, k: Int, transA: Bool, transB: Bool)] = [
            (2080, 768, 192, false, true), (2080, 192, 768, false, false), (768, 192, 2080, true, false),
            (44, 384, 2080, true, false), (2080, 12, 384, false, false)]
        for (m, n, k) in [(1001, 37, 300), (37, 1001, 300), (5, 7, 3)] {
            for (transA, transB) in [(false, true), (false, false), (true, false), (true, true)] { cases.append((m, n, k, transA, transB)) }
        }
        for (m, n, k, transA, transB) in cases {
            let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
            let a = random((transA ? k : m) * lda), b = random((transB ? n : k) * ldb), c0 = random(m * ldc)
            assertSameBitsForAnyThreadCount("gemm m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB)") {
                var c = c0
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.75, a, lda: lda, b, ldb: ldb,
                     beta: 1, &c, ldc: ldc)
                return c
            }
        }
    }

    /// The blocked product is the product: several blocks of rows, then of columns, against a
    /// double-precision loop.
    func testGemmBlocksComputeTheProduct() {
        EngineSettings.configure(threads: 3)
        for (m, n, k) in [(600, 100, 300), (100, 600, 300)] {
            XCTAssertEqual(gemmBlocks(span: max(m, n), work: m * n * k), 8)
            for (transA, transB) in [(false, true), (true, false)] {
                let lda = transA ? m : k, ldb = transB ? k : n
                let a = random(m * k), b = random(n * k), c0 = random(m * n)
                var c = c0
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a, lda: lda, b, ldb: ldb, beta: 2, &c, ldc: n)
                var want = [Float](repeating: 0, count: m * n)
                for i in 0..<m {
                    for j in 0..<n {
                        var acc = 0.0
                        for p in 0..<k {
                            let x = transA ? a[p * lda + i] : a[i * lda + p], y = transB ? b[j * ldb + p] : b[p * ldb + j]
                            acc += Double(x) * Double(y)
                        }
                        want[i * n + j] = Float(0.5 * acc + 2 * Double(c0[i * n + j]))
                    }
                }
                XCTAssertLessThan(relativeL2(c, want), 1e-6, "m=\(m) n=\(n) transA=\(transA)")
            }
        }
        XCTAssertEqual(gemmBlocks(span: 2080, work: 2080 * 12 * 384), 8)
        XCTAssertEqual(gemmBlocks(span: 197, work: 197 * 44 * 384), 4)   // x_proj of Vim-T at batch 1
        XCTAssertEqual(gemmBlocks(span: 32, work: 32 * 10 * 192), 1)
    }

    /// Kernels whose weight gradients are owned by one thread per channel block or summed serially:
    /// the causal conv (E = 72: 4 blocks and a tail of 8) and add + RMSNorm (rows split by thread).
    func testConvAndNormBackward() {
        let (batch, L, E, K) = (3, 11, 72, 4)
        let x = random(batch * L * E), w = random(E * K), bias = random(E), og = random(batch * L * E)
        for reverse in [false, true] {
            assertSameBitsForAnyThreadCount("causal conv backward reverse=\(reverse)") {
                var xG = [Float](repeating: 0.5, count: x.count), wG = [Float](repeating: 0, count: w.count)
                var bG = [Float](repeating: 0, count: E)
                causalConv1dSiLUBackward(xGrad: &xG, weightGrad: &wG, biasGrad: &bG, outGrad: og, x: x, ldx: E, weight: w,
                                         bias: bias, batch: batch, length: L, channels: E, kernel: K, reverse: reverse)
                return xG + wG + bG
            }
        }
        let (rows, dim) = (batch * L, 40)
        let r = random(rows * dim), weight = random(dim), yGrad = random(rows * dim), rGrad = random(rows * dim)
        var rstd = [Float](repeating: 0, count: rows)
        for row in 0..<rows {
            let ms = (0..<dim).reduce(0.0) { $0 + Double(r[row * dim + $1]) * Double(r[row * dim + $1]) } / Double(dim)
            rstd[row] = Float(1 / (ms + 1e-5).squareRoot())
        }
        assertSameBitsForAnyThreadCount("add + RMSNorm backward") {
            var rowGrad = [Float](repeating: 0, count: rows * dim), wG = [Float](repeating: 0.25, count: dim)
            addRMSNormBackward(rowGrad: &rowGrad, yGrad: yGrad, rGrad: rGrad, r: r, rstd: rstd, weight: weight,
                               weightGrad: &wG, rows: rows, dim: dim)
            return rowGrad + wG
        }
    }
}
