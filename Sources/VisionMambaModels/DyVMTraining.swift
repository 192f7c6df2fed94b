import Foundation
import MambaTensor

/// The random draws of one DyVM training step: per stage the Gumbel noise of its keep decisions
/// ([B, M, 2], stage input order), per block the logistic noise (G₁ − G₂) of its gates ([B, 2]).
package struct DyVMNoise: Sendable {
    package var token: [[Float]]
    package var block: [[Float]]

    package init(token: [[Float]], block: [[Float]]) {
        self.token = token
        self.block = block
    }

    /// Fresh draws, Gumbel −log(−log U) and logistic log U − log(1 − U), each sample's from its
    /// own seed (so a sample's draws do not depend on the batch it is in).
    package static func draw(sampleSeeds: [UInt64], numPatches M: Int, stages: Int, depth: Int) throws -> DyVMNoise {
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
package struct DyVMStudentOutput {
    package let logits: Tensor          // [B, C]
    package let other: Tensor           // [B, M, D] final normalised non-class tokens, rearranged order
    package let decisions: [Tensor]     // keep [B, M] per stage, stage input order, × previous policy
    package let gates: [Tensor]         // [B, 2] per block
    package let finalPolicy: [Float]    // [B·M] the last policy (detached)
    package let finalPatch: [[Int]]     // original patch index of every non-class slot
}

extension VimModel {
    /// DyVM's training forward (spec/dyvm.md §5): full-length sequences; at each stage hard
    /// Gumbel-softmax keep decisions (× the previous policy), the rearrangement that puts kept
    /// tokens first (class token at kept // 2) and dropped ones after, and a mask the mixers apply;
    /// Gumbel-sigmoid direction gates in every block. With a tape, straight-through gradients.
    package func dyvmTrainingForward(_ images: Tensor, noise: DyVMNoise, tape: Tape?, trace: ForwardTrace? = nil,
                                    blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> DyVMStudentOutput {
        guard let dyvm = config.dyvm else { throw ConfigError.requiresDyVM(model: config.name) }
        try checkInput(shape: images.shape)
        let (B, M) = (images.shape[0], config.numPatches)
        try noise.check(batch: B, numPatches: M, stages: dyvm.pruningLoc.count, depth: config.depth)
        let pass = try encode(images, tape: tape, dropPath: nil, noise: noise, trace: trace, blockOutput: blockOutput)
        let stream = pass.stream
        let normed = try normalizedTokens(stream, tape: tape)
        let logits = try head(selectToken(normed, indices: stream.cls, tape: tape), tape: tape)
        let other = try gatherRows(normed, index: nonClassSlots(stream.cls, tokens: M + 1), tape: tape)
        let policy = stream.policy?.array ?? [Float](repeating: 1, count: B * M)
        trace?.record("final_policy", shape: [B, M], ints: policy.map { Int($0) })
        trace?.record("final_patch", shape: [B, M], ints: stream.patches.flatMap { $0 })
        return DyVMStudentOutput(logits: logits, other: other, decisions: pass.decisions, gates: pass.gates,
                                 finalPolicy: policy, finalPatch: stream.patches)
    }

    /// A training stage s: keep decisions from the predictor's scores and Gumbel noise, times the
    /// previous policy; then the sequences are rearranged, kept slots first (class token at
    /// kept // 2) and dropped ones after, each in their current order, and the new policy and
    /// mask follow the same order.
    func sampleKeep(_ stream: TokenStream, stage s: Int, noise: [Float], tape: Tape?, trace: ForwardTrace?)
        throws -> (stream: TokenStream, decision: Tensor) {
        let (B, T) = (stream.h.shape[0], stream.h.shape[1])
        let M = T - 1
        let others = nonClassSlots(stream.cls, tokens: T)
        let x = try add(gatherRows(stream.h, index: others, tape: tape), gatherRows(stream.residual!, index: others, tape: tape), tape: tape)
        let policy = try stream.policy ?? constant([B, M], 1, device: x.device)
        let logp = try scorePredictors[s](x, policy: policy, tape: tape)
        let keep = try multiply(gumbelSoftmaxKeep(logp, noise: noise, tape: tape), policy, tape: tape)
        let kept = keep.array
        var order: [[Int]] = [], cls: [Int] = [], sequence: [[Int]] = []
        for b in 0..<B {
            let alive = (0..<M).filter { kept[b * M + $0] > 0.5 }, dropped = (0..<M).filter { kept[b * M + $0] <= 0.5 }
            let c = alive.count / 2
            order.append(alive + dropped)
            cls.append(c)
            // New slot j holds the class row at c, else the non-class slot order[j'] (j' = j or j − 1).
            sequence.append((0..<T).map { j in j == c ? stream.cls[b] : others[b][order[b][j < c ? j : j - 1]] })
        }
        var next = stream
        next.h = try gatherRows(stream.h, index: sequence, tape: tape)
        next.residual = try gatherRows(stream.residual!, index: sequence, tape: tape)
        let newPolicy = try gatherRows(keep, index: order, tape: tape)
        next.policy = newPolicy
        next.patches = (0..<B).map { b in order[b].map { stream.patches[b][$0] } }
        next.mask = try insertingClassOne(newPolicy, at: cls, tape: tape)
        next.cls = cls
        trace?.record("prune.\(s).logp", shape: [B, M, 2], floats: logp.array)
        trace?.record("prune.\(s).decision", shape: [B, M], ints: kept.map { Int($0) })
        trace?.record("prune.\(s).order", shape: [B, M], ints: order.flatMap { $0 })
        trace?.record("prune.\(s).patch", shape: [B, M], ints: next.patches.flatMap { $0 })
        trace?.record("prune.\(s).cls_position", shape: [B], ints: cls)
        trace?.record("prune.\(s).mask", shape: [B, T], ints: next.mask!.array.map { Int($0) })
        return (next, keep)
    }

    /// The dense teacher's outputs (spec/dyvm.md §6): logits and the final normalised tokens
    /// without the class row [B, M, D], in original patch order.
    package func teacherOutputs(_ images: Tensor) throws -> (logits: Tensor, other: Tensor) {
        guard config.dyvm == nil && config.fusion == nil else { throw ConfigError.requiresPlainVim(model: config.name) }
        let pass = try encode(images, tape: nil, dropPath: nil, noise: nil, trace: nil, blockOutput: nil)
        let normed = try normalizedTokens(pass.stream, tape: nil)
        let logits = try head(selectToken(normed, indices: pass.stream.cls, tape: nil))
        let other = try gatherRows(normed, index: nonClassSlots(pass.stream.cls, tokens: config.tokens), tape: nil)
        return (logits, other)
    }
}

/// A tensor of `shape` filled with `value`, outside the graph.
func constant(_ shape: [Int], _ value: Float, device: Device) throws -> Tensor {
    let t = try Tensor(shape: shape, repeating: value, device: device)
    t.requiresGrad = false
    return t
}

/// The mask the mixers get after a stage: the policy [B, M] with a 1 inserted for the class
/// token at `cls[b]` → [B, M + 1]. The class slot's gradient goes nowhere.
func insertingClassOne(_ policy: Tensor, at cls: [Int], tape: Tape?) throws -> Tensor {
    let (B, M) = (policy.shape[0], policy.shape[1])
    // [policy | 1] seen as M + 1 one-wide tokens, then each sequence's tokens picked in order.
    let extended = try concatenateColumns(policy, constant([B, 1], 1, device: policy.device), tape: tape).reshapedView([B, M + 1, 1])
    let order = cls.map { c in (0...M).map { j in j == c ? M : j < c ? j : j - 1 } }
    return try gatherRows(extended, index: order, tape: tape).reshapedView([B, M + 1])
}

extension VimModel {
    /// A plain Vim with this model's backbone weights: DyVM's frozen teacher at the start of
    /// training (the official code loads it from the same Vim checkpoint as the student).
    package func denseCopy() throws -> VimModel {
        var c = config
        c.dyvm = nil
        c.fusion = nil
        let teacher = try VimModel(config: c)
        let mine = Dictionary(uniqueKeysWithValues: namedParameters())
        for (name, p) in teacher.namedParameters() {
            try p.assign(mine[name]!)
            p.requiresGrad = false
        }
        return teacher
    }

    /// One DyVM training step's forward: the student, the frozen teacher on the same images, and
    /// the official loss. The trace also gets `logits`, `features.other` and `teacher.*`.
    package func dyvmTrainingStep(_ images: Tensor, targets: [Float], teacher: VimModel, noise: DyVMNoise, tape: Tape?,
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
