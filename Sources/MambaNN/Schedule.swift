import Foundation

/// timm 0.4.12 CosineLRScheduler as the official main.py uses it (spec/vim.md §5.5): stepped once
/// per epoch, linear warm-up from `warmupLR` over `warmupEpochs`, then half a cosine from `lr` to
/// `minLR` over `epochs`. `main.py` steps it after each epoch, so epoch e trains at f(e − 1) and
/// epoch 0 at the warm-up value; `lr(forEpoch:)` gives that.
public struct CosineSchedule: Codable, Equatable, Sendable {
    public var lr: Double
    public var minLR: Double
    public var warmupLR: Double
    public var warmupEpochs: Int
    public var epochs: Int

    public init(lr: Double, minLR: Double, warmupLR: Double, warmupEpochs: Int, epochs: Int) {
        self.lr = lr; self.minLR = minLR; self.warmupLR = warmupLR
        self.warmupEpochs = warmupEpochs; self.epochs = epochs
    }

    /// f(t) of the timm scheduler.
    public func value(at t: Int) -> Double {
        if t < warmupEpochs { return warmupLR + Double(t) * (lr - warmupLR) / Double(warmupEpochs) }
        if t >= epochs { return minLR }
        return minLR + 0.5 * (lr - minLR) * (1 + cos(Double.pi * Double(t) / Double(epochs)))
    }

    /// The learning rate epoch `e` trains at: warmupLR for e = 0, f(e − 1) after.
    public func lr(forEpoch e: Int) -> Double { e == 0 ? (warmupEpochs > 0 ? warmupLR : value(at: 0)) : value(at: e - 1) }
}

/// DeiT's rule: lr · global batch / 512 (min and warm-up lr are not scaled).
public func scaledLR(_ lr: Double, globalBatch: Int) -> Double { lr * Double(globalBatch) / 512 }
