import Foundation

/// Mean cross-entropy of logits [B, C] against integer labels: −mean_b log softmax(logits_b)[label_b]
/// (soft-target cross-entropy with one-hot targets). Returns a [1] tensor.
package func crossEntropy(_ logits: Tensor, labels: [Int], tape: Tape?) throws -> Tensor {
    guard logits.rank == 2 else { throw TensorError.rankMismatch(tensor: "logits", expected: 2, found: logits.shape) }
    guard labels.count == logits.shape[0] else {
        throw TensorError.valueCountMismatch(tensor: "labels", expected: logits.shape[0], found: labels.count)
    }
    return try softTargetCrossEntropy(logits, targets: smoothedTargets(labels, classes: logits.shape[1], smoothing: 0), tape: tape)
}

/// Cross-entropy against soft targets [B, C] (timm's SoftTargetCrossEntropy):
/// mean_b Σ_c −target_bc · log softmax(logits_b)_c. Label smoothing and mixup build the targets.
package func softTargetCrossEntropy(_ logits: Tensor, targets: [Float], tape: Tape?) throws -> Tensor {
    guard logits.rank == 2 else { throw TensorError.rankMismatch(tensor: "logits", expected: 2, found: logits.shape) }
    let (B, C) = (logits.shape[0], logits.shape[1])
    guard B > 0 else { throw TensorError.emptyBatch(tensor: "logits") }
    guard targets.count == logits.count else {
        throw TensorError.valueCountMismatch(tensor: "targets", expected: logits.count, found: targets.count)
    }
    // Logits are few (B × classes): the loss runs on the host, in double precision.
    let values = logits.array
    var probs = [Double](repeating: 0, count: B * C), total = 0.0
    for b in 0..<B {
        var m = -Double.infinity
        for c in 0..<C { m = max(m, Double(values[b * C + c])) }
        var s = 0.0
        for c in 0..<C { probs[b * C + c] = exp(Double(values[b * C + c]) - m); s += probs[b * C + c] }
        let logS = log(s)
        for c in 0..<C {
            probs[b * C + c] /= s
            total -= Double(targets[b * C + c]) * (Double(values[b * C + c]) - m - logS)
        }
    }
    let loss = try Tensor(shape: [1], values: [Float(total / Double(B))], device: logits.device)
    let lossSlot = loss.slot, logitsSlot = logits.slot
    tape?.record {
        guard let lossGrad = lossSlot.grad, logitsSlot.requiresGrad else { return }
        let scale = Double(lossGrad.array[0]) / Double(B)
        var g = [Float](repeating: 0, count: B * C)
        for b in 0..<B {
            var tsum = 0.0
            for c in 0..<C { tsum += Double(targets[b * C + c]) }
            // d/dz of −Σ t·log softmax(z) = softmax(z)·Σt − t
            for c in 0..<C { g[b * C + c] = Float((probs[b * C + c] * tsum - Double(targets[b * C + c])) * scale) }
        }
        addToGradient(logitsSlot, g)
    }
    return loss
}

/// One-hot targets with label smoothing: 1 − s + s/C on the label, s/C elsewhere.
package func smoothedTargets(_ labels: [Int], classes: Int, smoothing: Float) throws -> [Float] {
    guard classes >= 1 else { throw TensorError.invalidArgument(name: "classes", value: Double(classes), allowed: "at least 1") }
    guard smoothing >= 0, smoothing <= 1 else { throw TensorError.invalidArgument(name: "smoothing", value: Double(smoothing), allowed: "[0, 1]") }
    try validateLabels(labels, classes: classes)
    var t = [Float](repeating: smoothing / Float(classes), count: labels.count * classes)
    for (b, y) in labels.enumerated() { t[b * classes + y] += 1 - smoothing }
    return t
}


/// log softmax over the last dimension, on the host (DyVM's [B, N, 2] keep/drop scores). The
/// backward keeps the output: d x = d y − softmax · Σ d y.
package func logSoftmax(_ x: Tensor, tape: Tape?) throws -> Tensor {
    guard x.rank >= 1, x.columnCount >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    let C = x.columnCount, rows = x.rowCount
    var v = x.array
    for r in 0..<rows {
        var m = -Float.infinity
        for c in 0..<C { m = max(m, v[r * C + c]) }
        var s: Float = 0
        for c in 0..<C { s += Foundation.exp(v[r * C + c] - m) }
        let lse = m + Float(Foundation.log(Double(s)))
        for c in 0..<C { v[r * C + c] -= lse }
    }
    let y = Tensor(ownValues: v, shape: x.shape, device: x.device)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad?.array, xSlot.requiresGrad else { return }
        var g = [Float](repeating: 0, count: rows * C)
        for r in 0..<rows {
            var s: Float = 0
            for c in 0..<C { s += yGrad[r * C + c] }
            for c in 0..<C { g[r * C + c] = yGrad[r * C + c] - Foundation.exp(v[r * C + c]) * s }
        }
        addToGradient(xSlot, g)
    }
    return y
}
