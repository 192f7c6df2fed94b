import Foundation
import MambaNN
import MambaTensor

/// DyVM's token scorer (`PredictorLG`, from DynamicViT): per token, log P(keep) and log P(drop)
/// from its own features and a policy-weighted mean of all tokens' (spec/dyvm.md §4).
public final class TokenPredictor: Module {
    public let norm: LayerNorm       // in_conv.0
    public let inLinear: Linear      // in_conv.1  [D, D]
    public let out0: Linear          // out_conv.0 [D/2, D]
    public let out2: Linear          // out_conv.2 [D/4, D/2]
    public let out4: Linear          // out_conv.4 [2, D/4]

    public init(dim D: Int) throws {
        norm = try LayerNorm(D)
        inLinear = try Linear(D, D)
        out0 = try Linear(D, D / 2)
        out2 = try Linear(D / 2, D / 4)
        out4 = try Linear(D / 4, 2)
    }

    public var children: [(String, Module)] {
        [("in_conv.0", norm), ("in_conv.1", inLinear), ("out_conv.0", out0), ("out_conv.2", out2), ("out_conv.4", out4)]
    }

    /// Truncated-normal(0.02) weights and zero biases (the official `_init_weights`).
    public func resetParameters(using rng: inout SeededGenerator) {
        for l in [inLinear, out0, out2, out4] {
            l.weight.fillTruncatedNormal(std: 0.02, using: &rng)
            l.bias!.buffer.update(repeating: 0)
        }
    }

    /// logp [B, N, 2] for x [B, N, D]. `policy` [B, N] (1 = alive) weights the global mean, whose
    /// divisor is (alive count + 1) as in the official code; nil: every token alive. With a tape,
    /// the backward reaches x, the policy (the keep decisions of earlier stages) and every weight.
    public func callAsFunction(_ x: Tensor, policy: Tensor? = nil, tape: Tape? = nil) throws -> Tensor {
        guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
        let (B, N, D) = (x.shape[0], x.shape[1], x.shape[2])
        if let policy, policy.shape != [B, N] { throw TensorError.shapeMismatch(tensor: "policy", expected: [B, N], found: policy.shape) }
        let half = D / 2, G = D - half
        let ln = try norm(x)
        let a1 = try inLinear(ln)
        let g1 = a1.copy(); gelu(g1)
        // [local ; global]: the first D/2 channels stay per token, the rest become the policy mean.
        let cat = g1.copy()
        var glob = [Float](repeating: 0, count: B * G), alive = [Double](repeating: 0, count: B)
        for b in 0..<B {
            var sum = [Double](repeating: 0, count: G)
            for n in 0..<N {
                let p = Double(policy?.data[b * N + n] ?? 1)
                alive[b] += p
                let row = g1.data + (b * N + n) * D
                for c in 0..<G { sum[c] += Double(row[half + c]) * p }
            }
            for c in 0..<G { glob[b * G + c] = Float(sum[c] / (alive[b] + 1)) }
            for n in 0..<N {
                let row = cat.data + (b * N + n) * D
                for c in 0..<G { row[half + c] = glob[b * G + c] }
            }
        }
        let a2 = try out0(cat), g2 = a2.copy(); gelu(g2)
        let a3 = try out2(g2), g3 = a3.copy(); gelu(g3)
        let logp = try out4(g3)
        for r in 0..<(B * N) {
            let l = logp.data + 2 * r
            let m = max(l[0], l[1])
            let lse = m + Float(Foundation.log(Double(Foundation.exp(l[0] - m) + Foundation.exp(l[1] - m))))
            l[0] -= lse; l[1] -= lse
        }
        guard let tape else { return logp }
        let outSlot = logp.slot, xSlot = x.slot, policySlot = policy?.slot
        tape.record { [self] in
            guard let dlogp = outSlot.grad else { return }
            let rows = B * N
            // log-softmax: da4 = dlogp − softmax · Σ dlogp
            let da4 = Tensor(uninitializedShape: [rows, 2])
            for r in 0..<rows {
                let s = dlogp.data[2 * r] + dlogp.data[2 * r + 1]
                for j in 0..<2 { da4.data[2 * r + j] = dlogp.data[2 * r + j] - Foundation.exp(logp.data[2 * r + j]) * s }
            }
            func back(_ l: Linear, _ dy: Tensor, _ input: Tensor) -> Tensor {
                let dx = Tensor(zeroed: input.shape)
                linearBackward(xGrad: dx.data, weightGrad: l.weight.gradBuffer().data, biasGrad: l.bias!.gradBuffer().data,
                               yGrad: dy.data, x: input.data, weight: l.weight.data, rows: rows,
                               inFeatures: l.inFeatures, outFeatures: l.outFeatures)
                return dx
            }
            let dg3 = back(out4, da4, g3); geluBackward(dg3, a3)
            let dg2 = back(out2, dg3, g2); geluBackward(dg2, a2)
            let dcat = back(out0, dg2, cat)
            // cat = [g1 local ; glob]: glob = Σ_n g1·p / (Σ p + 1), so ∂glob/∂p_n = (g1_n − glob) / (Σ p + 1).
            let dg1 = dcat
            var dp = policySlot.map { _ in [Float](repeating: 0, count: rows) }
            for b in 0..<B {
                var dglob = [Double](repeating: 0, count: G)
                for n in 0..<N { let row = dcat.data + (b * N + n) * D; for c in 0..<G { dglob[c] += Double(row[half + c]) } }
                let denom = alive[b] + 1
                for n in 0..<N {
                    let p = Double(policy?.data[b * N + n] ?? 1)
                    let grow = dg1.data + (b * N + n) * D, g = g1.data + (b * N + n) * D
                    var acc = 0.0
                    for c in 0..<G {
                        grow[half + c] = Float(dglob[c] * p / denom)
                        acc += dglob[c] * (Double(g[half + c]) - Double(glob[b * G + c])) / denom
                    }
                    dp?[b * N + n] = Float(acc)
                }
            }
            geluBackward(dg1, a1)
            let dln = back(inLinear, dg1, ln)
            let dx = xSlot.requiresGrad ? xSlot.buffer() : nil
            layerNormBackward(dx: dx, dy: dln, x: x, norm: norm)
            if let policySlot, policySlot.requiresGrad, let dp {
                let g = policySlot.buffer()
                for i in 0..<rows { g.data[i] += dp[i] }
            }
        }
        return logp
    }
}

