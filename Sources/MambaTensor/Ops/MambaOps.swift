/// SiLU(causal depthwise conv1d(x) + bias) over the tokens of each sequence, as causal-conv1d's
/// `causal_conv1d_fn(x, weight, bias, activation="silu")` in token-major layout: x [B, L, E]
/// (a column view of in_proj's output is fine), weight [E, 1, K] or [E, K], bias [E] → [B, L, E].
/// `reverse` convolves from the end of each sequence: Vim's backward branch, without flipping.
///
/// With DyVM's `mask` [B, L] (1 = kept token), the conv reads x ⊙ mask and its output is
/// multiplied by the mask again (spec/dyvm.md §5.3), and the backward also reaches the mask.
/// The backward keeps x (and the mask), not the output: the pre-activation is recomputed.
package func causalConv1dSiLU(_ x: Tensor, weight: Tensor, bias: Tensor, reverse: Bool, mask: Tensor? = nil, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    let (B, L, E) = (x.shape[0], x.shape[1], x.shape[2])
    guard weight.shape.count >= 2, weight.shape[0] == E, weight.shape.dropFirst().dropLast().allSatisfy({ $0 == 1 }),
          let K = weight.shape.last, K >= 1 else {
        throw TensorError.shapeMismatch(tensor: "conv weight", expected: [E, 1, weight.shape.last ?? 1], found: weight.shape)
    }
    guard bias.shape == [E] else { throw TensorError.shapeMismatch(tensor: "conv bias", expected: [E], found: bias.shape) }
    if let mask, mask.shape != [B, L] { throw TensorError.shapeMismatch(tensor: "mask", expected: [B, L], found: mask.shape) }
    try checkSameDevice(x, weight, bias, mask)
    let be = x.backend
    // The kernel reads x ⊙ mask: a contiguous copy, made again in the backward.
    func convInput(_ x: Tensor) -> Tensor {
        guard let mask else { return x }
        let masked = Tensor(uninitializedShape: x.shape, device: x.device)
        be.scaleRows(x, by: mask, into: masked, accumulate: false)
        return masked
    }
    let out = Tensor(uninitializedShape: [B, L, E], device: x.device)
    let op = CausalConv1dSiLU(x: convInput(x), weight: weight, bias: bias, out: out, batch: B, length: L, reverse: reverse)
    be.causalConv1dSiLU(op)
    if let mask { be.scaleRows(out, by: mask, into: out, accumulate: false) }
    guard let tape else { return out }
    let xSaved = SavedTensor(x), xSlot = x.slot, outSlot = out.slot
    tape.record {
        guard let outGrad = outSlot.grad else { return }
        let x = xSaved.values
        guard let mask else {
            // The gradient goes straight into x's (a view of in_proj's output gradient).
            let xGrad = xSlot.requiresGrad ? xSlot.buffer() : Tensor(zeroed: x.shape, device: x.device)
            Profiler.measure("conv_backward") {
                be.causalConv1dSiLUBackward(CausalConv1dSiLU(x: x, weight: weight, bias: bias, out: outGrad, batch: B, length: L, reverse: reverse),
                                            CausalConv1dSiLUGradients(outGrad: outGrad, xGrad: xGrad, weightGrad: weight.gradBuffer(),
                                                                      biasGrad: bias.gradBuffer()))
            }
            return
        }
        // out = raw ⊙ m, raw = SiLU(conv(x ⊙ m)): d m gets Σ d out · raw and Σ d(x ⊙ m) · x.
        let masked = convInput(x)
        let raw = Tensor(uninitializedShape: [B, L, E], device: x.device)
        be.causalConv1dSiLU(CausalConv1dSiLU(x: masked, weight: weight, bias: bias, out: raw, batch: B, length: L, reverse: reverse))
        let maskGrad = mask.requiresGrad ? mask.gradBuffer() : nil
        if let maskGrad { be.rowDots(outGrad, raw, into: maskGrad) }
        let rawGrad = Tensor(uninitializedShape: [B, L, E], device: x.device)
        be.scaleRows(outGrad, by: mask, into: rawGrad, accumulate: false)
        let maskedGrad = Tensor(zeroed: [B, L, E], device: x.device)
        be.causalConv1dSiLUBackward(CausalConv1dSiLU(x: masked, weight: weight, bias: bias, out: raw, batch: B, length: L, reverse: reverse),
                                    CausalConv1dSiLUGradients(outGrad: rawGrad, xGrad: maskedGrad, weightGrad: weight.gradBuffer(),
                                                              biasGrad: bias.gradBuffer()))
        if let maskGrad { be.rowDots(maskedGrad, x, into: maskGrad) }
        if xSlot.requiresGrad { be.scaleRows(maskedGrad, by: mask, into: xSlot.buffer(), accumulate: true) }
    }
    return out
}

