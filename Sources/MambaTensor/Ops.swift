// Differentiable ops on whole tensors: each runs its forward kernel and, given a tape, records
// its backward kernel. Shapes: rows = product of all dimensions but the last.

/// y = x · weightᵀ + bias (torch.nn.functional.linear); x [..., in], weight [out, in].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, tape: Tape?) throws -> Tensor {
    guard weight.rank == 2 else { throw TensorError.rankMismatch(tensor: "weight", expected: 2, found: weight.shape) }
    let inF = weight.shape[1], outF = weight.shape[0]
    guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
        throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: inF, found: x.shape)
    }
    if let bias, bias.shape != [outF] { throw TensorError.shapeMismatch(tensor: "bias", expected: [outF], found: bias.shape) }
    let rows = x.shape.dropLast().reduce(1, *)
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])
    linearForward(y.data, x.data, weight: weight.data, bias: bias?.data, rows: rows, inFeatures: inF, outFeatures: outF)
    let ySlot = y.slot
    tape?.record {
        guard let dy = ySlot.grad else { return }
        linearBackward(xGrad: x.requiresGrad ? x.gradBuffer().data : nil, weightGrad: weight.gradBuffer().data,
                       biasGrad: bias?.gradBuffer().data, yGrad: dy.data, x: x.data, weight: weight.data,
                       rows: rows, inFeatures: inF, outFeatures: outF)
    }
    return y
}

/// The fused residual add + RMSNorm of mamba_ssm: r = residual + x (r = x when there is no
/// residual yet), y = RMSNorm(r)·weight. Returns (r, y); r is the new residual stream.
public func addRMSNorm(residual: Tensor?, _ x: Tensor, weight: Tensor, eps: Float, tape: Tape?) throws -> (residual: Tensor, normed: Tensor) {
    guard weight.rank == 1 else { throw TensorError.rankMismatch(tensor: "weight", expected: 1, found: weight.shape) }
    let dim = weight.count
    guard x.rank >= 1, x.shape[x.rank - 1] == dim else {
        throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: dim, found: x.shape)
    }
    if let residual, residual.shape != x.shape { throw TensorError.shapeMismatch(tensor: "residual", expected: x.shape, found: residual.shape) }
    guard eps >= 0, eps.isFinite else { throw TensorError.invalidArgument(name: "eps", value: Double(eps), allowed: "finite, at least 0") }
    let rows = x.shape.dropLast().reduce(1, *)
    let r = residual?.copy() ?? x.copy()
    let y = Tensor(uninitializedShape: x.shape)
    let rstd = Tensor(uninitializedShape: [rows])
    addRMSNormForward(y: y.data, residual: r.data, x: residual == nil ? nil : x.data, weight: weight.data,
                      rstd: rstd.data, rows: rows, dim: dim, eps: eps)
    // The backward reads r's values; of y and the inputs only the gradients.
    let ySlot = y.slot, inputs = [residual, x].compactMap { $0?.slot }
    tape?.record {
        guard ySlot.grad != nil || r.grad != nil else { return }
        let dr = Tensor(uninitializedShape: r.shape)
        addRMSNormBackward(rowGrad: dr.data, yGrad: ySlot.grad?.data, rGrad: r.grad?.data, r: r.data, rstd: rstd.data,
                           weight: weight.data, weightGrad: weight.gradBuffer().data, rows: rows, dim: dim)
        for input in inputs where input.requiresGrad {
            let g = input.buffer()
            for i in 0..<g.count { g.data[i] += dr.data[i] }
        }
    }
    return (r, y)
}

/// Row `index` of every sequence: x [B, T, D] → [B, D] (the class-token readout).
public func selectToken(_ x: Tensor, index: Int, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    return try selectToken(x, indices: [Int](repeating: index, count: x.shape[0]), tape: tape)
}

/// Row `indices[b]` of sequence b (the class token after fusions moved it per sample).
public func selectToken(_ x: Tensor, indices: [Int], tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    let (B, T, D) = (x.shape[0], x.shape[1], x.shape[2])
    guard indices.count == B else { throw TensorError.valueCountMismatch(tensor: "indices", expected: B, found: indices.count) }
    if let bad = indices.first(where: { $0 < 0 || $0 >= T }) { throw TensorError.indexOutOfRange(tensor: "indices", index: bad, count: T) }
    let y = Tensor(uninitializedShape: [B, D])
    for b in 0..<B { (y.data + b * D).update(from: x.data + (b * T + indices[b]) * D, count: D) }
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let dy = ySlot.grad, xSlot.requiresGrad else { return }
        let g = xSlot.buffer()
        for b in 0..<B { for d in 0..<D { g.data[(b * T + indices[b]) * D + d] += dy.data[b * D + d] } }
    }
    return y
}

