/// Per sample, the mean of its tokens weighted by `weights`, over (Σ weights + offset):
/// x [B, N, G], weights [B, N] (nil: all 1) → [B, G]. DynamicViT's PredictorLG pools its global
/// features this way with offset 1 and the keep policy as weights. Summed in double precision,
/// on the host (B·N·G is small). The backward reaches x and the weights.
/// With `weightsCountOnly`, every token is summed unweighted and the weights only count in the
/// divisor: DyVM's segmentation direction head pools its training sequence, whose dropped tokens
/// are zero, as sum / (kept + 1). That sum reads every token's 2·d_inner channels, so the backend
/// adds the rows (float32, in token order, the same bits on any number of threads).
package func weightedMeanTokens(_ x: Tensor, weights: Tensor?, offset: Double, weightsCountOnly: Bool = false, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    let (B, N, G) = (x.shape[0], x.shape[1], x.shape[2])
    if let weights, weights.shape != [B, N] { throw TensorError.shapeMismatch(tensor: "weights", expected: [B, N], found: weights.shape) }
    guard offset.isFinite else { throw TensorError.invalidArgument(name: "offset", value: offset, allowed: "finite") }
    try checkSameDevice(x, weights)
    let ws = weights?.array ?? [Float](repeating: 1, count: B * N)
    // The weighted sums need x on the host (and so does their backward); plain sums do not.
    let xs = weightsCountOnly ? [] : x.array
    var plainSums: [Float] = []
    if weightsCountOnly {
        let rows = x.reshapedView([B * N, G]), sums = Tensor(zeroed: [B, G], device: x.device)
        for b in 0..<B { x.backend.sumRows(rows.rowsView((b * N)..<((b + 1) * N)), into: sums.rowsView(b..<(b + 1))) }
        plainSums = sums.array
    }
    var mean = [Float](repeating: 0, count: B * G), denominators = [Double](repeating: 0, count: B)
    for b in 0..<B {
        var sum = [Double](repeating: 0, count: G), total = 0.0
        for n in 0..<N {
            let w = Double(ws[b * N + n])
            total += w
            if !weightsCountOnly { for c in 0..<G { sum[c] += Double(xs[(b * N + n) * G + c]) * w } }
        }
        if weightsCountOnly { for c in 0..<G { sum[c] = Double(plainSums[b * G + c]) } }
        denominators[b] = total + offset
        for c in 0..<G { mean[b * G + c] = Float(sum[c] / denominators[b]) }
    }
    let y = Tensor(ownValues: mean, shape: [B, G], device: x.device)
    let xSlot = x.slot, wSlot = weights?.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad?.array else { return }
        // ∂y/∂x_n = w_n / d, ∂y/∂w_n = (x_n − y) / d with d = Σ w + offset; counting only:
        // ∂y/∂x_n = 1 / d, ∂y/∂w_n = −y / d.
        var xGrad = [Float](repeating: 0, count: B * N * G), wGrad = [Float](repeating: 0, count: B * N)
        for b in 0..<B {
            let d = denominators[b]
            for n in 0..<N {
                let w = weightsCountOnly ? 1 : Double(ws[b * N + n])
                var acc = 0.0
                for c in 0..<G {
                    let gy = Double(yGrad[b * G + c])
                    xGrad[(b * N + n) * G + c] = Float(gy * w / d)
                    let xn = weightsCountOnly ? 0 : Double(xs[(b * N + n) * G + c])
                    acc += gy * (xn - Double(mean[b * G + c])) / d
                }
                wGrad[b * N + n] = Float(acc)
            }
        }
        if xSlot.requiresGrad { addToGradient(xSlot, xGrad) }
        if let wSlot, wSlot.requiresGrad { addToGradient(wSlot, wGrad) }
    }
    return y
}

/// Each sample's vector repeated over `count` tokens: x [B, G] → [B, count, G] (torch's
/// `expand`, materialised). The backward sums over the tokens.
package func expandTokens(_ x: Tensor, count: Int, tape: Tape?) throws -> Tensor {
    guard x.rank == 2 else { throw TensorError.rankMismatch(tensor: "x", expected: 2, found: x.shape) }
    guard count >= 0 else { throw TensorError.invalidArgument(name: "count", value: Double(count), allowed: "at least 0") }
    let (B, G) = (x.shape[0], x.shape[1])
    let samples = (0..<B).flatMap { [Int](repeating: $0, count: count) }
    return try selectSamples(x, samples, tape: tape).reshapedView([B, count, G])
}

/// a and b side by side along the last dimension (same leading dimensions).
package func concatenateColumns(_ a: Tensor, _ b: Tensor, tape: Tape?) throws -> Tensor {
    guard a.rank >= 1, b.rank == a.rank, a.shape.dropLast() == b.shape.dropLast() else {
        throw TensorError.shapeMismatch(tensor: "b", expected: Array(a.shape.dropLast()) + [b.shape.last ?? 0], found: b.shape)
    }
    try checkSameDevice(a, b)
    let be = a.backend
    let (na, nb) = (a.columnCount, b.columnCount)
    let y = Tensor(uninitializedShape: Array(a.shape.dropLast()) + [na + nb], device: a.device)
    be.copy(a, into: y.columnsView(0..<na))
    be.copy(b, into: y.columnsView(na..<(na + nb)))
    let aSlot = a.slot, bSlot = b.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad else { return }
        for (slot, range) in [(aSlot, 0..<na), (bSlot, na..<(na + nb))] where slot.requiresGrad {
            let g = slot.buffer()
            be.combine(.add, g, yGrad.columnsView(range), into: g, accumulate: false)
        }
    }
    return y
}
