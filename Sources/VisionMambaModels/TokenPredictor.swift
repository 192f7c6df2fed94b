import Foundation
import MambaNN
import MambaTensor

/// DyVM's token scorer (`PredictorLG`, from DynamicViT): per token, log P(keep) and log P(drop)
/// from its own features and a policy-weighted mean of all tokens' (spec/dyvm.md §4).
package final class TokenPredictor: Module {
    package let norm: LayerNorm       // in_conv.0
    package let inLinear: Linear      // in_conv.1  [D, D]
    package let out0: Linear          // out_conv.0 [D/2, D]
    package let out2: Linear          // out_conv.2 [D/4, D/2]
    package let out4: Linear          // out_conv.4 [2, D/4]

    package init(dim D: Int) throws {
        norm = try LayerNorm(D)
        inLinear = try Linear(D, D)
        out0 = try Linear(D, D / 2)
        out2 = try Linear(D / 2, D / 4)
        out4 = try Linear(D / 4, 2)
    }

    package var children: [(String, Module)] {
        [("in_conv.0", norm), ("in_conv.1", inLinear), ("out_conv.0", out0), ("out_conv.2", out2), ("out_conv.4", out4)]
    }

    /// Truncated-normal(0.02) weights and zero biases (the official `_init_weights`).
    package func resetParameters(using rng: inout SeededGenerator) {
        for l in [inLinear, out0, out2, out4] {
            l.weight.fillTruncatedNormal(std: 0.02, using: &rng)
            l.bias!.fill(0)
        }
    }

    /// logp [B, N, 2] for x [B, N, D]. `policy` [B, N] (1 = alive) weights the global mean, whose
    /// divisor is (alive count + 1) as in the official code; nil: every token alive. With a tape,
    /// the backward reaches x, the policy (the keep decisions of earlier stages) and every weight.
    package func callAsFunction(_ x: Tensor, policy: Tensor? = nil, tape: Tape? = nil) throws -> Tensor {
        guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
        let (B, N, D) = (x.shape[0], x.shape[1], x.shape[2])
        if let policy, policy.shape != [B, N] { throw TensorError.shapeMismatch(tensor: "policy", expected: [B, N], found: policy.shape) }
        let features = gelu(try inLinear(norm(x, tape: tape), tape: tape), tape: tape)
        // [local ; global]: the first D/2 channels stay per token, the rest become the policy mean.
        let local = try features.columns(0..<(D / 2))
        let global = try weightedMeanTokens(features.columns((D / 2)..<D), weights: policy, offset: 1, tape: tape)
        let joined = try concatenateColumns(local, expandTokens(global, count: N, tape: tape), tape: tape)
        let hidden = gelu(try out2(gelu(try out0(joined, tape: tape), tape: tape), tape: tape), tape: tape)
        return try logSoftmax(out4(hidden, tape: tape), tape: tape)
    }
}
