import MambaTensor

/// y = x · weightᵀ + bias. weight [out, in] as PyTorch; default init U(±1/√in) for both.
package final class Linear: Module {
    package let weight: Tensor
    package let bias: Tensor?

    package init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) throws {
        weight = try Tensor(zeros: [outFeatures, inFeatures])
        self.bias = bias ? try Tensor(zeros: [outFeatures]) : nil
    }

    package var inFeatures: Int { weight.shape[1] }
    package var outFeatures: Int { weight.shape[0] }

    package var ownParameters: [(String, Tensor)] {
        var p = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    /// PyTorch's default `reset_parameters`: kaiming_uniform(a=√5) = U(±1/√in), bias U(±1/√in).
    package func resetParameters(using rng: inout SeededGenerator) {
        let bound = 1 / Double(inFeatures).squareRoot()
        weight.fillUniform(bound, using: &rng)
        bias?.fillUniform(bound, using: &rng)
    }

    /// y [..., out] for x [..., in].
    package func callAsFunction(_ x: Tensor, tape: Tape? = nil) throws -> Tensor {
        try linear(x, weight: weight, bias: bias, tape: tape)
    }
}

/// y = x / sqrt(mean(x²) + eps) · weight. No bias, no mean subtraction; weight starts at 1.
package final class RMSNorm: Module {
    package let weight: Tensor
    package let eps: Float

    package init(_ dim: Int, eps: Float = 1e-5) throws {
        weight = try Tensor(shape: [dim], repeating: 1)
        self.eps = eps
    }

    package var ownParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// y = (x − mean) / sqrt(var + eps) · weight + bias over the last dimension (biased variance, as
/// torch.nn.LayerNorm); weight starts at 1, bias at 0.
package final class LayerNorm: Module {
    package let weight: Tensor
    package let bias: Tensor
    package let eps: Float

    package init(_ dim: Int, eps: Float = 1e-5) throws {
        weight = try Tensor(shape: [dim], repeating: 1)
        bias = try Tensor(zeros: [dim])
        self.eps = eps
    }

    package var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// y [..., D] for x [..., D].
    package func callAsFunction(_ x: Tensor, tape: Tape? = nil) throws -> Tensor {
        try layerNorm(x, weight: weight, bias: bias, eps: eps, tape: tape)
    }
}

/// Depthwise Conv1d(E, E, K, groups=E, padding=K−1) as the Mamba mixer holds it: weight [E, 1, K], bias [E].
package final class DepthwiseConv1d: Module {
    package let weight: Tensor
    package let bias: Tensor

    package init(channels: Int, kernel: Int) throws {
        weight = try Tensor(zeros: [channels, 1, kernel])
        bias = try Tensor(zeros: [channels])
    }

    package var channels: Int { weight.shape[0] }
    package var kernel: Int { weight.shape[2] }
    package var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// PyTorch default: U(±1/√(fan_in)) with fan_in = 1·K for weight and bias.
    package func resetParameters(using rng: inout SeededGenerator) {
        let bound = 1 / Double(kernel).squareRoot()
        weight.fillUniform(bound, using: &rng)
        bias.fillUniform(bound, using: &rng)
    }
}

/// nn.Conv2d(Cin, Cout, k, stride, padding), groups 1: weight [Cout, Cin, k, k], bias [Cout]
/// unless built without one (mmcv's ConvModule drops it when a norm follows).
package final class Conv2d: Module {
    package let weight: Tensor
    package let bias: Tensor?
    package let stride: Int
    package let padding: Int

    package init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) throws {
        for (name, value) in [("kernel", kernel), ("stride", stride)] where value < 1 {
            throw TensorError.invalidArgument(name: name, value: Double(value), allowed: "at least 1")
        }
        guard padding >= 0 else { throw TensorError.invalidArgument(name: "padding", value: Double(padding), allowed: "at least 0") }
        weight = try Tensor(zeros: [outChannels, inChannels, kernel, kernel])
        self.bias = bias ? try Tensor(zeros: [outChannels]) : nil
        self.stride = stride
        self.padding = padding
    }

    package var inChannels: Int { weight.shape[1] }
    package var outChannels: Int { weight.shape[0] }
    package var kernel: Int { weight.shape[2] }
    package var ownParameters: [(String, Tensor)] {
        var p = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    /// PyTorch's default `reset_parameters`: U(±1/√fan_in) for weight and bias, fan_in = Cin·k².
    package func resetParameters(using rng: inout SeededGenerator) {
        let bound = 1 / Double(inChannels * kernel * kernel).squareRoot()
        weight.fillUniform(bound, using: &rng)
        bias?.fillUniform(bound, using: &rng)
    }

    /// [B, Cout, H', W'] for x [B, Cin, H, W].
    package func callAsFunction(_ x: Tensor, tape: Tape? = nil) throws -> Tensor {
        try conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, tape: tape)
    }

    /// tokens [B, G_h·G_w, D] for images [B, Cin, H, W] (H, W ≥ kernel), flattened row-major over
    /// the grid: a patch embedding (no padding, and a bias).
    package func tokens(_ images: Tensor, tape: Tape? = nil) throws -> Tensor {
        guard let bias, padding == 0 else { throw TensorError.invalidArgument(name: "patch embedding padding", value: Double(padding), allowed: "0, with a bias") }
        return try patchEmbedding(images, weight: weight, bias: bias, stride: stride, tape: tape)
    }
}
