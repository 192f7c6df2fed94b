import MambaTensor

/// timm's Mixup in "batch" mode (the official recipe: mixup 0.8, cutmix 1.0, switch 0.5, prob 1):
/// with probability `prob` the whole batch is mixed with its reverse (partner of sample i is
/// sample B−1−i), by CutMix with probability `switchProb` (λ ~ Beta(cutmix, cutmix), a box of
/// side √(1−λ) of the image pasted from the partner, λ corrected to the box's real area) or
/// else by Mixup (λ ~ Beta(mixup, mixup), x ← λx + (1−λ)x_partner). Targets are
/// λ·onehot_s(y) + (1−λ)·onehot_s(y_partner) with label smoothing s.
package struct Mixup: Sendable {
    package var mixupAlpha: Double
    package var cutmixAlpha: Double
    package var prob: Double
    package var switchProb: Double
    package var smoothing: Double
    package var classes: Int

    package init(mixupAlpha: Double = 0.8, cutmixAlpha: Double = 1.0, prob: Double = 1.0, switchProb: Double = 0.5,
                smoothing: Double = 0.1, classes: Int) {
        self.mixupAlpha = mixupAlpha; self.cutmixAlpha = cutmixAlpha; self.prob = prob
        self.switchProb = switchProb; self.smoothing = smoothing; self.classes = classes
    }

    package var isActive: Bool { mixupAlpha > 0 || cutmixAlpha > 0 }

    /// Mixes `images` [B, C, H, W] in place; returns soft targets [B, classes] and the λ used.
    package func apply(_ images: Tensor, labels: [Int], rng: inout SeededGenerator) -> (targets: [Float], lambda: Double) {
        let B = images.shape[0], C = images.shape[1], H = images.shape[2], W = images.shape[3]
        var lambda = 1.0
        if isActive && rng.uniform() < prob {
            let useCutmix = cutmixAlpha > 0 && (mixupAlpha <= 0 || rng.uniform() < switchProb)
            lambda = useCutmix ? rng.beta(cutmixAlpha, cutmixAlpha) : rng.beta(mixupAlpha, mixupAlpha)
            let original = images.array, per = C * H * W
            var mixed = original
            if useCutmix {
                // timm rand_bbox: centre uniform over pixels, half-sides int(side·√(1−λ)) / 2, clipped.
                let ratio = (1 - lambda).squareRoot()
                let cutH = Int(Double(H) * ratio), cutW = Int(Double(W) * ratio)
                let cy = rng.int(below: H), cx = rng.int(below: W)
                let y0 = min(max(cy - cutH / 2, 0), H), y1 = min(max(cy + cutH / 2, 0), H)
                let x0 = min(max(cx - cutW / 2, 0), W), x1 = min(max(cx + cutW / 2, 0), W)
                for b in 0..<B {
                    let src = (B - 1 - b) * per, dst = b * per
                    for c in 0..<C { for y in y0..<y1 { for x in x0..<x1 { mixed[dst + (c * H + y) * W + x] = original[src + (c * H + y) * W + x] } } }
                }
                lambda = 1 - Double((y1 - y0) * (x1 - x0)) / Double(H * W)
            } else {
                let l = Float(lambda)
                for b in 0..<B {
                    let src = (B - 1 - b) * per, dst = b * per
                    for i in 0..<per { mixed[dst + i] = l * original[dst + i] + (1 - l) * original[src + i] }
                }
            }
            images.write(mixed)
        }
        let off = Float(smoothing) / Float(classes), on = 1 - Float(smoothing) + off
        var targets = [Float](repeating: 0, count: B * classes)
        for b in 0..<B {
            for c in 0..<classes {
                let mine: Float = labels[b] == c ? on : off, partner: Float = labels[B - 1 - b] == c ? on : off
                targets[b * classes + c] = Float(lambda) * mine + Float(1 - lambda) * partner
            }
        }
        return (targets, lambda)
    }
}
