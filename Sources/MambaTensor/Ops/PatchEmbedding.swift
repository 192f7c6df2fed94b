/// Conv2d(C, D, kernel p, stride s) with bias, no padding, as the patch embedding's
/// `proj(x).flatten(2).transpose(1, 2)`: images [B, C, H, W] → tokens [B, G_h·G_w, D], row-major
/// over the grid. Computed as im2col (each token's pixels, in the weight's (c, y, x) order) and
/// one product with weight [D, C, p, p]; the backward recomputes the columns for the weight
/// gradient and sends nothing to the images.
package func patchEmbedding(_ images: Tensor, weight: Tensor, bias: Tensor, stride: Int, tape: Tape?) throws -> Tensor {
    guard images.rank == 4 else { throw TensorError.rankMismatch(tensor: "images", expected: 4, found: images.shape) }
    guard weight.rank == 4, weight.shape[2] == weight.shape[3] else {
        throw TensorError.rankMismatch(tensor: "weight", expected: 4, found: weight.shape)
    }
    let (B, C, H, W) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    let (D, p) = (weight.shape[0], weight.shape[2])
    guard weight.shape[1] == C else { throw TensorError.dimensionMismatch(tensor: "images", axis: 1, expected: weight.shape[1], found: images.shape) }
    guard bias.shape == [D] else { throw TensorError.shapeMismatch(tensor: "bias", expected: [D], found: bias.shape) }
    guard stride >= 1 else { throw TensorError.invalidArgument(name: "stride", value: Double(stride), allowed: "at least 1") }
    for (name, size) in [("image height", H), ("image width", W)] where size < p {
        throw TensorError.invalidArgument(name: name, value: Double(size), allowed: "at least the kernel, \(p)")
    }
    try checkSameDevice(images, weight, bias)
    let be = images.backend
    let M = patchGrid(size: H, patch: p, stride: stride) * patchGrid(size: W, patch: p, stride: stride)
    let dense = images.isContiguous ? images : images.copy()
    func columns() -> Tensor {
        let cols = Tensor(uninitializedShape: [B * M, C * p * p], device: images.device)
        be.patchColumns(dense, patch: p, stride: stride, into: cols)
        return cols
    }
    let flatWeight = weight.reshapedView([D, C * p * p])
    let tokens = try linear(columns(), weight: flatWeight, bias: bias, tape: nil).reshapedView([B, M, D])
    let tokensSlot = tokens.slot
    tape?.record {
        guard let tokensGrad = tokensSlot.grad else { return }
        let g = tokensGrad.reshapedView([B * M, D])
        if weight.requiresGrad {
            be.matrixProduct(MatrixProduct(a: g, b: columns(), c: weight.gradBuffer().reshapedView([D, C * p * p]), transposeA: true, beta: 1))
        }
        if bias.requiresGrad { be.sumRows(g, into: bias.gradBuffer()) }
    }
    return tokens
}
