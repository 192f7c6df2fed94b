import Foundation
import MambaTensor

/// The random draws of one DyVM training step: per stage the Gumbel noise of its keep decisions
/// ([B, M, 2], stage input order), per block the logistic noise (G₁ − G₂) of its gates ([B, 2]).
public struct DyVMNoise: Sendable {
    public var token: [[Float]]
    public var block: [[Float]]

    public init(token: [[Float]], block: [[Float]]) {
        self.token = token
        self.block = block
    }

    /// Fresh draws, Gumbel −log(−log U) and logistic log U − log(1 − U), each sample's from its
    /// own seed (so a sample's draws do not depend on the batch it is in).
    public static func draw(sampleSeeds: [UInt64], numPatches M: Int, stages: Int, depth: Int) throws -> DyVMNoise {
        let B = sampleSeeds.count
        for (name, value) in [("numPatches", M), ("stages", stages), ("depth", depth)] where value < 0 {
            throw TensorError.invalidArgument(name: name, value: Double(value), allowed: "at least 0")
        }
        _ = try checkedCount([stages, B, M, 2], tensor: "noise.token")
        var token = [[Float]](repeating: [Float](repeating: 0, count: B * M * 2), count: stages)
        var block = [[Float]](repeating: [Float](repeating: 0, count: B * 2), count: depth)
        for (b, seed) in sampleSeeds.enumerated() {
            var rng = SeededGenerator(seed: seed ^ 0xD1B5_4A32_D192_ED03)
            func open() -> Double { min(max(rng.uniform(), 1e-12), 1 - 1e-12) }
            for s in 0..<stages { for k in 0..<(M * 2) { token[s][b * M * 2 + k] = Float(-log(-log(open()))) } }
            for i in 0..<depth { for k in 0..<2 { let u = open(); block[i][b * 2 + k] = Float(log(u) - log(1 - u)) } }
        }
        return DyVMNoise(token: token, block: block)
    }

    /// Refuses noise that is not one [B, M, 2] draw per stage and one [B, 2] draw per block.
    func check(batch B: Int, numPatches M: Int, stages: Int, depth: Int) throws {
        guard token.count == stages else { throw TensorError.valueCountMismatch(tensor: "noise.token", expected: stages, found: token.count) }
        guard block.count == depth else { throw TensorError.valueCountMismatch(tensor: "noise.block", expected: depth, found: block.count) }
        for (s, values) in token.enumerated() where values.count != B * M * 2 {
            throw TensorError.valueCountMismatch(tensor: "noise.token.\(s)", expected: B * M * 2, found: values.count)
        }
        for (i, values) in block.enumerated() where values.count != B * 2 {
            throw TensorError.valueCountMismatch(tensor: "noise.block.\(i)", expected: B * 2, found: values.count)
        }
    }
}

/// What the DyVM student gives the loss (spec/dyvm.md §5.6).
public struct DyVMStudentOutput {
    public let logits: Tensor          // [B, C]
    public let other: Tensor           // [B, M, D] final normalised non-class tokens, rearranged order
    public let decisions: [Tensor]     // keep [B, M] per stage, stage input order, × previous policy
    public let gates: [Tensor]         // [B, 2] per block
    public let finalPolicy: [Float]    // [B·M] the last policy (detached)
    public let finalPatch: [[Int]]     // original patch index of every non-class slot
}

