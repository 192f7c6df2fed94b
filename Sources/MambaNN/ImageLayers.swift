import MambaTensor

/// nn.ConvTranspose2d(Cin, Cout, k, stride k): each input pixel becomes a k × k block of the
/// output, as the Vim segmentation backbone upsamples its features. weight [Cin, Cout, k, k]
/// (PyTorch's layout for a transposed conv), bias [Cout].
package final class ConvTranspose2d: Module {
    package let weight: Tensor
    package let bias: Tensor

    package init(inChannels: Int, outChannels: Int, kernel: Int) throws {
        guard kernel >= 1 else { throw TensorError.invalidArgument(name: "kernel", value: Double(kernel), allowed: "at least 1") }
        weight = try Tensor(zeros: [inChannels, outChannels, kernel, kernel])
        bias = try Tensor(zeros: [outChannels])
    }

    package var kernel: Int { weight.shape[2] }
    package var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// PyTorch's default: U(±1/√fan_in) with fan_in = weight.size(1)·k² = Cout·k².
    package func resetParameters(using rng: inout SeededGenerator) {
        let bound = 1 / Double(weight.shape[1] * kernel * kernel).squareRoot()
        weight.fillUniform(bound, using: &rng)
        bias.fillUniform(bound, using: &rng)
    }

    package func callAsFunction(_ x: Tensor, tape: Tape? = nil) throws -> Tensor {
        try convTranspose2d(x, weight: weight, bias: bias, stride: kernel, tape: tape)
    }
}

/// nn.BatchNorm2d / nn.SyncBatchNorm: per-channel batch statistics while training (and the
/// running averages updated), the running statistics in evaluation. With `synchronize` set (by a
/// data-parallel trainer), the statistics and their gradients are summed over every process, as
/// SyncBatchNorm does.
package final class BatchNorm2d: Module {
    package let weight: Tensor, bias: Tensor
    package let runningMean: Tensor, runningVar: Tensor
    /// Batches seen in training (`num_batches_tracked`, int64 in PyTorch): kept so state dicts
    /// round-trip; the momentum, not this count, sets the averaging.
    package let batchesTracked: Tensor
    package let momentum: Float, eps: Float
    /// Sums per-process partial statistics over all processes; nil in a single process.
    package var synchronize: (([Double]) -> [Double])?

    package init(_ channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) throws {
        weight = try Tensor(shape: [channels], repeating: 1)
        bias = try Tensor(zeros: [channels])
        runningMean = try Tensor(zeros: [channels])
        runningVar = try Tensor(shape: [channels], repeating: 1)
        batchesTracked = try Tensor(zeros: [])
        self.momentum = momentum
        self.eps = eps
    }

    package var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }
    package var ownBuffers: [(String, Tensor)] {
        [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", batchesTracked)]
    }

    /// PyTorch's defaults: weight 1, bias 0, running mean 0, running variance 1.
    package func resetParameters() {
        weight.fill(1)
        bias.fill(0)
        runningMean.fill(0)
        runningVar.fill(1)
        batchesTracked.fill(0)
    }

    package func callAsFunction(_ x: Tensor, training: Bool, tape: Tape? = nil) throws -> Tensor {
        if training { try batchesTracked.assign([batchesTracked.array[0] + 1]) }
        return try batchNorm2d(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                               training: training, momentum: momentum, eps: eps, allReduce: synchronize, tape: tape)
    }
}

/// mmcv's ConvModule as mmseg's heads build it: Conv2d without bias (a norm follows) → BatchNorm
/// → ReLU, under the keys `conv` and `bn`.
package final class ConvModule: Module {
    package let conv: Conv2d
    package let bn: BatchNorm2d

    package init(inChannels: Int, outChannels: Int, kernel: Int, padding: Int = 0) throws {
        conv = try Conv2d(inChannels: inChannels, outChannels: outChannels, kernel: kernel, padding: padding, bias: false)
        bn = try BatchNorm2d(outChannels)
    }

    package var children: [(String, Module)] { [("conv", conv), ("bn", bn)] }

    /// mmcv's `kaiming_init` (normal, fan_out, ReLU gain) for the conv; the norm at 1 and 0.
    package func resetParameters(using rng: inout SeededGenerator) {
        let fanOut = Double(conv.outChannels * conv.kernel * conv.kernel)
        conv.weight.fillNormal(std: (2 / fanOut).squareRoot(), using: &rng)
        bn.resetParameters()
    }

    package func callAsFunction(_ x: Tensor, training: Bool, tape: Tape? = nil) throws -> Tensor {
        try relu(bn(conv(x, tape: tape), training: training, tape: tape), tape: tape)
    }
}
