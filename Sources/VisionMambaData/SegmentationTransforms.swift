import Foundation
import MambaIO
import MambaTensor

/// mmseg 0.29's ADE20K pipelines (hustvl/Vim `seg/configs/_base_/datasets/ade20k.py`) on
/// `SegmentationSample`s. Training: Resize to `scale` with a random ratio in `ratioRange`
/// (keeping the aspect ratio), RandomCrop to `crop` with `cat_max_ratio`, RandomFlip,
/// PhotoMetricDistortion, Normalize, Pad to `crop` (image 0, labels 255). Evaluation: the
/// keep-ratio Resize to `scale` and Normalize; the sliding window runs in the model.
///
/// Images are bilinear with half-pixel centres and labels nearest, as OpenCV's INTER_LINEAR and
/// INTER_NEAREST give them, in float rather than OpenCV's 8-bit fixed point; the photometric
/// steps clip to [0, 1] as mmseg clips to [0, 255], without its rounding to 8 bits in between.
package struct SegmentationTransform: Sendable {
    /// (long, short) edge bounds of the keep-ratio resize: (2048, 512) for ADE20K.
    package var scale: (long: Int, short: Int)
    package var ratioRange: ClosedRange<Double> = 0.5...2.0
    package var crop: Int
    package var catMaxRatio = 0.75
    package var flipProbability = 0.5
    package var photometric = true
    package var mean: [Float], std: [Float]
    package var ignoreIndex: UInt8 = 255

    package init(scale: (long: Int, short: Int), crop: Int, mean: [Float], std: [Float]) {
        self.scale = scale
        self.crop = crop
        self.mean = mean
        self.std = std
    }

    /// The official ADE20K settings for a crop of `crop` px: scale (4·crop, crop).
    package static func ade20k(crop: Int = 512) -> SegmentationTransform {
        SegmentationTransform(scale: (4 * crop, crop), crop: crop, mean: EvalTransform.mean, std: EvalTransform.std)
    }

    /// mmcv's `rescale_size`: the factor that fits the long edge within `long` and the short
    /// within `short`, and the size it gives (rounded half up).
    static func keepRatioSize(height: Int, width: Int, long: Int, short: Int) -> (height: Int, width: Int) {
        let factor = min(Double(long) / Double(max(height, width)), Double(short) / Double(min(height, width)))
        return (max(1, Int(Double(height) * factor + 0.5)), max(1, Int(Double(width) * factor + 0.5)))
    }

    /// A training sample: crop × crop, normalised, labels padded with the ignore index.
    package func train(_ sample: SegmentationSample, rng: inout SeededGenerator) -> SegmentationSample {
        let ratio = ratioRange.lowerBound + rng.uniform() * (ratioRange.upperBound - ratioRange.lowerBound)
        let target = keepRatioTarget(sample, long: Int(Double(scale.long) * ratio), short: Int(Double(scale.short) * ratio))
        var s = Self.resize(sample, height: target.height, width: target.width)
        s = randomCrop(s, rng: &rng)
        if rng.uniform() < flipProbability { s = Self.flipped(s) }
        if photometric { s.image = PhotometricDistortion.apply(s.image, plane: s.height * s.width, rng: &rng) }
        normalize(&s)
        return pad(s, to: crop)
    }

    /// An evaluation sample: resized keeping the ratio to `scale`, normalised; its labels stay at
    /// the original size (mmseg scores the prediction resized back to the original).
    package func evaluate(_ sample: SegmentationSample) -> SegmentationSample {
        let target = keepRatioTarget(sample, long: scale.long, short: scale.short)
        var s = Self.resize(sample, height: target.height, width: target.width, labels: false)
        s.labels = sample.labels
        normalize(&s)
        return s
    }

    func keepRatioTarget(_ s: SegmentationSample, long: Int, short: Int) -> (height: Int, width: Int) {
        Self.keepRatioSize(height: s.height, width: s.width, long: max(long, 1), short: max(short, 1))
    }

    /// Bilinear image (half-pixel centres, edges clamped) and nearest labels (floor(dst · in / out)).
    package static func resize(_ s: SegmentationSample, height: Int, width: Int, labels: Bool = true) -> SegmentationSample {
        if height == s.height && width == s.width { return s }
        let plane = s.height * s.width, outPlane = height * width
        func taps(_ inSize: Int, _ outSize: Int) -> [(Int, Int, Float)] {
            let scale = Double(inSize) / Double(outSize)
            return (0..<outSize).map { d in
                let x = max((Double(d) + 0.5) * scale - 0.5, 0)
                let i = min(Int(x), inSize - 1)
                return (i, min(i + 1, inSize - 1), Float(x - Double(i)))
            }
        }
        let ys = taps(s.height, height), xs = taps(s.width, width)
        var image = [Float](repeating: 0, count: 3 * outPlane)
        for c in 0..<3 {
            let src = c * plane, dst = c * outPlane
            for (oy, (y0, y1, fy)) in ys.enumerated() {
                for (ox, (x0, x1, fx)) in xs.enumerated() {
                    let top = s.image[src + y0 * s.width + x0] * (1 - fx) + s.image[src + y0 * s.width + x1] * fx
                    let bottom = s.image[src + y1 * s.width + x0] * (1 - fx) + s.image[src + y1 * s.width + x1] * fx
                    image[dst + oy * width + ox] = top * (1 - fy) + bottom * fy
                }
            }
        }
        var out = SegmentationSample(image: image, labels: [], height: height, width: width)
        if labels {
            let ly = (0..<height).map { min(Int(Double($0) * Double(s.height) / Double(height)), s.height - 1) }
            let lx = (0..<width).map { min(Int(Double($0) * Double(s.width) / Double(width)), s.width - 1) }
            out.labels = ly.flatMap { y in lx.map { x in s.labels[y * s.width + x] } }
        }
        return out
    }

    /// mmseg's RandomCrop: up to ten draws until no class (ignoring 255) covers `catMaxRatio` or
    /// more of the crop and at least two classes are in it; the last draw otherwise.
    func randomCrop(_ s: SegmentationSample, rng: inout SeededGenerator) -> SegmentationSample {
        func draw() -> (y: Int, x: Int) {
            (rng.int(below: max(s.height - crop, 0) + 1), rng.int(below: max(s.width - crop, 0) + 1))
        }
        var box = draw()
        if catMaxRatio < 1 {
            for _ in 0..<10 {
                var counts = [Int](repeating: 0, count: 256)
                for y in box.y..<min(box.y + crop, s.height) {
                    for x in box.x..<min(box.x + crop, s.width) { counts[Int(s.labels[y * s.width + x])] += 1 }
                }
                counts[Int(ignoreIndex)] = 0
                let present = counts.filter { $0 > 0 }, total = present.reduce(0, +)
                if present.count > 1 && Double(present.max()!) / Double(total) < catMaxRatio { break }
                box = draw()
            }
        }
        return Self.cropped(s, y: box.y, x: box.x, height: min(crop, s.height), width: min(crop, s.width))
    }

    static func cropped(_ s: SegmentationSample, y: Int, x: Int, height: Int, width: Int) -> SegmentationSample {
        let plane = s.height * s.width
        var image = [Float](), labels = [UInt8]()
        image.reserveCapacity(3 * height * width)
        for c in 0..<3 {
            for r in y..<(y + height) {
                let start = c * plane + r * s.width + x
                image += s.image[start..<(start + width)]
            }
        }
        for r in y..<(y + height) {
            let start = r * s.width + x
            labels += s.labels[start..<(start + width)]
        }
        return SegmentationSample(image: image, labels: labels, height: height, width: width)
    }

    static func flipped(_ s: SegmentationSample) -> SegmentationSample {
        var out = s
        for row in 0..<(3 * s.height) {
            let base = row * s.width
            for x in 0..<s.width { out.image[base + x] = s.image[base + s.width - 1 - x] }
        }
        for row in 0..<s.height {
            let base = row * s.width
            for x in 0..<s.width { out.labels[base + x] = s.labels[base + s.width - 1 - x] }
        }
        return out
    }

    package func normalize(_ s: inout SegmentationSample) {
        let plane = s.height * s.width
        for c in 0..<3 { for i in 0..<plane { s.image[c * plane + i] = (s.image[c * plane + i] - mean[c]) / std[c] } }
    }

    /// Pads at the bottom and right to size × size: image 0 (after normalisation, as mmseg's Pad
    /// follows Normalize), labels the ignore index.
    func pad(_ s: SegmentationSample, to size: Int) -> SegmentationSample {
        guard s.height < size || s.width < size else { return s }
        let (h, w) = (max(s.height, size), max(s.width, size))
        var out = SegmentationSample(image: [Float](repeating: 0, count: 3 * h * w), labels: [UInt8](repeating: ignoreIndex, count: h * w),
                                     height: h, width: w)
        for c in 0..<3 {
            for y in 0..<s.height {
                for x in 0..<s.width { out.image[c * h * w + y * w + x] = s.image[c * s.height * s.width + y * s.width + x] }
            }
        }
        for y in 0..<s.height { for x in 0..<s.width { out.labels[y * w + x] = s.labels[y * s.width + x] } }
        return out
    }
}

