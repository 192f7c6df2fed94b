import Foundation

/// timm 0.4.12 CosineLRScheduler as the official main.py uses it (spec/vim.md §5.5): stepped once
/// per epoch, linear warm-up from `warmupLR` over `warmupEpochs`, then half a cosine from `lr` to
/// `minLR` over `epochs`. `main.py` steps it after each epoch, so epoch e trains at f(e − 1) and
/// epoch 0 at the warm-up value; `lr(forEpoch:)` gives that.
package struct CosineSchedule: Codable, Equatable, Sendable {
    package var lr: Double
    package var minLR: Double
    package var warmupLR: Double
    package var warmupEpochs: Int
    package var epochs: Int

    package init(lr: Double, minLR: Double, warmupLR: Double, warmupEpochs: Int, epochs: Int) {
        self.lr = lr; self.minLR = minLR; self.warmupLR = warmupLR
        self.warmupEpochs = warmupEpochs; self.epochs = epochs
    }

    /// f(t) of the timm scheduler.
    package func value(at t: Int) -> Double {
        if t < warmupEpochs { return warmupLR + Double(t) * (lr - warmupLR) / Double(warmupEpochs) }
        if t >= epochs { return minLR }
        return minLR + 0.5 * (lr - minLR) * (1 + cos(Double.pi * Double(t) / Double(epochs)))
    }

    /// The learning rate epoch `e` trains at: warmupLR for e = 0, f(e − 1) after.
    package func lr(forEpoch e: Int) -> Double { e == 0 ? (warmupEpochs > 0 ? warmupLR : value(at: 0)) : value(at: e - 1) }
}

/// mmcv's `PolyLrUpdaterHook` with linear warm-up, counted in iterations (`by_epoch=False`):
/// lr(t) = (base − min) · (1 − t / T)^power + min, and for t < warmup that times
/// 1 − (1 − t / warmup) · (1 − warmupRatio).
package struct PolySchedule: Codable, Equatable, Sendable {
    package var lr: Double
    package var minLR: Double = 0
    package var power: Double = 1
    package var iterations: Int
    package var warmupIterations: Int = 1500
    package var warmupRatio: Double = 1e-6

    package init(lr: Double, iterations: Int, power: Double = 1, minLR: Double = 0, warmupIterations: Int = 1500, warmupRatio: Double = 1e-6) {
        self.lr = lr
        self.iterations = iterations
        self.power = power
        self.minLR = minLR
        self.warmupIterations = warmupIterations
        self.warmupRatio = warmupRatio
    }

    /// The lr iteration t (0-based) trains at.
    package func lr(forIteration t: Int) -> Double {
        let progress = min(max(Double(t) / Double(max(iterations, 1)), 0), 1)
        let regular = (lr - minLR) * pow(1 - progress, power) + minLR
        guard t < warmupIterations else { return regular }
        let k = (1 - Double(t) / Double(warmupIterations)) * (1 - warmupRatio)
        return regular * (1 - k)
    }
}

/// DeiT's rule: lr · global batch / 512 (min and warm-up lr are not scaled).
package func scaledLR(_ lr: Double, globalBatch: Int) -> Double { lr * Double(globalBatch) / 512 }
