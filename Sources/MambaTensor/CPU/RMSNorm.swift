// Fused residual add + RMSNorm, as mamba_ssm's `rms_norm_fn(x, w, None, residual=…,
// prenorm=True, residual_in_fp32=True)`:
//   residual ← residual + x      (or residual ← x when there is no residual yet)
//   y        = residual · rstd · weight,   rstd = 1 / sqrt(mean_D(residual²) + eps)
// The residual stream is float32 throughout and never normalised itself.

/// In place on `residual` [rows, D]; writes `y` [rows, D] and, when given, `rstd` [rows] for the backward.
package func addRMSNormForward(
    y: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>?,
    weight: UnsafePointer<Float>, rstd: UnsafeMutablePointer<Float>? = nil,
    rows: Int, dim: Int, eps: Float = 1e-5
) {
    parallelFor(rows, grain: max(1, 4096 / max(dim, 1))) { range in
        for r in range {
            let res = residual + r * dim
            let out = y + r * dim
            if let x {
                let xr = x + r * dim
                var i = 0
                while i + 8 <= dim {
                    store8(res + i, load8(res + i) + load8(xr + i))
                    i += 8
                }
                while i < dim { res[i] += xr[i]; i += 1 }
            }
            // Sum of squares in SIMD lanes, then in double: D is at most a few thousand.
            var acc = Float8()
            var i = 0
            while i + 8 <= dim {
                let v = load8(res + i)
                acc = acc.plusProduct(v, v)
                i += 8
            }
            var ss = Double(acc.sum())
            while i < dim { ss += Double(res[i]) * Double(res[i]); i += 1 }
            let s = Float(1 / (ss / Double(dim) + Double(eps)).squareRoot())
            rstd?[r] = s
            i = 0
            while i + 8 <= dim {
                let v = load8(res + i)
                store8(out + i, v * s * load8(weight + i))
                i += 8
            }
            while i < dim { out[i] = res[i] * s * weight[i]; i += 1 }
        }
    }
}

/// Backward of add + RMSNorm. With r = residual + x, y = r·rstd·w and g = yGrad·w:
///   rowGrad = rGrad + rstd·(g − r·rstd²·mean(g·r))      (rGrad: what later consumers of r sent back)
///   weightGrad += Σ_rows yGrad·r·rstd
/// `rowGrad` [rows, D] receives the gradient of r, which is the gradient of both residual and x.
package func addRMSNormBackward(
    rowGrad: UnsafeMutablePointer<Float>, yGrad: UnsafePointer<Float>?, rGrad: UnsafePointer<Float>?,
    r: UnsafePointer<Float>, rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    weightGrad: UnsafeMutablePointer<Float>, rows: Int, dim: Int
) {
    parallelFor(rows, grain: max(1, 4096 / max(dim, 1))) { range in
        for row in range {
            let rr = r + row * dim, out = rowGrad + row * dim, s = rstd[row]
            if let yGrad {
                let yGradRow = yGrad + row * dim
                var dot = 0.0
                for i in 0..<dim { dot += Double(yGradRow[i] * weight[i]) * Double(rr[i]) }
                let c = Float(dot / Double(dim)) * s * s
                for i in 0..<dim { out[i] = s * (yGradRow[i] * weight[i] - rr[i] * c) }
            } else {
                for i in 0..<dim { out[i] = 0 }
            }
            if let rGrad { for i in 0..<dim { out[i] += rGrad[row * dim + i] } }
        }
    }
    if let yGrad {
        for row in 0..<rows {
            let s = rstd[row]
            for i in 0..<dim { weightGrad[i] += yGrad[row * dim + i] * r[row * dim + i] * s }
        }
    }
}
