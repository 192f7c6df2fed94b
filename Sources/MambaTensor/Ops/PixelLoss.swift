/// Per-pixel cross-entropy as mmseg 0.29's CrossEntropyLoss computes it: logits [B, K, H, W],
/// labels [B·H·W] (row-major over B, H, W); a pixel labelled `ignoreIndex` contributes 0. The
/// mean is over all B·H·W pixels (mmseg's default, avg_non_ignore=False), or over the labelled
/// ones with `averageOverNonIgnored`. Returns [1]. Summed in double precision in pixel order.
package func pixelCrossEntropy(_ logits: Tensor, labels: [Int], ignoreIndex: Int = 255, averageOverNonIgnored: Bool = false,
                              tape: Tape?) throws -> Tensor {
    let (B, K, H, W) = try checkImages(logits, "logits")
    guard labels.count == B * H * W else { throw TensorError.valueCountMismatch(tensor: "labels", expected: B * H * W, found: labels.count) }
    if let bad = labels.first(where: { $0 != ignoreIndex && !(0..<K).contains($0) }) { throw TensorError.labelOutOfRange(label: bad, classes: K) }
    guard (Int(Int32.min)...Int(Int32.max)).contains(ignoreIndex) else {
        throw TensorError.invalidArgument(name: "ignoreIndex", value: Double(ignoreIndex), allowed: "a 32-bit integer")
    }
    let be = logits.backend
    let op = PixelCrossEntropy(logits: logits, labels: labels.map { Int32(truncatingIfNeeded: $0) }, batch: B, classes: K, plane: H * W,
                               ignoreIndex: Int32(ignoreIndex))
    let losses = be.pixelCrossEntropy(op)
    let labelled = labels.lazy.filter { $0 != ignoreIndex }.count
    let denominator = Double(averageOverNonIgnored ? labelled : B * H * W)
    var total = 0.0
    for v in losses { total += v }
    let loss = Tensor(ownValues: [denominator > 0 ? Float(total / denominator) : 0], shape: [1], device: logits.device)
    guard let tape else { return loss }
    let saved = SavedTensor(logits), logitsSlot = logits.slot, lossSlot = loss.slot
    tape.record {
        guard let g = lossSlot.grad?.array[0], logitsSlot.requiresGrad, denominator > 0 else { return }
        var back = op
        back.logits = saved.values
        be.pixelCrossEntropyBackward(back, logitsGrad: logitsSlot.buffer(), scale: g / Float(denominator))
    }
    return loss
}

/// Per pixel of logits [B, K, H, W], the class with the largest logit (the first on ties):
/// [B·H·W], row-major over B, H, W.
package func argmaxChannels(_ logits: Tensor) throws -> [Int] {
    let (_, K, _, _) = try checkImages(logits, "logits")
    guard K >= 1 else { throw TensorError.dimensionMismatch(tensor: "logits", axis: 1, expected: 1, found: logits.shape) }
    return logits.backend.argmaxChannels(logits, classes: K)
}
