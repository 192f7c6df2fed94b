import Foundation
import XCTest
@testable import MambaTensor

/// Every op's backward, through the public op layer (views, tapes, seeding), against central
/// finite differences of its float32 forward: L = Σ_k seed_k · output_k summed in double
/// precision, each input element moved by ±ε. Widths of 20 channels run both the 16-channel SIMD
/// blocks and the scalar tail of the conv and scan kernels.
final class OpGradientTests: XCTestCase {
    var rng = SeededGenerator(seed: 23)
    override func setUp() { EngineSettings.configure(threads: 2) }

    func random(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * scale) } }
    func uniform(_ n: Int, _ range: ClosedRange<Double>) -> [Float] {
        (0..<n).map { _ in Float(range.lowerBound + rng.uniform() * (range.upperBound - range.lowerBound)) }
    }

    /// One differentiable input: its values and the step of its finite differences.
    struct Input {
        var name: String, values: [Float], eps: Float = 1e-2
    }

    /// The tensors an op's forward made from the inputs (in order: their gradients are checked) and its outputs.
    typealias Forward = ([[Float]], Tape?) throws -> (leaves: [Tensor], outputs: [Tensor])

    /// d L / d values by central differences, L evaluated in double. The step is the one the
    /// float32 values actually took, so the rounding of v ± ε does not bias the quotient.
    func numericGradient(_ values: [Float], eps: Float, _ loss: ([Float]) throws -> Double) rethrows -> [Double] {
        var v = values
        return try values.indices.map { i in
            let (up, down) = (values[i] + eps, values[i] - eps)
            v[i] = up; let lossUp = try loss(v)
            v[i] = down; let lossDown = try loss(v)
            v[i] = values[i]
            return (lossUp - lossDown) / (Double(up) - Double(down))
        }
    }

    /// ||analytic − expected|| / ||expected|| in double (the plain norm when expected is zero).
    func assertClose(_ analytic: [Float], _ expected: [Double], _ what: String, tolerance: Double,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(analytic.count, expected.count, "\(what): count", file: file, line: line)
        var num = 0.0, den = 0.0
        for (a, e) in zip(analytic, expected) { num += (Double(a) - e) * (Double(a) - e); den += e * e }
        let err = den == 0 ? num.squareRoot() : (num / den).squareRoot()
        XCTAssertLessThanOrEqual(err, tolerance, "\(what): relative L2 \(err)", file: file, line: line)
    }

    /// Runs `forward` with a tape, seeds every output (seeds drawn from a fixed generator, so the
    /// same shapes always get the same seeds), runs the backward and checks each input's gradient
    /// against finite differences of L. Returns the gradients and the seeds for further checks.
    /// The errors measured are 1e-7 to 3e-5, and 2.3e-4 for A through the whole mixer chain: 1e-3
    /// leaves room for other CPUs' rounding and still fails a gradient 1% off.
    @discardableResult
    func checkGradients(_ what: String, _ inputs: [Input], tolerance: Double = 1e-3,
                        file: StaticString = #filePath, line: UInt = #line,
                        _ forward: Forward) throws -> (gradients: [[Float]], seeds: [[Float]]) {
        let tape = Tape()
        let (leaves, outputs) = try forward(inputs.map(\.values), tape)
        var seedRNG = SeededGenerator(seed: 101)
        let seeds = outputs.map { o in (0..<o.count).map { _ in Float(seedRNG.normal()) } }
        // Outputs after the first receive their seeds as a later consumer would have sent them.
        for (o, seed) in zip(outputs, seeds).dropFirst() { try o.gradBuffer().assign(seed) }
        try tape.backward(from: outputs[0], seed: seeds[0])
        let gradients = leaves.map { $0.grad?.array ?? [Float](repeating: 0, count: $0.count) }
        func loss(_ values: [[Float]]) throws -> Double {
            try zip(forward(values, nil).outputs, seeds).reduce(0.0) { total, pair in
                zip(pair.0.array, pair.1).reduce(total) { $0 + Double($1.0) * Double($1.1) }
            }
        }
        for (i, input) in inputs.enumerated() {
            var values = inputs.map(\.values)
            let numeric = try numericGradient(input.values, eps: input.eps) { values[i] = $0; return try loss(values) }
            assertClose(gradients[i], numeric, "\(what): \(input.name)", tolerance: tolerance, file: file, line: line)
        }
        return (gradients, seeds)
    }

    // MARK: Dense layers and norms

    /// x is columns 20..<40 of a [2, 3, 45] tensor: its gradient must land there and nowhere else.
    /// Without bias, columns 0..<20 feed a second consumer (left + left), whose gradient 2·seed
    /// must stay exactly as it left it.
    func testLinear() throws {
        let (B, T, In, Out, W) = (2, 3, 20, 18, 45)
        for hasBias in [true, false] {
            let inputs = [Input(name: "base", values: random(B * T * W)), Input(name: "weight", values: random(Out * In, scale: 0.3)),
                          Input(name: "bias", values: random(Out))]
            let (g, seeds) = try checkGradients("linear bias=\(hasBias)", inputs) { v, tape in
                let base = try tensor([B, T, W], v[0]), weight = try tensor([Out, In], v[1]), bias = try tensor([Out], v[2])
                let y = try linear(base.columns(20..<40), weight: weight, bias: hasBias ? bias : nil, tape: tape)
                guard !hasBias else { return ([base, weight, bias], [y]) }
                let left = try base.columns(0..<20)
                return ([base, weight, bias], [y, try add(left, left, tape: tape)])
            }
            XCTAssertEqual(columns(g[0], width: W, 40..<45), [Float](repeating: 0, count: B * T * 5))
            XCTAssertEqual(columns(g[0], width: W, 0..<20), hasBias ? [Float](repeating: 0, count: B * T * 20) : seeds[1].map { 2 * $0 })
            if !hasBias { XCTAssertEqual(g[2], [Float](repeating: 0, count: Out)) }
        }
    }

    /// Both outputs seeded: the normed values and the new residual stream r = residual + x.
    func testAddRMSNorm() throws {
        let (rows, D) = (5, 20)
        for hasResidual in [true, false] {
            let inputs = [Input(name: "x", values: random(rows * D)), Input(name: "weight", values: random(D)),
                          Input(name: "residual", values: random(rows * D))]
            try checkGradients("addRMSNorm residual=\(hasResidual)", Array(inputs.prefix(hasResidual ? 3 : 2))) { v, tape in
                let x = try tensor([1, rows, D], v[0]), weight = try tensor([D], v[1])
                let residual = hasResidual ? try tensor([1, rows, D], v[2]) : nil
                let (r, y) = try addRMSNorm(residual: residual, x, weight: weight, eps: 1e-5, tape: tape)
                return ([x, weight] + (residual.map { [$0] } ?? []), [y, r])
            }
        }
    }

    func testLayerNorm() throws {
        let (rows, D) = (5, 20)
        let inputs = [Input(name: "x", values: random(rows * D)), Input(name: "weight", values: random(D)), Input(name: "bias", values: random(D))]
        try checkGradients("layerNorm", inputs) { v, tape in
            let x = try tensor([rows, D], v[0]), weight = try tensor([D], v[1]), bias = try tensor([D], v[2])
            return ([x, weight, bias], [try layerNorm(x, weight: weight, bias: bias, eps: 1e-5, tape: tape)])
        }
    }

    // MARK: Pointwise

    func testGELU() throws {
        try checkGradients("gelu", [Input(name: "x", values: random(3 * 20, scale: 2))]) { v, tape in
            let x = try tensor([3, 20], v[0])
            return ([x], [gelu(x, tape: tape)])
        }
    }

    func testNegativeExp() throws {
        try checkGradients("negativeExp", [Input(name: "x", values: random(20 * 4, scale: 0.7), eps: 5e-3)]) { v, tape in
            let x = try tensor([20, 4], v[0])
            return ([x], [negativeExp(x, tape: tape)])
        }
    }

    func testAddAndMultiply() throws {
        let inputs = [Input(name: "a", values: random(2 * 3 * 20)), Input(name: "b", values: random(2 * 3 * 20))]
        try checkGradients("add", inputs) { v, tape in
            let a = try tensor([2, 3, 20], v[0]), b = try tensor([2, 3, 20], v[1])
            return ([a, b], [try add(a, b, tape: tape)])
        }
        try checkGradients("multiply", inputs) { v, tape in
            let a = try tensor([2, 3, 20], v[0]), b = try tensor([2, 3, 20], v[1])
            return ([a, b], [try multiply(a, b, tape: tape)])
        }
    }

    // MARK: Row and sample scaling

    func testScaleRows() throws {
        let (B, T, E) = (2, 3, 20)
        let inputs = [Input(name: "x", values: random(B * T * E)), Input(name: "factors", values: random(B * T))]
        try checkGradients("scaleRows", inputs) { v, tape in
            let x = try tensor([B, T, E], v[0]), factors = try tensor([B, T], v[1])
            return ([x, factors], [try scaleRows(x, by: factors, tape: tape)])
        }
    }

    /// Factors [B], and a [B, 1] column view of a [B, 2] tensor (DyVM's direction gates) on x
    /// contiguous and on x a column view of a wider tensor.
    func testScaleSamples() throws {
        let (B, T, E) = (2, 3, 20)
        for (factorsView, xView) in [(false, false), (true, false), (true, true)] {
            let width = xView ? 2 * E : E
            let inputs = [Input(name: "x", values: random(B * T * width)), Input(name: "factors", values: random(factorsView ? 2 * B : B))]
            let (g, _) = try checkGradients("scaleSamples factorsView=\(factorsView) xView=\(xView)", inputs) { v, tape in
                let xBase = try tensor([B, T, width], v[0]), fBase = try tensor(factorsView ? [B, 2] : [B], v[1])
                let x = xView ? try xBase.columns(E..<(2 * E)) : xBase, factors = factorsView ? try fBase.columns(1..<2) : fBase
                return ([xBase, fBase], [try scaleSamples(x, by: factors, tape: tape)])
            }
            if factorsView { XCTAssertEqual(columns(g[1], width: 2, 0..<1), [0, 0]) }
            if xView { XCTAssertEqual(columns(g[0], width: width, 0..<E), [Float](repeating: 0, count: B * T * E)) }
        }
    }

    /// Fixed draws: sample 0 is dropped (U = 0.1 < rate), sample 1 kept and scaled by 1 / 0.7.
    func testDropPath() throws {
        let (B, T, E) = (2, 3, 20)
        let (g, seeds) = try checkGradients("dropPath", [Input(name: "x", values: random(B * T * E))]) { v, tape in
            let x = try tensor([B, T, E], v[0])
            return ([x], [try dropPath(x, rate: 0.3, uniforms: [0.1, 0.9], tape: tape)])
        }
        XCTAssertEqual(Array(g[0].prefix(T * E)), [Float](repeating: 0, count: T * E))
        XCTAssertEqual(Array(g[0].suffix(T * E)), seeds[0].suffix(T * E).map { $0 * Float(1 / 0.7) })
    }

    // MARK: Mamba

    /// x is columns 0..<20 of in_proj's [B, L, 2E] output. With DyVM's mask the conv reads x ⊙ m
    /// and its output is multiplied by m again; the mask receives its gradient too.
    func testCausalConv1dSiLU() throws {
        let (B, L, E, K) = (2, 6, 20, 4)
        for reverse in [false, true] {
            for masked in [false, true] {
                var mask = uniform(B * L, 0...1)
                (mask[0], mask[7]) = (0, 1)   // a dropped and a kept token among the soft values
                let inputs = [Input(name: "x base", values: random(B * L * 2 * E)), Input(name: "weight", values: random(E * K, scale: 0.5)),
                              Input(name: "bias", values: random(E, scale: 0.5)), Input(name: "mask", values: mask)]
                let what = "causalConv1dSiLU reverse=\(reverse) mask=\(masked)"
                let (g, _) = try checkGradients(what, Array(inputs.prefix(masked ? 4 : 3))) { v, tape in
                    let base = try tensor([B, L, 2 * E], v[0]), weight = try tensor([E, 1, K], v[1]), bias = try tensor([E], v[2])
                    let mask = masked ? try tensor([B, L], v[3]) : nil
                    let out = try causalConv1dSiLU(base.columns(0..<E), weight: weight, bias: bias, reverse: reverse, mask: mask, tape: tape)
                    return ([base, weight, bias] + (mask.map { [$0] } ?? []), [out])
                }
                XCTAssertEqual(columns(g[0], width: 2 * E, E..<(2 * E)), [Float](repeating: 0, count: B * L * E), what)
            }
        }
    }

    /// B and C are column views of one [B, L, R + 2N] tensor (x_proj's dt | B | C) and z the right
    /// half of a [B, L, 2E] tensor (in_proj's x | z): their gradients land in those columns only.
    func testSelectiveScan() throws {
        let (batch, L, E, N, R) = (2, 5, 20, 4, 2), P = R + 2 * N
        for reverse in [false, true] {
            let inputs = [Input(name: "u", values: random(batch * L * E)), Input(name: "delta", values: random(batch * L * E, scale: 0.5)),
                          Input(name: "deltaBias", values: random(E, scale: 0.5)),
                          Input(name: "A", values: random(E * N).map { -abs($0) - 0.2 }),
                          Input(name: "dt | B | C", values: random(batch * L * P)), Input(name: "D", values: random(E)),
                          Input(name: "x | z", values: random(batch * L * 2 * E))]
            let what = "selectiveScan reverse=\(reverse)"
            let (g, _) = try checkGradients(what, inputs) { v, tape in
                let u = try tensor([batch, L, E], v[0]), delta = try tensor([batch, L, E], v[1]), deltaBias = try tensor([E], v[2])
                let A = try tensor([E, N], v[3]), xdbl = try tensor([batch, L, P], v[4]), D = try tensor([E], v[5])
                let xz = try tensor([batch, L, 2 * E], v[6])
                let out = try selectiveScan(u: u, delta: delta, deltaBias: deltaBias, A: A, B: xdbl.columns(R..<(R + N)),
                                            C: xdbl.columns((R + N)..<P), D: D, z: xz.columns(E..<(2 * E)), reverse: reverse,
                                            scale: reverse ? 0.5 : 1, tape: tape)
                return ([u, delta, deltaBias, A, xdbl, D, xz], [out])
            }
            XCTAssertEqual(columns(g[4], width: P, 0..<R), [Float](repeating: 0, count: batch * L * R), what)
            XCTAssertEqual(columns(g[6], width: 2 * E, 0..<E), [Float](repeating: 0, count: batch * L * E), what)
        }
    }

    /// A Mamba mixer's chain with the conv output recomputed in the backward instead of kept: it
    /// feeds x_proj (a linear) and the scan's u. The gradients must be those of the same chain
    /// with the conv output kept, and both must match finite differences.
    func testRecomputableConvFeedingLinearAndScan() throws {
        let (batch, L, E, K, N, R) = (2, 5, 20, 4, 4, 2), P = R + 2 * N
        for reverse in [false, true] {
            let inputs = [Input(name: "x | z", values: random(batch * L * 2 * E)), Input(name: "conv weight", values: random(E * K, scale: 0.5)),
                          Input(name: "conv bias", values: random(E, scale: 0.5)), Input(name: "x_proj", values: random(P * E, scale: 0.3)),
                          Input(name: "dt_proj", values: random(E * R, scale: 0.5)), Input(name: "dt bias", values: random(E, scale: 0.5)),
                          Input(name: "A", values: random(E * N).map { -abs($0) - 0.2 }), Input(name: "D", values: random(E))]
            var recomputations = 0
            func chain(recompute: Bool) -> Forward {
                { v, tape in
                    let xz = try tensor([batch, L, 2 * E], v[0]), convWeight = try tensor([E, K], v[1]), convBias = try tensor([E], v[2])
                    let xProj = try tensor([P, E], v[3]), dtProj = try tensor([E, R], v[4]), dtBias = try tensor([E], v[5])
                    let A = try tensor([E, N], v[6]), D = try tensor([E], v[7])
                    let conv: (Tape?) throws -> Tensor = { t in
                        if tape != nil && t == nil { recomputations += 1 }
                        return try causalConv1dSiLU(xz.columns(0..<E), weight: convWeight, bias: convBias, reverse: reverse, tape: t)
                    }
                    let u = recompute ? try recomputable(tape: tape, conv) : try conv(tape)
                    let xdbl = try linear(u, weight: xProj, bias: nil, tape: tape)
                    let delta = try linear(xdbl.columns(0..<R), weight: dtProj, bias: nil, tape: tape)
                    let out = try selectiveScan(u: u, delta: delta, deltaBias: dtBias, A: A, B: xdbl.columns(R..<(R + N)),
                                                C: xdbl.columns((R + N)..<P), D: D, z: xz.columns(E..<(2 * E)), reverse: reverse, tape: tape)
                    return ([xz, convWeight, convBias, xProj, dtProj, dtBias, A, D], [out])
                }
            }
            let kept = try checkGradients("chain kept reverse=\(reverse)", inputs, chain(recompute: false))
            XCTAssertEqual(recomputations, 0)
            let recomputed = try checkGradients("chain recomputed reverse=\(reverse)", inputs, chain(recompute: true))
            // One recomputed copy, shared by both consumers' backward steps.
            XCTAssertEqual(recomputations, 1)
            for (i, input) in inputs.enumerated() {
                XCTAssertEqual(recomputed.gradients[i], kept.gradients[i], "recomputed vs kept reverse=\(reverse): \(input.name)")
            }
        }
    }

    // MARK: Rows, tokens and samples

    func testSelectToken() throws {
        let (B, T, D) = (2, 4, 20)
        for indices in [[2, 2], [3, 0]] {
            try checkGradients("selectToken \(indices)", [Input(name: "x", values: random(B * T * D))]) { v, tape in
                let x = try tensor([B, T, D], v[0])
                let y = indices[0] == indices[1] ? try selectToken(x, index: indices[0], tape: tape) : try selectToken(x, indices: indices, tape: tape)
                return ([x], [y])
            }
        }
    }

    /// Repeated indices, on x a column view (the scatter adds every pick into the view's columns).
    func testGatherRows() throws {
        let (B, T, D, W) = (2, 5, 20, 24)
        let (g, _) = try checkGradients("gatherRows", [Input(name: "x base", values: random(B * T * W))]) { v, tape in
            let base = try tensor([B, T, W], v[0])
            return ([base], [try gatherRows(base.columns(2..<(2 + D)), index: [[4, 0, 0, 2], [1, 3, 3, 3]], tape: tape)])
        }
        XCTAssertEqual(columns(g[0], width: W, 0..<2) + columns(g[0], width: W, (2 + D)..<W), [Float](repeating: 0, count: B * T * 4))
    }

    func testSelectSamples() throws {
        let (B, T, D, W) = (3, 4, 20, 40)
        let (g, _) = try checkGradients("selectSamples", [Input(name: "x base", values: random(B * T * W))]) { v, tape in
            let base = try tensor([B, T, W], v[0])
            return ([base], [try selectSamples(base.columns(D..<W), [2, 0, 2], tape: tape)])
        }
        XCTAssertEqual(columns(g[0], width: W, 0..<D), [Float](repeating: 0, count: B * T * D))
    }

    func testAddingSamples() throws {
        let (B, T, D) = (3, 4, 20)
        let inputs = [Input(name: "base", values: random(B * T * D)), Input(name: "values", values: random(3 * T * D))]
        try checkGradients("addingSamples", inputs) { v, tape in
            let base = try tensor([B, T, D], v[0]), values = try tensor([3, T, D], v[1])
            return ([base, values], [try addingSamples(base, values, at: [2, 0, 2], tape: tape)])
        }
    }

    func testInsertToken() throws {
        let (B, M, D) = (2, 3, 20)
        for index in [0, 1, M] {
            let inputs = [Input(name: "x", values: random(B * M * D)), Input(name: "token", values: random(D))]
            try checkGradients("insertToken at \(index)", inputs) { v, tape in
                let x = try tensor([B, M, D], v[0]), token = try tensor([1, 1, D], v[1])
                return ([x, token], [try insertToken(x, token: token, at: index, tape: tape)])
            }
        }
    }

    func testConcatenateColumns() throws {
        let (B, T) = (2, 3)
        let inputs = [Input(name: "a base", values: random(B * T * 25)), Input(name: "b", values: random(B * T * 7))]
        let (g, _) = try checkGradients("concatenateColumns", inputs) { v, tape in
            let aBase = try tensor([B, T, 25], v[0]), b = try tensor([B, T, 7], v[1])
            return ([aBase, b], [try concatenateColumns(aBase.columns(5..<25), b, tape: tape)])
        }
        XCTAssertEqual(columns(g[0], width: 25, 0..<5), [Float](repeating: 0, count: B * T * 5))
    }

    func testExpandTokens() throws {
        try checkGradients("expandTokens", [Input(name: "x", values: random(2 * 20))]) { v, tape in
            let x = try tensor([2, 20], v[0])
            return ([x], [try expandTokens(x, count: 3, tape: tape)])
        }
    }

    func testWeightedMeanTokens() throws {
        let (B, N, G) = (2, 4, 20)
        let inputs = [Input(name: "x", values: random(B * N * G)), Input(name: "weights", values: uniform(B * N, 0.2...1))]
        try checkGradients("weightedMeanTokens", inputs) { v, tape in
            let x = try tensor([B, N, G], v[0]), weights = try tensor([B, N], v[1])
            return ([x, weights], [try weightedMeanTokens(x, weights: weights, offset: 1, tape: tape)])
        }
        try checkGradients("weightedMeanTokens counting only", inputs) { v, tape in
            let x = try tensor([B, N, G], v[0]), weights = try tensor([B, N], v[1])
            return ([x, weights], [try weightedMeanTokens(x, weights: weights, offset: 1, weightsCountOnly: true, tape: tape)])
        }
        // sum / (Σ w + 1), by hand.
        let x = try tensor([1, 2, 1], [3, 5]), w = try tensor([1, 2], [1, 0])
        XCTAssertEqual(try weightedMeanTokens(x, weights: w, offset: 1, weightsCountOnly: true, tape: nil).array, [4])
        XCTAssertEqual(try weightedMeanTokens(x, weights: w, offset: 1, tape: nil).array, [1.5])
        // Counting only, on a column view (the backend's row sums honour its stride).
        let wide = try tensor([B, N, G + 3], random(B * N * (G + 3)))
        let view = try wide.columns(1..<(G + 1))
        XCTAssertEqual(try weightedMeanTokens(view, weights: nil, offset: 0, weightsCountOnly: true, tape: nil).array,
                       try weightedMeanTokens(view.copy(), weights: nil, offset: 0, weightsCountOnly: true, tape: nil).array)
    }

    /// Scattering rows onto a longer sequence: the values land at their indices (zeros
    /// elsewhere), and the gradient gathers them back.
    func testScatterRows() throws {
        let index = [[4, 0, 2], [1, 3, 0]]
        let x = try tensor([2, 3, 2], (0..<12).map(Float.init))
        XCTAssertEqual(try scatterRows(x, index: index, count: 5, tape: nil).array,
                       [2, 3, 0, 0, 4, 5, 0, 0, 0, 1, /**/ 10, 11, 6, 7, 0, 0, 8, 9, 0, 0])
        XCTAssertThrowsError(try scatterRows(x, index: [[5, 0, 2], [1, 3, 0]], count: 5, tape: nil))
        XCTAssertThrowsError(try scatterRows(x, index: [[0, 1], [1, 3]], count: 5, tape: nil))
        try checkGradients("scatterRows", [Input(name: "x", values: random(2 * 3 * 4))]) { v, tape in
            let x = try tensor([2, 3, 4], v[0])
            return ([x], [try scatterRows(x, index: index, count: 5, tape: tape)])
        }
    }

    func testLogSoftmax() throws {
        try checkGradients("logSoftmax", [Input(name: "x", values: random(2 * 3 * 5, scale: 2))]) { v, tape in
            let x = try tensor([2, 3, 5], v[0])
            return ([x], [try logSoftmax(x, tape: tape)])
        }
    }

    /// Targets whose rows do not sum to 1, so the Σ target factor of the gradient is exercised.
    func testSoftTargetCrossEntropy() throws {
        let (B, C) = (3, 7)
        let targets = uniform(B * C, 0...0.3)
        try checkGradients("softTargetCrossEntropy", [Input(name: "logits", values: random(B * C, scale: 2))]) { v, tape in
            let logits = try tensor([B, C], v[0])
            return ([logits], [try softTargetCrossEntropy(logits, targets: targets, tape: tape)])
        }
    }

    /// Famba-V's merge with a plan from bipartite soft matching: the A tokens all lean towards
    /// token 1, so r = 3 sends several of them into one output, which averages four inputs.
    func testMergeTokens() throws {
        let (B, T, C, D) = (2, 9, 8, 20)
        let direction = random(C)
        let metricValues = (0..<(B * T)).flatMap { row -> [Float] in
            let t = row % T, noise = random(C, scale: 0.2)
            return t % 2 == 0 || t == 1 ? zip(direction, noise).map { $0 + $1 } : noise.map { $0 * 5 }
        }
        let metric = try tensor([B, T, C], metricValues)
        for preserveOrder in [false, true] {
            let plan = try bipartiteSoftMatching(metric, r: 3, protected: [0, 0], preserveOrder: preserveOrder)
            XCTAssertEqual(plan.tokensOut, T - 3)
            XCTAssertGreaterThanOrEqual(plan.count.joined().max() ?? 0, 3)
            try checkGradients("mergeTokens preserveOrder=\(preserveOrder)", [Input(name: "x", values: random(B * T * D))]) { v, tape in
                let x = try tensor([B, T, D], v[0])
                return ([x], [try mergeTokens(x, plan: plan, tape: tape)])
            }
        }
    }

    // MARK: Images

    /// Kernel 3 with stride 2: neighbouring patches share pixels. The images get no gradient.
    func testPatchEmbedding() throws {
        let (B, Cin, H, W, D, p) = (2, 3, 7, 7, 20, 3)
        let images = try tensor([B, Cin, H, W], random(B * Cin * H * W))
        let inputs = [Input(name: "weight", values: random(D * Cin * p * p, scale: 0.3)), Input(name: "bias", values: random(D))]
        try checkGradients("patchEmbedding", inputs) { v, tape in
            let weight = try tensor([D, Cin, p, p], v[0]), bias = try tensor([D], v[1])
            let tokens = try patchEmbedding(images, weight: weight, bias: bias, stride: 2, tape: tape)
            XCTAssertEqual(tokens.shape, [B, 9, D])
            return ([weight, bias], [tokens])
        }
    }

    // MARK: Straight-through decisions

    /// The keep decision is hard, so its backward is that of the soft keep probability
    /// s₀ = softmax(logp + G)₀: logpGrad = (s₀s₁, −s₀s₁)·keepGrad. That formula is computed here in
    /// double, and is itself checked as the derivative of Σ seed · s₀.
    func testGumbelSoftmaxKeepIsStraightThrough() throws {
        let rows = 2 * 5
        let logp = random(2 * rows), noise = random(2 * rows), seed = random(rows)
        func soft0(_ l: [Float], _ r: Int) -> Double {
            1 / (1 + Foundation.exp((Double(l[2 * r + 1]) + Double(noise[2 * r + 1])) - (Double(l[2 * r]) + Double(noise[2 * r]))))
        }
        let x = try tensor([2, 5, 2], logp), tape = Tape()
        let keep = try gumbelSoftmaxKeep(x, noise: noise, tape: tape)
        try tape.backward(from: keep, seed: seed)
        XCTAssertEqual(keep.array, (0..<rows).map { soft0(logp, $0) >= 0.5 ? 1 : 0 })
        let expected = (0..<rows).flatMap { r -> [Double] in
            let s = soft0(logp, r), g = s * (1 - s) * Double(seed[r])
            return [g, -g]
        }
        assertClose(x.grad!.array, expected, "gumbelSoftmaxKeep against the soft formula", tolerance: 1e-6)
        let numeric = numericGradient(logp, eps: 1e-3) { l in (0..<rows).reduce(0.0) { $0 + Double(seed[$1]) * soft0(l, $1) } }
        assertClose(x.grad!.array, numeric, "gumbelSoftmaxKeep against d(Σ seed·s₀)", tolerance: 1e-5)
    }

    /// Gates are hard (soft > threshold); the backward is the soft gate's:
    /// logitGrad = gateGrad · s(1 − s) / τ with s = sigmoid((logit + noise) / τ).
    func testGumbelSigmoidGatesIsStraightThrough() throws {
        let (B, tau) = (6, Float(0.7))
        let logits = random(B * 2), noise = random(B * 2), seed = random(B * 2)
        func soft(_ l: [Float], _ i: Int) -> Double { 1 / (1 + Foundation.exp(-(Double(l[i]) + Double(noise[i])) / Double(tau))) }
        let x = try tensor([B, 2], logits), tape = Tape()
        let gates = try gumbelSigmoidGates(x, noise: noise, tau: tau, tape: tape)
        try tape.backward(from: gates, seed: seed)
        XCTAssertEqual(gates.array, logits.indices.map { soft(logits, $0) > 0.5 ? 1 : 0 })
        let expected = logits.indices.map { i in Double(seed[i]) * soft(logits, i) * (1 - soft(logits, i)) / Double(tau) }
        assertClose(x.grad!.array, expected, "gumbelSigmoidGates against the soft formula", tolerance: 1e-6)
        let numeric = numericGradient(logits, eps: 1e-3) { l in logits.indices.reduce(0.0) { $0 + Double(seed[$1]) * soft(l, $1) } }
        assertClose(x.grad!.array, numeric, "gumbelSigmoidGates against d(Σ seed·s)", tolerance: 1e-5)
    }
}

private func tensor(_ shape: [Int], _ values: [Float]) throws -> Tensor { try Tensor(shape: shape, values: values) }

/// Columns `range` of every row of a row-major matrix `width` wide.
private func columns(_ values: [Float], width: Int, _ range: Range<Int>) -> [Float] {
    stride(from: 0, to: values.count, by: width).flatMap { values[($0 + range.lowerBound)..<($0 + range.upperBound)] }
}
