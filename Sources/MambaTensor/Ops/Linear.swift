/// y = x · weightᵀ + bias (torch.nn.functional.linear); x [..., in] (a column view is fine),
/// weight [out, in], bias [out]. The backward keeps x and the weight.
package func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, tape: Tape?) throws -> Tensor {
    guard weight.rank == 2 else { throw TensorError.rankMismatch(tensor: "weight", expected: 2, found: weight.shape) }
    let inF = weight.shape[1], outF = weight.shape[0]
    guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
        throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: inF, found: x.shape)
    }
    if let bias, bias.shape != [outF] { throw TensorError.shapeMismatch(tensor: "bias", expected: [outF], found: bias.shape) }
    try checkSameDevice(x, weight, bias)
    let be = x.backend
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF], device: x.device)
    if let bias { be.broadcastRows(bias, into: y) }
    be.matrixProduct(MatrixProduct(a: x, b: weight, c: y, transposeB: true, beta: bias == nil ? 0 : 1))
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad else { return }
        let x = Profiler.measure("recompute") { xSaved.values }
        // x·Wᵀ backward: xGrad += yGrad·W, weightGrad += yGradᵀ·x, biasGrad += Σ_rows yGrad.
        Profiler.measure("linear_backward") {
            if xSlot.requiresGrad {
                be.matrixProduct(MatrixProduct(a: yGrad, b: weight, c: xSlot.buffer(), beta: 1))
            }
            if weight.requiresGrad {
                be.matrixProduct(MatrixProduct(a: yGrad, b: x, c: weight.gradBuffer(), transposeA: true, beta: 1))
            }
        }
        if let bias, bias.requiresGrad { be.sumRows(yGrad, into: bias.gradBuffer()) }
    }
    return y
}

/// Throws unless every tensor given lives on the first one's device.
func checkSameDevice(_ first: Tensor, _ rest: Tensor?...) throws {
    for t in rest {
        if let t, t.device != first.device { throw TensorError.deviceMismatch(expected: first.device.description, found: t.device.description) }
    }
}
