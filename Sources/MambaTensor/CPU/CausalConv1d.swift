import Foundation

// Depthwise causal conv1d + bias + SiLU over tokens, as causal-conv1d's `causal_conv1d_fn(x, w, b,
// activation="silu")`, on token-major activations (rows = tokens, columns = channels):
//   forward:  out[t, e] = SiLU(bias[e] + Σ_k w[e, k] · x[t − (K−1) + k, e]),  x[j] = 0 for j < 0
//   reverse:  out[t, e] = SiLU(bias[e] + Σ_k w[e, k] · x[t + (K−1) − k, e]),  x[j] = 0 for j ≥ L
// The reverse form is the official backward branch (conv on the token-flipped sequence, flipped
// back) computed in original order, so no flipped copy of x is ever made.

/// out [batch, L, E] (contiguous); x rows of stride `ldx`; weight [E, K] (conv1d.weight [E,1,K]); bias [E].
package func causalConv1dSiLUForward(
    out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, ldx: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    batch: Int, length: Int, channels: Int, kernel: Int, reverse: Bool
) {
    let E = channels, K = kernel, L = length
    // Taps transposed to [K, E] so eight channels of one tap load as one vector.
    let wT = UnsafeMutablePointer<Float>.allocate(capacity: K * E)
    defer { wT.deallocate() }
    for e in 0..<E { for k in 0..<K { wT[k * E + e] = weight[e * K + k] } }

    // ggml's ssm_conv order: a task is one sequence × 16 channels (a whole cache line of each
    // row); tokens run inside it and the taps stay in registers.
    let blocks = E / 16
    parallelFor(batch * blocks) { tasks in
        for task in tasks {
            let b = task / blocks, e = (task % blocks) * 16
            let bias0 = load8(bias + e), bias1 = load8(bias + e + 8)
            let xb = x + b * L * ldx + e, ob = out + b * L * E + e
            for t in 0..<L {
                var acc0 = bias0, acc1 = bias1
                for k in 0..<K {
                    // Tap k reads K−1−k tokens back (forward) or ahead (reverse).
                    let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                    if src < 0 || src >= L { continue }
                    let w = wT + k * E + e, xs = xb + src * ldx
                    acc0 = acc0.plusProduct(load8(w), load8(xs))
                    acc1 = acc1.plusProduct(load8(w + 8), load8(xs + 8))
                }
                store8(ob + t * E, silu8(acc0))
                store8(ob + t * E + 8, silu8(acc1))
            }
        }
    }
    // Channels past the last multiple of 16: the plain loop.
    for b in 0..<batch {
        for t in 0..<L {
            for e in (blocks * 16)..<E {
                var acc = Double(bias[e])
                for k in 0..<K {
                    let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                    if src >= 0 && src < L { acc += Double(weight[e * K + k]) * Double(x[(b * L + src) * ldx + e]) }
                }
                out[(b * L + t) * E + e] = Float(acc / (1 + Foundation.exp(-acc)))
            }
        }
    }
}

