import Foundation
import XCTest
@testable import MambaTensor

/// Every SIMD/threaded kernel against a plain double-precision loop written from the formula.
final class KernelTests: XCTestCase {
    var rng = SeededGenerator(seed: 42)

    func random(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * scale) } }

    override func setUp() { EngineSettings.configure(threads: 2) }

    func testSelectiveScanBothDirections() {
        // E = 20 exercises a partial SIMD block; N = 5 a non-default state size.
        let (batch, L, E, N, P) = (2, 7, 20, 5, 3 + 2 * 5)
        let u = random(batch * L * E), delta = random(batch * L * E), bias = random(E, scale: 0.5)
        let A = random(E * N).map { -abs($0) - 0.1 }, D = random(E)
        let xdbl = random(batch * L * P), z = random(batch * L * 2 * E)
        for reverse in [false, true] {
            let scan = ScanCase(u: u, delta: delta, bias: bias, A: A, D: D, xdbl: xdbl, z: z,
                                batch: batch, length: L, channels: E, states: N, P: P, bOffset: 3)
            let out = scan.forward(out: [Float](repeating: 0.25, count: batch * L * E), scale: 0.5, accumulate: true, reverse: reverse)
            var expected = [Double](repeating: 0.25, count: batch * L * E)
            for b in 0..<batch {
                for e in 0..<E {
                    var h = [Double](repeating: 0, count: N)
                    for step in 0..<L {
                        let t = reverse ? L - 1 - step : step
                        let row = b * L + t
                        let v = Double(delta[row * E + e] + bias[e])
                        let dt = v > 20 ? v : log1p(exp(v))
                        var y = Double(D[e]) * Double(u[row * E + e])
                        for n in 0..<N {
                            h[n] = exp(dt * Double(A[e * N + n])) * h[n] + dt * Double(xdbl[row * P + 3 + n]) * Double(u[row * E + e])
                            y += Double(xdbl[row * P + 3 + N + n]) * h[n]
                        }
                        let zv = Double(z[row * 2 * E + E + e])
                        expected[row * E + e] += 0.5 * y * zv / (1 + exp(-zv))
                    }
                }
            }
            XCTAssertLessThan(relativeL2(out, expected.map(Float.init)), 1e-6, "reverse=\(reverse)")
        }
    }

    func testCausalConvBothDirections() {
        let (batch, L, E, K) = (2, 6, 12, 4)
        let x = random(batch * L * 2 * E), w = random(E * K), bias = random(E)
        for reverse in [false, true] {
            var out = [Float](repeating: 0, count: batch * L * E)
            causalConv1dSiLUForward(out: &out, x: x, ldx: 2 * E, weight: w, bias: bias,
                                    batch: batch, length: L, channels: E, kernel: K, reverse: reverse)
            var expected = [Float](repeating: 0, count: batch * L * E)
            for b in 0..<batch { for t in 0..<L { for e in 0..<E {
                var acc = Double(bias[e])
                for k in 0..<K {
                    let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                    if src >= 0 && src < L { acc += Double(w[e * K + k]) * Double(x[(b * L + src) * 2 * E + e]) }
                }
                expected[(b * L + t) * E + e] = Float(acc / (1 + exp(-acc)))
            } } }
            XCTAssertLessThan(relativeL2(out, expected), 1e-6, "reverse=\(reverse)")
        }
    }

    func testAddRMSNorm() {
        let (rows, D) = (5, 19)
        var residual = random(rows * D), y = [Float](repeating: 0, count: rows * D)
        let x = random(rows * D), w = random(D)
        let original = residual
        addRMSNormForward(y: &y, residual: &residual, x: x, weight: w, rows: rows, dim: D, eps: 1e-5)
        var expected = [Float](), sum = [Float]()
        for r in 0..<rows {
            let s = (0..<D).map { Double(original[r * D + $0]) + Double(x[r * D + $0]) }
            let rstd = 1 / (s.map { $0 * $0 }.reduce(0, +) / Double(D) + 1e-5).squareRoot()
            sum += s.map(Float.init)
            expected += (0..<D).map { Float(s[$0] * rstd * Double(w[$0])) }
        }
        XCTAssertLessThan(relativeL2(residual, sum), 1e-7)
        XCTAssertLessThan(relativeL2(y, expected), 1e-6)
    }

    func testPatchConvWithOverlappingStride() {
        let (batch, C, H, W, Dout, p, s) = (2, 3, 9, 9, 5, 3, 2)
        let images = random(batch * C * H * W), weight = random(Dout * C * p * p), bias = random(Dout)
        let G = patchGrid(size: H, patch: p, stride: s)
        XCTAssertEqual(G, 4)
        var out = [Float](repeating: 0, count: batch * G * G * Dout)
        patchConv2dForward(out: &out, images: images, weight: weight, bias: bias, batch: batch, inChannels: C,
                           height: H, width: W, outChannels: Dout, patch: p, stride: s)
        var expected = [Float]()
        for b in 0..<batch { for gy in 0..<G { for gx in 0..<G { for d in 0..<Dout {
            var acc = Double(bias[d])
            for c in 0..<C { for ky in 0..<p { for kx in 0..<p {
                acc += Double(weight[((d * C + c) * p + ky) * p + kx]) * Double(images[((b * C + c) * H + gy * s + ky) * W + gx * s + kx])
            } } }
            expected.append(Float(acc))
        } } } }
        XCTAssertLessThan(relativeL2(out, expected), 1e-6)
    }

    func testBicubicResizeMatchesPyTorchWeights() {
        // Same size is the identity; a 2x2 → 4x4 upsample checked against the closed form
        // of PyTorch's bicubic (A = −0.75, align_corners=False, border-clamped taps).
        let src: [Float] = [1, 2, 3, 4]
        XCTAssertEqual(bicubicResize(src, inH: 2, inW: 2, channels: 1, outH: 2, outW: 2), src)
        let out = bicubicResize(src, inH: 2, inW: 2, channels: 1, outH: 4, outW: 4)
        // torch.nn.functional.interpolate(torch.tensor([[[[1.,2.],[3.,4.]]]]), size=4, mode="bicubic")
        let torch: [Float] = [0.68359375, 1.015625, 1.5625, 1.89453125,
                              1.34765625, 1.6796875, 2.2265625, 2.55859375,
                              2.44140625, 2.7734375, 3.3203125, 3.65234375,
                              3.10546875, 3.4375, 3.984375, 4.31640625]
        XCTAssertLessThan(relativeL2(out, torch), 1e-6)
    }

    func testParallelForCoversEveryIndexOnce() {
        for threads in [1, 2, 3] {
            EngineSettings.configure(threads: threads)
            var hits = [Int](repeating: 0, count: 101)
            hits.withUnsafeMutableBufferPointer { h in parallelFor(101) { r in for i in r { h[i] += 1 } } }
            XCTAssertEqual(hits, [Int](repeating: 1, count: 101))
        }
    }
}

