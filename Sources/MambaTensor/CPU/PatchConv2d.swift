// Conv2d with a square kernel p and stride s (s ≤ p overlaps), no padding, as the patch
// embedding's `nn.Conv2d(3, D, p, s)`; output flattened to tokens row-major over the grid
// (token m = row·G + col), i.e. `proj(x).flatten(2).transpose(1, 2)`.
// Computed as im2col (one row of Cin·p·p values per token, in the weight's (c, ky, kx) order)
// followed by one sgemm against the weight [D, Cin·p·p].

/// Grid side for an image of `size` pixels: (size − p) / s + 1. The caller has checked size ≥ p ≥ 1, s ≥ 1.
package func patchGrid(size: Int, patch: Int, stride: Int) -> Int { (size - patch) / stride + 1 }

/// out [batch, G·G, D]; images [batch, Cin, H, W]; weight [D, Cin, p, p]; bias [D].
package func patchConv2dForward(
    out: UnsafeMutablePointer<Float>, images: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, patch: Int, stride: Int
) {
    let gh = patchGrid(size: height, patch: patch, stride: stride)
    let gw = patchGrid(size: width, patch: patch, stride: stride)
    let M = gh * gw, K = inChannels * patch * patch
    let cols = UnsafeMutablePointer<Float>.allocate(capacity: batch * M * K)
    defer { cols.deallocate() }
    im2col(cols, images, batch: batch, inChannels: inChannels, height: height, width: width,
           patch: patch, stride: stride, gridH: gh, gridW: gw)
    linearForward(out, cols, weight: weight, bias: bias, rows: batch * M, inFeatures: K, outFeatures: outChannels)
}

/// cols [batch·G_h·G_w, Cin·p·p]: each row the pixels one output token sees.
package func im2col(
    _ cols: UnsafeMutablePointer<Float>, _ images: UnsafePointer<Float>,
    batch: Int, inChannels: Int, height: Int, width: Int, patch: Int, stride: Int, gridH: Int, gridW: Int
) {
    let K = inChannels * patch * patch
    parallelFor(batch * gridH, grain: 4) { rows in
        for r in rows {
            let b = r / gridH, gy = r % gridH
            for gx in 0..<gridW {
                let dst = cols + ((b * gridH + gy) * gridW + gx) * K
                for c in 0..<inChannels {
                    for ky in 0..<patch {
                        let src = images + ((b * inChannels + c) * height + gy * stride + ky) * width + gx * stride
                        (dst + (c * patch + ky) * patch).update(from: src, count: patch)
                    }
                }
            }
        }
    }
}
