import Foundation
import XCTest
@testable import MambaTensor

/// The dense image ops of the segmentation heads: values against naive loops in double
/// precision (PyTorch's formulas written out), gradients against finite differences.
extension OpGradientTests {
    func images(_ shape: [Int], _ values: [Float]) throws -> Tensor { try Tensor(shape: shape, values: values) }

    /// ||a − b|| / ||b|| for values against a double reference.
    func assertMatches(_ a: [Float], _ b: [Double], _ what: String, tolerance: Double = 1e-6, file: StaticString = #filePath, line: UInt = #line) {
        assertClose(a, b, what, tolerance: tolerance, file: file, line: line)
    }

    func naiveConv(_ x: [Float], _ w: [Float], _ bias: [Float]?, B: Int, C: Int, H: Int, W: Int, O: Int, k: Int, s: Int, p: Int) -> [Double] {
        let oh = (H + 2 * p - k) / s + 1, ow = (W + 2 * p - k) / s + 1
        var out = [Double](repeating: 0, count: B * O * oh * ow)
        for b in 0..<B { for o in 0..<O { for oy in 0..<oh { for ox in 0..<ow {
            var acc = Double(bias?[o] ?? 0)
            for c in 0..<C { for ky in 0..<k { for kx in 0..<k {
                let y = oy * s + ky - p, xx = ox * s + kx - p
                if y >= 0 && y < H && xx >= 0 && xx < W {
                    acc += Double(x[((b * C + c) * H + y) * W + xx]) * Double(w[((o * C + c) * k + ky) * k + kx])
                }
            } } }
            out[((b * O + o) * oh + oy) * ow + ox] = acc
        } } } }
        return out
    }

    func testConv2dValuesAndGradients() throws {
        let (B, C, H, W, O) = (2, 3, 5, 6, 4)
        // Chunks of 7 output pixels (27 · 7 floats) for the 3 × 3 cases: im2col in pieces.
        convolutionChunkFloats = 27 * 7
        defer { convolutionChunkFloats = 1 << 24 }
        for (k, s, p, hasBias) in [(3, 1, 1, true), (3, 2, 1, false), (1, 1, 0, true), (2, 2, 0, true)] {
            let x = random(B * C * H * W), w = random(O * C * k * k, scale: 0.4), bias = random(O)
            let y = try conv2d(images([B, C, H, W], x), weight: images([O, C, k, k], w), bias: hasBias ? images([O], bias) : nil,
                               stride: s, padding: p, tape: nil)
            assertMatches(y.array, naiveConv(x, w, hasBias ? bias : nil, B: B, C: C, H: H, W: W, O: O, k: k, s: s, p: p), "conv k\(k) s\(s) p\(p)")
            let inputs = [Input(name: "x", values: x), Input(name: "weight", values: w), Input(name: "bias", values: bias)]
            try checkGradients("conv2d k\(k) s\(s) p\(p)", Array(inputs.prefix(hasBias ? 3 : 2))) { v, tape in
                let xt = try self.images([B, C, H, W], v[0]), wt = try self.images([O, C, k, k], v[1])
                let bt = hasBias ? try self.images([O], v[2]) : nil
                return ([xt, wt] + (bt.map { [$0] } ?? []), [try conv2d(xt, weight: wt, bias: bt, stride: s, padding: p, tape: tape)])
            }
        }
    }

