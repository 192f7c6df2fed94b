/// max(x, 0), elementwise. The backward keeps x.
package func relu(_ x: Tensor, tape: Tape?) throws -> Tensor {
    let be = x.backend
    let y = Tensor(uninitializedShape: x.shape, device: x.device)
    be.map(.relu, x, into: y, accumulate: false)
    guard let tape else { return y }
    let xSaved = SavedTensor(x), xSlot = x.slot, ySlot = y.slot
    tape.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.combine(.reluGradient, yGrad, xSaved.values, into: xSlot.buffer(), accumulate: true)
    }
    return y
}

/// torch.cat(dim=1) of [B, C_i, H, W] tensors with the same B, H and W.
package func concatenateChannels(_ xs: [Tensor], tape: Tape?) throws -> Tensor {
    guard let first = xs.first else { throw TensorError.emptyBatch(tensor: "concatenated tensors") }
    let (B, _, H, W) = try checkImages(first, "tensor 0")
    var total = 0
    for (i, x) in xs.enumerated() {
        let (b, c, h, w) = try checkImages(x, "tensor \(i)")
        guard b == B, h == H, w == W else { throw TensorError.shapeMismatch(tensor: "tensor \(i)", expected: [B, c, H, W], found: x.shape) }
        try checkSameDevice(first, x)
        total += c
    }
    let be = first.backend
    let y = Tensor(uninitializedShape: [B, total, H, W], device: first.device)
    let yRows = y.reshapedView([B, total * H * W])
    var offset = 0, ranges: [Range<Int>] = []
    for x in xs {
        let range = offset..<(offset + x.count / B)
        be.copy(x.reshapedView([B, range.count]), into: yRows.columnsView(range))
        ranges.append(range)
        offset = range.upperBound
    }
    let slots = xs.map(\.slot), ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad?.reshapedView([B, total * H * W]) else { return }
        for (slot, range) in zip(slots, ranges) where slot.requiresGrad {
            let g = slot.buffer().reshapedView([B, range.count])
            be.combine(.add, g, yGrad.columnsView(range), into: g, accumulate: false)
        }
    }
    return y
}

/// Tokens [B, H·W, C] of a row-major grid as channels [B, C, H, W]
/// (x.permute(0, 2, 1).reshape(B, C, H, W)).
package func tokensToChannels(_ x: Tensor, height: Int, width: Int, tape: Tape?) throws -> Tensor {
    guard x.rank == 3, x.isContiguous else { throw TensorError.rankMismatch(tensor: "tokens", expected: 3, found: x.shape) }
    guard height >= 1, width >= 1, x.shape[1] == height * width else {
        throw TensorError.dimensionMismatch(tensor: "tokens", axis: 1, expected: height * width, found: x.shape)
    }
    let (B, C) = (x.shape[0], x.shape[2])
    return transposeLastTwo(x, batch: B, rows: height * width, columns: C, shape: [B, C, height, width], tape: tape)
}

/// Channels [B, C, H, W] as tokens [B, H·W, C]: the inverse of `tokensToChannels`.
package func channelsToTokens(_ x: Tensor, tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    return transposeLastTwo(x, batch: B, rows: C, columns: H * W, shape: [B, H * W, C], tape: tape)
}

/// Each of `batch` [rows, columns] matrices transposed, viewed as `shape`.
func transposeLastTwo(_ x: Tensor, batch: Int, rows: Int, columns: Int, shape: [Int], tape: Tape?) -> Tensor {
    let be = x.backend
    let y = Tensor(uninitializedShape: shape, device: x.device)
    be.transposeMatrices(x, into: y, batch: batch, rows: rows, columns: columns, accumulate: false)
    let xSlot = x.slot, ySlot = y.slot
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        be.transposeMatrices(yGrad, into: xSlot.buffer(), batch: batch, rows: columns, columns: rows, accumulate: true)
    }
    return y
}

/// nn.Dropout2d in training: each (image, channel) plane zeroed with `probability`, the others
/// scaled by 1 / (1 − probability). Image b's draws come from its own seed, in channel order, so
/// an image's masks do not depend on the batch it is in (or on the data-parallel ranks).
package func dropout2d(_ x: Tensor, probability: Double, sampleSeeds: [UInt64], tape: Tape?) throws -> Tensor {
    let (B, C, H, W) = try checkImages(x, "x")
    guard probability >= 0, probability < 1 else { throw TensorError.invalidArgument(name: "dropout probability", value: probability, allowed: "[0, 1)") }
    guard sampleSeeds.count == B else { throw TensorError.valueCountMismatch(tensor: "sampleSeeds", expected: B, found: sampleSeeds.count) }
    if probability == 0 { return x }
    let keep = Float(1 / (1 - probability))
    let factors = sampleSeeds.flatMap { seed in
        var rng = SeededGenerator(seed: seed)
        return (0..<C).map { _ in rng.uniform() < probability ? Float(0) : keep }
    }
    let planes = x.reshapedView([B * C, H * W])
    let y = try scaleRows(planes, by: Tensor(shape: [B * C], values: factors, device: x.device), tape: tape)
    return y.reshapedView([B, C, H, W])
}
