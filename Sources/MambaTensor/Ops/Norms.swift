/// The fused residual add + RMSNorm of mamba_ssm: r = residual + x (r = x when there is no
/// residual yet), y = RMSNorm(r)·weight. Returns (r, y); r is the new residual stream.
/// The backward keeps r and the row statistics; of y and the inputs only the gradients.
package func addRMSNorm(residual: Tensor?, _ x: Tensor, weight: Tensor, eps: Float, tape: Tape?) throws -> (residual: Tensor, normed: Tensor) {
    guard weight.rank == 1 else { throw TensorError.rankMismatch(tensor: "weight", expected: 1, found: weight.shape) }
    let dim = weight.count
    guard x.rank >= 1, x.shape[x.rank - 1] == dim else {
        throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: dim, found: x.shape)
    }
    if let residual, residual.shape != x.shape { throw TensorError.shapeMismatch(tensor: "residual", expected: x.shape, found: residual.shape) }
    guard eps >= 0, eps.isFinite else { throw TensorError.invalidArgument(name: "eps", value: Double(eps), allowed: "finite, at least 0") }
    try checkSameDevice(x, weight, residual)
    let be = x.backend
    let r = residual?.copy() ?? x.copy()
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    let rstd = Tensor(uninitializedShape: [r.rowCount], device: x.device)
    let added = residual == nil ? nil : x.isContiguous ? x : x.copy()
    be.addRMSNorm(AddRMSNorm(residual: r, x: added, weight: weight, normed: y, rstd: rstd, eps: eps))
    // Both inputs receive d r; the backward reads r's values, and of y and the inputs only the gradients.
    let ySlot = y.slot, inputs = [residual?.slot, x.slot].compactMap { $0 }
    tape?.record {
        guard ySlot.grad != nil || r.grad != nil else { return }
        let rowGrad = Tensor(uninitializedShape: r.shape, device: r.device)
        be.addRMSNormBackward(residual: r, rstd: rstd, weight: weight,
                              AddRMSNormGradients(normedGrad: ySlot.grad, residualGrad: r.grad, rowGrad: rowGrad,
                                                  weightGrad: weight.gradBuffer()))
        // rowGrad is ours: the last input that needs it takes it, the others get copies.
        let needing = inputs.filter(\.requiresGrad)
        for (k, input) in needing.enumerated() {
            if k == needing.count - 1 { input.accumulate(taking: rowGrad) } else { input.accumulate(copying: rowGrad) }
        }
    }
    return (r, y)
}

/// torch.nn.functional.layer_norm over the last dimension: (x − mean) / sqrt(var + eps) · weight + bias.
package func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float, tape: Tape?) throws -> Tensor {
    guard weight.rank == 1 else { throw TensorError.rankMismatch(tensor: "weight", expected: 1, found: weight.shape) }
    let D = weight.count
    guard bias.shape == [D] else { throw TensorError.shapeMismatch(tensor: "bias", expected: [D], found: bias.shape) }
    guard x.rank >= 1, x.shape[x.rank - 1] == D else {
        throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: D, found: x.shape)
    }
    guard eps > 0, eps.isFinite else { throw TensorError.invalidArgument(name: "eps", value: Double(eps), allowed: "positive and finite") }
    try checkSameDevice(x, weight, bias)
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    let op = LayerNormOperands(x: x, weight: weight, bias: bias, y: y, eps: eps)
    let be = x.backend
    be.layerNorm(op)
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad else { return }
        var op = op
        op.x = xSaved.values
        be.layerNormBackward(op, LayerNormGradients(yGrad: yGrad, xGrad: xSlot.requiresGrad ? xSlot.buffer() : nil,
                                                    weightGrad: weight.gradBuffer(), biasGrad: bias.gradBuffer()))
    }
    return y
}
