// Row softmax and its backward, for attention probabilities [B·H·T, T].
//
// Forward, per row of n:  m = max x;  e_i = exp(x_i − m);  y_i = e_i / Σ e.
// Backward, per row:      xGrad_i = y_i · (yGrad_i − Σ_j yGrad_j · y_j)
//   (from dy_i/dx_k = y_i·(δ_ik − y_k)). Only y is needed, so the forward saves nothing else.
// Rows are independent and each sums its own elements in one fixed order (eight SIMD lanes,
// then the lanes in order, then the tail), so results do not depend on the thread count.

/// y[r, :] = softmax(x[r, :]) for `rows` rows of `n`, rows `ldx` and `ldy` apart; y may be x.
func softmaxForward(y: UnsafeMutablePointer<Float>, ldy: Int, x: UnsafePointer<Float>, ldx: Int, rows: Int, n: Int) {
    let full = n / 8 * 8
    parallelFor(rows, grain: max(1, 16384 / max(n, 1))) { range in
        for r in range {                                              // rows
            let src = x + r * ldx, dst = y + r * ldy
            var m = -Float.infinity
            for i in 0..<n { m = max(m, src[i]) }                     // n
            let shift = Float8(repeating: m)
            var lanes = Float8()
            var i = 0
            while i < full {                                          // n, eight at a time
                let e = exp8(Float8(UnsafeBufferPointer(start: src + i, count: 8)) - shift)
                for l in 0..<8 { dst[i + l] = e[l] }
                lanes += e
                i += 8
            }
            var sum: Float = 0
            for l in 0..<8 { sum += lanes[l] }
            if full < n {                                             // the tail, through the same exp
                var t = Float8(repeating: -Float.infinity)
                for l in 0..<(n - full) { t[l] = src[full + l] }
                let e = exp8(t - shift)
                for l in 0..<(n - full) { dst[full + l] = e[l]; sum += e[l] }
            }
            let inverse = 1 / sum
            for i in 0..<n { dst[i] *= inverse }
        }
    }
}

/// xGrad[r, :] = y ⊙ (yGrad − Σ yGrad ⊙ y) per row, or += with `accumulate`; xGrad may be
/// yGrad itself when written.
func softmaxBackward(xGrad: UnsafeMutablePointer<Float>, ldxg: Int, y: UnsafePointer<Float>, ldy: Int,
                     yGrad: UnsafePointer<Float>, ldyg: Int, rows: Int, n: Int, accumulate: Bool) {
    let full = n / 8 * 8
    parallelFor(rows, grain: max(1, 16384 / max(n, 1))) { range in
        for r in range {                                              // rows
            let p = y + r * ldy, g = yGrad + r * ldyg, out = xGrad + r * ldxg
            var lanes = Float8()
            var i = 0
            while i < full {                                          // n: Σ yGrad·y
                lanes = lanes.plusProduct(Float8(UnsafeBufferPointer(start: g + i, count: 8)),
                                          Float8(UnsafeBufferPointer(start: p + i, count: 8)))
                i += 8
            }
            var dot: Float = 0
            for l in 0..<8 { dot += lanes[l] }
            for i in full..<n { dot += g[i] * p[i] }
            if accumulate {
                for i in 0..<n { out[i] += p[i] * (g[i] - dot) }
            } else {
                for i in 0..<n { out[i] = p[i] * (g[i] - dot) }
            }
        }
    }
}
