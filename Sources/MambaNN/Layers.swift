import MambaTensor

/// y = x · weightᵀ + bias. weight [out, in] as PyTorch; default init U(±1/√in) for both.
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) throws {
        weight = try Tensor(zeros: [outFeatures, inFeatures])
        self.bias = bias ? try Tensor(zeros: [outFeatures]) : nil
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public var ownParameters: [(String, Tensor)] {
        var p = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    /// PyTorch's default `reset_parameters`: kaiming_uniform(a=√5) = U(±1/√in), bias U(±1/√in).
    public func resetParameters(using rng: inout SeededGenerator) {
        let bound = 1 / Double(inFeatures).squareRoot()
        weight.fillUniform(bound, using: &rng)
        bias?.fillUniform(bound, using: &rng)
    }

    /// y [..., out] for x [..., in].
    public func callAsFunction(_ x: Tensor, tape: Tape? = nil) throws -> Tensor {
        try linear(x, weight: weight, bias: bias, tape: tape)
    }
}

/// y = x / sqrt(mean(x²) + eps) · weight. No bias, no mean subtraction; weight starts at 1.
public final class RMSNorm: Module {
    public let weight: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5) throws {
        weight = try Tensor(shape: [dim], repeating: 1)
        self.eps = eps
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// y = (x − mean) / sqrt(var + eps) · weight + bias over the last dimension (biased variance, as
/// torch.nn.LayerNorm); weight starts at 1, bias at 0.
public final class LayerNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5) throws {
        weight = try Tensor(shape: [dim], repeating: 1)
        bias = try Tensor(zeros: [dim])
        self.eps = eps
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// y [..., D] for x [..., D].
    public func callAsFunction(_ x: Tensor, tape: Tape? = nil) throws -> Tensor {
        try layerNorm(x, weight: weight, bias: bias, eps: eps, tape: tape)
    }
}

/// Depthwise Conv1d(E, E, K, groups=E, padding=K−1) as the Mamba mixer holds it: weight [E, 1, K], bias [E].
public final class DepthwiseConv1d: Module {
    public let weight: Tensor
    public let bias: Tensor

    public init(channels: Int, kernel: Int) throws {
        weight = try Tensor(zeros: [channels, 1, kernel])
        bias = try Tensor(zeros: [channels])
    }

    public var channels: Int { weight.shape[0] }
    public var kernel: Int { weight.shape[2] }
    public var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// PyTorch default: U(±1/√(fan_in)) with fan_in = 1·K for weight and bias.
    public func resetParameters(using rng: inout SeededGenerator) {
        let bound = 1 / Double(kernel).squareRoot()
        weight.fillUniform(bound, using: &rng)
        bias.fillUniform(bound, using: &rng)
    }
}

/// Conv2d(Cin, D, p, stride s) with bias: weight [D, Cin, p, p].
public final class Conv2d: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let stride: Int

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int) throws {
        for (name, value) in [("kernel", kernel), ("stride", stride)] where value < 1 {
            throw TensorError.invalidArgument(name: name, value: Double(value), allowed: "at least 1")
        }
        weight = try Tensor(zeros: [outChannels, inChannels, kernel, kernel])
        bias = try Tensor(zeros: [outChannels])
        self.stride = stride
    }

    public var inChannels: Int { weight.shape[1] }
    public var outChannels: Int { weight.shape[0] }
    public var kernel: Int { weight.shape[2] }
    public var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// tokens [B, G_h·G_w, D] for images [B, Cin, H, W] (H, W ≥ kernel), flattened row-major over the grid.
    public func tokens(_ images: Tensor, tape: Tape? = nil) throws -> Tensor {
        try patchEmbedding(images, weight: weight, bias: bias, stride: stride, tape: tape)
    }
}
