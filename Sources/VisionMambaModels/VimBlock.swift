import MambaNN
import MambaTensor

/// A block's token mixer: normalised tokens [B, T, D] → [B, T, D]. The Mamba mixer is one; a
/// wrapper that adds behaviour (DyVM's direction gates) or another mixer is a new conformance.
package protocol TokenMixer: Module {
    func callAsFunction(_ u: Tensor, context: inout MixerContext) throws -> Tensor
}

/// What a pass gives a block's mixer besides its tokens, and what a mixer reports back.
package struct MixerContext {
    package var tape: Tape?
    /// Each image's class-token index in the tokens the mixer sees.
    package var cls: [Int]
    /// What DyVM's direction head reads: the class token (classification) or, in the
    /// segmentation backbone, which has none, the mean of every token.
    package var gateInput: GateInput = .classToken
    /// DyVM training: the tokens still alive [B, T] (1 = kept), applied around the conv.
    package var mask: Tensor?
    /// DyVM training: this block's logistic gate noise [B·2]; nil at inference.
    package var gateNoise: [Float]?
    /// Set by a gated mixer: the direction-head logits [B·2] ([forward, backward] per image),
    /// and the 0/1 gates [B, 2] it applied (straight-through when training).
    package var headLogits: [Float] = []
    package var gates: Tensor?

    package init(tape: Tape?, cls: [Int], mask: Tensor? = nil, gateNoise: [Float]? = nil) {
        self.tape = tape
        self.cls = cls
        self.mask = mask
        self.gateNoise = gateNoise
    }
}

/// The input of DyVM's direction head (`block_head`), a row of in_proj's output [x | z].
package enum GateInput: Sendable {
    /// The class token's row.
    case classToken
    /// The mean over the tokens: at inference over those the block sees; in training, where
    /// dropped tokens stay in the sequence as zeros, their sum over (kept + 1), as DyVM's
    /// segmentation code computes it.
    case tokenMean
}

/// One Vim block, `layers.i`: add + RMSNorm (`norm`), then the mixer (`mixer`). Famba-V fuses
/// tokens between the two when the block is one of its fusion blocks.
package final class VimBlock: Module {
    package let norm: RMSNorm
    package let mixer: any TokenMixer
    /// Famba-V: tokens fused away before the mixer (r), or nil for a block that does not fuse.
    package let fusion: (tokens: Int, preserveOrder: Bool)?

    package init(norm: RMSNorm, mixer: any TokenMixer, fusion: (tokens: Int, preserveOrder: Bool)? = nil) {
        self.norm = norm
        self.mixer = mixer
        self.fusion = fusion
    }

    package var children: [(String, Module)] { [("mixer", mixer), ("norm", norm)] }

    /// The block on its input h (the previous mixer's output) and the residual stream (nil for
    /// the first block): returns the mixer output and the new residual. `dropPath` scales h per
    /// image first (stochastic depth of the previous block's branch).
    package func callAsFunction(_ h: Tensor, residual: Tensor?, dropPath: (rate: Double, uniforms: [Double])? = nil,
                               context: inout MixerContext) throws -> (out: Tensor, residual: Tensor) {
        let tape = context.tape
        var h = h
        if let dropPath { h = try MambaTensor.dropPath(h, rate: dropPath.rate, uniforms: dropPath.uniforms, tape: tape) }
        var (r, u) = try Profiler.measure("add_rms_norm") { try addRMSNorm(residual: residual, h, weight: norm.weight, eps: norm.eps, tape: tape) }
        if let fusion, fusion.tokens > 0 {
            // Famba-V: fuse after the add + norm, with the normalised tokens as the metric and the
            // same plan on the residual stream; the class token is protected and may move.
            let plan = try Profiler.measure("token_fusion") {
                try bipartiteSoftMatching(u, r: fusion.tokens, protected: context.cls, preserveOrder: fusion.preserveOrder)
            }
            u = try mergeTokens(u, plan: plan, tape: tape)
            r = try mergeTokens(r, plan: plan, tape: tape)
            context.cls = plan.protectedIndex!
        }
        return (try mixer(u, context: &context), r)
    }
}
