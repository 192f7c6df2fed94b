import Foundation
import MambaTensor

/// A per-sample augmentation on a CHW float image, drawing from the sample's own generator.
package protocol SampleTransform: Sendable {
    func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator)
}

/// torchvision's RandomCrop(size, padding): zero-pad by `padding` on every side, then take a
/// crop of the original size at a uniform offset (a random translation by up to `padding`).
package struct RandomCropWithPadding: SampleTransform {
    package let padding: Int
    package init(padding: Int) { self.padding = padding }

    package func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator) {
        let (C, H, W) = (shape[0], shape[1], shape[2])
        let dy = Int(rng.next() % UInt64(2 * padding + 1)) - padding
        let dx = Int(rng.next() % UInt64(2 * padding + 1)) - padding
        if dx == 0 && dy == 0 { return }
        var out = [Float](repeating: 0, count: image.count)
        for c in 0..<C { for y in 0..<H { for x in 0..<W {
            let sy = y + dy, sx = x + dx
            if sy >= 0 && sy < H && sx >= 0 && sx < W { out[(c * H + y) * W + x] = image[(c * H + sy) * W + sx] }
        } } }
        image = out
    }
}

/// torchvision's RandomHorizontalFlip(p).
package struct RandomHorizontalFlip: SampleTransform {
    package let probability: Double
    package init(probability: Double = 0.5) { self.probability = probability }

    package func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator) {
        guard rng.uniform() < probability else { return }
        let (C, H, W) = (shape[0], shape[1], shape[2])
        for c in 0..<C { for y in 0..<H {
            let row = (c * H + y) * W
            for x in 0..<(W / 2) { image.swapAt(row + x, row + W - 1 - x) }
        } }
    }
}

/// (x − mean) / std per channel, as torchvision's Normalize.
package func normalize(_ image: inout [Float], shape: [Int], mean: [Float], std: [Float]) {
    let plane = shape[1] * shape[2]
    for c in 0..<shape[0] { for i in 0..<plane { image[c * plane + i] = (image[c * plane + i] - mean[c]) / std[c] } }
}

/// timm's RandomErasing(probability, mode="pixel", max_count=1), applied after normalisation:
/// up to 10 tries to place a box of area U(0.02, 1/3)·HW and log-uniform aspect in [0.3, 1/0.3];
/// the first that fits is filled with per-pixel, per-channel N(0, 1) values.
package struct RandomErasing: SampleTransform {
    package let probability: Double
    package init(probability: Double) { self.probability = probability }

    package func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator) {
        guard rng.uniform() < probability else { return }
        let (C, H, W) = (shape[0], shape[1], shape[2])
        for _ in 0..<10 {
            let area = Double(H * W) * (0.02 + rng.uniform() * (1.0 / 3 - 0.02))
            let logRatio = log(0.3) + rng.uniform() * (log(1 / 0.3) - log(0.3))
            let aspect = exp(logRatio)
            let h = Int((area * aspect).squareRoot().rounded()), w = Int((area / aspect).squareRoot().rounded())
            guard w < W && h < H else { continue }
            let top = rng.int(below: H - h + 1), left = rng.int(below: W - w + 1)
            for c in 0..<C { for y in top..<(top + h) { for x in left..<(left + w) {
                image[(c * H + y) * W + x] = Float(rng.normal())
            } } }
            return
        }
    }
}
