/// Throws unless `x` is a contiguous [B, C, H, W] tensor with at least one pixel; returns its sizes.
func checkImages(_ x: Tensor, _ name: String) throws -> (b: Int, c: Int, h: Int, w: Int) {
    guard x.rank == 4 else { throw TensorError.rankMismatch(tensor: name, expected: 4, found: x.shape) }
    guard x.isContiguous else { throw TensorError.layoutMismatch(tensor: name, expected: x.columnCount, found: x.rowStride) }
    guard x.shape[0] >= 1 else { throw TensorError.emptyBatch(tensor: name) }
    return (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
}

/// Floats of one im2col chunk's column buffer: 16 Mi (64 MiB). Tests lower it to run many chunks.
nonisolated(unsafe) var convolutionChunkFloats = 1 << 24

/// Output pixels per im2col chunk.
func convolutionChunk(columnsPerPixel: Int, pixels: Int) -> Int {
    max(1, min(pixels, convolutionChunkFloats / max(columnsPerPixel, 1)))
}

/// y[:, c] += bias[c] over NCHW y.
func addChannelBias(_ bias: Tensor, to y: Tensor) {
    y.backend.channelAffine(ChannelAffine(a: y, aScale: [Float](repeating: 1, count: bias.count), b: nil, bScale: nil, shift: bias.array,
                                          out: y, channels: bias.count, accumulate: false))
}

/// biasGrad[c] += Σ over B, H, W of yGrad[:, c].
func addChannelBiasGradient(_ yGrad: Tensor, to bias: Tensor) {
    addToGradient(bias.slot, yGrad.backend.channelSums(yGrad, nil, channels: bias.count).map(Float.init))
}

/// torch.nn.functional.conv2d with groups 1: x [B, C, H, W], weight [O, C, k, k], bias [O]
/// (optional), zero padding. Each image is im2col'd in chunks of output pixels and multiplied by
/// the weight (one sgemm per chunk), writing NCHW directly. The backward keeps x.
package func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    guard weight.rank == 4, weight.shape[1] == C, weight.shape[2] == weight.shape[3], weight.shape[2] >= 1 else {
        throw TensorError.shapeMismatch(tensor: "weight", expected: [weight.shape.first ?? 0, C, weight.shape.count > 2 ? weight.shape[2] : 1,
                                                                     weight.shape.count > 2 ? weight.shape[2] : 1], found: weight.shape)
    }
    guard weight.isContiguous else { throw TensorError.layoutMismatch(tensor: "weight", expected: weight.columnCount, found: weight.rowStride) }
    let (O, k) = (weight.shape[0], weight.shape[2])
    if let bias, bias.shape != [O] { throw TensorError.shapeMismatch(tensor: "bias", expected: [O], found: bias.shape) }
    guard stride >= 1 else { throw TensorError.invalidArgument(name: "stride", value: Double(stride), allowed: "at least 1") }
    guard padding >= 0, padding < k else { throw TensorError.invalidArgument(name: "padding", value: Double(padding), allowed: "0..<kernel (\(k))") }
    guard H + 2 * padding >= k, W + 2 * padding >= k else {
        throw TensorError.invalidArgument(name: "image size", value: Double(min(H, W)), allowed: "at least kernel − 2·padding (\(k - 2 * padding))")
    }
    try checkSameDevice(x, weight, bias)
    let be = x.backend
    let oh = (H + 2 * padding - k) / stride + 1, ow = (W + 2 * padding - k) / stride + 1, P = oh * ow, K = C * k * k
    let y = Tensor(uninitializedShape: [B, O, oh, ow], device: x.device)
    let w2 = weight.reshapedView([O, K])
    let chunk = convolutionChunk(columnsPerPixel: K, pixels: P)
    // Each image's output pixels in chunks, with a column buffer for the chunk. It takes the
    // images rather than capturing x, so the backward keeps x only through its SavedTensor.
    let device = x.device
    func forEachChunk(of images: Tensor, _ body: (_ b: Int, _ pixels: Range<Int>, _ op: ImageColumns) -> Void) {
        for b in 0..<B {
            for p0 in Swift.stride(from: 0, to: P, by: chunk) {
                let pixels = p0..<min(p0 + chunk, P)
                let cols = Tensor(uninitializedShape: [K, pixels.count], device: device)
                body(b, pixels, ImageColumns(image: images.rowsView(b..<(b + 1)), cols: cols, channels: C, height: H, width: W,
                                             kernel: k, stride: stride, padding: padding, outWidth: ow, pixels: pixels))
            }
        }
    }
    // y[b][:, chunk] = W · columns.
    forEachChunk(of: x) { b, pixels, op in
        be.imageColumns(op, transposed: false)
        let out = y.rowsView(b..<(b + 1)).reshapedView([O, P]).columnsView(pixels)
        be.matrixProduct(MatrixProduct(a: w2, b: op.cols, c: out))
    }
    if let bias { addChannelBias(bias, to: y) }
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad else { return }
        let x = xSaved.values
        if let bias, bias.requiresGrad { addChannelBiasGradient(yGrad, to: bias) }
        let wGrad = weight.requiresGrad ? weight.gradBuffer().reshapedView([O, K]) : nil
        let xGrad = xSlot.requiresGrad ? xSlot.buffer() : nil
        forEachChunk(of: x) { b, pixels, op in
            let g = yGrad.rowsView(b..<(b + 1)).reshapedView([O, P]).columnsView(pixels)
            if let wGrad {
                // weightGrad += yGrad · columnsᵀ
                be.imageColumns(op, transposed: false)
                be.matrixProduct(MatrixProduct(a: g, b: op.cols, c: wGrad, transposeB: true, beta: 1))
            }
            if let xGrad {
                // columns' gradient = Wᵀ · yGrad, added back into the image.
                be.matrixProduct(MatrixProduct(a: w2, b: g, c: op.cols, transposeA: true))
                var back = op
                back.image = xGrad.rowsView(b..<(b + 1))
                be.imageColumns(back, transposed: true)
            }
        }
    }
    return y
}

