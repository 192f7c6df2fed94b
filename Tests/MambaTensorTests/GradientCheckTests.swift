import Foundation
import XCTest
@testable import MambaTensor

/// Every backward against central finite differences of its forward: L = Σ seed·output, each
/// input element nudged by ±ε, compared as relative L2 over all elements checked.
final class GradientCheckTests: XCTestCase {
    var rng = SeededGenerator(seed: 11)
    override func setUp() { EngineSettings.configure(threads: 2) }

    func random(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * scale) } }

    func weightedSum(_ out: [Float], _ seed: [Float]) -> Double { zip(out, seed).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    /// Finite-difference gradient of `loss` with respect to `values` (every element), ε relative to scale.
    func numericGradient(_ values: inout [Float], eps: Float = 1e-2, _ loss: ([Float]) throws -> Double) rethrows -> [Float] {
        var g = [Float](repeating: 0, count: values.count)
        for i in values.indices {
            let v = values[i]
            values[i] = v + eps; let up = try loss(values)
            values[i] = v - eps; let down = try loss(values)
            values[i] = v
            g[i] = Float((up - down) / Double(2 * eps))
        }
        return g
    }

    func assertClose(_ analytic: [Float], _ numeric: [Float], _ what: String, tolerance: Double = 5e-3,
                     file: StaticString = #filePath, line: UInt = #line) {
        let err = relativeL2(analytic, numeric)
        XCTAssertLessThan(err, tolerance, "\(what): rel L2 \(err)", file: file, line: line)
    }

    func testSelectiveScanBackward() {
        let (batch, L, E, N, P) = (2, 5, 6, 3, 1 + 2 * 3)
        var u = random(batch * L * E), delta = random(batch * L * E), bias = random(E, scale: 0.5)
        var A = random(E * N).map { -abs($0) - 0.2 }, D = random(E), xdbl = random(batch * L * P), z = random(batch * L * 2 * E)
        let seed = random(batch * L * E)
        for reverse in [false, true] {
            func scan(_ u: [Float], _ delta: [Float], _ bias: [Float], _ A: [Float], _ xdbl: [Float], _ D: [Float], _ z: [Float]) -> ScanCase {
                ScanCase(u: u, delta: delta, bias: bias, A: A, D: D, xdbl: xdbl, z: z, batch: batch, length: L, channels: E, states: N, P: P, bOffset: 1)
            }
            func forward(_ u: [Float], _ delta: [Float], _ bias: [Float], _ A: [Float], _ xdbl: [Float], _ D: [Float], _ z: [Float]) -> Double {
                let out = scan(u, delta, bias, A, xdbl, D, z).forward(out: [Float](repeating: 0, count: batch * L * E), scale: 0.5,
                                                                   accumulate: false, reverse: reverse, reference: true)
                return weightedSum(out, seed)
            }
            let start = scan(u, delta, bias, A, xdbl, D, z)
            let g = start.backward(seed: seed, scale: 0.5, reverse: reverse, start: start.gradients(startingAt: 0))
            let (uG, dG, bG, aG, DG, xG, zG) = (g.u, g.delta, g.bias, g.A, g.D, g.xdbl, g.z)
            let tag = reverse ? "reverse" : "forward"
            assertClose(uG, numericGradient(&u) { forward($0, delta, bias, A, xdbl, D, z) }, "u \(tag)")
            assertClose(dG, numericGradient(&delta) { forward(u, $0, bias, A, xdbl, D, z) }, "delta \(tag)")
            assertClose(bG, numericGradient(&bias) { forward(u, delta, $0, A, xdbl, D, z) }, "delta_bias \(tag)")
            assertClose(aG, numericGradient(&A) { forward(u, delta, bias, $0, xdbl, D, z) }, "A \(tag)")
            assertClose(DG, numericGradient(&D) { forward(u, delta, bias, A, xdbl, $0, z) }, "D \(tag)")
            let xN = numericGradient(&xdbl) { forward(u, delta, bias, A, $0, D, z) }
            // Column 0 of each row is not read by the scan (dt_low): both gradients are zero there.
            assertClose(xG, xN, "B and C \(tag)")
            let zN = numericGradient(&z) { forward(u, delta, bias, A, xdbl, D, $0) }
            assertClose(zG, zN, "z \(tag)")
        }
    }

    func testCausalConvBackward() {
        let (batch, L, E, K) = (2, 6, 5, 4)
        var x = random(batch * L * 2 * E), w = random(E * K), b = random(E)
        let seed = random(batch * L * E)
        for reverse in [false, true] {
            func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> Double {
                var out = [Float](repeating: 0, count: batch * L * E)
                causalConv1dSiLUForward(out: &out, x: x, ldx: 2 * E, weight: w, bias: b, batch: batch, length: L,
                                        channels: E, kernel: K, reverse: reverse)
                return weightedSum(out, seed)
            }
            var xG = [Float](repeating: 0, count: x.count), wG = [Float](repeating: 0, count: w.count), bG = [Float](repeating: 0, count: E)
            causalConv1dSiLUBackward(xGrad: &xG, weightGrad: &wG, biasGrad: &bG, outGrad: seed, x: x, ldx: 2 * E, weight: w, bias: b,
                                     batch: batch, length: L, channels: E, kernel: K, reverse: reverse)
            assertClose(xG, numericGradient(&x) { forward($0, w, b) }, "x reverse=\(reverse)")
            assertClose(wG, numericGradient(&w) { forward(x, $0, b) }, "weight reverse=\(reverse)")
            assertClose(bG, numericGradient(&b) { forward(x, w, $0) }, "bias reverse=\(reverse)")
        }
    }

    func testAddRMSNormBackwardThroughBothOutputs() throws {
        let (rows, D) = (3, 7)
        var res = random(rows * D), x = random(rows * D), w = random(D)
        let seedY = random(rows * D), seedR = random(rows * D)
        func run(_ res: [Float], _ x: [Float], _ w: [Float], tape: Tape?) throws -> (Tensor, Tensor, Tensor, Tensor, Tensor) {
            let rt = try Tensor(shape: [rows, D], values: res), xt = try Tensor(shape: [rows, D], values: x), wt = try Tensor(shape: [D], values: w)
            let (r, y) = try addRMSNorm(residual: rt, xt, weight: wt, eps: 1e-5, tape: tape)
            return (rt, xt, wt, r, y)
        }
        func loss(_ res: [Float], _ x: [Float], _ w: [Float]) throws -> Double {
            let (_, _, _, r, y) = try run(res, x, w, tape: nil)
            return weightedSum(y.array, seedY) + weightedSum(r.array, seedR)
        }
        let tape = Tape()
        let (rt, xt, wt, r, y) = try run(res, x, w, tape: tape)
        r.gradBuffer().buffer.update(from: seedR)  // what later consumers of r would send back
        try tape.backward(from: y, seed: seedY)
        assertClose(rt.grad!.array, try numericGradient(&res) { try loss($0, x, w) }, "residual")
        assertClose(xt.grad!.array, try numericGradient(&x) { try loss(res, $0, w) }, "x")
        assertClose(wt.grad!.array, try numericGradient(&w) { try loss(res, x, $0) }, "weight")
    }

    func testLinearSelectTokenAndCrossEntropy() throws {
        let (B, T, Din, C) = (3, 4, 5, 6)
        var x = random(B * T * Din), w = random(C * Din), b = random(C)
        let labels = [1, 5, 0]
        func loss(_ x: [Float], _ w: [Float], _ b: [Float], tape: Tape? = nil) throws -> (Tensor, Tensor, Tensor, Tensor) {
            let xt = try Tensor(shape: [B, T, Din], values: x), wt = try Tensor(shape: [C, Din], values: w), bt = try Tensor(shape: [C], values: b)
            let token = try selectToken(xt, index: 2, tape: tape)
            let l = try crossEntropy(linear(token, weight: wt, bias: bt, tape: tape), labels: labels, tape: tape)
            return (xt, wt, bt, l)
        }
        let tape = Tape()
        let (xt, wt, bt, l) = try loss(x, w, b, tape: tape)
        try tape.backward(from: l)
        assertClose(xt.grad!.array, try numericGradient(&x) { Double(try loss($0, w, b).3.array[0]) }, "x")
        assertClose(wt.grad!.array, try numericGradient(&w) { Double(try loss(x, $0, b).3.array[0]) }, "weight")
        assertClose(bt.grad!.array, try numericGradient(&b) { Double(try loss(x, w, $0).3.array[0]) }, "bias")
    }

    /// DyVM's token bookkeeping ops: gather (with repeats), add, multiply.
    func testGatherAddMultiply() throws {
        let (B, T, D) = (2, 5, 3)
        var x = random(B * T * D), y = random(B * T * D), p = random(B * T)
        let index = [[4, 0, 0, 2], [1, 3, 2, 4]]
        let seed = random(B * 4 * D), seedP = random(B * 4)
        func run(_ x: [Float], _ y: [Float], _ p: [Float], tape: Tape?) throws -> (Tensor, Tensor, Tensor, Tensor, Tensor) {
            let xt = try Tensor(shape: [B, T, D], values: x), yt = try Tensor(shape: [B, T, D], values: y), pt = try Tensor(shape: [B, T], values: p)
            let s = try gatherRows(add(xt, yt, tape: tape), index: index, tape: tape)
            let q = try gatherRows(multiply(pt, pt, tape: tape), index: index, tape: tape)
            return (xt, yt, pt, s, q)
        }
        func loss(_ x: [Float], _ y: [Float], _ p: [Float]) throws -> Double {
            let r = try run(x, y, p, tape: nil)
            return weightedSum(r.3.array, seed) + weightedSum(r.4.array, seedP)
        }
        let tape = Tape()
        let (xt, yt, pt, s, q) = try run(x, y, p, tape: tape)
        s.gradBuffer().buffer.update(from: seed)
        q.gradBuffer().buffer.update(from: seedP)
        try tape.backward(from: try Tensor(shape: [1], values: [0]))
        assertClose(xt.grad!.array, try numericGradient(&x) { try loss($0, y, p) }, "gather(add) x")
        assertClose(yt.grad!.array, try numericGradient(&y) { try loss(x, $0, p) }, "gather(add) y")
        assertClose(pt.grad!.array, try numericGradient(&p) { try loss(x, y, $0) }, "gather(multiply)")
    }
}