/// Mean cross-entropy of logits [B, C] against integer labels: −mean_b log softmax(logits_b)[label_b]
/// (soft-target cross-entropy with one-hot targets). Returns a [1] tensor.
public func crossEntropy(_ logits: Tensor, labels: [Int], tape: Tape?) throws -> Tensor {
    guard logits.rank == 2 else { throw TensorError.rankMismatch(tensor: "logits", expected: 2, found: logits.shape) }
    guard labels.count == logits.shape[0] else {
        throw TensorError.valueCountMismatch(tensor: "labels", expected: logits.shape[0], found: labels.count)
    }
    return try softTargetCrossEntropy(logits, targets: smoothedTargets(labels, classes: logits.shape[1], smoothing: 0), tape: tape)
}

import Foundation

/// Cross-entropy against soft targets [B, C] (timm's SoftTargetCrossEntropy):
/// mean_b Σ_c −target_bc · log softmax(logits_b)_c. Label smoothing and mixup build the targets.
public func softTargetCrossEntropy(_ logits: Tensor, targets: [Float], tape: Tape?) throws -> Tensor {
    guard logits.rank == 2 else { throw TensorError.rankMismatch(tensor: "logits", expected: 2, found: logits.shape) }
    let (B, C) = (logits.shape[0], logits.shape[1])
    guard B > 0 else { throw TensorError.emptyBatch(tensor: "logits") }
    guard targets.count == logits.count else {
        throw TensorError.valueCountMismatch(tensor: "targets", expected: logits.count, found: targets.count)
    }
    var probs = [Double](repeating: 0, count: B * C), total = 0.0
    for b in 0..<B {
        let row = logits.data + b * C
        var m = -Double.infinity
        for c in 0..<C { m = max(m, Double(row[c])) }
        var s = 0.0
        for c in 0..<C { probs[b * C + c] = exp(Double(row[c]) - m); s += probs[b * C + c] }
        let logS = log(s)
        for c in 0..<C {
            probs[b * C + c] /= s
            total -= Double(targets[b * C + c]) * (Double(row[c]) - m - logS)
        }
    }
    let loss = try Tensor(shape: [1], values: [Float(total / Double(B))])
    tape?.record {
        guard let dl = loss.grad, logits.requiresGrad else { return }
        let g = logits.gradBuffer(), scale = Double(dl.data[0]) / Double(B)
        for b in 0..<B {
            var tsum = 0.0
            for c in 0..<C { tsum += Double(targets[b * C + c]) }
            // d/dz of −Σ t·log softmax(z) = softmax(z)·Σt − t
            for c in 0..<C { g.data[b * C + c] += Float((probs[b * C + c] * tsum - Double(targets[b * C + c])) * scale) }
        }
    }
    return loss
}

/// One-hot targets with label smoothing: 1 − s + s/C on the label, s/C elsewhere.
public func smoothedTargets(_ labels: [Int], classes: Int, smoothing: Float) throws -> [Float] {
    guard classes >= 1 else { throw TensorError.invalidArgument(name: "classes", value: Double(classes), allowed: "at least 1") }
    guard smoothing >= 0, smoothing <= 1 else { throw TensorError.invalidArgument(name: "smoothing", value: Double(smoothing), allowed: "[0, 1]") }
    try validateLabels(labels, classes: classes)
    var t = [Float](repeating: smoothing / Float(classes), count: labels.count * classes)
    for (b, y) in labels.enumerated() { t[b * classes + y] += 1 - smoothing }
    return t
}

/// Stochastic depth as timm's `drop_path`: each sample's whole residual branch is kept with
/// probability 1 − rate and then scaled by 1 / (1 − rate) (mask keep = floor(1 − rate + U[0,1))).
/// The identity at rate 0. The per-sample mask is all the backward needs.
public func dropPath(_ x: Tensor, rate: Double, rng: inout SeededGenerator, tape: Tape?) throws -> Tensor {
    guard rate != 0 else { return x }
    guard x.rank >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    return try dropPath(x, rate: rate, uniforms: (0..<x.shape[0]).map { _ in rng.uniform() }, tape: tape)
}

