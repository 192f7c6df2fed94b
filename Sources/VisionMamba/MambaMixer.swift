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

    /// The two directions' parameters, in the order the loops visit them.
    private func branch(_ reverse: Bool) -> (conv: DepthwiseConv1d, xProj: Linear, dtProj: Linear, aLog: Tensor, skip: Tensor) {
        reverse ? (conv1dB, xProjB, dtProjB, A_b_log, D_b) : (conv1d, xProj, dtProj, A_log, D)
    }

    /// A = −exp(A_log) [E, N].
    private func negativeExp(_ aLog: Tensor) -> Tensor {
        let A = Tensor(uninitializedShape: aLog.shape)
        for i in 0..<A.count { A.data[i] = -Foundation.exp(aLog.data[i]) }
        return A
    }

    /// out [B, T, D] for u [B, T, D] (the normalised tokens). With a tape, the backward keeps
    /// u, xz, both x_proj outputs and the combined scan output; the conv outputs and Δ are
    /// recomputed, as the official `mamba_inner_fn` does.
    public func callAsFunction(_ u: Tensor, tape: Tape? = nil) -> Tensor {
        let batch = u.shape[0], L = u.shape[1]
        let rows = batch * L, E = inner, N = states, R = rank, P = R + 2 * N
        let xz = Profiler.measure("in_proj") { inProj(u) }              // [B, T, 2E]: x | z
        let xc = Tensor(uninitializedShape: [rows, E])                  // conv + SiLU output
        let dt = Tensor(uninitializedShape: [rows, E])                  // dt_proj output, bias not added
        let y = Tensor(uninitializedShape: [batch, L, E])               // gated, combined scan output
        let scale: Float = divideOut ? 0.5 : 1
        var xdbls: [Tensor] = []                                        // dt_low | B | C per direction

        for reverse in [false, true] {
            let p = branch(reverse)
            let xdbl = Tensor(uninitializedShape: [rows, P])
            xdbls.append(xdbl)
            Profiler.measure("causal_conv1d_silu") {
                causalConv1dSiLUForward(out: xc.data, x: xz.data, ldx: 2 * E, weight: p.conv.weight.data,
                                        bias: p.conv.bias.data, batch: batch, length: L, channels: E,
                                        kernel: p.conv.kernel, reverse: reverse)
            }
            Profiler.measure("x_proj+dt_proj") {
                linearForward(xdbl.data, xc.data, weight: p.xProj.weight.data, bias: nil, rows: rows, inFeatures: E, outFeatures: P)
                matmulTransposedB(dt.data, ldc: E, xdbl.data, lda: P, p.dtProj.weight.data, ldb: R, m: rows, n: E, k: R)
            }
            let A = negativeExp(p.aLog)
            Profiler.measure("selective_scan") {
                selectiveScanForward(out: y.data, scale: scale, accumulate: reverse, u: xc.data, delta: dt.data,
                                     deltaBias: p.dtProj.bias!.data, A: A.data, B: xdbl.data + R, C: xdbl.data + R + N,
                                     ldBC: P, D: p.skip.data, z: xz.data + E, ldz: 2 * E,
                                     batch: batch, length: L, channels: E, states: N, reverse: reverse)
            }
        }
        let out = Profiler.measure("out_proj") { outProj(y) }
        let outSlot = out.slot
        tape?.record { [self] in
            guard let outGrad = outSlot.grad else { return }
            backward(outGrad: outGrad, u: u, xz: xz, xdbls: xdbls, y: y, batch: batch, length: L)
        }
        return out
    }

    /// Gradients of every mixer parameter and of u, from d(loss)/d(out).
    private func backward(outGrad: Tensor, u: Tensor, xz: Tensor, xdbls: [Tensor], y: Tensor, batch: Int, length L: Int) {
        let rows = batch * L, E = inner, N = states, R = rank, P = R + 2 * N, D = dim
        let scale: Float = divideOut ? 0.5 : 1
        // out = y · out_projᵀ
        let yGrad = Tensor(zeros: [rows, E])
        linearBackward(xGrad: yGrad.data, weightGrad: outProj.weight.gradBuffer().data, biasGrad: nil,
                       yGrad: outGrad.data, x: y.data, weight: outProj.weight.data, rows: rows, inFeatures: E, outFeatures: D)
        let xzGrad = Tensor(zeros: [rows, 2 * E])
        let xc = Tensor(uninitializedShape: [rows, E]), dt = Tensor(uninitializedShape: [rows, E])
        for (i, reverse) in [false, true].enumerated() {
            let p = branch(reverse), xdbl = xdbls[i]
            // Recompute the conv output and Δ.
            causalConv1dSiLUForward(out: xc.data, x: xz.data, ldx: 2 * E, weight: p.conv.weight.data, bias: p.conv.bias.data,
                                    batch: batch, length: L, channels: E, kernel: p.conv.kernel, reverse: reverse)
            matmulTransposedB(dt.data, ldc: E, xdbl.data, lda: P, p.dtProj.weight.data, ldb: R, m: rows, n: E, k: R)
            let A = negativeExp(p.aLog)
            let xcGrad = Tensor(zeros: [rows, E]), dtGrad = Tensor(uninitializedShape: [rows, E])
            let xdblGrad = Tensor(zeros: [rows, P]), AGrad = Tensor(zeros: [E, N])
            Profiler.measure("scan_backward") { selectiveScanBackward(uGrad: xcGrad.data, deltaGrad: dtGrad.data, deltaBiasGrad: p.dtProj.bias!.gradBuffer().data,
                                  AGrad: AGrad.data, BGrad: xdblGrad.data + R, CGrad: xdblGrad.data + R + N,
                                  DGrad: p.skip.gradBuffer().data, zGrad: xzGrad.data + E, outGrad: yGrad.data, scale: scale,
                                  u: xc.data, delta: dt.data, deltaBias: p.dtProj.bias!.data, A: A.data,
                                  B: xdbl.data + R, C: xdbl.data + R + N, ldBC: P, D: p.skip.data, z: xz.data + E, ldz: 2 * E,
                                  batch: batch, length: L, channels: E, states: N, reverse: reverse) }
            // dt = dt_low · dt_projᵀ with dt_low the first R columns of xdbl.
            gemm(transA: false, transB: false, m: rows, n: R, k: E, dtGrad.data, lda: E, p.dtProj.weight.data, ldb: R,
                 beta: 1, xdblGrad.data, ldc: P)
            gemm(transA: true, transB: false, m: E, n: R, k: rows, dtGrad.data, lda: E, xdbl.data, ldb: P,
                 beta: 1, p.dtProj.weight.gradBuffer().data, ldc: R)
            // xdbl = xc · x_projᵀ
            linearBackward(xGrad: xcGrad.data, weightGrad: p.xProj.weight.gradBuffer().data, biasGrad: nil,
                           yGrad: xdblGrad.data, x: xc.data, weight: p.xProj.weight.data, rows: rows, inFeatures: E, outFeatures: P)
            Profiler.measure("conv_backward") { causalConv1dSiLUBackward(xGrad: xzGrad.data, weightGrad: p.conv.weight.gradBuffer().data,
                                     biasGrad: p.conv.bias.gradBuffer().data, outGrad: xcGrad.data, x: xz.data, ldx: 2 * E,
                                     weight: p.conv.weight.data, bias: p.conv.bias.data, batch: batch, length: L,
                                     channels: E, kernel: p.conv.kernel, reverse: reverse) }
            // A = −exp(A_log): dA_log = dA · A.
            let aLogGrad = p.aLog.gradBuffer()
            for j in 0..<(E * N) { aLogGrad.data[j] += AGrad.data[j] * A.data[j] }
        }
        // xz = u · in_projᵀ
        linearBackward(xGrad: u.requiresGrad ? u.gradBuffer().data : nil, weightGrad: inProj.weight.gradBuffer().data,
                       biasGrad: nil, yGrad: xzGrad.data, x: u.data, weight: inProj.weight.data,
                       rows: rows, inFeatures: D, outFeatures: 2 * E)
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
