import Foundation
import MambaTensor

/// timm's RandAugment, configured by a timm string such as `rand-m9-mstd0.5-inc1` (the official
/// recipe): `n` ops (default 2) drawn uniformly with replacement from 15, each applied with
/// probability 0.5 at magnitude ~ N(m, mstd) clipped to [0, 10]; `inc1` picks the variants whose
/// strength grows with the magnitude. Ops work on 8-bit pixel values as PIL does; geometric ops
/// use bilinear sampling and fill with timm's (124, 116, 104).
package struct RandAugment: SampleTransform {
    package enum Op: String, CaseIterable, Sendable {
        case autoContrast, equalize, invert, rotate, posterize, solarize, solarizeAdd
        case color, contrast, brightness, sharpness, shearX, shearY, translateX, translateY
    }

    package var layers = 2
    package var magnitude = 9.0
    package var magnitudeStd = 0.0
    package var increasing = false
    package var probability = 0.5

    /// Parses `rand-m9-mstd0.5-inc1` (keys m, n, mstd, inc, p), as timm's `rand_augment_transform`.
    /// Each value must be finite and in its range, or the setting is refused:
    /// - `m`, the magnitude, 0...30. timm clips each drawn magnitude to [0, 10] (its `_LEVEL_DENOM`;
    ///   only its `mmax` key, not read here, raises that bound), so a magnitude above 10 is legal
    ///   there and acts as 10 here too, except that with `mstd` fewer draws fall below 10. Three
    ///   times the scale is far past any published recipe (m9 for DeiT and Vim), so more is a typo.
    /// - `n`, the ops per image, a whole number 0...100 (timm reads it with int()).
    /// - `mstd`, the magnitude's standard deviation, 0...100 (above 100 timm samples the magnitude
    ///   uniformly instead, a mode not implemented here).
    /// - `inc`, 0 or 1: the variants whose strength grows with the magnitude.
    /// - `p`, the probability of applying each drawn op, 0...1 (not a timm key; timm uses 0.5).
    package init(config: String) throws {
        let parts = config.split(separator: "-").map(String.init)
        guard parts.first == "rand" else { throw DatasetError.invalidRandAugment(config: config, setting: parts.first ?? "") }
        for part in parts.dropFirst() {
            let refused = DatasetError.invalidRandAugment(config: config, setting: part)
            // "mstd" before "m": the longer key first.
            guard let key = ["mstd", "inc", "m", "n", "p"].first(where: { part.hasPrefix($0) }),
                  let v = Double(part.dropFirst(key.count)) else { throw refused }
            // Comparisons are written so that NaN fails them: Int(nan) or Int(1e300) would trap,
            // and a NaN magnitude would spread to every pixel.
            switch key {
            case "mstd": guard v >= 0 && v <= 100 else { throw refused }; magnitudeStd = v
            case "inc": guard v == 0 || v == 1 else { throw refused }; increasing = v == 1
            case "m": guard v >= 0 && v <= 30 else { throw refused }; magnitude = v
            case "n": guard v >= 0 && v <= 100 && v == v.rounded() else { throw refused }; layers = Int(v)
            default: guard v >= 0 && v <= 1 else { throw refused }; probability = v
            }
        }
    }

    package func apply(_ image: inout [Float], shape: [Int], rng: inout SeededGenerator) {
        let (C, H, W) = (shape[0], shape[1], shape[2])
        guard C == 3 else { return }
        var px = image.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }   // CHW bytes
        for _ in 0..<layers {
            let op = Op.allCases[rng.int(below: Op.allCases.count)]
            guard rng.uniform() < probability else { continue }
            var m = magnitudeStd > 0 ? magnitude + rng.normal() * magnitudeStd : magnitude
            m = min(10, max(0, m))
            px = apply(op, px, H: H, W: W, m: m, rng: &rng)
        }
        image = px.map { Float($0) / 255 }
    }

    func apply(_ op: Op, _ px: [UInt8], H: Int, W: Int, m: Double, rng: inout SeededGenerator) -> [UInt8] {
        let level = m / 10
        func signed(_ v: Double) -> Double { rng.uniform() < 0.5 ? -v : v }
        switch op {
        case .autoContrast: return autoContrast(px, plane: H * W)
        case .equalize: return equalize(px, plane: H * W)
        case .invert: return px.map { 255 - $0 }
        case .posterize:
            let bits = increasing ? 4 - Int(level * 4) : Int(level * 4)
            let mask = UInt8(truncatingIfNeeded: ~((1 << (8 - max(bits, 0))) - 1))
            return bits >= 8 ? px : px.map { $0 & mask }
        case .solarize:
            let threshold = increasing ? 256 - Int(level * 256) : Int(level * 256)
            return px.map { Int($0) >= threshold ? 255 - $0 : $0 }
        case .solarizeAdd:
            let add = Int(level * 110)
            return px.map { $0 < 128 ? UInt8(min(255, Int($0) + add)) : $0 }
        case .color, .contrast, .brightness, .sharpness:
            let factor = increasing ? 1 + signed(level * 0.9) : level * 1.8 + 0.1
            return enhance(op, px, H: H, W: W, factor: factor)
        case .rotate: return affine(px, H: H, W: W, rotate: signed(level * 30))
        case .shearX: return affine(px, H: H, W: W, shear: (signed(level * 0.3), 0))
        case .shearY: return affine(px, H: H, W: W, shear: (0, signed(level * 0.3)))
        case .translateX: return affine(px, H: H, W: W, translate: (signed(level * 0.45) * Double(W), 0))
        case .translateY: return affine(px, H: H, W: W, translate: (0, signed(level * 0.45) * Double(H)))
        }
    }

    /// PIL ImageOps.autocontrast (cutoff 0): each channel stretched to 0…255.
    func autoContrast(_ px: [UInt8], plane: Int) -> [UInt8] {
        var out = px
        for c in 0..<3 {
            let ch = px[(c * plane)..<((c + 1) * plane)]
            let lo = Double(ch.min()!), hi = Double(ch.max()!)
            guard hi > lo else { continue }
            let scale = 255 / (hi - lo)
            for i in 0..<plane { out[c * plane + i] = UInt8(max(0, min(255, Int((Double(px[c * plane + i]) - lo) * scale)))) }
        }
        return out
    }

    /// PIL ImageOps.equalize: per channel, the cumulative histogram as lookup table.
    func equalize(_ px: [UInt8], plane: Int) -> [UInt8] {
        var out = px
        for c in 0..<3 {
            var hist = [Int](repeating: 0, count: 256)
            for i in 0..<plane { hist[Int(px[c * plane + i])] += 1 }
            let nonzero = hist.filter { $0 > 0 }
            guard let last = nonzero.last else { continue }
            let step = (nonzero.reduce(0, +) - last) / 255
            guard step > 0 else { continue }
            var lut = [UInt8](repeating: 0, count: 256), n = step / 2
            for i in 0..<256 { lut[i] = UInt8(min(255, n / step)); n += hist[i] }
            for i in 0..<plane { out[c * plane + i] = lut[Int(px[c * plane + i])] }
        }
        return out
    }

    /// PIL ImageEnhance: blend of a degenerate image and the image, out = d + f·(img − d).
    func enhance(_ op: Op, _ px: [UInt8], H: Int, W: Int, factor: Double) -> [UInt8] {
        let plane = H * W
        var degenerate = [Double](repeating: 0, count: 3 * plane)
        func luma(_ i: Int) -> Double { (299 * Double(px[i]) + 587 * Double(px[plane + i]) + 114 * Double(px[2 * plane + i])) / 1000 }
        switch op {
        case .color:
            for i in 0..<plane { let l = luma(i).rounded(.down); for c in 0..<3 { degenerate[c * plane + i] = l } }
        case .contrast:
            let mean = ((0..<plane).reduce(0.0) { $0 + luma($1).rounded(.down) } / Double(plane) + 0.5).rounded(.down)
            degenerate = [Double](repeating: mean, count: 3 * plane)
        case .brightness:
            break   // black
        default:   // sharpness: PIL's SMOOTH filter (1 1 1 / 1 5 1 / 1 1 1) / 13, border pixels kept
            for c in 0..<3 { for y in 0..<H { for x in 0..<W {
                let i = c * plane + y * W + x
                if y == 0 || x == 0 || y == H - 1 || x == W - 1 { degenerate[i] = Double(px[i]); continue }
                var s = 4 * Double(px[i])
                for dy in -1...1 { for dx in -1...1 { s += Double(px[i + dy * W + dx]) } }
                degenerate[i] = (s / 13).rounded()
            } } }
        }
        return (0..<px.count).map { i in
            UInt8(max(0, min(255, (degenerate[i] + factor * (Double(px[i]) - degenerate[i])).rounded())))
        }
    }

    /// An affine warp about the image centre (rotation) or origin (shear, translation), sampled
    /// bilinearly from the source at the inverse-mapped position; outside pixels get the fill.
    func affine(_ px: [UInt8], H: Int, W: Int, rotate degrees: Double = 0, shear: (Double, Double) = (0, 0),
                translate: (Double, Double) = (0, 0)) -> [UInt8] {
        let fill: [Double] = [124, 116, 104], plane = H * W
        let a = -degrees * Double.pi / 180, cx = Double(W) / 2, cy = Double(H) / 2
        var out = [UInt8](repeating: 0, count: px.count)
        for y in 0..<H {
            for x in 0..<W {
                // Output (x, y) reads input (sx, sy), as PIL's transform matrix maps output to input.
                var sx = Double(x) + 0.5, sy = Double(y) + 0.5
                if degrees != 0 {
                    let dx = sx - cx, dy = sy - cy
                    sx = cos(a) * dx - sin(a) * dy + cx
                    sy = sin(a) * dx + cos(a) * dy + cy
                }
                (sx, sy) = (sx + shear.0 * sy + translate.0, sy + shear.1 * sx + translate.1)
                let fx = sx - 0.5, fy = sy - 0.5
                let x0 = Int(fx.rounded(.down)), y0 = Int(fy.rounded(.down)), tx = fx - Double(x0), ty = fy - Double(y0)
                for c in 0..<3 {
                    func at(_ xx: Int, _ yy: Int) -> Double {
                        xx >= 0 && xx < W && yy >= 0 && yy < H ? Double(px[c * plane + yy * W + xx]) : fill[c]
                    }
                    let inside = fx >= -0.5 && fx <= Double(W) - 0.5 && fy >= -0.5 && fy <= Double(H) - 0.5
                    let v = inside
                        ? (1 - ty) * ((1 - tx) * at(x0, y0) + tx * at(x0 + 1, y0)) + ty * ((1 - tx) * at(x0, y0 + 1) + tx * at(x0 + 1, y0 + 1))
                        : fill[c]
                    out[c * plane + y * W + x] = UInt8(max(0, min(255, v.rounded())))
                }
            }
        }
        return out
    }
}
