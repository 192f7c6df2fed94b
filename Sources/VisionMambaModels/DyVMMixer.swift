import Foundation
import MambaNN
import MambaTensor

/// DyVM's block selection on a Mamba mixer (spec/dyvm.md §3.2, §5.5): a direction head
/// (`block_head`, [2, 2E] + bias) reads in_proj's output at each image's class token and gives
/// [forward, backward] logits. At inference a direction whose sigmoid is at most the threshold
/// is not computed for that image; in training, hard Gumbel-sigmoid gates multiply each
/// direction's output, with straight-through gradients. Its parameters keep the mixer's names.
package final class DyVMMixer: TokenMixer {
    package let mamba: MambaMixer
    package let blockHead: Linear
    package let threshold: Float, temperature: Float

    package init(config c: VimConfig, dyvm: DyVMConfig) throws {
        mamba = try MambaMixer(config: c)
        blockHead = try Linear(2 * c.dInner, 2)
        threshold = dyvm.gateThreshold
        temperature = dyvm.gateTemperature
    }

    package var ownParameters: [(String, Tensor)] { mamba.ownParameters }
    package var children: [(String, Module)] { mamba.children + [("block_head", blockHead)] }

    /// Every gate starts open: weight 0, bias 5 (sigmoid(5) ≈ 0.993; spec/dyvm.md §2.3).
    package func resetParameters(depth: Int, using rng: inout SeededGenerator) {
        mamba.resetParameters(depth: depth, using: &rng)
        blockHead.weight.fill(0)
        blockHead.bias!.fill(5)
    }

    package func callAsFunction(_ u: Tensor, context: inout MixerContext) throws -> Tensor {
        let tape = context.tape
        let (xz, x, z) = try mamba.project(u, tape: tape)
        let (B, L) = (u.shape[0], u.shape[1])
        let headInput: Tensor = try Profiler.measure("direction_head") {
        switch context.gateInput {
        case .classToken:
            guard context.cls.count == B else { throw TensorError.valueCountMismatch(tensor: "cls", expected: B, found: context.cls.count) }
            if let bad = context.cls.first(where: { $0 < 0 || $0 >= L }) { throw TensorError.indexOutOfRange(tensor: "cls", index: bad, count: L) }
            return try selectToken(xz, indices: context.cls, tape: tape)
        case .tokenMean:
            let training = context.gateNoise != nil
            return try weightedMeanTokens(xz, weights: training ? context.mask : nil, offset: training ? 1 : 0,
                                          weightsCountOnly: true, tape: tape)
        }
        }
        // The head reads the whole in_proj row [x | z].
        let logits = try blockHead(headInput, tape: tape)     // [B, 2]
        context.headLogits = logits.array
        if let noise = context.gateNoise {
            if let mask = context.mask, mask.shape != [B, L] { throw TensorError.shapeMismatch(tensor: "mask", expected: [B, L], found: mask.shape) }
            let gates = try gumbelSigmoidGates(logits, noise: noise, tau: temperature, threshold: threshold, tape: tape)
            context.gates = gates
            var y: Tensor? = nil
            for (j, reverse) in [false, true].enumerated() {
                let out = try mamba.direction(reverse: reverse, x: x, z: z, mask: context.mask, tape: tape)
                let gated = try scaleSamples(out, by: gates.columns(j..<(j + 1)), tape: tape)
                y = try y.map { try add($0, gated, tape: tape) } ?? gated
            }
            return try mamba.outProject(y!, tape: tape)
        }
        // Inference: each direction runs once, batched over the images whose gate is on.
        let on = context.headLogits.map { 1 / (1 + Foundation.exp(-$0)) > threshold }
        context.gates = Tensor(ownValues: on.map { $0 ? 1 : 0 }, shape: [B, 2])
        var y = try Tensor(zeros: [B, L, mamba.inner], device: u.device)
        for (j, reverse) in [false, true].enumerated() {
            let images = (0..<B).filter { on[2 * $0 + j] }
            if images.isEmpty { continue }
            if images.count == B {
                y = try add(y, mamba.direction(reverse: reverse, x: x, z: z, tape: tape), tape: tape)
            } else {
                let out = try mamba.direction(reverse: reverse, x: selectSamples(x, images, tape: tape),
                                              z: selectSamples(z, images, tape: tape), tape: tape)
                y = try addingSamples(y, out, at: images, tape: tape)
            }
        }
        return try mamba.outProject(y, tape: tape)
    }
}