extension VimModel {
    /// DyVM's training forward (spec/dyvm.md §5): full-length sequences; at each stage hard
    /// Gumbel-softmax keep decisions (× the previous policy), the rearrangement that puts kept
    /// tokens first (class token at kept // 2) and dropped ones after, and a mask the mixers apply;
    /// Gumbel-sigmoid direction gates in every block. With a tape, straight-through gradients.
    public func dyvmTrainingForward(_ images: Tensor, noise: DyVMNoise, tape: Tape?, trace: ForwardTrace? = nil,
                                    blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> DyVMStudentOutput {
        guard let dyvm = config.dyvm else { throw ConfigError.requiresDyVM(model: config.name) }
        try checkInput(shape: images.shape)
        let B = images.shape[0], M = config.numPatches, T = M + 1
        try noise.check(batch: B, numPatches: M, stages: dyvm.pruningLoc.count, depth: config.depth)
        var h = try embed(images, tape: tape)
        var residual: Tensor? = nil
        var cls = [Int](repeating: config.clsIndex, count: B)
        var patch = [[Int]](repeating: Array(0..<M), count: B)
        var policy = try Tensor(shape: [B, M], repeating: 1)
        policy.requiresGrad = false
        var mask = try Tensor(shape: [B, T], repeating: 1)
        mask.requiresGrad = false
        var decisions: [Tensor] = [], gates: [Tensor] = [], directions: [Int] = []
        func others(_ cls: [Int]) -> [[Int]] { cls.map { c in (0..<T).filter { $0 != c } } }

        for (i, block) in layers.enumerated() {
            if let s = dyvm.pruningLoc.firstIndex(of: i), let r = residual {
                let idx = others(cls)
                let x = try add(gatherRows(h, index: idx, tape: tape), gatherRows(r, index: idx, tape: tape), tape: tape)
                let logp = try scorePredictors[s](x, policy: policy, tape: tape)
                let keep = try multiply(gumbelSoftmaxKeep(logp, noise: noise.token[s], tape: tape), policy, tape: tape)
                decisions.append(keep)
                // Kept slots first, then dropped ones, each in their current order.
                var order: [[Int]] = [], newCls: [Int] = [], sequence: [[Int]] = []
                for b in 0..<B {
                    let kept: [Int] = (0..<M).filter { keep.data[b * M + $0] > 0.5 }
                    let dropped: [Int] = (0..<M).filter { keep.data[b * M + $0] <= 0.5 }
                    let c = kept.count / 2
                    order.append(kept + dropped)
                    newCls.append(c)
                    // New slot j holds the class row at c, else the others slot order[j'] (j' = j or j − 1).
                    var seq: [Int] = []
                    for j in 0..<T { seq.append(j == c ? cls[b] : idx[b][order[b][j < c ? j : j - 1]]) }
                    sequence.append(seq)
                }
                h = try gatherRows(h, index: sequence, tape: tape)
                residual = try gatherRows(r, index: sequence, tape: tape)
                policy = try gatherRows(keep, index: order, tape: tape)
                patch = (0..<B).map { b in order[b].map { patch[b][$0] } }
                mask = insertingClassOne(policy, at: newCls, tape: tape)
                cls = newCls
                trace?.record("prune.\(s).logp", shape: [B, M, 2], floats: logp.array)
                trace?.record("prune.\(s).decision", shape: [B, M], ints: keep.array.map { Int($0) })
                trace?.record("prune.\(s).order", shape: [B, M], ints: order.flatMap { $0 })
                trace?.record("prune.\(s).patch", shape: [B, M], ints: patch.flatMap { $0 })
                trace?.record("prune.\(s).cls_position", shape: [B], ints: cls)
                trace?.record("prune.\(s).mask", shape: [B, T], ints: mask.array.map { Int($0) })
            }
            let (r, u) = try addRMSNorm(residual: residual, h, weight: block.norm.weight, eps: block.norm.eps, tape: tape)
            residual = r
            let m = try block.mixer.dynamicForward(u, tape: tape, mask: mask, cls: cls, noise: noise.block[i],
                                                 tau: dyvm.gateTemperature, threshold: dyvm.gateThreshold)
            h = m.out
            gates.append(m.gates)
            directions += m.gates.array.map { Int($0) }
            trace?.record("block.\(i).head_logits", shape: [B, 2], floats: m.logits)
            blockOutput?(i, streamAfterBlock(residual: r, mixerOutput: h))
        }
        trace?.record("directions", shape: [layers.count, B, 2], ints: directions)
        let normed = try addRMSNorm(residual: residual!, h, weight: normF.weight, eps: normF.eps, tape: tape).normed
        let logits = try linear(selectToken(normed, indices: cls, tape: tape), weight: head.weight, bias: head.bias, tape: tape)
        let other = try gatherRows(normed, index: others(cls), tape: tape)
        trace?.record("final_policy", shape: [B, M], ints: policy.array.map { Int($0) })
        trace?.record("final_patch", shape: [B, M], ints: patch.flatMap { $0 })
        return DyVMStudentOutput(logits: logits, other: other, decisions: decisions, gates: gates,
                                 finalPolicy: policy.array, finalPatch: patch)
    }

    /// The dense teacher's outputs (spec/dyvm.md §6): logits and the final normalised tokens
    /// without the class row [B, M, D], in original patch order.
    public func teacherOutputs(_ images: Tensor) throws -> (logits: Tensor, other: Tensor) {
        guard config.dyvm == nil && config.fusion == nil else { throw ConfigError.requiresPlainVim(model: config.name) }
        var h = try embed(images, tape: nil)
        var residual: Tensor? = nil
        for block in layers {
            let (r, u) = try addRMSNorm(residual: residual, h, weight: block.norm.weight, eps: block.norm.eps, tape: nil)
            residual = r
            h = try block.mixer(u)
        }
        let normed = try addRMSNorm(residual: residual!, h, weight: normF.weight, eps: normF.eps, tape: nil).normed
        let B = images.shape[0], c = config.clsIndex
        let logits = try linear(selectToken(normed, index: c, tape: nil), weight: head.weight, bias: head.bias, tape: nil)
        let other = try gatherRows(normed, index: [[Int]](repeating: (0..<config.tokens).filter { $0 != c }, count: B), tape: nil)
        return (logits, other)
    }
}

/// The mask the mixers get after a stage: the policy [B, M] with a 1 inserted for the class
/// token at `cls[b]` → [B, M + 1]. The class slot's gradient goes nowhere.
func insertingClassOne(_ policy: Tensor, at cls: [Int], tape: Tape?) -> Tensor {
    let (B, M) = (policy.shape[0], policy.shape[1])
    let mask = Tensor(uninitializedShape: [B, M + 1])
    for b in 0..<B {
        for j in 0...M { mask.data[b * (M + 1) + j] = j == cls[b] ? 1 : policy.data[b * M + (j < cls[b] ? j : j - 1)] }
    }
    let pSlot = policy.slot, mSlot = mask.slot
    tape?.record {
        guard let dm = mSlot.grad, pSlot.requiresGrad else { return }
        let g = pSlot.buffer()
        for b in 0..<B {
            for j in 0...M where j != cls[b] { g.data[b * M + (j < cls[b] ? j : j - 1)] += dm.data[b * (M + 1) + j] }
        }
    }
    return mask
}

extension VimModel {
    /// A plain Vim with this model's backbone weights: DyVM's frozen teacher at the start of
    /// training (the official code loads it from the same Vim checkpoint as the student).
    public func denseCopy() throws -> VimModel {
        var c = config
        c.dyvm = nil
        c.fusion = nil
        let teacher = try VimModel(config: c)
        let mine = Dictionary(uniqueKeysWithValues: namedParameters())
        for (name, p) in teacher.namedParameters() {
            _ = p.buffer.update(from: mine[name]!.buffer)
            p.requiresGrad = false
        }
        return teacher
    }

