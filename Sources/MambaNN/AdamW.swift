import MambaTensor

/// torch.optim.AdamW (amsgrad off) over named parameters with timm's two groups: no weight decay
/// for 1-D tensors, `.bias` names and the model's `no_weight_decay()` names; `weightDecay` for the
/// rest (spec/vim.md §4.3, so A_log and A_b_log, being 2-D, are decayed). Per step, for each
/// parameter with gradient g:
///   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
package final class AdamW {
    package struct Group: Equatable, Sendable {
        package var names: [String]
        package var weightDecay: Float
        /// This group trains at lr · lrScale (layer-wise learning-rate decay); 1 otherwise.
        package var lrScale: Float = 1

        package init(names: [String], weightDecay: Float, lrScale: Float = 1) {
            self.names = names
            self.weightDecay = weightDecay
            self.lrScale = lrScale
        }
    }

    package let parameters: [(String, Tensor)]
    package let groups: [Group]
    package var lr: Float
    package let beta1: Float, beta2: Float, eps: Float
    package private(set) var step = 0
    /// exp_avg and exp_avg_sq per parameter name.
    package private(set) var m: [String: Tensor] = [:]
    package private(set) var v: [String: Tensor] = [:]
    private let decayOf: [String: Float], scaleOf: [String: Float]

    /// timm's two groups: no decay for 1-D tensors, `.bias` names and `noWeightDecay`.
    package convenience init(parameters: [(String, Tensor)], lr: Float, weightDecay: Float, noWeightDecay: Set<String> = [],
                            betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8) throws {
        var decay = Group(names: [], weightDecay: weightDecay), noDecay = Group(names: [], weightDecay: 0)
        for (name, t) in parameters {
            if Self.skipsWeightDecay(name: name, shape: t.shape, noWeightDecay: noWeightDecay) { noDecay.names.append(name) }
            else { decay.names.append(name) }
        }
        // timm's order: group 0 no decay, group 1 decay.
        try self.init(parameters: parameters, lr: lr, groups: [noDecay, decay], betas: betas, eps: eps)
    }

    /// Explicit groups, each naming its parameters, weight decay and lr scale; a parameter in no
    /// group trains without decay at the base lr. Refuses the values torch.optim.AdamW refuses
    /// (negative lr, eps or weight decay, betas outside [0, 1)) and non-finite ones.
    package init(parameters: [(String, Tensor)], lr: Float, groups: [Group], betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8) throws {
        for (name, value) in [("lr", lr), ("eps", eps)] + groups.flatMap({ [("weight_decay", $0.weightDecay), ("lr_scale", $0.lrScale)] })
            where !(value >= 0 && value.isFinite) {
            throw TensorError.invalidArgument(name: name, value: Double(value), allowed: "finite, at least 0")
        }
        for (name, value) in [("beta1", betas.0), ("beta2", betas.1)] where !(value >= 0 && value < 1) {
            throw TensorError.invalidArgument(name: name, value: Double(value), allowed: "[0, 1)")
        }
        self.parameters = parameters
        self.lr = lr
        (beta1, beta2) = betas
        self.eps = eps
        self.groups = groups
        var d: [String: Float] = [:], scales: [String: Float] = [:]
        for g in groups { for n in g.names { d[n] = g.weightDecay; scales[n] = g.lrScale } }
        decayOf = d
        scaleOf = scales
        for (name, t) in parameters {
            m[name] = Tensor(zeroed: t.shape)
            v[name] = Tensor(zeroed: t.shape)
        }
    }

    /// timm 0.4.12 `add_weight_decay`: 1-D tensors, names ending in ".bias", and the model's
    /// no-weight-decay names skip decay.
    package static func skipsWeightDecay(name: String, shape: [Int], noWeightDecay: Set<String>) -> Bool {
        shape.count <= 1 || name.hasSuffix(".bias") || noWeightDecay.contains(name)
    }

    /// One update of every parameter that has a gradient.
    package func update() {
        step += 1
        let bc1 = 1 - Float(Double(beta1).power(step)), bc2 = 1 - Float(Double(beta2).power(step))
        let bc2Sqrt = bc2.squareRoot()
        for (name, p) in parameters {
            guard let g = p.grad else { continue }
            // The group's own lr, as torch uses it for both the step and the decoupled decay.
            let groupLR = lr * (scaleOf[name] ?? 1), wd = decayOf[name] ?? 0
            p.backend.adamW(AdamWStep(parameter: p, gradient: g, firstMoment: m[name]!, secondMoment: v[name]!,
                                      decay: 1 - groupLR * wd, stepSize: groupLR / bc1, beta1: beta1, beta2: beta2,
                                      secondCorrectionRoot: bc2Sqrt, eps: eps))
        }
    }

    /// Restores the moment estimates and step count (from a checkpoint), under the names a
    /// checkpoint gives them: `optimizer.exp_avg.<name>` and `optimizer.exp_avg_sq.<name>`.
    /// Nothing changes unless every moment fits.
    package func restore(step: Int, m: [String: [Float]], v: [String: [Float]]) throws {
        guard step >= 0 else { throw TensorError.invalidArgument(name: "step", value: Double(step), allowed: "at least 0") }
        for (name, p) in parameters {
            for (key, moments) in [("optimizer.exp_avg.\(name)", m[name]), ("optimizer.exp_avg_sq.\(name)", v[name])] {
                guard let moments else { throw StateDictError.missingOptimizerState(key: key) }
                guard moments.count == p.count else {
                    throw StateDictError.optimizerStateSize(key: key, expected: p.count, found: moments.count)
                }
            }
        }
        for (name, _) in parameters {
            self.m[name]!.write(m[name]!)
            self.v[name]!.write(v[name]!)
        }
        self.step = step
    }
}

extension Double {
    func power(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<n { r *= self }
        return r
    }
}
