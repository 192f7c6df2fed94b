// Bicubic resize of a [H, W, C] grid, as torch.nn.functional.interpolate(mode="bicubic",
// align_corners=False): separable, A = −0.75, source coordinate (in/out)·(dst + 0.5) − 0.5
// (not clamped), taps clamped to the border. Used to move position embeddings to a new grid.

/// Cubic convolution weights for the four taps around a fractional offset t (PyTorch's
/// `get_cubic_upsample_coefficients`).
func cubicWeights(_ t: Double) -> (Double, Double, Double, Double) {
    let A = -0.75
    func cc1(_ x: Double) -> Double { ((A + 2) * x - (A + 3)) * x * x + 1 }
    func cc2(_ x: Double) -> Double { ((A * x - 5 * A) * x + 8 * A) * x - 4 * A }
    return (cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t))
}

/// src [inH, inW, C] → [outH, outW, C], computed in double precision. For our own callers, which
/// check their sizes first (position embeddings, dataset images): every size at least 1 and
/// src holding inH·inW·C values.
package func bicubicResize(_ src: [Float], inH: Int, inW: Int, channels: Int, outH: Int, outW: Int) -> [Float] {
    precondition(inH >= 1 && inW >= 1 && outH >= 1 && outW >= 1 && channels >= 0 && src.count == inH * inW * channels,
                 "bicubicResize: \(src.count) values for [\(inH), \(inW), \(channels)] to [\(outH), \(outW)]")
    if inH == outH && inW == outW { return src }
    // PyTorch applies the 2-D kernel as an outer product of the 1-D weights.
    func taps(_ inSize: Int, _ outSize: Int, _ d: Int) -> ([Int], [Double]) {
        let scale = Double(inSize) / Double(outSize)
        let s = scale * (Double(d) + 0.5) - 0.5
        let i = Int(s.rounded(.down))
        let w = cubicWeights(s - Double(i))
        let idx = (-1...2).map { min(max(i + $0, 0), inSize - 1) }
        return (idx, [w.0, w.1, w.2, w.3])
    }
    var out = [Float](repeating: 0, count: outH * outW * channels)
    for oy in 0..<outH {
        let (iy, wy) = taps(inH, outH, oy)
        for ox in 0..<outW {
            let (ix, wx) = taps(inW, outW, ox)
            for c in 0..<channels {
                var acc = 0.0
                for a in 0..<4 {
                    var row = 0.0
                    for b in 0..<4 { row += wx[b] * Double(src[(iy[a] * inW + ix[b]) * channels + c]) }
                    acc += wy[a] * row
                }
                out[(oy * outW + ox) * channels + c] = Float(acc)
            }
        }
    }
    return out
}