    /// One DyVM training step's forward: the student, the frozen teacher on the same images, and
    /// the official loss. The trace also gets `logits`, `features.other` and `teacher.*`.
    public func dyvmTrainingStep(_ images: Tensor, targets: [Float], teacher: VimModel, noise: DyVMNoise, tape: Tape?,
                                 trace: ForwardTrace? = nil, blockOutput: ((Int, Tensor) -> Void)? = nil)
        throws -> (loss: Tensor, parts: DyVMLossParts) {
        let expected = images.rank == 4 ? images.shape[0] * config.numClasses : 0
        guard targets.count == expected else { throw TensorError.valueCountMismatch(tensor: "targets", expected: expected, found: targets.count) }
        let student = try dyvmTrainingForward(images, noise: noise, tape: tape, trace: trace, blockOutput: blockOutput)
        let t = try teacher.teacherOutputs(images)
        trace?.record("logits", shape: student.logits.shape, floats: student.logits.array)
        trace?.record("features.other", shape: student.other.shape, floats: student.other.array)
        trace?.record("teacher.logits", shape: t.logits.shape, floats: t.logits.array)
        trace?.record("teacher.other", shape: t.other.shape, floats: t.other.array)
        return try dyvmLoss(student, targets: targets, teacherLogits: t.logits, teacherOther: t.other, config: config.dyvm!, tape: tape)
    }
}
