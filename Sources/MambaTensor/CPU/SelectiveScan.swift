import Foundation

// Selective scan with D skip and SiLU(z) gate, mamba_ssm's `selective_scan_fn(u, delta, A, B, C, D,
// z, delta_bias, delta_softplus=True)`, on token-major activations:
//   Δ_t   = softplus(delta[t, e] + deltaBias[e])
//   h_t   = exp(Δ_t · A[e, n]) · h_{t−1} + Δ_t · B[t, n] · u[t, e]        (h_{-1} = 0)
//   y_t   = (Σ_n C[t, n] · h_t[n] + D[e] · u[t, e]) · SiLU(z[t, e])
// `reverse` runs t from L−1 down to 0: the official backward branch (scan of the flipped
// sequence, flipped back) without materialising flipped copies.
//
// Loop order: channels in SIMD8 lanes, and the N states of a task's channels stay in a small
// local array across all tokens; B and C are shared by all channels (one group), so they are
// broadcast. The exp is the cost: L · E · N of them per direction. Channels past the last
// multiple of 16 take the scalar reference path.

/// One direction's operands as the CPU scan kernels read them: u, delta [batch, L, E]
/// contiguous; A [E, N] (already −exp(A_log)); B and C rows `ldBC` apart (columns of x_proj's
/// output); z rows `ldz` apart; D, deltaBias [E]. The output is scaled by `scale`.
package struct ScanPointers {
    package var u: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>
    package var A: UnsafePointer<Float>, B: UnsafePointer<Float>, C: UnsafePointer<Float>, ldBC: Int
    package var D: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int
    package var batch: Int, length: Int, channels: Int, states: Int, reverse: Bool
    package var scale: Float

    package init(u: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>,
                A: UnsafePointer<Float>, B: UnsafePointer<Float>, C: UnsafePointer<Float>, ldBC: Int,
                D: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                batch: Int, length: Int, channels: Int, states: Int, reverse: Bool, scale: Float = 1) {
        (self.u, self.delta, self.deltaBias, self.A, self.B, self.C, self.ldBC) = (u, delta, deltaBias, A, B, C, ldBC)
        (self.D, self.z, self.ldz) = (D, z, ldz)
        (self.batch, self.length, self.channels, self.states, self.reverse, self.scale) = (batch, length, channels, states, reverse, scale)
    }
}

/// out [batch, L, E] = scale · y (+ out when `accumulate`).
package func selectiveScanForward(_ s: ScanPointers, out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
    let (u, delta, deltaBias, A, B, C, ldBC, D, z, ldz) = (s.u, s.delta, s.deltaBias, s.A, s.B, s.C, s.ldBC, s.D, s.z, s.ldz)
    let (batch, channels, states, reverse, scale) = (s.batch, s.channels, s.states, s.reverse, s.scale)
    let length = s.length
    let E = channels, N = states, L = length
    // A task is one sequence × 16 channels: two SIMD8 halves, one 64-byte cache line of every
    // token row, so rows fetched for a task are used whole (8-channel tasks left half of each
    // line to a later task and ran 1.6x slower once a batch outgrew the cache).
    let blocks = E / 16
    // A transposed to [N, E]: state n of eight channels is one vector load.
    let AT = UnsafeMutablePointer<Float>.allocate(capacity: N * E)
    defer { AT.deallocate() }
    for e in 0..<E { for n in 0..<N { AT[n * E + e] = A[e * N + n] } }

    parallelFor(batch * blocks) { tasks in
        let h = UnsafeMutablePointer<Float8>.allocate(capacity: 2 * N)   // [N][2]: states of 16 channels
        defer { h.deallocate() }
        for task in tasks {
            let b = task / blocks, e = (task % blocks) * 16
            h.initialize(repeating: Float8(), count: 2 * N)
            let bias0 = load8(deltaBias + e), bias1 = load8(deltaBias + e + 8)
            let skip0 = load8(D + e), skip1 = load8(D + e + 8)
            for step in 0..<L {
                let t = reverse ? L - 1 - step : step
                let row = b * L + t
                let ur = u + row * E + e, dr = delta + row * E + e
                let u0 = load8(ur), u1 = load8(ur + 8)
                let dt0 = softplus8(load8(dr) + bias0), dt1 = softplus8(load8(dr + 8) + bias1)
                let dtu0 = dt0 * u0, dtu1 = dt1 * u1
                let Bt = B + row * ldBC, Ct = C + row * ldBC
                var y0 = skip0 * u0, y1 = skip1 * u1
                // Pointers step through A and h: index arithmetic here would be overflow-checked
                // in every iteration of the innermost loop.
                var a = AT + e, hn = h
                for n in 0..<N {
                    let bn = Bt[n], cn = Ct[n]
                    // h = exp(Δ·A)·h + Δ·B·u as one FMA on the recurrence's critical path.
                    let h0 = (dtu0 * bn).plusProduct(exp8(dt0 * load8(a)), hn[0])
                    let h1 = (dtu1 * bn).plusProduct(exp8(dt1 * load8(a + 8)), hn[1])
                    hn[0] = h0
                    hn[1] = h1
                    y0 = y0.plusProduct(h0, cn)
                    y1 = y1.plusProduct(h1, cn)
                    a += E
                    hn += 2
                }
                let zr = z + row * ldz + e
                y0 = y0 * silu8(load8(zr)) * scale
                y1 = y1 * silu8(load8(zr + 8)) * scale
                let o = out + row * E + e
                if accumulate { y0 += load8(o); y1 += load8(o + 8) }
                store8(o, y0)
                store8(o + 8, y1)
            }
        }
    }
    if blocks * 16 < E {
        selectiveScanReference(s, out: out, accumulate: accumulate, channels: blocks * 16..<E)
    }
}

/// The same recurrence, one channel at a time in double precision, for `channels` of a row of
/// `width` channels: the tail that does not fill a SIMD8, and the tests' reference.
package func selectiveScanReference(_ s: ScanPointers, out: UnsafeMutablePointer<Float>, accumulate: Bool, channels: Range<Int>) {
    let (u, delta, deltaBias, A, B, C, ldBC, D, z, ldz) = (s.u, s.delta, s.deltaBias, s.A, s.B, s.C, s.ldBC, s.D, s.z, s.ldz)
    let (batch, L, E, N, reverse, scale) = (s.batch, s.length, s.channels, s.states, s.reverse, s.scale)
    var h = [Double](repeating: 0, count: N)
    for b in 0..<batch {
        for e in channels {
            for n in 0..<N { h[n] = 0 }
            for step in 0..<L {
                let t = reverse ? L - 1 - step : step
                let row = b * L + t
                let v = Double(delta[row * E + e] + deltaBias[e])
                let dt = v > 20 ? v : Foundation.log1p(Foundation.exp(v))
                let ut = Double(u[row * E + e])
                var y = Double(D[e]) * ut
                for n in 0..<N {
                    h[n] = Foundation.exp(dt * Double(A[e * N + n])) * h[n] + dt * Double(B[row * ldBC + n]) * ut
                    y += Double(C[row * ldBC + n]) * h[n]
                }
                let zv = Double(z[row * ldz + e])
                let value = Float(y * zv / (1 + Foundation.exp(-zv))) * scale
                out[row * E + e] = accumulate ? out[row * E + e] + value : value
            }
        }
    }
}
