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
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1, x.shape[x.rank - 1] == inFeatures else {
            throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: inFeatures, found: x.shape)
        }
        let rows = x.shape.dropLast().reduce(1, *)
        let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        linearForward(y.data, x.data, weight: weight.data, bias: bias?.data, rows: rows,
                      inFeatures: inFeatures, outFeatures: outFeatures)
        return y
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

    /// Mean and 1/sqrt(var + eps) of one row of D values, in double precision.
    package func rowStatistics(_ row: UnsafePointer<Float>) -> (mean: Double, rstd: Double) {
        let D = weight.count
        var mean = 0.0
        for d in 0..<D { mean += Double(row[d]) }
        mean /= Double(D)
        var variance = 0.0
        for d in 0..<D { let c = Double(row[d]) - mean; variance += c * c }
        return (mean, 1 / (variance / Double(D) + Double(eps)).squareRoot())
    }

    /// y [..., D] for x [..., D].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let D = weight.count
        guard x.rank >= 1, x.shape[x.rank - 1] == D else {
            throw TensorError.dimensionMismatch(tensor: "x", axis: max(x.rank - 1, 0), expected: D, found: x.shape)
        }
        let rows = x.shape.dropLast().reduce(1, *)
        let y = Tensor(uninitializedShape: x.shape)
        for r in 0..<rows {
            let src = x.data + r * D, dst = y.data + r * D
            let (mean, rstd) = rowStatistics(src)
            for d in 0..<D { dst[d] = Float((Double(src[d]) - mean) * rstd) * weight.data[d] + bias.data[d] }
        }
        return y
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
    public func tokens(_ images: Tensor) throws -> Tensor {
        guard images.rank == 4 else { throw TensorError.rankMismatch(tensor: "images", expected: 4, found: images.shape) }
        guard images.shape[1] == inChannels else {
            throw TensorError.dimensionMismatch(tensor: "images", axis: 1, expected: inChannels, found: images.shape)
        }
        for (name, size) in [("image height", images.shape[2]), ("image width", images.shape[3])] where size < kernel {
            throw TensorError.invalidArgument(name: name, value: Double(size), allowed: "at least the kernel, \(kernel)")
        }
        let (b, h, w) = (images.shape[0], images.shape[2], images.shape[3])
        let gh = patchGrid(size: h, patch: kernel, stride: stride), gw = patchGrid(size: w, patch: kernel, stride: stride)
        let out = Tensor(uninitializedShape: [b, gh * gw, outChannels])
        patchConv2dForward(out: out.data, images: images.data, weight: weight.data, bias: bias.data,
                           batch: b, inChannels: inChannels, height: h, width: w, outChannels: outChannels,
                           patch: kernel, stride: stride)
        return out
    }
}
