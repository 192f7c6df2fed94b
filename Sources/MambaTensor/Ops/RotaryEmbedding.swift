/// EVA-02's rotary embedding on tokens: y = x·cos + rotate_half(x)·sin, x [B, L, D] with cos
/// and sin [L, D], where rotate_half turns each pair (x[2i], x[2i+1]) into (−x[2i+1], x[2i]).
/// The backward applies the transposed rotation.
package func rotaryEmbedding(_ x: Tensor, cos: Tensor, sin: Tensor, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    guard x.isContiguous else { throw TensorError.layoutMismatch(tensor: "x", expected: x.columnCount, found: x.rowStride) }
    let (L, D) = (x.shape[1], x.shape[2])
    guard D % 2 == 0 else { throw TensorError.dimensionMismatch(tensor: "x", axis: 2, expected: D + 1, found: x.shape) }
    for (name, t) in [("cos", cos), ("sin", sin)] {
        guard t.shape == [L, D] else { throw TensorError.shapeMismatch(tensor: name, expected: [L, D], found: t.shape) }
        guard t.isContiguous else { throw TensorError.layoutMismatch(tensor: name, expected: D, found: t.rowStride) }
    }
    try checkSameDevice(x, cos, sin)
    let be = x.backend
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.rotary(x, cos: cos, sin: sin, into: y, transposed: false)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.rotary(yGrad, cos: cos, sin: sin, into: xSlot.buffer(), transposed: true)
    }
    return y
}
