/// a + b, elementwise (same shapes).
package func add(_ a: Tensor, _ b: Tensor, tape: Tape?) throws -> Tensor {
    guard a.shape == b.shape else { throw TensorError.shapeMismatch(tensor: "b", expected: a.shape, found: b.shape) }
    try checkSameDevice(a, b)
    let be = a.backend
    let y = Tensor(uninitializedShape: a.shape, device: a.device)
    be.combine(.add, a, b, into: y, accumulate: false)
    let aSlot = a.slot, bSlot = b.slot, ySlot = y.slot
    tape?.record {
        // y's gradient is complete here and read by no later step: b gets a copy, a the buffer.
        if bSlot.requiresGrad, let yGrad = ySlot.grad { bSlot.accumulate(copying: yGrad) }
        if aSlot.requiresGrad, let yGrad = ySlot.release() ?? ySlot.grad { aSlot.accumulate(taking: yGrad) }
    }
    return y
}

/// a ⊙ b, elementwise (same shapes). The backward keeps both.
package func multiply(_ a: Tensor, _ b: Tensor, tape: Tape?) throws -> Tensor {
    guard a.shape == b.shape else { throw TensorError.shapeMismatch(tensor: "b", expected: a.shape, found: b.shape) }
    try checkSameDevice(a, b)
    let be = a.backend
    let y = Tensor(uninitializedShape: a.shape, device: a.device)
    be.combine(.multiply, a, b, into: y, accumulate: false)
    let ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad else { return }
        if a.requiresGrad { be.combine(.multiply, yGrad, b, into: a.gradBuffer(), accumulate: true) }
        if b.requiresGrad { be.combine(.multiply, yGrad, a, into: b.gradBuffer(), accumulate: true) }
    }
    return y
}

/// x · factor, elementwise (a loss weight). The backward scales the gradient alike.
package func scale(_ x: Tensor, by factor: Float, tape: Tape?) throws -> Tensor {
    guard factor.isFinite else { throw TensorError.invalidArgument(name: "factor", value: Double(factor), allowed: "finite") }
    let be = x.backend
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.map(.scale(factor), x, into: y, accumulate: false)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.map(.scale(factor), yGrad, into: xSlot.buffer(), accumulate: true)
    }
    return y
}

/// The exact (erf) GELU, elementwise. The backward keeps x.
package func gelu(_ x: Tensor, tape: Tape?) -> Tensor {
    let be = x.backend
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.map(.gelu, x, into: y, accumulate: false)
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.combine(.geluGradient, yGrad, xSaved.values, into: xSlot.buffer(), accumulate: true)
    }
    return y
}

/// x with every row (the last dimension) multiplied by its factor: factors has x's shape
/// without the last dimension (DyVM's token mask [B, T] on x [B, T, E]). The backward reaches
/// both; it keeps x when the factors need a gradient.
package func scaleRows(_ x: Tensor, by factors: Tensor, tape: Tape?) throws -> Tensor {
    guard x.rank >= 1, factors.shape == Array(x.shape.dropLast()) else {
        throw TensorError.shapeMismatch(tensor: "factors", expected: Array(x.shape.dropLast()), found: factors.shape)
    }
    return try scale(x, rows: x.rowCount, by: factors, tape: tape)
}

/// x [B, ...] with every sample (entry of the first dimension) multiplied by its factor in
/// `factors`, [B] or a [B, 1] column view (DyVM's direction gates). The backward reaches both.
package func scaleSamples(_ x: Tensor, by factors: Tensor, tape: Tape?) throws -> Tensor {
    guard x.rank >= 1, factors.shape == [x.shape[0]] || factors.shape == [x.shape[0], 1] else {
        throw TensorError.shapeMismatch(tensor: "factors", expected: [x.rank >= 1 ? x.shape[0] : 1], found: factors.shape)
    }
    return try scale(x, rows: x.shape[0], by: factors, tape: tape)
}

/// x seen as `rows` rows of its trailing elements, row r times factors[r].
private func scale(_ x: Tensor, rows: Int, by factors: Tensor, tape: Tape?) throws -> Tensor {
    try checkSameDevice(x, factors)
    let be = x.backend
    let source = asRows(x, rows)
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    let yRows = y.reshapedView(source.shape)
    be.scaleRows(source, by: factors, into: yRows, accumulate: false)
    guard let tape else { return y }
    let xSaved = factors.requiresGrad ? SavedTensor(source) : nil, xSlot = x.slot, ySlot = y.slot, fSlot = factors.slot, width = source.columnCount
    tape.record {
        guard let yGrad = ySlot.grad else { return }
        let yGradRows = yGrad.reshapedView([rows, width])
        if let xSaved, fSlot.requiresGrad { be.rowDots(yGradRows, xSaved.values, into: fSlot.buffer()) }
        guard xSlot.requiresGrad else { return }
        let g = xSlot.buffer()
        if g.rowCount == rows || g.isContiguous {
            be.scaleRows(yGradRows, by: factors, into: g.rowCount == rows ? g : g.reshapedView([rows, width]), accumulate: true)
        } else {
            let dense = Tensor(uninitializedShape: [rows, width], device: g.device)
            be.scaleRows(yGradRows, by: factors, into: dense, accumulate: false)
            be.combine(.add, g, dense.reshapedView(g.shape), into: g, accumulate: false)
        }
    }
    return y
}