final class GemmTests: XCTestCase {
    /// `gemm` cuts a product into blocks once BLAS is single-threaded, and makes one BLAS call
    /// for it before (a program that never called `Runtime.configure`). Both compute the same
    /// product for every transpose and for column blocks of a wider matrix (strides above the
    /// width), to float rounding.
    func testBlockedProductsEqualOneBLASCall() {
        EngineSettings.configure(threads: 2)
        var rng = SeededGenerator(seed: 3)
        for (m, n, k) in [(197, 384, 192), (40, 1000, 64), (1000, 33, 96), (3, 5, 7)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let (lda, ldb, ldc) = ((transA ? m : k) + 3, (transB ? k : n) + 5, n + 2)
                    let a = (0..<((transA ? k : m) * lda)).map { _ in Float(rng.normal()) }
                    let b = (0..<((transB ? n : k) * ldb)).map { _ in Float(rng.normal()) }
                    let start = (0..<(m * ldc)).map { _ in Float(rng.normal()) }
                    var blocked = start, whole = start
                    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a, lda: lda, b, ldb: ldb,
                         beta: 1, &blocked, ldc: ldc)
                    sgemm(transA, transB, m, n, k, 0.5, a, lda, b, ldb, 1, &whole, ldc)
                    XCTAssertLessThan(relativeL2(blocked, whole), 1e-6, "\(m)×\(n)×\(k) transA \(transA) transB \(transB)")
                    // The padding columns past n are never written.
                    for row in 0..<m { for col in n..<ldc { XCTAssertEqual(blocked[row * ldc + col], start[row * ldc + col]) } }
                }
            }
        }
    }
}

final class LinearKernelTests: XCTestCase {
    func testLinearWithAndWithoutBiasAndStridedOperands() {
        var rng = SeededGenerator(seed: 7)
        let (rows, inF, outF) = (5, 7, 3)
        let x = (0..<rows * inF).map { _ in Float(rng.normal()) }
        let w = (0..<outF * inF).map { _ in Float(rng.normal()) }
        let b = (0..<outF).map { _ in Float(rng.normal()) }
        for bias in [true, false] {
            var y = [Float](repeating: .nan, count: rows * outF)
            linearForward(&y, x, weight: w, bias: bias ? b : nil, rows: rows, inFeatures: inF, outFeatures: outF)
            var expected = [Float]()
            for r in 0..<rows { for o in 0..<outF {
                var acc = bias ? Double(b[o]) : 0
                for i in 0..<inF { acc += Double(x[r * inF + i]) * Double(w[o * inF + i]) }
                expected.append(Float(acc))
            } }
            XCTAssertLessThan(relativeL2(y, expected), 1e-6, "bias=\(bias)")
        }
        // A column block of a wider matrix used in place (how dt_proj reads x_proj's output).
        var c = [Float](repeating: 0, count: rows * outF)
        matmulTransposedB(&c, ldc: outF, x, lda: inF, w, ldb: inF, m: rows, n: outF, k: 4)
        for r in 0..<rows { for o in 0..<outF {
            let ref = (0..<4).reduce(0.0) { $0 + Double(x[r * inF + $1]) * Double(w[o * inF + $1]) }
            XCTAssertEqual(Double(c[r * outF + o]), ref, accuracy: 1e-5)
        } }
    }
}