    func testConvTranspose2dValuesAndGradients() throws {
        let (B, C, H, W, O, k) = (2, 3, 2, 3, 4, 2)
        let x = random(B * C * H * W), w = random(C * O * k * k, scale: 0.5), bias = random(O)
        var expected = [Double](repeating: 0, count: B * O * H * k * W * k)
        for b in 0..<B { for o in 0..<O { for y in 0..<(H * k) { for xx in 0..<(W * k) {
            var acc = Double(bias[o])
            for c in 0..<C { acc += Double(x[((b * C + c) * H + y / k) * W + xx / k]) * Double(w[((c * O + o) * k + y % k) * k + xx % k]) }
            expected[((b * O + o) * H * k + y) * W * k + xx] = acc
        } } } }
        let y = try convTranspose2d(images([B, C, H, W], x), weight: images([C, O, k, k], w), bias: images([O], bias), stride: k, tape: nil)
        XCTAssertEqual(y.shape, [B, O, H * k, W * k])
        assertMatches(y.array, expected, "convTranspose2d")
        try checkGradients("convTranspose2d", [Input(name: "x", values: x), Input(name: "weight", values: w), Input(name: "bias", values: bias)]) { v, tape in
            let xt = try self.images([B, C, H, W], v[0]), wt = try self.images([C, O, k, k], v[1]), bt = try self.images([O], v[2])
            return ([xt, wt, bt], [try convTranspose2d(xt, weight: wt, bias: bt, stride: k, tape: tape)])
        }
        XCTAssertThrowsError(try convTranspose2d(images([B, C, H, W], x), weight: images([C, O, k, k], w), bias: nil, stride: 3, tape: nil)) {
            XCTAssertEqual($0 as? TensorError, .invalidArgument(name: "transposed conv kernel", value: 2, allowed: "square and equal to the stride (3)"))
        }
    }

