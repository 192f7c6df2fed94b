import Foundation

// DyVM's hard random decisions with straight-through gradients (spec/dyvm.md §5.2, §5.5): the
// forward value is exactly 0 or 1 (hard − soft + soft), the backward is the soft one's.

/// Keep decisions of a hard Gumbel-softmax (τ = 1) over [keep, drop] log-probabilities:
/// logp [B, N, 2] and its Gumbel noise [B·N·2] → keep [B, N] (1 ⇔ logp₀ + G₀ ≥ logp₁ + G₁).
/// Straight-through: logpGrad_j = soft_j · (δ_j0 − soft_0) · keepGrad.
package func gumbelSoftmaxKeep(_ logp: Tensor, noise: [Float], tape: Tape?) throws -> Tensor {
    guard logp.rank >= 1, logp.shape[logp.rank - 1] == 2 else {
        throw TensorError.dimensionMismatch(tensor: "logp", axis: max(logp.rank - 1, 0), expected: 2, found: logp.shape)
    }
    let rows = logp.count / 2
    guard noise.count == logp.count else { throw TensorError.valueCountMismatch(tensor: "noise", expected: logp.count, found: noise.count) }
    // Decisions are few (B × N): they are made on the host.
    let values = logp.array
    var keepValues = [Float](repeating: 0, count: rows), soft0 = [Float](repeating: 0, count: rows)
    for r in 0..<rows {
        let y0 = values[2 * r] + noise[2 * r], y1 = values[2 * r + 1] + noise[2 * r + 1]
        let m = max(y0, y1), e0 = Foundation.exp(y0 - m), e1 = Foundation.exp(y1 - m)
        soft0[r] = e0 / (e0 + e1)
        keepValues[r] = y0 >= y1 ? 1 : 0          // argmax takes the first index on a tie
    }
    let keep = Tensor(ownValues: keepValues, shape: Array(logp.shape.dropLast()), device: logp.device)
    let logpSlot = logp.slot, keepSlot = keep.slot
    tape?.record {
        guard let keepGrad = keepSlot.grad?.array, logpSlot.requiresGrad else { return }
        var g = [Float](repeating: 0, count: 2 * rows)
        for r in 0..<rows {
            let s0 = soft0[r], s1 = 1 - s0
            g[2 * r] = s0 * (1 - s0) * keepGrad[r]
            g[2 * r + 1] = -s1 * s0 * keepGrad[r]
        }
        addToGradient(logpSlot, g)
    }
    return keep
}

/// Direction gates of a hard Gumbel-sigmoid: soft = sigmoid((logit + noise) / τ), on ⇔ soft > threshold.
/// `noise` is the logistic sample G₁ − G₂. Returns the 0/1 values and the soft values (for the
/// straight-through gradient logitGrad = gateGrad · soft · (1 − soft) / τ).
package func gumbelSigmoid(_ logits: [Float], noise: [Float], tau: Float, threshold: Float = 0.5) throws -> (gates: [Float], soft: [Float]) {
    guard noise.count == logits.count else { throw TensorError.valueCountMismatch(tensor: "noise", expected: logits.count, found: noise.count) }
    guard tau > 0, tau.isFinite else { throw TensorError.invalidArgument(name: "tau", value: Double(tau), allowed: "positive and finite") }
    var gates = [Float](repeating: 0, count: logits.count), soft = gates
    for i in 0..<logits.count {
        soft[i] = 1 / (1 + Foundation.exp(-(logits[i] + noise[i]) / tau))
        gates[i] = soft[i] > threshold ? 1 : 0
    }
    return (gates, soft)
}

/// `gumbelSigmoid` on a logits tensor, with its straight-through backward: gates of logits'
/// shape, exactly 0 or 1, whose gradient reaches the logits as d gate · soft · (1 − soft) / τ.
package func gumbelSigmoidGates(_ logits: Tensor, noise: [Float], tau: Float, threshold: Float = 0.5, tape: Tape?) throws -> Tensor {
    let g = try gumbelSigmoid(logits.array, noise: noise, tau: tau, threshold: threshold)
    let gates = Tensor(ownValues: g.gates, shape: logits.shape, device: logits.device)
    let logitsSlot = logits.slot, gatesSlot = gates.slot
    tape?.record {
        guard let gateGrad = gatesSlot.grad?.array, logitsSlot.requiresGrad else { return }
        addToGradient(logitsSlot, (0..<gateGrad.count).map { i in gateGrad[i] * g.soft[i] * (1 - g.soft[i]) / tau })
    }
    return gates
}