/// mamba_ssm's `selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True)`
/// in token-major layout, times `scale`:
///   Δ_t = softplus(delta_t + deltaBias),  h_t = exp(Δ_t·A)·h_{t−1} + Δ_t·B_t·u_t,
///   y_t = (C_t·h_t + D·u_t) · SiLU(z_t).
/// u, delta, z [B, L, E]; A [E, N] (already −exp(A_log)); B, C [B, L, N]; D, deltaBias [E].
/// B and C may be column views of one tensor with one row stride (x_proj's output), z a column
/// view (in_proj's). `reverse` scans from the end of each sequence (Vim's backward branch).
/// The backward keeps the operands, not the states: the kernel recomputes them.
package func selectiveScan(u: Tensor, delta: Tensor, deltaBias: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, z: Tensor,
                          reverse: Bool, scale: Float = 1, tape: Tape?) throws -> Tensor {
    guard u.rank == 3 else { throw TensorError.rankMismatch(tensor: "u", expected: 3, found: u.shape) }
    let (batch, L, E) = (u.shape[0], u.shape[1], u.shape[2])
    guard A.rank == 2, A.shape[0] == E else { throw TensorError.dimensionMismatch(tensor: "A", axis: 0, expected: E, found: A.shape) }
    let N = A.shape[1]
    for (name, t, shape) in [("delta", delta, [batch, L, E]), ("z", z, [batch, L, E]), ("B", B, [batch, L, N]), ("C", C, [batch, L, N]),
                             ("D", D, [E]), ("deltaBias", deltaBias, [E])] where t.shape != shape {
        throw TensorError.shapeMismatch(tensor: name, expected: shape, found: t.shape)
    }
    guard B.rowStride == C.rowStride else { throw TensorError.layoutMismatch(tensor: "C", expected: B.rowStride, found: C.rowStride) }
    guard scale.isFinite else { throw TensorError.invalidArgument(name: "scale", value: Double(scale), allowed: "finite") }
    try checkSameDevice(u, delta, deltaBias, A, B, C, D, z)
    let be = u.backend
    let out = Tensor(uninitializedShape: [batch, L, E], device: u.device)
    func operands(_ u: Tensor, _ delta: Tensor, out: Tensor) -> SelectiveScan {
        SelectiveScan(u: u.isContiguous ? u : u.copy(), delta: delta.isContiguous ? delta : delta.copy(),
                      deltaBias: deltaBias, A: A, B: B, C: C, D: D, z: z, out: out, scale: scale,
                      batch: batch, length: L, reverse: reverse)
    }
    be.selectiveScan(operands(u, delta, out: out))
    guard let tape else { return out }
    // Keep u and delta as they came (either may be recomputed rather than kept), and not out.
    let uSaved = SavedTensor(u), deltaSaved = SavedTensor(delta)
    let uSlot = u.slot, deltaSlot = delta.slot, outSlot = out.slot
    let uDense = u.isContiguous, deltaDense = delta.isContiguous, shape = u.shape, device = u.device
    tape.record {
        guard let outGrad = outSlot.grad else { return }
        let op = operands(uSaved.values, deltaSaved.values, out: outGrad)
        // The kernel adds into uGrad and writes deltaGrad: both go straight into the operands' own
        // gradients where the layouts allow (delta's only while nothing else has added to it).
        let uDirect = uDense && uSlot.requiresGrad
        let uGrad = uDirect ? uSlot.buffer() : Tensor(zeroed: shape, device: device)
        let deltaDirect = deltaDense && deltaSlot.grad == nil
        let deltaGrad = deltaDirect ? deltaSlot.buffer() : Tensor(uninitializedShape: shape, device: device)
        Profiler.measure("scan_backward") { be.selectiveScanBackward(op, SelectiveScanGradients(
            outGrad: outGrad, uGrad: uGrad, deltaGrad: deltaGrad, deltaBiasGrad: deltaBias.gradBuffer(), AGrad: A.gradBuffer(),
            BGrad: B.gradBuffer(), CGrad: C.gradBuffer(), DGrad: D.gradBuffer(), zGrad: z.gradBuffer())) }
        if !uDirect && uSlot.requiresGrad { let g = uSlot.buffer(); be.combine(.add, g, uGrad, into: g, accumulate: false) }
        if !deltaDirect && deltaSlot.requiresGrad { let g = deltaSlot.buffer(); be.combine(.add, g, deltaGrad, into: g, accumulate: false) }
    }
    return out
}

/// −exp(x) elementwise: a Mamba mixer's A = −exp(A_log). The backward keeps the output.
package func negativeExp(_ x: Tensor, tape: Tape?) -> Tensor {
    let be = x.backend
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.map(.negativeExp, x, into: y, accumulate: false)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        // d x = d y · y
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        let g = xSlot.buffer()
        be.combine(.multiply, yGrad, y, into: g, accumulate: true)
    }
    return y
}