/// Backward of `causalConv1dSiLUForward`. The pre-activation a is recomputed (as the official
/// backward does), then with aGrad = outGrad·SiLU'(a), SiLU'(a) = s·(1 + a·(1 − s)), s = sigmoid(a):
///   xGrad[src] += w[e, k]·aGrad[t],  weightGrad[e, k] += Σ aGrad[t]·x[src],  biasGrad[e] += Σ aGrad[t]
/// xGrad has row stride `ldx` like x. A task owns 16 channels for the whole batch, so no two
/// threads touch one weight; channels past the last multiple of 16 take the plain loop.
package func causalConv1dSiLUBackward(
    xGrad: UnsafeMutablePointer<Float>, weightGrad: UnsafeMutablePointer<Float>, biasGrad: UnsafeMutablePointer<Float>,
    outGrad: UnsafePointer<Float>, x: UnsafePointer<Float>, ldx: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    batch: Int, length: Int, channels: Int, kernel: Int, reverse: Bool
) {
    let E = channels, K = kernel, L = length
    let wT = UnsafeMutablePointer<Float>.allocate(capacity: K * E)   // [K, E]
    defer { wT.deallocate() }
    for e in 0..<E { for k in 0..<K { wT[k * E + e] = weight[e * K + k] } }
    let blocks = E / 16
    parallelFor(blocks) { range in
        let wg = UnsafeMutablePointer<Float8>.allocate(capacity: 2 * K)
        defer { wg.deallocate() }
        for block in range {
            let e = block * 16
            wg.initialize(repeating: Float8(), count: 2 * K)
            var bg0 = Float8(), bg1 = Float8()
            let bias0 = load8(bias + e), bias1 = load8(bias + e + 8)
            for b in 0..<batch {
                let xb = x + b * L * ldx + e, gb = xGrad + b * L * ldx + e, ob = outGrad + b * L * E + e
                for t in 0..<L {
                    var a0 = bias0, a1 = bias1
                    for k in 0..<K {
                        let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                        if src < 0 || src >= L { continue }
                        a0 = a0.plusProduct(load8(wT + k * E + e), load8(xb + src * ldx))
                        a1 = a1.plusProduct(load8(wT + k * E + e + 8), load8(xb + src * ldx + 8))
                    }
                    let s0 = sigmoid8(a0), s1 = sigmoid8(a1)
                    let a0Grad = load8(ob + t * E) * s0 * (1 + a0 * (1 - s0))
                    let a1Grad = load8(ob + t * E + 8) * s1 * (1 + a1 * (1 - s1))
                    bg0 += a0Grad; bg1 += a1Grad
                    for k in 0..<K {
                        let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                        if src < 0 || src >= L { continue }
                        let xs = xb + src * ldx, gs = gb + src * ldx
                        store8(gs, load8(gs).plusProduct(load8(wT + k * E + e), a0Grad))
                        store8(gs + 8, load8(gs + 8).plusProduct(load8(wT + k * E + e + 8), a1Grad))
                        wg[2 * k] = wg[2 * k].plusProduct(a0Grad, load8(xs))
                        wg[2 * k + 1] = wg[2 * k + 1].plusProduct(a1Grad, load8(xs + 8))
                    }
                }
            }
            for k in 0..<K {
                for lane in 0..<8 {
                    weightGrad[(e + lane) * K + k] += wg[2 * k][lane]
                    weightGrad[(e + 8 + lane) * K + k] += wg[2 * k + 1][lane]
                }
            }
            store8(biasGrad + e, load8(biasGrad + e) + bg0)
            store8(biasGrad + e + 8, load8(biasGrad + e + 8) + bg1)
        }
    }
    // Channels past the last multiple of 16, in double precision.
    for e in (blocks * 16)..<E {
        var wgs = [Double](repeating: 0, count: K), bgs = 0.0
        for b in 0..<batch {
            let xb = x + b * L * ldx + e, gb = xGrad + b * L * ldx + e
            for t in 0..<L {
                var a = Double(bias[e])
                for k in 0..<K {
                    let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                    if src >= 0 && src < L { a += Double(weight[e * K + k]) * Double(xb[src * ldx]) }
                }
                let s = 1 / (1 + Foundation.exp(-a))
                let aGrad = Double(outGrad[(b * L + t) * E + e]) * s * (1 + a * (1 - s))
                bgs += aGrad
                for k in 0..<K {
                    let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                    if src < 0 || src >= L { continue }
                    gb[src * ldx] += Float(Double(weight[e * K + k]) * aGrad)
                    wgs[k] += aGrad * Double(xb[src * ldx])
                }
            }
        }
        for k in 0..<K { weightGrad[e * K + k] += Float(wgs[k]) }
        biasGrad[e] += Float(bgs)
    }
}
