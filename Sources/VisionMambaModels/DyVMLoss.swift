import Foundation
import MambaTensor

/// The five weighted parts of DyVM's training loss and their sum.
package struct DyVMLossParts: Sendable {
    package var cls = 0.0, tokenRatio = 0.0, blockRatio = 0.0, kl = 0.0, tokenDistill = 0.0
    package var total: Double { cls + tokenRatio + blockRatio + kl + tokenDistill }
    package var named: [(String, Double)] {
        [("loss.cls", cls), ("loss.token_ratio", tokenRatio), ("loss.block_ratio", blockRatio),
         ("loss.kl", kl), ("loss.token_distill", tokenDistill)]
    }
}

/// The official `DyVMLoss_Token_Block` (spec/dyvm.md §6):
///   soft-target CE(logits, targets)
///   + w_t · Σ_s mean_b (mean_n keep_s − r^s)² / 3
///   + w_b · (mean of all gates − b)²
///   + 0.5 · KL(teacher ‖ student) (batchmean, τ = 1)
///   + 0.5 · mean over kept (slot, channel) of (other − teacher's token at the same patch)².
/// Returns the total as a [1] tensor whose backward reaches the logits, the final tokens, the
/// keep decisions and the gates. The teacher's outputs must have the student's shapes, and
/// `config` the student's stages.
package func dyvmLoss(_ s: DyVMStudentOutput, targets: [Float], teacherLogits: Tensor, teacherOther: Tensor,
                     config: DyVMConfig, tape: Tape?) throws -> (loss: Tensor, parts: DyVMLossParts) {
    let (B, C) = (s.logits.shape[0], s.logits.shape[1])
    let (M, D) = (s.other.shape[1], s.other.shape[2])
    guard teacherLogits.shape == s.logits.shape else {
        throw TensorError.shapeMismatch(tensor: "teacherLogits", expected: s.logits.shape, found: teacherLogits.shape)
    }
    guard teacherOther.shape == s.other.shape else {
        throw TensorError.shapeMismatch(tensor: "teacherOther", expected: s.other.shape, found: teacherOther.shape)
    }
    var parts = DyVMLossParts()
    let ce = try softTargetCrossEntropy(s.logits, targets: targets, tape: tape)
    parts.cls = Double(ce.array[0])
    // The rest is computed on the host: decisions, gates and logits are small, and the final
    // tokens are read once.

    let ratioLosses = try dyvmRatioLosses(decisions: s.decisions, gates: s.gates, config: config, tape: tape)
    parts.tokenRatio = Double(ratioLosses.token.array[0])
    parts.blockRatio = Double(ratioLosses.block.array[0])

    // KL(teacher ‖ student) over the batch, τ = 1.
    var ps = [Double](repeating: 0, count: B * C), pt = ps
    let studentLogits = s.logits.array, teacher = teacherLogits.array
    for b in 0..<B {
        func softmax(_ x: [Float], into p: inout [Double]) -> Double {
            let m = (0..<C).map { Double(x[b * C + $0]) }.max()!
            var z = 0.0
            for c in 0..<C { p[b * C + c] = exp(Double(x[b * C + c]) - m); z += p[b * C + c] }
            for c in 0..<C { p[b * C + c] /= z }
            return m + log(z)
        }
        let lseS = softmax(studentLogits, into: &ps), lseT = softmax(teacher, into: &pt)
        for c in 0..<C where pt[b * C + c] > 0 {
            let logPt = Double(teacher[b * C + c]) - lseT, logPs = Double(studentLogits[b * C + c]) - lseS
            parts.kl += config.distillWeight * pt[b * C + c] * (logPt - logPs) / Double(B)
        }
    }
    // Token distillation over the kept slots of the final policy.
    var keptSlots: [(Int, Int)] = []
    for b in 0..<B { for j in 0..<M where s.finalPolicy[b * M + j] > 0.5 { keptSlots.append((b, j)) } }
    let distillCount = Double(keptSlots.count * D)
    let other = s.other.array, teacherTokens = teacherOther.array
    /// Offsets of slot (b, j) in `other` and of the teacher's token at the same patch.
    func rows(_ b: Int, _ j: Int) -> (Int, Int) { ((b * M + j) * D, (b * M + s.finalPatch[b][j]) * D) }
    if !keptSlots.isEmpty {
        var sum = 0.0
        for (b, j) in keptSlots {
            let (o, t) = rows(b, j)
            for d in 0..<D { let e = Double(other[o + d]) - Double(teacherTokens[t + d]); sum += e * e }
        }
        parts.tokenDistill = config.distillWeight * sum / distillCount
    }

    let rest = try Tensor(shape: [1], values: [Float(parts.kl + parts.tokenDistill)])
    let restSlot = rest.slot
    tape?.record {
        guard let restGrad = restSlot.grad?.array[0] else { return }
        let seed = Double(restGrad)
        if s.logits.requiresGrad {
            addToGradient(s.logits.slot, (0..<(B * C)).map { Float(seed * config.distillWeight * (ps[$0] - pt[$0]) / Double(B)) })
        }
        if !keptSlots.isEmpty && s.other.requiresGrad {
            var g = [Float](repeating: 0, count: B * M * D)
            let scale = seed * config.distillWeight * 2 / distillCount
            for (b, j) in keptSlots {
                let (o, t) = rows(b, j)
                for d in 0..<D { g[o + d] = Float(scale * (Double(other[o + d]) - Double(teacherTokens[t + d]))) }
            }
            addToGradient(s.other.slot, g)
        }
    }
    let total = try add(add(ce, rest, tape: tape), add(ratioLosses.token, ratioLosses.block, tape: tape), tape: tape)
    return (total, parts)
}

