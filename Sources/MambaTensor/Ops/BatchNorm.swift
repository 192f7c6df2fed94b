/// torch BatchNorm2d / SyncBatchNorm over x [B, C, H, W]. Training normalises with the batch's
/// per-channel mean and biased variance and updates the running statistics in place
/// (running ← (1 − momentum)·running + momentum·batch, the variance unbiased, as PyTorch);
/// evaluation normalises with the running statistics. `allReduce`, when given, receives this
/// process's per-channel partial sums — [Σx (C), Σx² (C), count] in the forward and [Σ dy (C),
/// Σ dy·x (C)] in the backward — and returns their sums over every process (SyncBatchNorm).
/// Statistics are computed in double precision.
package func batchNorm2d(_ x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, training: Bool,
                        momentum: Float = 0.1, eps: Float = 1e-5, allReduce: (([Double]) -> [Double])? = nil,
                        tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    for (name, t) in [("weight", weight), ("bias", bias), ("running_mean", runningMean), ("running_var", runningVar)] where t.shape != [C] {
        throw TensorError.shapeMismatch(tensor: name, expected: [C], found: t.shape)
    }
    guard momentum >= 0 && momentum <= 1 else { throw TensorError.invalidArgument(name: "momentum", value: Double(momentum), allowed: "[0, 1]") }
    guard eps > 0 && eps.isFinite else { throw TensorError.invalidArgument(name: "eps", value: Double(eps), allowed: "finite, above 0") }
    try checkSameDevice(x, weight, bias, runningMean, runningVar)
    let be = x.backend
    let n = Double(B * H * W)
    var mean: [Double], variance: [Double], count = n
    if training {
        var partial = be.channelSums(x, nil, channels: C) + be.channelSums(x, x, channels: C) + [n]
        if let allReduce {
            partial = allReduce(partial)
            guard partial.count == 2 * C + 1 else { throw TensorError.valueCountMismatch(tensor: "allReduce sums", expected: 2 * C + 1, found: partial.count) }
        }
        count = partial[2 * C]
        guard count > 1 else { throw TensorError.invalidArgument(name: "values per channel", value: count, allowed: "more than 1 in training") }
        mean = (0..<C).map { partial[$0] / count }
        variance = (0..<C).map { max(partial[C + $0] / count - mean[$0] * mean[$0], 0) }
        let m = Double(momentum)
        let oldMean = runningMean.array, oldVar = runningVar.array
        runningMean.write((0..<C).map { Float((1 - m) * Double(oldMean[$0]) + m * mean[$0]) })
        runningVar.write((0..<C).map { Float((1 - m) * Double(oldVar[$0]) + m * variance[$0] * count / (count - 1)) })
    } else {
        mean = runningMean.array.map(Double.init)
        variance = runningVar.array.map(Double.init)
    }
    let w = weight.array.map(Double.init), b = bias.array.map(Double.init)
    let invStd = variance.map { 1 / ($0 + Double(eps)).squareRoot() }
    // y = x · scale + shift per channel.
    let scale = (0..<C).map { w[$0] * invStd[$0] }
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.channelAffine(ChannelAffine(a: x, aScale: scale.map(Float.init), b: nil, bScale: nil,
                                   shift: (0..<C).map { Float(b[$0] - mean[$0] * scale[$0]) }, out: y, channels: C, accumulate: false))
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad else { return }
        let x = xSaved.values
        // Σ dy and Σ dy·x̂ per channel, with x̂ = (x − mean)·invStd.
        var sums = be.channelSums(yGrad, nil, channels: C) + be.channelSums(yGrad, x, channels: C)
        let local = sums
        if training, let allReduce { sums = allReduce(sums) }
        // The parameters' gradients are this process's own (averaged across processes with the rest).
        let dyLocal = Array(local[0..<C]), dyxhatLocal = (0..<C).map { (local[C + $0] - mean[$0] * local[$0]) * invStd[$0] }
        if weight.requiresGrad { addToGradient(weight.slot, dyxhatLocal.map(Float.init)) }
        if bias.requiresGrad { addToGradient(bias.slot, dyLocal.map(Float.init)) }
        guard xSlot.requiresGrad else { return }
        if training {
            // dx = w·invStd·(dy − Σdy/N − x̂·Σ(dy·x̂)/N) = dy·a + x·b + c per channel.
            let dy = Array(sums[0..<C]), dyxhat = (0..<C).map { (sums[C + $0] - mean[$0] * sums[$0]) * invStd[$0] }
            let a = (0..<C).map { w[$0] * invStd[$0] }
            let bx = (0..<C).map { -a[$0] * invStd[$0] * dyxhat[$0] / count }
            let c = (0..<C).map { -a[$0] * dy[$0] / count - bx[$0] * mean[$0] }
            be.channelAffine(ChannelAffine(a: yGrad, aScale: a.map(Float.init), b: x, bScale: bx.map(Float.init), shift: c.map(Float.init),
                                           out: xSlot.buffer(), channels: C, accumulate: true))
        } else {
            be.channelAffine(ChannelAffine(a: yGrad, aScale: scale.map(Float.init), b: nil, bScale: nil, shift: nil,
                                           out: xSlot.buffer(), channels: C, accumulate: true))
        }
    }
    return y
}