/// The same with each sample's U[0, 1) draw given (`uniforms[b]`).
public func dropPath(_ x: Tensor, rate: Double, uniforms: [Double], tape: Tape?) throws -> Tensor {
    // rate 1 would scale the kept branches by 1/0.
    guard rate >= 0, rate < 1 else { throw TensorError.invalidArgument(name: "rate", value: rate, allowed: "[0, 1)") }
    guard rate > 0 else { return x }
    guard x.rank >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    let batch = x.shape[0], per = x.shape.dropFirst().reduce(1, *)
    guard uniforms.count == batch else { throw TensorError.valueCountMismatch(tensor: "uniforms", expected: batch, found: uniforms.count) }
    let keep = 1 - rate
    let scales: [Float] = uniforms.map { (keep + $0).rounded(.down) / keep }.map(Float.init)
    let y = Tensor(uninitializedShape: x.shape)
    for b in 0..<batch { for i in 0..<per { y.data[b * per + i] = x.data[b * per + i] * scales[b] } }
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let dy = ySlot.grad, xSlot.requiresGrad else { return }
        let g = xSlot.buffer()
        for b in 0..<batch { for i in 0..<per { g.data[b * per + i] += dy.data[b * per + i] * scales[b] } }
    }
    return y
}

/// Rows of each sequence picked by index: y[b, j] = x[b, index[b][j]] for x [B, T, D] (every
/// sequence the same number of picks). The backward scatters (+=) back; an index may repeat.
public func gatherRows(_ x: Tensor, index: [[Int]], tape: Tape?) throws -> Tensor {
    guard x.rank >= 2 else { throw TensorError.rankMismatch(tensor: "x", expected: 2, found: x.shape) }
    let (B, T, D) = (x.shape[0], x.shape[1], x.shape.dropFirst(2).reduce(1, *))
    let To = index.first?.count ?? 0
    guard index.count == B else { throw TensorError.valueCountMismatch(tensor: "index", expected: B, found: index.count) }
    for row in index {
        guard row.count == To else { throw TensorError.valueCountMismatch(tensor: "index row", expected: To, found: row.count) }
        if let bad = row.first(where: { $0 < 0 || $0 >= T }) { throw TensorError.indexOutOfRange(tensor: "index", index: bad, count: T) }
    }
    let y = Tensor(uninitializedShape: [B, To] + x.shape.dropFirst(2))
    for b in 0..<B {
        for (j, t) in index[b].enumerated() { (y.data + (b * To + j) * D).update(from: x.data + (b * T + t) * D, count: D) }
    }
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let dy = ySlot.grad, xSlot.requiresGrad else { return }
        let g = xSlot.buffer()
        for b in 0..<B {
            for (j, t) in index[b].enumerated() {
                let src = dy.data + (b * To + j) * D, dst = g.data + (b * T + t) * D
                for d in 0..<D { dst[d] += src[d] }
            }
        }
    }
    return y
}

/// a + b, elementwise (same shapes).
public func add(_ a: Tensor, _ b: Tensor, tape: Tape?) throws -> Tensor {
    guard a.shape == b.shape else { throw TensorError.shapeMismatch(tensor: "b", expected: a.shape, found: b.shape) }
    let y = Tensor(uninitializedShape: a.shape)
    for i in 0..<y.count { y.data[i] = a.data[i] + b.data[i] }
    let aSlot = a.slot, bSlot = b.slot, ySlot = y.slot
    tape?.record {
        guard let dy = ySlot.grad else { return }
        for s in [aSlot, bSlot] where s.requiresGrad {
            let g = s.buffer()
            for i in 0..<g.count { g.data[i] += dy.data[i] }
        }
    }
    return y
}

/// a ⊙ b, elementwise (same shapes).
public func multiply(_ a: Tensor, _ b: Tensor, tape: Tape?) throws -> Tensor {
    guard a.shape == b.shape else { throw TensorError.shapeMismatch(tensor: "b", expected: a.shape, found: b.shape) }
    let y = Tensor(uninitializedShape: a.shape)
    for i in 0..<y.count { y.data[i] = a.data[i] * b.data[i] }
    let ySlot = y.slot
    tape?.record {
        guard let dy = ySlot.grad else { return }
        if a.requiresGrad { let g = a.gradBuffer(); for i in 0..<g.count { g.data[i] += dy.data[i] * b.data[i] } }
        if b.requiresGrad { let g = b.gradBuffer(); for i in 0..<g.count { g.data[i] += dy.data[i] * a.data[i] } }
    }
    return y
}