/// DyVM's two budget terms, each [1] and weighted:
///   token: w_t · Σ_s mean_b (mean_n keep_s − r^s)² / divisor (keep [B, M] per stage, the
///          cumulative kept fraction of the M patch tokens);
///   block: w_b · (mean of every gate of every block, image and direction − b)².
/// Their backward reaches the decisions and the gates. Classification (`DyVMLoss_Token_Block`)
/// and segmentation (the DyVM backbone's `forward_features`, w_t = w_b = 20, b = 0.8, divisor
/// the number of stages) differ only in their settings.
package func dyvmRatioLosses(decisions: [Tensor], gates: [Tensor], config: DyVMConfig, tape: Tape?) throws -> (token: Tensor, block: Tensor) {
    guard config.pruningLoc.count == decisions.count else {
        throw TensorError.valueCountMismatch(tensor: "pruning stages", expected: decisions.count, found: config.pruningLoc.count)
    }
    guard let B = decisions.first?.shape.first ?? gates.first?.shape.first else {
        throw TensorError.valueCountMismatch(tensor: "decisions and gates", expected: 1, found: 0)
    }
    for (s, keep) in decisions.enumerated() where keep.rank != 2 || keep.shape[0] != B {
        throw TensorError.shapeMismatch(tensor: "decisions.\(s)", expected: [B, keep.shape.last ?? 0], found: keep.shape)
    }
    for (i, gate) in gates.enumerated() where gate.shape != [B, 2] {
        throw TensorError.shapeMismatch(tensor: "gates.\(i)", expected: [B, 2], found: gate.shape)
    }
    // On the host: decisions and gates are small.
    let ratios = config.tokenRatios, wt = config.tokenPruningWeight / config.tokenRatioDivisor
    var tokenLoss = 0.0
    var keepMeans: [[Double]] = []
    for (stage, keep) in decisions.enumerated() {
        let (k, M) = (keep.array, keep.shape[1])
        let means = (0..<B).map { b in (0..<M).reduce(0.0) { $0 + Double(k[b * M + $1]) } / Double(max(M, 1)) }
        keepMeans.append(means)
        tokenLoss += wt * means.reduce(0.0) { $0 + ($1 - ratios[stage]) * ($1 - ratios[stage]) } / Double(B)
    }
    let gateCount = Double(max(gates.count * B * 2, 1))
    let gateMean = gates.reduce(0.0) { acc, g in acc + g.array.reduce(0.0) { $0 + Double($1) } } / gateCount
    let blockLoss = config.blockPruningWeight * (gateMean - config.blockKeepRatio) * (gateMean - config.blockKeepRatio)

    let token = try Tensor(shape: [1], values: [Float(tokenLoss)]), block = try Tensor(shape: [1], values: [Float(blockLoss)])
    let tokenSlot = token.slot, blockSlot = block.slot
    tape?.record {
        if let seed = tokenSlot.grad?.array[0] {
            for (stage, keep) in decisions.enumerated() where keep.requiresGrad {
                let M = keep.shape[1]
                var g = [Float](repeating: 0, count: B * M)
                for b in 0..<B {
                    let d = Double(seed) * wt * 2 * (keepMeans[stage][b] - ratios[stage]) / Double(B * M)
                    for j in 0..<M { g[b * M + j] = Float(d) }
                }
                addToGradient(keep.slot, g)
            }
        }
        if let seed = blockSlot.grad?.array[0] {
            let dGate = Float(Double(seed) * config.blockPruningWeight * 2 * (gateMean - config.blockKeepRatio) / gateCount)
            for gate in gates where gate.requiresGrad {
                addToGradient(gate.slot, [Float](repeating: dGate, count: gate.count))
            }
        }
    }
    return (token, block)
}
