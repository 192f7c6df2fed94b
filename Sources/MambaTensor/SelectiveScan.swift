// Selective scan with D skip and SiLU(z) gate, mamba_ssm's `selective_scan_fn(u, delta, A, B, C, D,
// z, delta_bias, delta_softplus=True)`, on token-major activations:
//   Δ_t   = softplus(delta[t, e] + deltaBias[e])
//   h_t   = exp(Δ_t · A[e, n]) · h_{t−1} + Δ_t · B[t, n] · u[t, e]        (h_{-1} = 0)
//   y_t   = (Σ_n C[t, n] · h_t[n] + D[e] · u[t, e]) · SiLU(z[t, e])
// `reverse` runs t from L−1 down to 0: the official backward branch (scan of the flipped
// sequence, flipped back) without materialising flipped copies.
//
// Loop order: eight channels share one SIMD8 and the N states of those eight channels stay in
// a small local array across all tokens; B and C are shared by all channels (one group), so
// they are broadcast. The exp is the cost: L · E · N of them per direction.

/// out [batch, L, E] = scale · y (+ out when `accumulate`). u, delta [batch, L, E] contiguous;
/// A [E, N] (already −exp(A_log)); B and C rows of stride `ldBC` (columns of x_proj's output);
/// z rows of stride `ldz`; D, deltaBias [E].
public func selectiveScanForward(
    out: UnsafeMutablePointer<Float>, scale: Float = 1, accumulate: Bool = false,
    u: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>,
    A: UnsafePointer<Float>, B: UnsafePointer<Float>, C: UnsafePointer<Float>, ldBC: Int,
    D: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
    batch: Int, length: Int, channels: Int, states: Int, reverse: Bool
) {
    let E = channels, N = states, L = length
    let blocks = (E + 7) / 8
    // A transposed to [N, E]: state n of eight channels is one vector load.
    let AT = UnsafeMutablePointer<Float>.allocate(capacity: N * E)
    defer { AT.deallocate() }
    for e in 0..<E { for n in 0..<N { AT[n * E + e] = A[e * N + n] } }

    parallelFor(batch * blocks) { tasks in
        let h = UnsafeMutablePointer<Float8>.allocate(capacity: N)
        defer { h.deallocate() }
        for task in tasks {
            let b = task / blocks, e = (task % blocks) * 8
            let w = min(8, E - e)
            h.initialize(repeating: Float8(), count: N)
            let bias = load8(deltaBias + e, count: w)
            let dSkip = load8(D + e, count: w)
            for step in 0..<L {
                let t = reverse ? L - 1 - step : step
                let row = b * L + t
                let ut = load8(u + row * E + e, count: w)
                let dt = softplus8(load8(delta + row * E + e, count: w) + bias)
                let dtu = dt * ut
                let Bt = B + row * ldBC, Ct = C + row * ldBC
                var y = dSkip * ut
                for n in 0..<N {
                    let dA = exp8(dt * load8(AT + n * E + e, count: w))
                    let hn = (dA * h[n]).addingProduct(dtu, Float8(repeating: Bt[n]))
                    h[n] = hn
                    y = y.addingProduct(hn, Float8(repeating: Ct[n]))
                }
                y = y * silu8(load8(z + row * ldz + e, count: w)) * scale
                let o = out + row * E + e
                if accumulate { y += load8(o, count: w) }
                store8(o, y, count: w)
            }
        }
    }
}