/// d/dx of the exact GELU, in place on the gradient: dy · (Φ(x) + x · φ(x)).
func geluBackward(_ dy: Tensor, _ x: Tensor) {
    for i in 0..<dy.count {
        let v = Double(x.data[i])
        let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot())), pdf = exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
        dy.data[i] = Float(Double(dy.data[i]) * (cdf + v * pdf))
    }
}

/// LayerNorm backward: dx += rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)), dx̂ = dy · weight;
/// weight and bias gradients accumulated. Row statistics are recomputed from x.
func layerNormBackward(dx: Tensor?, dy: Tensor, x: Tensor, norm: LayerNorm) {
    let D = norm.weight.count, rows = x.count / D
    let wg = norm.weight.gradBuffer(), bg = norm.bias.gradBuffer()
    for r in 0..<rows {
        let src = x.data + r * D, g = dy.data + r * D
        let (mean, rstd) = norm.rowStatistics(src)
        var m1 = 0.0, m2 = 0.0
        for d in 0..<D {
            let xh = (Double(src[d]) - mean) * rstd, dxh = Double(g[d]) * Double(norm.weight.data[d])
            wg.data[d] += Float(Double(g[d]) * xh)
            bg.data[d] += g[d]
            m1 += dxh; m2 += dxh * xh
        }
        m1 /= Double(D); m2 /= Double(D)
        guard let dx else { continue }
        for d in 0..<D {
            let xh = (Double(src[d]) - mean) * rstd, dxh = Double(g[d]) * Double(norm.weight.data[d])
            dx.data[r * D + d] += Float(rstd * (dxh - m1 - xh * m2))
        }
    }
}

/// The exact (erf) GELU in place: x · Φ(x).
func gelu(_ t: Tensor) {
    for i in 0..<t.count {
        let x = Double(t.data[i])
        t.data[i] = Float(0.5 * x * (1 + erf(x / 2.0.squareRoot())))
    }
}
