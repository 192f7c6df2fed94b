import MambaIO
import MambaTensor

/// A segmentation demo built from the bundled digits, needing no download: 1 to 4 digits of one
/// digits split, each scaled and placed at random on a square grey canvas. A pixel is labelled
/// with its digit's class + 1 where that digit's ink (bilinearly scaled, in [0, 1]) reaches one
/// half, and 0 (background) elsewhere; where digits overlap, the one drawn later wins. Scene i
/// shows digit i of its split, drawn last so its class is always present, and its others are
/// drawn from the same split, so training and validation scenes never share a digit.
///
/// Every scene is a function of its split, index and canvas size only.
package struct DigitScenesDataset: SegmentationDataset {
    /// The smallest canvas: a digit at its smallest scale is then 16 px tall.
    package static let minimumSize = 64
    package static let maximumSize = 1024
    /// Ink at or above this is a labelled stroke.
    package static let strokeThreshold: Float = 0.5

    package let split: DigitsDataset.Split
    /// Canvas width and height in pixels.
    package let size: Int
    let digits: DigitsDataset

    package init(split: DigitsDataset.Split, size: Int = 64) throws {
        guard (Self.minimumSize...Self.maximumSize).contains(size) else {
            throw DatasetError.invalidSceneSize(size: size, allowed: Self.minimumSize...Self.maximumSize)
        }
        self.split = split
        self.size = size
        digits = try DigitsDataset(split: split)
    }

    package var count: Int { digits.count }
    package var numClasses: Int { 11 }
    package var classNames: [String] { ["background"] + (0...9).map { "digit \($0)" } }
    /// ImageNet's, as the official segmentation pipeline normalises.
    package var normalization: (mean: [Float], std: [Float]) { (EvalTransform.mean, EvalTransform.std) }

    /// Where scene `index` puts its digits, in drawing order: the index of each digit in the split,
    /// its scale (canvas pixels per digit pixel) and its top-left corner.
    func layout(_ index: Int) -> [(digit: Int, scale: Double, x: Int, y: Int)] {
        var rng = SeededGenerator(seed: 0xD161_75CE_0E5A_0000 ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        let others = Int(rng.next() % 4)
        let chosen = (0..<others).map { _ in Int(rng.next() % UInt64(count)) } + [index]
        return chosen.map { digit in
            // From size/32 to 3·size/32 per digit pixel: 16 to 48 px tall on a 64 px canvas.
            let scale = Double(size) / 32 * (1 + 2 * rng.uniform())
            let extent = Int((8 * scale).rounded(.up))
            let x = Int(rng.next() % UInt64(size - extent + 1)), y = Int(rng.next() % UInt64(size - extent + 1))
            return (digit, scale, x, y)
        }
    }

    /// The grey canvas replicated to three channels, and its label map.
    package func sample(_ index: Int) throws -> SegmentationSample {
        precondition((0..<count).contains(index), "scene index out of range")
        var ink = [Float](repeating: 0, count: size * size)
        var labels = [UInt8](repeating: 0, count: size * size)
        for (digit, scale, x0, y0) in layout(index) {
            let (pixels, label) = try digits.sample(digit)   // grey ×3, in [0, 1]
            let extent = Int((8 * scale).rounded(.up))
            for y in y0..<(y0 + extent) {
                for x in x0..<(x0 + extent) {
                    let v = Self.bilinear(pixels, u: (Double(x - x0) + 0.5) / scale - 0.5, v: (Double(y - y0) + 0.5) / scale - 0.5)
                    ink[y * size + x] = max(ink[y * size + x], v)
                    if v >= Self.strokeThreshold { labels[y * size + x] = UInt8(label + 1) }
                }
            }
        }
        return SegmentationSample(image: ink + ink + ink, labels: labels, height: size, width: size)
    }

    /// The 8×8 grey plane (the first of `pixels`' three) at (u, v), edges clamped.
    static func bilinear(_ pixels: [Float], u: Double, v: Double) -> Float {
        let u = min(max(u, 0), 7), v = min(max(v, 0), 7)
        let x0 = min(Int(u), 6), y0 = min(Int(v), 6)
        let fx = Float(u - Double(x0)), fy = Float(v - Double(y0))
        func p(_ x: Int, _ y: Int) -> Float { pixels[y * 8 + x] }
        let top = p(x0, y0) * (1 - fx) + p(x0 + 1, y0) * fx
        let bottom = p(x0, y0 + 1) * (1 - fx) + p(x0 + 1, y0 + 1) * fx
        return top * (1 - fy) + bottom * fy
    }
}