    func testBatchNormTrainingEvaluationAndSync() throws {
        let (B, C, H, W) = (4, 3, 2, 3)
        let x = random(B * C * H * W, scale: 2), weight = random(C), bias = random(C)
        let n = Double(B * H * W)
        // Training: batch statistics, running ones updated with the unbiased variance.
        let rm = try images([C], [0.1, -0.2, 0.3]), rv = try images([C], [1, 2, 0.5])
        let y = try batchNorm2d(images([B, C, H, W], x), weight: images([C], weight), bias: images([C], bias),
                                runningMean: rm, runningVar: rv, training: true, tape: nil)
        var expected = [Double](repeating: 0, count: x.count)
        for c in 0..<C {
            let values = (0..<B).flatMap { b in (0..<(H * W)).map { Double(x[(b * C + c) * H * W + $0]) } }
            let mean = values.reduce(0, +) / n, variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n
            XCTAssertEqual(Double(rm.array[c]), 0.9 * Double([0.1, -0.2, 0.3][c] as Float) + 0.1 * mean, accuracy: 1e-6)
            XCTAssertEqual(Double(rv.array[c]), 0.9 * Double([1, 2, 0.5][c] as Float) + 0.1 * variance * n / (n - 1), accuracy: 1e-6)
            for b in 0..<B { for i in 0..<(H * W) {
                let at = (b * C + c) * H * W + i
                expected[at] = (Double(x[at]) - mean) / (variance + 1e-5).squareRoot() * Double(weight[c]) + Double(bias[c])
            } }
        }
        assertMatches(y.array, expected, "batchNorm train")
        for training in [true, false] {
            try checkGradients("batchNorm training=\(training)", [Input(name: "x", values: x), Input(name: "weight", values: weight),
                                                                 Input(name: "bias", values: bias)]) { v, tape in
                let xt = try self.images([B, C, H, W], v[0]), wt = try self.images([C], v[1]), bt = try self.images([C], v[2])
                let out = try batchNorm2d(xt, weight: wt, bias: bt, runningMean: self.images([C], [0.1, -0.2, 0.3]),
                                          runningVar: self.images([C], [1, 2, 0.5]), training: training, tape: tape)
                return ([xt, wt, bt], [out])
            }
        }
        // Two halves whose statistics are summed as two processes would sum them give the whole
        // batch's output and input gradient.
        let half = x.count / 2
        let seed = random(x.count)
        func run(_ values: [Float], batch: Int, sync: (([Double]) -> [Double])?) throws -> (y: [Float], xGrad: [Float]) {
            let tape = Tape()
            let xt = try images([batch, C, H, W], values), wt = try images([C], weight), bt = try images([C], bias)
            let out = try batchNorm2d(xt, weight: wt, bias: bt, runningMean: images([C], [0, 0, 0]), runningVar: images([C], [1, 1, 1]),
                                      training: true, allReduce: sync, tape: tape)
            try tape.backward(from: out, seed: batch == B ? seed : Array(seed[0..<half]))
            return (out.array, xt.grad!.array)
        }
        let whole = try run(x, batch: B, sync: nil)
        // The other half's partial sums, computed as that process would.
        let other = try images([B / 2, C, H, W], Array(x[half...]))
        let cpu = other.backend
        let otherForward = cpu.channelSums(other, nil, channels: C) + cpu.channelSums(other, other, channels: C) + [Double(half / C)]
        var calls = 0
        let first = try run(Array(x[..<half]), batch: B / 2) { mine in
            calls += 1
            if calls == 1 { return zip(mine, otherForward).map { $0 + $1 } }
            // Backward: the other half's Σdy and Σdy·x for its part of the seed.
            let g = try! self.images([B / 2, C, H, W], Array(seed[half...]))
            let theirs = cpu.channelSums(g, nil, channels: C) + cpu.channelSums(g, other, channels: C)
            return zip(mine, theirs).map { $0 + $1 }
        }
        for (a, b) in zip(first.y, whole.y[..<half]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (a, b) in zip(first.xGrad, whole.xGrad[..<half]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testMaxPool() throws {
        let (B, C, H, W) = (2, 2, 5, 4)
        // Distinct values, so that no window ties and finite differences see one maximum.
        var order = Array(0..<(B * C * H * W)).map { Float($0) * 0.37 }
        order.shuffle(using: &rng)
        let y = try maxPool2d(images([B, C, H, W], order), kernel: 2, stride: 2, tape: nil)
        XCTAssertEqual(y.shape, [B, C, 2, 2])
        var expected: [Double] = []
        for p in 0..<(B * C) { for oy in 0..<2 { for ox in 0..<2 {
            var best = -Float.infinity
            for dy in 0..<2 {
                for dx in 0..<2 {
                    let at: Int = p * H * W + (oy * 2 + dy) * W + ox * 2 + dx
                    best = max(best, order[at])
                }
            }
            expected.append(Double(best))
        } } }
        assertMatches(y.array, expected, "maxPool")
        try checkGradients("maxPool", [Input(name: "x", values: order, eps: 0.05)]) { v, tape in
            let xt = try self.images([B, C, H, W], v[0])
            return ([xt], [try maxPool2d(xt, kernel: 2, stride: 2, tape: tape)])
        }
    }

    func testAdaptiveAveragePool() throws {
        for (H, W, oh, ow) in [(2, 2, 6, 6), (7, 5, 3, 2), (4, 4, 1, 1)] {
            let x = random(2 * H * W)
            let y = try adaptiveAveragePool2d(images([1, 2, H, W], x), height: oh, width: ow, tape: nil)
            var expected: [Double] = []
            for c in 0..<2 { for i in 0..<oh { for j in 0..<ow {
                let (r0, r1) = (i * H / oh, ((i + 1) * H + oh - 1) / oh), (c0, c1) = (j * W / ow, ((j + 1) * W + ow - 1) / ow)
                var acc = 0.0
                for r in r0..<r1 { for q in c0..<c1 { acc += Double(x[(c * H + r) * W + q]) } }
                expected.append(acc / Double((r1 - r0) * (c1 - c0)))
            } } }
            assertMatches(y.array, expected, "adaptive pool \(H)×\(W) → \(oh)×\(ow)")
            try checkGradients("adaptive pool \(H)→\(oh)", [Input(name: "x", values: x)]) { v, tape in
                let xt = try self.images([1, 2, H, W], v[0])
                return ([xt], [try adaptiveAveragePool2d(xt, height: oh, width: ow, tape: tape)])
            }
        }
    }

    func testResizeBilinear() throws {
        for (H, W, oh, ow) in [(7, 5, 3, 2), (3, 2, 8, 7), (4, 4, 4, 9)] {
            for align in [false, true] {
                let x = random(2 * H * W)
                let y = try resizeBilinear(images([1, 2, H, W], x), height: oh, width: ow, alignCorners: align, tape: nil)
                func source(_ d: Int, _ n: Int, _ out: Int) -> (Int, Int, Double) {
                    let s = align ? (out > 1 ? Double(d) * Double(n - 1) / Double(out - 1) : 0)
                                  : max((Double(d) + 0.5) * Double(n) / Double(out) - 0.5, 0)
                    let i = min(Int(s), n - 1)
                    return (i, min(i + 1, n - 1), s - Double(i))
                }
                var expected: [Double] = []
                for c in 0..<2 { for i in 0..<oh { for j in 0..<ow {
                    let (y0, y1, fy) = source(i, H, oh), (x0, x1, fx) = source(j, W, ow)
                    func v(_ r: Int, _ q: Int) -> Double { Double(x[(c * H + r) * W + q]) }
                    expected.append((v(y0, x0) * (1 - fx) + v(y0, x1) * fx) * (1 - fy) + (v(y1, x0) * (1 - fx) + v(y1, x1) * fx) * fy)
                } } }
                assertMatches(y.array, expected, "resize \(H)×\(W) → \(oh)×\(ow) align \(align)", tolerance: 1e-5)
                try checkGradients("resize \(H)→\(oh) align \(align)", [Input(name: "x", values: x)]) { v, tape in
                    let xt = try self.images([1, 2, H, W], v[0])
                    return ([xt], [try resizeBilinear(xt, height: oh, width: ow, alignCorners: align, tape: tape)])
                }
            }
        }
    }

    func testLayoutOpsAndReLU() throws {
        let (B, L, C) = (2, 6, 5)
        let x = random(B * L * C)
        let channels = try tokensToChannels(images([B, L, C], x), height: 2, width: 3, tape: nil)
        XCTAssertEqual(channels.shape, [B, C, 2, 3])
        XCTAssertEqual(channels.array[(1 * C + 4) * L + 5], x[(1 * L + 5) * C + 4])
        XCTAssertEqual(try channelsToTokens(channels, tape: nil).array, x)
        try checkGradients("tokensToChannels + relu + concat", [Input(name: "x", values: x), Input(name: "other", values: random(B * 2 * 6))]) { v, tape in
            let xt = try self.images([B, L, C], v[0]), other = try self.images([B, 2, 2, 3], v[1])
            let c = try tokensToChannels(xt, height: 2, width: 3, tape: tape)
            return ([xt, other], [try concatenateChannels([relu(c, tape: tape), other, c], tape: tape)])
        }
        let cat = try concatenateChannels([images([1, 1, 1, 2], [1, 2]), images([1, 2, 1, 2], [3, 4, 5, 6])], tape: nil)
        XCTAssertEqual(cat.array, [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try concatenateChannels([images([1, 1, 1, 2], [1, 2]), images([1, 1, 2, 1], [3, 4])], tape: nil))
    }

    func testDropout2dDropsWholeChannels() throws {
        let x = try images([2, 8, 3, 3], [Float](repeating: 1, count: 144))
        let y = try dropout2d(x, probability: 0.5, sampleSeeds: [5, 6], tape: nil).array
        // An image's planes follow its seed alone.
        let alone = try dropout2d(try images([1, 8, 3, 3], [Float](repeating: 1, count: 72)), probability: 0.5, sampleSeeds: [6], tape: nil).array
        XCTAssertEqual(Array(y[72...]), alone)
        XCTAssertThrowsError(try dropout2d(x, probability: 0.5, sampleSeeds: [5], tape: nil))
        var dropped = 0
        for plane in 0..<16 {
            let values = Set(y[(plane * 9)..<((plane + 1) * 9)])
            XCTAssertEqual(values.count, 1)
            XCTAssertTrue(values == [0] || values == [2])
            if values == [0] { dropped += 1 }
        }
        XCTAssertTrue((1...15).contains(dropped))
    }

    func testPixelCrossEntropyAndArgmax() throws {
        let (B, K, H, W) = (2, 4, 2, 3)
        let logits = random(B * K * H * W, scale: 2)
        let labels = (0..<(B * H * W)).map { $0 % 5 == 4 ? 255 : $0 % K }
        var total = 0.0, labelled = 0
        for q in 0..<(B * H * W) where labels[q] != 255 {
            let (b, p) = (q / (H * W), q % (H * W))
            let z = (0..<K).map { Double(logits[(b * K + $0) * H * W + p]) }
            total += Foundation.log(z.map(Foundation.exp).reduce(0, +)) - z[labels[q]]
            labelled += 1
        }
        for nonIgnored in [false, true] {
            let loss = try pixelCrossEntropy(images([B, K, H, W], logits), labels: labels, averageOverNonIgnored: nonIgnored, tape: nil)
            XCTAssertEqual(Double(loss.array[0]), total / Double(nonIgnored ? labelled : B * H * W), accuracy: 1e-5)
            try checkGradients("pixel CE nonIgnored=\(nonIgnored)", [Input(name: "logits", values: logits)]) { v, tape in
                let l = try self.images([B, K, H, W], v[0])
                return ([l], [try pixelCrossEntropy(l, labels: labels, averageOverNonIgnored: nonIgnored, tape: tape)])
            }
        }
        XCTAssertThrowsError(try pixelCrossEntropy(images([B, K, H, W], logits), labels: labels.map { $0 == 1 ? 7 : $0 }, tape: nil)) {
            XCTAssertEqual($0 as? TensorError, .labelOutOfRange(label: 7, classes: K))
        }
        let best = try argmaxChannels(images([B, K, H, W], logits))
        for q in 0..<(B * H * W) {
            let (b, p) = (q / (H * W), q % (H * W))
            let z = (0..<K).map { logits[(b * K + $0) * H * W + p] }
            XCTAssertEqual(best[q], z.firstIndex(of: z.max()!)!)
        }
    }

    func testRotaryEmbedding() throws {
        let (B, L, D) = (2, 3, 6)
        let x = random(B * L * D), cos = random(L * D), sin = random(L * D)
        let y = try rotaryEmbedding(images([B, L, D], x), cos: images([L, D], cos), sin: images([L, D], sin), tape: nil)
        var expected: [Double] = []
        for t in 0..<(B * L) {
            let l = t % L
            for i in 0..<D {
                let rotated = i % 2 == 0 ? -Double(x[t * D + i + 1]) : Double(x[t * D + i - 1])
                expected.append(Double(x[t * D + i]) * Double(cos[l * D + i]) + rotated * Double(sin[l * D + i]))
            }
        }
        assertMatches(y.array, expected, "rotary")
        try checkGradients("rotary", [Input(name: "x", values: x)]) { v, tape in
            let xt = try self.images([B, L, D], v[0])
            return ([xt], [try rotaryEmbedding(xt, cos: self.images([L, D], cos), sin: self.images([L, D], sin), tape: tape)])
        }
    }

    /// The chunked conv and the resample give the same bits on one thread as on two.
    func testImageOpsDoNotDependOnThreads() throws {
        let x = try images([1, 16, 20, 24], random(16 * 20 * 24)), w = try images([8, 16, 3, 3], random(8 * 16 * 9, scale: 0.2))
        func run() throws -> [[Float]] {
            [try conv2d(x, weight: w, bias: nil, padding: 1, tape: nil).array,
             try resizeBilinear(x, height: 37, width: 11, tape: nil).array,
             try batchNorm2d(x, weight: images([16], [Float](repeating: 1, count: 16)), bias: images([16], [Float](repeating: 0, count: 16)),
                             runningMean: images([16], [Float](repeating: 0, count: 16)), runningVar: images([16], [Float](repeating: 1, count: 16)),
                             training: true, tape: nil).array]
        }
        EngineSettings.configure(threads: 1)
        let one = try run()
        EngineSettings.configure(threads: 2)
        XCTAssertEqual(try run(), one)
    }
}