/// mmseg's PhotoMetricDistortion on a CHW image in [0, 1], each step with probability ½:
/// brightness ±32/255; contrast ×[0.5, 1.5] either first or last (a coin decides); saturation
/// ×[0.5, 1.5] and hue ± up to 18 of OpenCV's 180 steps (36°), in HSV.
enum PhotometricDistortion {
    static func apply(_ image: [Float], plane: Int, rng: inout SeededGenerator) -> [Float] {
        var x = image
        func clip(_ v: Float) -> Float { min(max(v, 0), 1) }
        func uniform(_ a: Double, _ b: Double) -> Float { Float(a + rng.uniform() * (b - a)) }
        if rng.int(below: 2) == 1 {
            let delta = uniform(-32, 32) / 255
            for i in x.indices { x[i] = clip(x[i] + delta) }
        }
        let contrastFirst = rng.int(below: 2) == 1
        func contrast() {
            if rng.int(below: 2) == 1 {
                let alpha = uniform(0.5, 1.5)
                for i in x.indices { x[i] = clip(x[i] * alpha) }
            }
        }
        if contrastFirst { contrast() }
        if rng.int(below: 2) == 1 {
            let factor = uniform(0.5, 1.5)
            mapHSV(&x, plane: plane) { _, s, _ in s = min(max(s * factor, 0), 1) }
        }
        if rng.int(below: 2) == 1 {
            let shift = Float(rng.int(below: 37) - 18) * 2      // OpenCV hue steps are 2°
            mapHSV(&x, plane: plane) { h, _, _ in h = (h + shift).truncatingRemainder(dividingBy: 360); if h < 0 { h += 360 } }
        }
        if !contrastFirst { contrast() }
        return x
    }

