import Foundation
import MambaNN
import MambaTensor

/// The bidirectional Mamba mixer, `Mamba(bimamba_type="v2", if_divide_out=True)`:
/// a shared `in_proj` splits u into x and z; a forward branch (conv1d, x_proj, dt_proj, A_log, D)
/// and a backward branch (the `_b` twins) run the same pipeline in opposite token orders, each
/// gated by SiLU(z); their outputs are summed, halved, and projected by the shared `out_proj`.
package final class MambaMixer: Module {
    package let inProj: Linear         // in_proj   [2E, D], no bias
    package let conv1d: DepthwiseConv1d, conv1dB: DepthwiseConv1d  // [E, 1, K]
    package let xProj: Linear, xProjB: Linear                      // [R + 2N, E], no bias
    package let dtProj: Linear, dtProjB: Linear                    // [E, R] + bias [E]
    package let A_log: Tensor, A_b_log: Tensor                     // [E, N]
    package let D: Tensor, D_b: Tensor                             // [E]
    package let outProj: Linear        // out_proj  [D, E], no bias
    package let divideOut: Bool

    package let dim: Int, inner: Int, states: Int, rank: Int

    package init(config c: VimConfig) throws {
        dim = c.embedDim; inner = c.dInner; states = c.dState; rank = c.dtRank
        divideOut = c.divideOut
        inProj = try Linear(dim, 2 * inner, bias: false)
        conv1d = try DepthwiseConv1d(channels: inner, kernel: c.dConv)
        conv1dB = try DepthwiseConv1d(channels: inner, kernel: c.dConv)
        xProj = try Linear(inner, rank + 2 * states, bias: false)
        xProjB = try Linear(inner, rank + 2 * states, bias: false)
        dtProj = try Linear(rank, inner)
        dtProjB = try Linear(rank, inner)
        A_log = try Tensor(zeros: [inner, states]); A_b_log = try Tensor(zeros: [inner, states])
        D = try Tensor(shape: [inner], repeating: 1); D_b = try Tensor(shape: [inner], repeating: 1)
        outProj = try Linear(inner, dim, bias: false)
    }

    // state_dict order of mamba_simple.py (spec/vim.md §1.5).
    package var ownParameters: [(String, Tensor)] { [("A_log", A_log), ("D", D), ("A_b_log", A_b_log), ("D_b", D_b)] }
    package var children: [(String, Module)] {
        [("in_proj", inProj), ("conv1d", conv1d), ("x_proj", xProj), ("dt_proj", dtProj),
         ("conv1d_b", conv1dB), ("x_proj_b", xProjB), ("dt_proj_b", dtProjB), ("out_proj", outProj)]
    }

    /// The official initialisation (spec/vim.md §4.2), except that the values come from our generator.
    package func resetParameters(depth: Int, using rng: inout SeededGenerator) {
        inProj.resetParameters(using: &rng)
        for conv in [conv1d, conv1dB] { conv.resetParameters(using: &rng) }
        for proj in [xProj, xProjB] { proj.resetParameters(using: &rng) }
        // dt_proj: U(±1/√R) weights; bias = inverse softplus of dt ~ logU[0.001, 0.1].
        dtProj.weight.fillUniform(1 / Double(rank).squareRoot(), using: &rng)
        let dtBias: [Float] = (0..<inner).map { _ in
            let dt = max(exp(rng.uniform() * (log(0.1) - log(0.001)) + log(0.001)), 1e-4)
            return Float(dt + log(-expm1(-dt)))
        }
        dtProj.bias!.write(dtBias)
        // dt_proj_b misses the special init in the official code: default weights, bias zeroed.
        dtProjB.weight.fillUniform(1 / Double(rank).squareRoot(), using: &rng)
        dtProjB.bias!.fill(0)
        let aLog = (0..<inner).flatMap { _ in (0..<states).map { Float(log(Double($0 + 1))) } }
        for a in [A_log, A_b_log] { a.write(aLog) }
        D.fill(1); D_b.fill(1)
        // out_proj re-drawn and rescaled by 1/√depth (`_init_weights`, rescale_prenorm_residual).
        outProj.weight.fillUniform(1 / Double(inner).squareRoot() / Double(depth).squareRoot(), using: &rng)
    }

    /// The two directions' parameters, in the order the loops visit them.
    private func branch(_ reverse: Bool) -> (conv: DepthwiseConv1d, xProj: Linear, dtProj: Linear, aLog: Tensor, skip: Tensor) {
        reverse ? (conv1dB, xProjB, dtProjB, A_b_log, D_b) : (conv1d, xProj, dtProj, A_log, D)
    }

    /// out [B, T, D] for u [B, T, D] (the normalised tokens).
    package func callAsFunction(_ u: Tensor, tape: Tape? = nil) throws -> Tensor {
        let (_, x, z) = try project(u, tape: tape)
        let y = try add(direction(reverse: false, x: x, z: z, tape: tape), direction(reverse: true, x: x, z: z, tape: tape), tape: tape)
        return try outProject(y, tape: tape)
    }

    /// in_proj: xz [B, T, 2E], and x and z [B, T, E], its two column halves (views).
    package func project(_ u: Tensor, tape: Tape?) throws -> (xz: Tensor, x: Tensor, z: Tensor) {
        guard u.rank == 3 else { throw TensorError.rankMismatch(tensor: "u", expected: 3, found: u.shape) }
        guard u.shape[2] == dim else { throw TensorError.dimensionMismatch(tensor: "u", axis: 2, expected: dim, found: u.shape) }
        let xz = try Profiler.measure("in_proj") { try inProj(u, tape: tape) }
        return (xz, try xz.columns(0..<inner), try xz.columns(inner..<(2 * inner)))
    }

    /// One direction, scaled for the halved sum: conv → x_proj → dt_proj → selective scan, gated
    /// by SiLU(z). DyVM's `mask` [B, T] zeroes dropped tokens before and after the conv. The
    /// conv output and Δ are computed again in the backward rather than kept, as the official
    /// `mamba_inner_fn` does.
    package func direction(reverse: Bool, x: Tensor, z: Tensor, mask: Tensor? = nil, tape: Tape?) throws -> Tensor {
        let p = branch(reverse), R = rank, N = states
        let xc = try Profiler.measure("causal_conv1d_silu") {
            try recomputable(tape: tape) { try causalConv1dSiLU(x, weight: p.conv.weight, bias: p.conv.bias, reverse: reverse, mask: mask, tape: $0) }
        }
        let xdbl = try Profiler.measure("x_proj") { try p.xProj(xc, tape: tape) }           // dt_low | B | C
        let dtLow = try xdbl.columns(0..<R)
        let delta = try Profiler.measure("dt_proj") {
            try recomputable(tape: tape) { try linear(dtLow, weight: p.dtProj.weight, bias: nil, tape: $0) }  // bias: in the scan
        }
        return try Profiler.measure("selective_scan") {
            try selectiveScan(u: xc, delta: delta, deltaBias: p.dtProj.bias!, A: negativeExp(p.aLog, tape: tape),
                              B: xdbl.columns(R..<(R + N)), C: xdbl.columns((R + N)..<(R + 2 * N)), D: p.skip, z: z,
                              reverse: reverse, scale: divideOut ? 0.5 : 1, tape: tape)
        }
    }

    /// out_proj on the combined directions [B, T, E].
    package func outProject(_ y: Tensor, tape: Tape?) throws -> Tensor {
        try Profiler.measure("out_proj") { try outProj(y, tape: tape) }
    }
}

extension MambaMixer: TokenMixer {
    package func callAsFunction(_ u: Tensor, context: inout MixerContext) throws -> Tensor {
        try self(u, tape: context.tape)
    }
}