final class ScanBackwardKernelTests: XCTestCase {
    /// The SIMD backward (16-channel tasks) against the double-precision reference, with a tail
    /// of 8 channels that the reference handles inside the SIMD entry point.
    func testSIMDBackwardMatchesReference() {
        EngineSettings.configure(threads: 2)
        var rng = SeededGenerator(seed: 5)
        func random(_ n: Int, _ s: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * s) } }
        let (batch, L, E, N) = (2, 9, 40, 16), P = 3 + 2 * N
        let u = random(batch * L * E), delta = random(batch * L * E), bias = random(E, 0.5)
        let A = random(E * N).map { -abs($0) - 0.1 }, D = random(E), xdbl = random(batch * L * P), z = random(batch * L * 2 * E)
        let seed = random(batch * L * E)
        for reverse in [false, true] {
            var results: [[Float]] = []
            for simd in [true, false] {
                let scan = ScanCase(u: u, delta: delta, bias: bias, A: A, D: D, xdbl: xdbl, z: z,
                                    batch: batch, length: L, channels: E, states: N, P: P, bOffset: 3)
                var start = scan.gradients(startingAt: 0)
                start.u = [Float](repeating: 0.5, count: u.count)
                start.z = [Float](repeating: 0.25, count: z.count)
                let g = scan.backward(seed: seed, scale: 0.5, reverse: reverse, start: start, reference: !simd)
                results.append(g.all)
            }
            let err = relativeL2(results[0], results[1])
            XCTAssertLessThan(err, 1e-5, "reverse=\(reverse): rel L2 \(err)")
        }
    }
}