    /// Applies `change` to every pixel's (hue in degrees, saturation, value).
    static func mapHSV(_ x: inout [Float], plane: Int, _ change: (inout Float, inout Float, inout Float) -> Void) {
        for i in 0..<plane {
            let (r, g, b) = (x[i], x[plane + i], x[2 * plane + i])
            let maxC = max(r, g, b), minC = min(r, g, b), delta = maxC - minC
            var v = maxC, s: Float = maxC > 0 ? delta / maxC : 0, h: Float = 0
            if delta > 0 {
                if maxC == r { h = 60 * ((g - b) / delta) } else if maxC == g { h = 60 * ((b - r) / delta + 2) } else { h = 60 * ((r - g) / delta + 4) }
                if h < 0 { h += 360 }
            }
            change(&h, &s, &v)
            let c = v * s, hp = h / 60, xk = c * (1 - abs(hp.truncatingRemainder(dividingBy: 2) - 1)), m = v - c
            let (r1, g1, b1): (Float, Float, Float)
            switch Int(hp) % 6 {
            case 0: (r1, g1, b1) = (c, xk, 0)
            case 1: (r1, g1, b1) = (xk, c, 0)
            case 2: (r1, g1, b1) = (0, c, xk)
            case 3: (r1, g1, b1) = (0, xk, c)
            case 4: (r1, g1, b1) = (xk, 0, c)
            default: (r1, g1, b1) = (c, 0, xk)
            }
            (x[i], x[plane + i], x[2 * plane + i]) = (r1 + m, g1 + m, b1 + m)
        }
    }
}
