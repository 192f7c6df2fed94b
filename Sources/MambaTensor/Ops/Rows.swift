/// Row `index` of every sequence: x [B, T, D] → [B, D] (the class-token readout).
package func selectToken(_ x: Tensor, index: Int, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    return try selectToken(x, indices: [Int](repeating: index, count: x.shape[0]), tape: tape)
}

/// Row `indices[b]` of sequence b (the class token after fusions moved it per sample).
package func selectToken(_ x: Tensor, indices: [Int], tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    let (B, T, D) = (x.shape[0], x.shape[1], x.shape[2])
    guard indices.count == B else { throw TensorError.valueCountMismatch(tensor: "indices", expected: B, found: indices.count) }
    if let bad = indices.first(where: { $0 < 0 || $0 >= T }) { throw TensorError.indexOutOfRange(tensor: "indices", index: bad, count: T) }
    return try gatherRows(x, index: indices.map { [$0] }, tape: tape).reshapedView([B, D])
}

/// Rows of each sequence picked by index: y[b, j] = x[b, index[b][j]] for x [B, T, ...] (every
/// sequence the same number of picks). The backward scatters (+=) back; an index may repeat.
package func gatherRows(_ x: Tensor, index: [[Int]], tape: Tape?) throws -> Tensor {
    guard x.rank >= 2 else { throw TensorError.rankMismatch(tensor: "x", expected: 2, found: x.shape) }
    let (B, T) = (x.shape[0], x.shape[1])
    let To = index.first?.count ?? 0
    guard index.count == B else { throw TensorError.valueCountMismatch(tensor: "index", expected: B, found: index.count) }
    for row in index {
        guard row.count == To else { throw TensorError.valueCountMismatch(tensor: "index row", expected: To, found: row.count) }
        if let bad = row.first(where: { $0 < 0 || $0 >= T }) { throw TensorError.indexOutOfRange(tensor: "index", index: bad, count: T) }
    }
    let flat = index.enumerated().flatMap { b, row in row.map { b * T + $0 } }
    return try pickRows(x, flat, rows: B * T, outputShape: [B, To] + x.shape.dropFirst(2), tape: tape)
}

/// gatherRows' inverse: each sequence's rows placed at `index` in `count` zero rows,
/// y[b, index[b][j]] += x[b, j] for x [B, N, ...] → [B, count, ...] (torch's `scatter_` into zeros
/// when the indices of a row are distinct). DyVM's segmentation backbone puts the tokens a block
/// kept back on the patch grid this way. The backward gathers.
package func scatterRows(_ x: Tensor, index: [[Int]], count T: Int, tape: Tape?) throws -> Tensor {
    guard x.rank >= 2 else { throw TensorError.rankMismatch(tensor: "x", expected: 2, found: x.shape) }
    let (B, N) = (x.shape[0], x.shape[1])
    guard index.count == B else { throw TensorError.valueCountMismatch(tensor: "index", expected: B, found: index.count) }
    guard T >= 0 else { throw TensorError.invalidArgument(name: "count", value: Double(T), allowed: "at least 0") }
    for row in index {
        guard row.count == N else { throw TensorError.valueCountMismatch(tensor: "index row", expected: N, found: row.count) }
        if let bad = row.first(where: { $0 < 0 || $0 >= T }) { throw TensorError.indexOutOfRange(tensor: "index", index: bad, count: T) }
    }
    let outputShape = [B, T] + x.shape.dropFirst(2)
    _ = try checkedCount(outputShape, tensor: "scatterRows output")
    let be = x.backend
    let flat = index.enumerated().flatMap { b, row in row.map { b * T + $0 } }
    let y = Tensor(zeroed: outputShape, device: x.device)
    let width = B * N == 0 ? 0 : x.count / (B * N)
    be.scatterAddRows(asRows(x, B * N), indices: flat, weights: nil, into: y.reshapedView([B * T, width]))
    let xSlot = x.slot, ySlot = y.slot, xShape = x.shape, device = x.device
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        let picked = Tensor(uninitializedShape: xShape, device: device)
        be.gatherRows(yGrad.reshapedView([B * T, width]), indices: flat, into: picked.reshapedView([B * N, width]))
        let g = xSlot.buffer()
        be.combine(.add, g, picked, into: g, accumulate: false)
    }
    return y
}

/// Entries `samples` of the first dimension: x [B, ...] → [k, ...] (DyVM's images that run a
/// direction). The backward scatters back.
package func selectSamples(_ x: Tensor, _ samples: [Int], tape: Tape?) throws -> Tensor {
    guard x.rank >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    if let bad = samples.first(where: { $0 < 0 || $0 >= x.shape[0] }) { throw TensorError.indexOutOfRange(tensor: "samples", index: bad, count: x.shape[0]) }
    let per = x.rank == 1 ? 1 : x.rowCount / max(x.shape[0], 1)
    let flat = sampleRows(samples, per: per)
    return try pickRows(x, flat, rows: x.shape[0] * per, outputShape: [samples.count] + x.shape.dropFirst(), tape: tape)
}

