import Foundation
import MambaNN
import MambaTensor

/// The bidirectional Mamba mixer, `Mamba(bimamba_type="v2", if_divide_out=True)`:
/// a shared `in_proj` splits u into x and z; a forward branch (conv1d, x_proj, dt_proj, A_log, D)
/// and a backward branch (the `_b` twins) run the same pipeline in opposite token orders, each
/// gated by SiLU(z); their outputs are summed, halved, and projected by the shared `out_proj`.
public final class MambaMixer: Module {
    public let inProj: Linear         // in_proj   [2E, D], no bias
    public let conv1d: DepthwiseConv1d, conv1dB: DepthwiseConv1d  // [E, 1, K]
    public let xProj: Linear, xProjB: Linear                      // [R + 2N, E], no bias
    public let dtProj: Linear, dtProjB: Linear                    // [E, R] + bias [E]
    public let A_log: Tensor, A_b_log: Tensor                     // [E, N]
    public let D: Tensor, D_b: Tensor                             // [E]
    public let outProj: Linear        // out_proj  [D, E], no bias
    public let divideOut: Bool

    public let dim: Int, inner: Int, states: Int, rank: Int

    public init(config c: VimConfig) {
        dim = c.embedDim; inner = c.dInner; states = c.dState; rank = c.dtRank
        divideOut = c.divideOut
        inProj = Linear(dim, 2 * inner, bias: false)
        conv1d = DepthwiseConv1d(channels: inner, kernel: c.dConv)
        conv1dB = DepthwiseConv1d(channels: inner, kernel: c.dConv)
        xProj = Linear(inner, rank + 2 * states, bias: false)
        xProjB = Linear(inner, rank + 2 * states, bias: false)
        dtProj = Linear(rank, inner)
        dtProjB = Linear(rank, inner)
        A_log = Tensor(zeros: [inner, states]); A_b_log = Tensor(zeros: [inner, states])
        D = Tensor(shape: [inner], repeating: 1); D_b = Tensor(shape: [inner], repeating: 1)
        outProj = Linear(inner, dim, bias: false)
    }

    // state_dict order of mamba_simple.py (spec/vim.md §1.5).
    public var ownParameters: [(String, Tensor)] { [("A_log", A_log), ("D", D), ("A_b_log", A_b_log), ("D_b", D_b)] }
    public var children: [(String, Module)] {
        [("in_proj", inProj), ("conv1d", conv1d), ("x_proj", xProj), ("dt_proj", dtProj),
         ("conv1d_b", conv1dB), ("x_proj_b", xProjB), ("dt_proj_b", dtProjB), ("out_proj", outProj)]
    }

    /// The official initialisation (spec/vim.md §4.2), except that the values come from our generator.
    public func resetParameters(depth: Int, using rng: inout SeededGenerator) {
        inProj.resetParameters(using: &rng)
        for conv in [conv1d, conv1dB] { conv.resetParameters(using: &rng) }
        for proj in [xProj, xProjB] { proj.resetParameters(using: &rng) }
        // dt_proj: U(±1/√R) weights; bias = inverse softplus of dt ~ logU[0.001, 0.1].
        dtProj.weight.fillUniform(1 / Double(rank).squareRoot(), using: &rng)
        for e in 0..<inner {
            let dt = max(exp(rng.uniform() * (log(0.1) - log(0.001)) + log(0.001)), 1e-4)
            dtProj.bias!.data[e] = Float(dt + log(-expm1(-dt)))
        }
        // dt_proj_b misses the special init in the official code: default weights, bias zeroed.
        dtProjB.weight.fillUniform(1 / Double(rank).squareRoot(), using: &rng)
        dtProjB.bias!.buffer.update(repeating: 0)
        for a in [A_log, A_b_log] {
            for e in 0..<inner { for n in 0..<states { a.data[e * states + n] = Float(log(Double(n + 1))) } }
        }
        D.buffer.update(repeating: 1); D_b.buffer.update(repeating: 1)
        // out_proj re-drawn and rescaled by 1/√depth (`_init_weights`, rescale_prenorm_residual).
        outProj.weight.fillUniform(1 / Double(inner).squareRoot() / Double(depth).squareRoot(), using: &rng)
    }

    /// out [B, T, D] for u [B, T, D] (the normalised tokens).
    public func callAsFunction(_ u: Tensor) -> Tensor {
        let batch = u.shape[0], L = u.shape[1]
        let rows = batch * L, E = inner, N = states, R = rank, P = R + 2 * N
        let xz = Profiler.measure("in_proj") { inProj(u) }              // [B, T, 2E]: x | z
        let xc = Tensor(uninitializedShape: [rows, E])                  // conv + SiLU output
        let xdbl = Tensor(uninitializedShape: [rows, P])                // dt_low | B | C
        let dt = Tensor(uninitializedShape: [rows, E])                  // dt_proj output, bias not added
        let y = Tensor(uninitializedShape: [batch, L, E])               // gated, combined scan output
        let A = Tensor(uninitializedShape: [E, N])
        let scale: Float = divideOut ? 0.5 : 1

        for reverse in [false, true] {
            let conv = reverse ? conv1dB : conv1d, xp = reverse ? xProjB : xProj
            let dtp = reverse ? dtProjB : dtProj, aLog = reverse ? A_b_log : A_log, skip = reverse ? D_b : D
            Profiler.measure("causal_conv1d_silu") {
                causalConv1dSiLUForward(out: xc.data, x: xz.data, ldx: 2 * E, weight: conv.weight.data,
                                        bias: conv.bias.data, batch: batch, length: L, channels: E,
                                        kernel: conv.kernel, reverse: reverse)
            }
            Profiler.measure("x_proj+dt_proj") {
                linearForward(xdbl.data, xc.data, weight: xp.weight.data, bias: nil, rows: rows, inFeatures: E, outFeatures: P)
                matmulTransposedB(dt.data, ldc: E, xdbl.data, lda: P, dtp.weight.data, ldb: R, m: rows, n: E, k: R)
            }
            for i in 0..<(E * N) { A.data[i] = -Foundation.exp(aLog.data[i]) }
            Profiler.measure("selective_scan") {
                selectiveScanForward(out: y.data, scale: scale, accumulate: reverse, u: xc.data, delta: dt.data,
                                     deltaBias: dtp.bias!.data, A: A.data, B: xdbl.data + R, C: xdbl.data + R + N,
                                     ldBC: P, D: skip.data, z: xz.data + E, ldz: 2 * E,
                                     batch: batch, length: L, channels: E, states: N, reverse: reverse)
            }
        }
        return Profiler.measure("out_proj") { outProj(y) }
    }
}

/// One Vim block: `layers.i` = add + RMSNorm (`norm`) then the mixer (`mixer`).
public final class VimBlock: Module {
    public let norm: RMSNorm
    public let mixer: MambaMixer

    public init(config: VimConfig) {
        norm = RMSNorm(config.embedDim, eps: config.normEps)
        mixer = MambaMixer(config: config)
    }

    public var children: [(String, Module)] { [("mixer", mixer), ("norm", norm)] }
}
