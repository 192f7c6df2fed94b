import MambaTensor

/// A per-sample augmentation on a CHW float image, drawing from the sample's own generator.
public protocol SampleTransform: Sendable {
    func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator)
}

/// torchvision's RandomCrop(size, padding): zero-pad by `padding` on every side, then take a
/// crop of the original size at a uniform offset (a random translation by up to `padding`).
public struct RandomCropWithPadding: SampleTransform {
    public let padding: Int
    public init(padding: Int) { self.padding = padding }

    public func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator) {
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
public struct RandomHorizontalFlip: SampleTransform {
    public let probability: Double
    public init(probability: Double = 0.5) { self.probability = probability }

    public func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator) {
        guard rng.uniform() < probability else { return }
        let (C, H, W) = (shape[0], shape[1], shape[2])
        for c in 0..<C { for y in 0..<H {
            let row = (c * H + y) * W
            for x in 0..<(W / 2) { image.swapAt(row + x, row + W - 1 - x) }
        } }
    }
}

/// (x − mean) / std per channel, as torchvision's Normalize.
public func normalize(_ image: inout [Float], shape: [Int], mean: [Float], std: [Float]) {
    let plane = shape[1] * shape[2]
    for c in 0..<shape[0] { for i in 0..<plane { image[c * plane + i] = (image[c * plane + i] - mean[c]) / std[c] } }
}