/// y = base, with entries `samples` of the first dimension increased by `values` [k, ...] in turn.
package func addingSamples(_ base: Tensor, _ values: Tensor, at samples: [Int], tape: Tape?) throws -> Tensor {
    guard values.shape == [samples.count] + base.shape.dropFirst() else {
        throw TensorError.shapeMismatch(tensor: "values", expected: [samples.count] + base.shape.dropFirst(), found: values.shape)
    }
    if let bad = samples.first(where: { $0 < 0 || $0 >= base.shape[0] }) { throw TensorError.indexOutOfRange(tensor: "samples", index: bad, count: base.shape[0]) }
    try checkSameDevice(base, values)
    let be = base.backend
    let y = base.copy()
    // Both as matrices of rows of `width` elements: entry s is rows s·per ..< (s + 1)·per.
    let per = base.rank == 1 ? 1 : base.rowCount / max(base.shape[0], 1), width = base.rank == 1 ? 1 : base.columnCount
    let flat = sampleRows(samples, per: per)
    func rows(_ t: Tensor, _ n: Int) -> Tensor { t.reshapedView([n, width]) }
    be.scatterAddRows(rows(values.isContiguous ? values : values.copy(), flat.count), indices: flat, weights: nil, into: rows(y, y.count / max(width, 1)))
    let baseSlot = base.slot, valuesSlot = values.slot, ySlot = y.slot, valuesShape = values.shape, device = values.device
    tape?.record {
        guard let yGrad = ySlot.grad else { return }
        if baseSlot.requiresGrad { let g = baseSlot.buffer(); be.combine(.add, g, yGrad, into: g, accumulate: false) }
        if valuesSlot.requiresGrad {
            let picked = Tensor(uninitializedShape: valuesShape, device: device)
            be.gatherRows(rows(yGrad, yGrad.count / max(width, 1)), indices: flat, into: rows(picked, flat.count))
            let g = valuesSlot.buffer()
            be.combine(.add, g, picked, into: g, accumulate: false)
        }
    }
    return y
}

/// Rows `flat` of x seen as `rows` rows of its trailing elements, shaped `outputShape`.
private func pickRows(_ x: Tensor, _ flat: [Int], rows: Int, outputShape: [Int], tape: Tape?) throws -> Tensor {
    let be = x.backend
    let source = asRows(x, rows)
    let y = Tensor(uninitializedShape: outputShape, device: x.device)
    let yRows = y.reshapedView([flat.count, y.count / max(flat.count, 1)])
    be.gatherRows(source, indices: flat, into: yRows)
    let xSlot = x.slot, ySlot = y.slot
    let width = source.columnCount
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        let g = xSlot.buffer(), picked = yGrad.reshapedView([flat.count, width])
        if g.isContiguous || g.rowCount == rows {
            be.scatterAddRows(picked, indices: flat, weights: nil, into: g.isContiguous ? g.reshapedView([rows, width]) : g)
        } else {
            let dense = Tensor(zeroed: g.shape, device: g.device)
            be.scatterAddRows(picked, indices: flat, weights: nil, into: dense.reshapedView([rows, width]))
            be.combine(.add, g, dense, into: g, accumulate: false)
        }
    }
    return y
}

/// x [B, M, D] with `token` [D] (any shape of D elements, e.g. a [1, 1, D] parameter) inserted
/// at position `index` of every sequence → [B, M + 1, D]: the class token of ViT and Vim. The
/// backward sends x its rows back and the token the sum over the batch.
package func insertToken(_ x: Tensor, token: Tensor, at index: Int, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    let (B, M, D) = (x.shape[0], x.shape[1], x.shape[2])
    guard token.count == D else { throw TensorError.valueCountMismatch(tensor: "token", expected: D, found: token.count) }
    guard index >= 0, index <= M else { throw TensorError.indexOutOfRange(tensor: "index", index: index, count: M + 1) }
    try checkSameDevice(x, token)
    let be = x.backend
    let T = M + 1
    // Row m of sequence b goes to b·T + m (m < index) or b·T + m + 1; the token to b·T + index.
    let xTargets = (0..<B).flatMap { b in (0..<M).map { m in b * T + (m < index ? m : m + 1) } }
    let tokenTargets = (0..<B).map { $0 * T + index }
    let tokenRow = token.isContiguous ? token.reshapedView([1, D]) : token.copy().reshapedView([1, D])
    let y = Tensor(zeroed: [B, T, D], device: x.device)
    be.scatterAddRows(x, indices: xTargets, weights: nil, into: y)
    for t in tokenTargets { be.scatterAddRows(tokenRow, indices: [t], weights: nil, into: y) }
    let xSlot = x.slot, tokenSlot = token.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad else { return }
        if xSlot.requiresGrad {
            let picked = Tensor(uninitializedShape: [B, M, D], device: yGrad.device)
            be.gatherRows(yGrad, indices: xTargets, into: picked)
            let g = xSlot.buffer()
            be.combine(.add, g, picked, into: g, accumulate: false)
        }
        if tokenSlot.requiresGrad {
            let rows = Tensor(uninitializedShape: [B, D], device: yGrad.device)
            be.gatherRows(yGrad, indices: tokenTargets, into: rows)
            let g = tokenSlot.buffer()
            be.scatterAddRows(rows, indices: [Int](repeating: 0, count: B), weights: nil, into: g.reshapedView([1, D]))
        }
    }
    return y
}

/// x seen as `rows` rows of its trailing elements: itself when its rows already are those, a
/// view when it is contiguous, else a contiguous copy.
func asRows(_ x: Tensor, _ rows: Int) -> Tensor {
    if rows == x.rowCount { return x }
    return (x.isContiguous ? x : x.copy()).reshapedView([rows, x.count / max(rows, 1)])
}

/// The flat row indices of first-dimension entries `samples` of a tensor with `per` rows each.
private func sampleRows(_ samples: [Int], per: Int) -> [Int] {
    samples.flatMap { s in (s * per)..<((s + 1) * per) }
}
