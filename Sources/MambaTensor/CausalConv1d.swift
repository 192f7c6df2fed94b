// Depthwise causal conv1d + bias + SiLU over tokens, as causal-conv1d's `causal_conv1d_fn(x, w, b,
// activation="silu")`, on token-major activations (rows = tokens, columns = channels):
//   forward:  out[t, e] = SiLU(bias[e] + Σ_k w[e, k] · x[t − (K−1) + k, e]),  x[j] = 0 for j < 0
//   reverse:  out[t, e] = SiLU(bias[e] + Σ_k w[e, k] · x[t + (K−1) − k, e]),  x[j] = 0 for j ≥ L
// The reverse form is the official backward branch (conv on the token-flipped sequence, flipped
// back) computed in original order, so no flipped copy of x is ever made.

/// out [batch, L, E] (contiguous); x rows of stride `ldx`; weight [E, K] (conv1d.weight [E,1,K]); bias [E].
public func causalConv1dSiLUForward(
    out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, ldx: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    batch: Int, length: Int, channels: Int, kernel: Int, reverse: Bool
) {
    let E = channels, K = kernel, L = length
    // Taps transposed to [K, E] so eight channels of one tap load as one vector.
    let wT = UnsafeMutablePointer<Float>.allocate(capacity: K * E)
    defer { wT.deallocate() }
    for e in 0..<E { for k in 0..<K { wT[k * E + e] = weight[e * K + k] } }

    parallelFor(batch * L, grain: 16) { rows in
        for row in rows {
            let b = row / L, t = row % L
            let o = out + row * E
            var e = 0
            while e < E {
                let n = min(8, E - e)
                var acc = load8(bias + e, count: n)
                for k in 0..<K {
                    let src = reverse ? t + (K - 1) - k : t - (K - 1) + k
                    if src < 0 || src >= L { continue }
                    acc = acc.addingProduct(load8(wT + k * E + e, count: n), load8(x + (b * L + src) * ldx + e, count: n))
                }
                store8(o + e, silu8(acc), count: n)
                e += 8
            }
        }
    }
}
