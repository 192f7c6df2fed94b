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
    /// DyVM's direction head [2, 2E] + bias: [forward, backward] logits from xz at the class token.
    public let blockHead: Linear?
    public let divideOut: Bool

    public let dim: Int, inner: Int, states: Int, rank: Int

    public init(config c: VimConfig) throws {
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
        blockHead = c.dyvm == nil ? nil : try Linear(2 * inner, 2)
    }

    // state_dict order of mamba_simple.py (spec/vim.md §1.5).
    public var ownParameters: [(String, Tensor)] { [("A_log", A_log), ("D", D), ("A_b_log", A_b_log), ("D_b", D_b)] }
    public var children: [(String, Module)] {
        [("in_proj", inProj), ("conv1d", conv1d), ("x_proj", xProj), ("dt_proj", dtProj),
         ("conv1d_b", conv1dB), ("x_proj_b", xProjB), ("dt_proj_b", dtProjB), ("out_proj", outProj)]
            + (blockHead.map { [("block_head", $0 as Module)] } ?? [])
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
        // DyVM starts every gate open: weight 0, bias 5 (sigmoid(5) ≈ 0.993; spec/dyvm.md §2.3).
        blockHead?.weight.buffer.update(repeating: 0)
        blockHead?.bias!.buffer.update(repeating: 5)
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
    public func callAsFunction(_ u: Tensor, tape: Tape? = nil) throws -> Tensor {
        try checkTokens(u)
        return try forward(u, tape: tape, mask: nil, gating: nil).out
    }

    /// u must be [B, T, D] with this mixer's D.
    private func checkTokens(_ u: Tensor) throws {
        guard u.rank == 3 else { throw TensorError.rankMismatch(tensor: "u", expected: 3, found: u.shape) }
        guard u.shape[2] == dim else { throw TensorError.dimensionMismatch(tensor: "u", axis: 2, expected: dim, found: u.shape) }
    }

    /// One class index per image of u [B, T, D], each in 0..<T, and a direction head to read them.
    private func checkGating(_ u: Tensor, cls: [Int]) throws -> Linear {
        guard let blockHead else { throw ConfigError.requiresDyVM(model: "mixer") }
        let (batch, L) = (u.shape[0], u.shape[1])
        guard cls.count == batch else { throw TensorError.valueCountMismatch(tensor: "cls", expected: batch, found: cls.count) }
        if let bad = cls.first(where: { $0 < 0 || $0 >= L }) { throw TensorError.indexOutOfRange(tensor: "cls", index: bad, count: L) }
        return blockHead
    }

    /// DyVM's training mixer (spec/dyvm.md §5.3, §5.5): `mask` [B, T] (1 = kept token) zeroes x
    /// before the conv and the conv output; the direction head on xz at each image's class index
    /// gives logits, a hard Gumbel-sigmoid with the given logistic `noise` [B·2] turns them into
    /// gates [B, 2] (straight-through), and each direction's output is multiplied by its gate
    /// before the halved sum. Both directions are computed for every image.
    public func dynamicForward(_ u: Tensor, tape: Tape?, mask: Tensor, cls: [Int], noise: [Float], tau: Float, threshold: Float = 0.5)
        throws -> (out: Tensor, gates: Tensor, logits: [Float]) {
        try checkTokens(u)
        _ = try checkGating(u, cls: cls)
        let maskShape = [u.shape[0], u.shape[1]]
        guard mask.shape == maskShape else { throw TensorError.shapeMismatch(tensor: "mask", expected: maskShape, found: mask.shape) }
        guard noise.count == 2 * u.shape[0] else { throw TensorError.valueCountMismatch(tensor: "noise", expected: 2 * u.shape[0], found: noise.count) }
        guard tau > 0, tau.isFinite else { throw TensorError.invalidArgument(name: "tau", value: Double(tau), allowed: "positive and finite") }
        let r = try forward(u, tape: tape, mask: mask, gating: (cls, noise, tau, threshold))
        return (r.out, r.gates!, r.logits)
    }

    /// Called behind the checks of the public entry points: u [B, T, D]; mask [B, T]; class
    /// indices in range, a direction head, noise [B·2] and τ > 0 when gated.
    private func forward(_ u: Tensor, tape: Tape?, mask: Tensor?, gating: (cls: [Int], noise: [Float], tau: Float, threshold: Float)?)
        throws -> (out: Tensor, gates: Tensor?, logits: [Float]) {
        let batch = u.shape[0], L = u.shape[1]
        let rows = batch * L, E = inner, N = states, R = rank, P = R + 2 * N
        let xz = try Profiler.measure("in_proj") { try inProj(u) }      // [B, T, 2E]: x | z
        let xc = Tensor(uninitializedShape: [rows, E])                  // conv + SiLU output
        let dt = Tensor(uninitializedShape: [rows, E])                  // dt_proj output, bias not added
        let y = Tensor(uninitializedShape: [batch, L, E])               // gated, combined scan output
        let scale: Float = divideOut ? 0.5 : 1
        var xdbls: [Tensor] = []                                        // dt_low | B | C per direction
        var logits: [Float] = [], soft: [Float] = [], gates: Tensor? = nil
        if let gating, let blockHead {
            logits = headLogits(xz, head: blockHead, cls: gating.cls, length: L)
            let g = try gumbelSigmoid(logits, noise: gating.noise, tau: gating.tau, threshold: gating.threshold)
            soft = g.soft
            gates = try Tensor(shape: [batch, 2], values: g.gates)
        }
        // With a mask the conv reads x ⊙ mask (row stride E) instead of x inside xz (stride 2E).
        let xMasked = mask.map { maskedX(xz, mask: $0) }
        var directionOutputs: [Tensor] = []                             // scale · y_dir, when gated
        if gates != nil { y.buffer.update(repeating: 0) }

        for reverse in [false, true] {
            let p = branch(reverse)
            let xdbl = Tensor(uninitializedShape: [rows, P])
            xdbls.append(xdbl)
            Profiler.measure("causal_conv1d_silu") {
                causalConv1dSiLUForward(out: xc.data, x: xMasked?.data ?? xz.data, ldx: xMasked == nil ? 2 * E : E,
                                        weight: p.conv.weight.data, bias: p.conv.bias.data, batch: batch, length: L,
                                        channels: E, kernel: p.conv.kernel, reverse: reverse)
            }
            if let mask { scaleRows(xc, by: mask) }
            Profiler.measure("x_proj+dt_proj") {
                linearForward(xdbl.data, xc.data, weight: p.xProj.weight.data, bias: nil, rows: rows, inFeatures: E, outFeatures: P)
                matmulTransposedB(dt.data, ldc: E, xdbl.data, lda: P, p.dtProj.weight.data, ldb: R, m: rows, n: E, k: R)
            }
            let A = negativeExp(p.aLog)
            let target = gates == nil ? y : Tensor(uninitializedShape: [batch, L, E])
            Profiler.measure("selective_scan") {
                selectiveScanForward(out: target.data, scale: scale, accumulate: gates == nil && reverse, u: xc.data, delta: dt.data,
                                     deltaBias: p.dtProj.bias!.data, A: A.data, B: xdbl.data + R, C: xdbl.data + R + N,
                                     ldBC: P, D: p.skip.data, z: xz.data + E, ldz: 2 * E,
                                     batch: batch, length: L, channels: E, states: N, reverse: reverse)
            }
            if let gates {
                directionOutputs.append(target)
                let j = reverse ? 1 : 0
                for b in 0..<batch where gates.data[2 * b + j] != 0 {
                    let src = target.data + b * L * E, dst = y.data + b * L * E
                    let g = gates.data[2 * b + j]
                    for i in 0..<(L * E) { dst[i] += g * src[i] }
                }
            }
        }
        let out = try Profiler.measure("out_proj") { try outProj(y) }
        let outSlot = out.slot, gateSlot = gates?.slot, outShape = out.shape   // not `out`: its values are not needed
        tape?.record { [self] in
            guard outSlot.grad != nil || gateSlot?.grad != nil else { return }
            backward(outGrad: outSlot.grad ?? Tensor(zeroed: outShape), u: u, xz: xz, xdbls: xdbls, y: y, batch: batch, length: L,
                     mask: mask, gating: gating.map { (cls: $0.cls, tau: $0.tau, gates: gates!, soft: soft, outputs: directionOutputs) })
        }
        return (out, gates, logits)
    }

    /// Direction-head logits [B·2] ([forward, backward] per image) from xz at each class index.
    private func headLogits(_ xz: Tensor, head blockHead: Linear, cls: [Int], length L: Int) -> [Float] {
        let E2 = 2 * inner, batch = cls.count
        var logits = [Float](repeating: 0, count: 2 * batch)
        for b in 0..<batch {
            let row = xz.data + (b * L + cls[b]) * E2
            for j in 0..<2 {
                var g = blockHead.bias!.data[j]
                for k in 0..<E2 { g += blockHead.weight.data[j * E2 + k] * row[k] }
                logits[2 * b + j] = g
            }
        }
        return logits
    }

    /// x ⊙ mask as [rows, E], x being the first half of every xz row.
    private func maskedX(_ xz: Tensor, mask: Tensor) -> Tensor {
        let E = inner, rows = mask.count
        let x = Tensor(uninitializedShape: [rows, E])
        for r in 0..<rows {
            let m = mask.data[r], src = xz.data + r * 2 * E, dst = x.data + r * E
            for e in 0..<E { dst[e] = src[e] * m }
        }
        return x
    }

    /// Multiplies row r of t [rows, E] by m[r].
    private func scaleRows(_ t: Tensor, by m: Tensor) {
        let E = t.count / m.count
        for r in 0..<m.count { let v = m.data[r], row = t.data + r * E; for e in 0..<E { row[e] *= v } }
    }

    /// DyVM's inference mixer (spec/dyvm.md §3.2): the direction head reads xz at each image's
    /// class index; a direction whose gate is off (sigmoid(logit) ≤ threshold) is not computed for that
    /// image and counts as zero, and the sum is still halved. Returns the output [B, T, D], the
    /// head logits and the decisions, [B, 2] each as [forward, backward].
    public func gatedForward(_ u: Tensor, cls: [Int], threshold: Float = 0.5) throws -> (out: Tensor, logits: [Float], on: [Bool]) {
        try checkTokens(u)
        let head = try checkGating(u, cls: cls)
        let batch = u.shape[0], L = u.shape[1]
        let E = inner, N = states, R = rank, P = R + 2 * N
        let xz = try Profiler.measure("in_proj") { try inProj(u) }      // [B, T, 2E]: x | z
        let logits = headLogits(xz, head: head, cls: cls, length: L)
        let on = logits.map { 1 / (1 + Foundation.exp(-$0)) > threshold }
        let y = Tensor(zeroed: [batch, L, E])
        let xc = Tensor(uninitializedShape: [L, E]), dt = Tensor(uninitializedShape: [L, E])
        let xdbl = Tensor(uninitializedShape: [L, P])
        let scale: Float = divideOut ? 0.5 : 1
        for (j, reverse) in [false, true].enumerated() {
            let p = branch(reverse)
            let A = negativeExp(p.aLog)
            // Image by image: an image whose gate is off skips the whole direction.
            for b in 0..<batch where on[2 * b + j] {
                let x = xz.data + b * L * 2 * E
                causalConv1dSiLUForward(out: xc.data, x: x, ldx: 2 * E, weight: p.conv.weight.data, bias: p.conv.bias.data,
                                        batch: 1, length: L, channels: E, kernel: p.conv.kernel, reverse: reverse)
                linearForward(xdbl.data, xc.data, weight: p.xProj.weight.data, bias: nil, rows: L, inFeatures: E, outFeatures: P)
                matmulTransposedB(dt.data, ldc: E, xdbl.data, lda: P, p.dtProj.weight.data, ldb: R, m: L, n: E, k: R)
                selectiveScanForward(out: y.data + b * L * E, scale: scale, accumulate: true, u: xc.data, delta: dt.data,
                                     deltaBias: p.dtProj.bias!.data, A: A.data, B: xdbl.data + R, C: xdbl.data + R + N,
                                     ldBC: P, D: p.skip.data, z: x + E, ldz: 2 * E,
                                     batch: 1, length: L, channels: E, states: N, reverse: reverse)
            }
        }
        return (try outProj(y), logits, on)
    }

    /// Gradients of every mixer parameter and of u, from d(loss)/d(out); with DyVM's mask and
    /// gates, also of the mask and (through the gates' straight-through soft values) of the
    /// direction head and the xz rows it read.
    private func backward(outGrad: Tensor, u: Tensor, xz: Tensor, xdbls: [Tensor], y: Tensor, batch: Int, length L: Int,
                          mask: Tensor?, gating: (cls: [Int], tau: Float, gates: Tensor, soft: [Float], outputs: [Tensor])?) {
        let rows = batch * L, E = inner, N = states, R = rank, P = R + 2 * N, D = dim
        let scale: Float = divideOut ? 0.5 : 1
        // out = y · out_projᵀ
        let yGrad = Tensor(zeroed: [rows, E])
        linearBackward(xGrad: yGrad.data, weightGrad: outProj.weight.gradBuffer().data, biasGrad: nil,
                       yGrad: outGrad.data, x: y.data, weight: outProj.weight.data, rows: rows, inFeatures: E, outFeatures: D)
        let xzGrad = Tensor(zeroed: [rows, 2 * E])
        let xc = Tensor(uninitializedShape: [rows, E]), dt = Tensor(uninitializedShape: [rows, E])
        let xMasked = mask.map { maskedX(xz, mask: $0) }
        let xMaskedGrad = mask.map { _ in Tensor(zeroed: [rows, E]) }
        var maskGrad = [Double](repeating: 0, count: mask == nil ? 0 : rows)
        var gateGrad = [Float](repeating: 0, count: 2 * batch)
        for (i, reverse) in [false, true].enumerated() {
            let p = branch(reverse), xdbl = xdbls[i]
            // Recompute the conv output and Δ.
            causalConv1dSiLUForward(out: xc.data, x: xMasked?.data ?? xz.data, ldx: xMasked == nil ? 2 * E : E,
                                    weight: p.conv.weight.data, bias: p.conv.bias.data,
                                    batch: batch, length: L, channels: E, kernel: p.conv.kernel, reverse: reverse)
            let xcRaw = mask == nil ? nil : xc.copy()
            if let mask { scaleRows(xc, by: mask) }
            matmulTransposedB(dt.data, ldc: E, xdbl.data, lda: P, p.dtProj.weight.data, ldb: R, m: rows, n: E, k: R)
            let A = negativeExp(p.aLog)
            // A gated direction: its output was gate · (scale · y_dir).
            var directionGrad = yGrad
            if let gating {
                directionGrad = Tensor(uninitializedShape: [rows, E])
                let out = gating.outputs[i]
                for b in 0..<batch {
                    let g = gating.gates.data[2 * b + i], off = b * L * E
                    var acc = 0.0
                    for k in 0..<(L * E) {
                        directionGrad.data[off + k] = yGrad.data[off + k] * g
                        acc += Double(yGrad.data[off + k]) * Double(out.data[off + k])
                    }
                    gateGrad[2 * b + i] += Float(acc)
                }
            }
            let xcGrad = Tensor(zeroed: [rows, E]), dtGrad = Tensor(uninitializedShape: [rows, E])
            let xdblGrad = Tensor(zeroed: [rows, P]), AGrad = Tensor(zeroed: [E, N])
            Profiler.measure("scan_backward") { selectiveScanBackward(uGrad: xcGrad.data, deltaGrad: dtGrad.data, deltaBiasGrad: p.dtProj.bias!.gradBuffer().data,
                                  AGrad: AGrad.data, BGrad: xdblGrad.data + R, CGrad: xdblGrad.data + R + N,
                                  DGrad: p.skip.gradBuffer().data, zGrad: xzGrad.data + E, outGrad: directionGrad.data, scale: scale,
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
            // xc_masked = xc ⊙ mask
            if let mask, let xcRaw {
                for r in 0..<rows {
                    var acc = 0.0
                    let g = xcGrad.data + r * E, v = xcRaw.data + r * E
                    for e in 0..<E { acc += Double(g[e]) * Double(v[e]) }
                    maskGrad[r] += acc
                }
                scaleRows(xcGrad, by: mask)
            }
            Profiler.measure("conv_backward") { causalConv1dSiLUBackward(xGrad: xMaskedGrad?.data ?? xzGrad.data, weightGrad: p.conv.weight.gradBuffer().data,
                                     biasGrad: p.conv.bias.gradBuffer().data, outGrad: xcGrad.data, x: xMasked?.data ?? xz.data,
                                     ldx: xMasked == nil ? 2 * E : E,
                                     weight: p.conv.weight.data, bias: p.conv.bias.data, batch: batch, length: L,
                                     channels: E, kernel: p.conv.kernel, reverse: reverse) }
            // A = −exp(A_log): dA_log = dA · A.
            let aLogGrad = p.aLog.gradBuffer()
            for j in 0..<(E * N) { aLogGrad.data[j] += AGrad.data[j] * A.data[j] }
        }
        // x_masked = x ⊙ mask
        if let mask, let xMaskedGrad {
            for r in 0..<rows {
                var acc = 0.0
                let g = xMaskedGrad.data + r * E, x = xz.data + r * 2 * E, dst = xzGrad.data + r * 2 * E
                for e in 0..<E { acc += Double(g[e]) * Double(x[e]); dst[e] += g[e] * mask.data[r] }
                maskGrad[r] += acc
            }
            if mask.requiresGrad {
                let g = mask.gradBuffer()
                for r in 0..<rows { g.data[r] += Float(maskGrad[r]) }
            }
        }
        // gates: d logit = (d gate) · soft · (1 − soft) / τ, the head read xz at the class index.
        if let gating, let blockHead {
            let E2 = 2 * E
            let external = gating.gates.grad
            let wg = blockHead.weight.gradBuffer(), bg = blockHead.bias!.gradBuffer()
            for b in 0..<batch {
                let row = (b * L + gating.cls[b]) * E2
                for j in 0..<2 {
                    let s = gating.soft[2 * b + j]
                    let dGate = gateGrad[2 * b + j] + (external?.data[2 * b + j] ?? 0)
                    let dLogit = dGate * s * (1 - s) / gating.tau
                    bg.data[j] += dLogit
                    for k in 0..<E2 {
                        wg.data[j * E2 + k] += dLogit * xz.data[row + k]
                        xzGrad.data[row + k] += dLogit * blockHead.weight.data[j * E2 + k]
                    }
                }
            }
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

    public init(config: VimConfig) throws {
        norm = try RMSNorm(config.embedDim, eps: config.normEps)
        mixer = try MambaMixer(config: config)
    }

    public var children: [(String, Module)] { [("mixer", mixer), ("norm", norm)] }
}
