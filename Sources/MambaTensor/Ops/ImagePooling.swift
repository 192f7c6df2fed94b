/// nn.MaxPool2d(kernel, stride) without padding (floor mode): x [B, C, H, W] → [B, C, H', W'].
/// The backward routes each gradient to its window's maximum (the first one on ties).
package func maxPool2d(_ x: Tensor, kernel: Int, stride: Int, tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    guard kernel >= 1, stride >= 1 else {
        throw TensorError.invalidArgument(name: "max pool kernel and stride", value: Double(min(kernel, stride)), allowed: "at least 1")
    }
    guard H >= kernel, W >= kernel else {
        throw TensorError.invalidArgument(name: "image size", value: Double(min(H, W)), allowed: "at least the kernel (\(kernel))")
    }
    let be = x.backend
    let oh = (H - kernel) / stride + 1, ow = (W - kernel) / stride + 1
    let y = Tensor(uninitializedShape: [B, C, oh, ow], device: x.device)
    var indices = [Int32](repeating: 0, count: y.count)
    be.maxPool(x, y: y, indices: &indices, kernel: kernel, stride: stride, height: H, width: W)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record { [indices] in
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.maxPoolBackward(yGrad, xGrad: xSlot.buffer(), indices: indices, planeSize: H * W)
    }
    return y
}

/// nn.AdaptiveAvgPool2d((height, width)): output cell i averages input rows
/// floor(i·H / h) ..< ceil((i + 1)·H / h), and the same for columns; larger outputs than inputs
/// repeat pixels (PPM's scale 6 on a 2 × 2 map). The backward spreads each gradient evenly.
package func adaptiveAveragePool2d(_ x: Tensor, height: Int, width: Int, tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    guard height >= 1, width >= 1, height <= 65_536, width <= 65_536 else {
        throw TensorError.invalidArgument(name: "pooled size", value: Double(min(height, width)), allowed: "1...65536")
    }
    func bins(_ n: Int, _ out: Int) -> ([[Int]], [[Float]]) {
        var taps: [[Int]] = [], weights: [[Float]] = []
        for i in 0..<out {
            let start = i * n / out, end = ((i + 1) * n + out - 1) / out
            taps.append(Array(start..<end))
            weights.append([Float](repeating: 1 / Float(end - start), count: end - start))
        }
        return (taps, weights)
    }
    let (rowTaps, rowWeights) = bins(H, height), (columnTaps, columnWeights) = bins(W, width)
    return resample(x, planes: B * C, height: H, width: W, outHeight: height, outWidth: width,
                    rowTaps: rowTaps, rowWeights: rowWeights, columnTaps: columnTaps, columnWeights: columnWeights, tape: tape)
}

/// A separable resample of x [B, C, H, W] to [B, C, outHeight, outWidth] by taps and weights
/// per output row and column; its backward is the adjoint.
func resample(_ x: Tensor, planes: Int, height H: Int, width W: Int, outHeight: Int, outWidth: Int,
              rowTaps: [[Int]], rowWeights: [[Float]], columnTaps: [[Int]], columnWeights: [[Float]], tape: Tape?) -> Tensor {
    let be = x.backend
    let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], outHeight, outWidth], device: x.device)
    let op = Resample(input: x, output: y, planes: planes, inHeight: H, inWidth: W, outHeight: outHeight, outWidth: outWidth,
                      rowTaps: rowTaps, rowWeights: rowWeights, columnTaps: columnTaps, columnWeights: columnWeights)
    be.resample(op, transposed: false)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        var back = op
        (back.input, back.output) = (xSlot.buffer(), yGrad)
        be.resample(back, transposed: true)
    }
    return y
}

/// F.interpolate(mode="bilinear") of x [B, C, H, W] to [B, C, height, width], up or down,
/// without antialiasing. With `alignCorners` false (mmseg's setting) the source of output pixel
/// d is (d + ½)·in/out − ½, clamped at 0; with true, d·(in − 1)/(out − 1). Neighbours are clamped
/// to the edge. The backward is the adjoint.
package func resizeBilinear(_ x: Tensor, height: Int, width: Int, alignCorners: Bool = false, tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    guard height >= 1, width >= 1, height <= 65_536, width <= 65_536 else {
        throw TensorError.invalidArgument(name: "resized size", value: Double(min(height, width)), allowed: "1...65536")
    }
    if height == H && width == W { return x }
    func taps(_ n: Int, _ out: Int) -> ([[Int]], [[Float]]) {
        var taps: [[Int]] = [], weights: [[Float]] = []
        // PyTorch computes the scale and source index in float (area_pixel_compute_source_index).
        let scale: Float = alignCorners ? (out > 1 ? Float(n - 1) / Float(out - 1) : 0) : Float(n) / Float(out)
        for d in 0..<out {
            let src = alignCorners ? scale * Float(d) : max(scale * (Float(d) + 0.5) - 0.5, 0)
            let i0 = min(Int(src), n - 1), i1 = min(i0 + 1, n - 1)
            let f = src - Float(i0)
            taps.append([i0, i1])
            weights.append([1 - f, f])
        }
        return (taps, weights)
    }
    let (rowTaps, rowWeights) = taps(H, height), (columnTaps, columnWeights) = taps(W, width)
    return resample(x, planes: B * C, height: H, width: W, outHeight: height, outWidth: width,
                    rowTaps: rowTaps, rowWeights: rowWeights, columnTaps: columnTaps, columnWeights: columnWeights, tape: tape)
}