/// torch ConvTranspose2d with kernel == stride (padding 0): every input pixel becomes a k × k
/// block. x [B, C, H, W], weight [C, O, k, k] (PyTorch's layout), bias [O] → [B, O, H·k, W·k].
/// Per image one sgemm, blocks = Wᵀ · x, then the blocks laid out in space. The backward keeps x.
package func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    guard weight.rank == 4, weight.shape[0] == C else {
        throw TensorError.dimensionMismatch(tensor: "weight", axis: 0, expected: C, found: weight.shape)
    }
    guard weight.isContiguous else { throw TensorError.layoutMismatch(tensor: "weight", expected: weight.columnCount, found: weight.rowStride) }
    let (O, k) = (weight.shape[1], weight.shape[2])
    guard weight.shape[3] == k, k == stride, k >= 1 else {
        throw TensorError.invalidArgument(name: "transposed conv kernel", value: Double(k), allowed: "square and equal to the stride (\(stride))")
    }
    if let bias, bias.shape != [O] { throw TensorError.shapeMismatch(tensor: "bias", expected: [O], found: bias.shape) }
    try checkSameDevice(x, weight, bias)
    let be = x.backend
    let P = H * W, Okk = O * k * k
    let w2 = weight.reshapedView([C, Okk])
    let y = Tensor(uninitializedShape: [B, O, H * k, W * k], device: x.device)
    let blocks = Tensor(uninitializedShape: [Okk, P], device: x.device)
    for b in 0..<B {
        be.matrixProduct(MatrixProduct(a: w2, b: x.rowsView(b..<(b + 1)).reshapedView([C, P]), c: blocks, transposeA: true))
        be.depthToSpace(blocks, image: y.rowsView(b..<(b + 1)), channels: O, height: H, width: W, block: k, inverse: false, accumulate: false)
    }
    if let bias { addChannelBias(bias, to: y) }
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad else { return }
        let x = xSaved.values
        if let bias, bias.requiresGrad { addChannelBiasGradient(yGrad, to: bias) }
        let blocksGrad = Tensor(uninitializedShape: [Okk, P], device: x.device)
        for b in 0..<B {
            be.depthToSpace(blocksGrad, image: yGrad.rowsView(b..<(b + 1)), channels: O, height: H, width: W, block: k, inverse: true, accumulate: false)
            let xb = x.rowsView(b..<(b + 1)).reshapedView([C, P])
            // blocks = Wᵀ·x: weightGrad += x · blocksGradᵀ, xGrad += W · blocksGrad.
            if weight.requiresGrad {
                be.matrixProduct(MatrixProduct(a: xb, b: blocksGrad, c: weight.gradBuffer().reshapedView([C, Okk]), transposeB: true, beta: 1))
            }
            if xSlot.requiresGrad {
                be.matrixProduct(MatrixProduct(a: w2, b: blocksGrad, c: xSlot.buffer().rowsView(b..<(b + 1)).reshapedView([C, P]), beta: 1))
            }
        }
    }
    return y
}
