/// softmax over the last dimension, row by row. The backward keeps y:
/// x̄ = y ⊙ (ȳ − Σ_row ȳ ⊙ y).
package func softmax(_ x: Tensor, tape: Tape?) throws -> Tensor {
    guard x.rank >= 1, x.columnCount >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    let be = x.backend
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.softmaxRows(x, into: y)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.softmaxRowsBackward(y: y, yGrad: yGrad, into: xSlot.buffer(), accumulate: true)
    }
    return y
}

/// Multi-head self-attention on packed projections, as timm's `Attention` computes it after its
/// qkv Linear: qkv [B, T, 3D] holds q | k | v, each D = H·d wide with head h in columns
/// h·d ..< (h + 1)·d. For every image b and head h:
///   S = scale · Q Kᵀ [T, T],  P = softmax(S) (rows),  O = P V [T, d],
/// and out [B, T, D] holds O of head h in columns h·d ..< (h + 1)·d (timm's transpose + reshape).
///
/// The probabilities of every head of every image are held at once, P [B, H, T, T] (4·H·T²
/// bytes per image: 444 MiB for DeiT-T at 1248 px), as timm's eager attention holds them (no
/// flash attention); they are computed in blocks of rows. The products are BLAS calls on column
/// views of qkv and out, so nothing is copied per head. The backward keeps qkv and P, and needs
/// one [T, T] scratch.
package func attention(_ qkv: Tensor, heads: Int, scale: Float, tape: Tape?) throws -> Tensor {
    guard qkv.rank == 3 else { throw TensorError.rankMismatch(tensor: "qkv", expected: 3, found: qkv.shape) }
    guard heads >= 1 else { throw TensorError.invalidArgument(name: "heads", value: Double(heads), allowed: "at least 1") }
    let (B, T, W) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
    guard W >= 3 * heads, W % (3 * heads) == 0 else {
        throw TensorError.invalidArgument(name: "qkv width", value: Double(W), allowed: "a positive multiple of 3 × heads (\(3 * heads))")
    }
    guard scale.isFinite else { throw TensorError.invalidArgument(name: "scale", value: Double(scale), allowed: "finite") }
    let be = qkv.backend
    let D = W / 3, d = D / heads
    let probs = Tensor(uninitializedShape: [B, heads, T, T], device: qkv.device)
    let out = Tensor(uninitializedShape: [B, T, D], device: qkv.device)
    guard B > 0, T > 0 else { return out }
    // Views of one (image, head): q, k, v columns of qkv (or of its gradient), one head's columns
    // of out, and P [T, T].
    func part(_ t: Tensor, _ b: Int, _ start: Int) -> Tensor { t.rowsView(b..<(b + 1)).columnsView(start..<(start + d)) }
    let pairs = probs.reshapedView([B * heads, T, T])
    func P(_ b: Int, _ h: Int) -> Tensor { pairs.rowsView((b * heads + h)..<(b * heads + h + 1)) }

    // Rows of one head's P in blocks of about 4 MiB: a block is computed, normalised and multiplied
    // by V while it is still in cache, where three passes over all of P (S, softmax, P V) would each
    // stream T × T floats through memory. Smaller blocks repack K for too few rows: DeiT-T's
    // backbone at 1248 px took 8.2 s per image in three passes, 5.8 s in 1 MiB blocks and 4.5 s
    // in 4 MiB blocks (8 MiB: the same), on 2 cores. The blocks follow T alone, not the thread count.
    let blockRows = min(T, max(16, (1 << 20) / T / 16 * 16))
    func rows(_ t: Tensor, _ range: Range<Int>) -> Tensor { t.reshapedView([T, t.columnCount]).rowsView(range) }
    for b in 0..<B {
        for h in 0..<heads {
            let (q, k, v, o, p) = (part(qkv, b, h * d), part(qkv, b, D + h * d), part(qkv, b, 2 * D + h * d), part(out, b, h * d), P(b, h))
            for start in stride(from: 0, to: T, by: blockRows) {
                let r = start..<min(T, start + blockRows), pRows = rows(p, r)
                be.matrixProduct(MatrixProduct(a: rows(q, r), b: k, c: pRows, transposeB: true, alpha: scale))   // S = scale · Q Kᵀ
                be.softmaxRows(pRows, into: pRows)                                                              // P = softmax(S)
                be.matrixProduct(MatrixProduct(a: pRows, b: v, c: rows(o, r)))                                 // O = P V
            }
        }
    }
    guard let tape else { return out }
    let qkvSaved = SavedTensor(qkv), qkvSlot = qkv.slot, outSlot = out.slot, device = qkv.device
    tape.record {
        guard let outGrad = outSlot.grad, qkvSlot.requiresGrad else { return }
        let qkv = qkvSaved.values, g = qkvSlot.buffer()
        let scratch = Tensor(uninitializedShape: [T, T], device: device)   // P̄, then S̄ in place
        for b in 0..<B {
            for h in 0..<heads {
                let (q, k, v) = (part(qkv, b, h * d), part(qkv, b, D + h * d), part(qkv, b, 2 * D + h * d))
                let oGrad = part(outGrad, b, h * d), p = P(b, h)
                // O = P V:  V̄ += Pᵀ Ō,  P̄ = Ō Vᵀ
                be.matrixProduct(MatrixProduct(a: p, b: oGrad, c: part(g, b, 2 * D + h * d), transposeA: true, beta: 1))
                be.matrixProduct(MatrixProduct(a: oGrad, b: v, c: scratch, transposeB: true))
                // P = softmax(S):  S̄ = P ⊙ (P̄ − Σ_row P̄ ⊙ P)
                be.softmaxRowsBackward(y: p, yGrad: scratch, into: scratch, accumulate: false)
                // S = scale · Q Kᵀ:  Q̄ += scale · S̄ K,  K̄ += scale · S̄ᵀ Q
                be.matrixProduct(MatrixProduct(a: scratch, b: k, c: part(g, b, h * d), alpha: scale, beta: 1))
                be.matrixProduct(MatrixProduct(a: scratch, b: q, c: part(g, b, D + h * d), transposeA: true, alpha: scale, beta: 1))
            }
        }
    }
    return out
}
