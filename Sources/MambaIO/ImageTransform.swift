import Foundation

/// The official Vim eval transform as torchvision applies it to a PIL image (spec/vim.md §5.7):
/// Resize(int(size / 0.875)) of the shorter side with PIL's bicubic, CenterCrop(size),
/// ToTensor (÷255), Normalize with the ImageNet mean and std.
package enum EvalTransform {
    package static let mean: [Float] = [0.485, 0.456, 0.406]
    package static let std: [Float] = [0.229, 0.224, 0.225]

    /// CHW float32 [3, imgSize, imgSize].
    package static func apply(_ image: RGBImage, imgSize: Int = 224, cropPct: Double = 0.875) -> [Float] {
        InputTransform.imagenet(size: imgSize, cropPct: cropPct).apply(image)
    }

    /// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer
    /// int(size · long / short); PIL bicubic.
    package static func resizeShorterSide(_ image: RGBImage, to size: Int) -> RGBImage {
        let (nw, nh) = shorterSide(image, to: size)
        if nw == image.width && nh == image.height { return image }
        return PILResample.bicubic(image, width: nw, height: nh)
    }

    /// `centerCrop(resizeShorterSide(image, to: resize), size: crop)`, bit for bit, computing
    /// only the pixels the crop keeps: an image of 1 × 60,000 pixels (a few bytes of PNG) would
    /// otherwise become 256 × 15,360,000 on the way to a 224 × 224 crop.
    package static func resizedCenterCrop(_ image: RGBImage, resize: Int, crop size: Int) -> RGBImage {
        let (nw, nh) = shorterSide(image, to: resize)
        let top = Int((Double(nh - size) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(nw - size) / 2).rounded(.toNearestOrEven))
        // The part of the crop that lies inside the resized image; the rest is zero padding.
        let y0 = min(max(top, 0), nh), y1 = max(y0, min(top + size, nh))
        let x0 = min(max(left, 0), nw), x1 = max(x0, min(left + size, nw))
        let window = PILResample.bicubic(image, width: nw, height: nh, columns: x0..<x1, rows: y0..<y1)
        if window.width == size && window.height == size { return window }
        var out = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<window.height {
            for x in 0..<window.width {
                for c in 0..<3 { out[((y + y0 - top) * size + x + x0 - left) * 3 + c] = window.pixels[(y * window.width + x) * 3 + c] }
            }
        }
        return RGBImage(width: size, height: size, pixels: out)
    }

    static func shorterSide(_ image: RGBImage, to size: Int) -> (width: Int, height: Int) {
        let (w, h) = (image.width, image.height)
        let short = min(w, h), long = max(w, h)
        let newLong = Int(Double(size) * Double(long) / Double(short))
        return w <= h ? (size, newLong) : (newLong, size)
    }

    /// torchvision's CenterCrop: offsets int(round((side − size) / 2)), Python rounding (half to even);
    /// a side shorter than `size` is padded with zeros first, as torchvision does.
    package static func centerCrop(_ image: RGBImage, size: Int) -> RGBImage {
        let top = Int((Double(image.height - size) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(image.width - size) / 2).rounded(.toNearestOrEven))
        var out = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size {
            let sy = y + top
            guard sy >= 0 && sy < image.height else { continue }
            for x in 0..<size {
                let sx = x + left
                guard sx >= 0 && sx < image.width else { continue }
                for c in 0..<3 { out[(y * size + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c] }
            }
        }
        return RGBImage(width: size, height: size, pixels: out)
    }
}

/// Pillow's `Image.resize(…, BICUBIC)` on 8-bit images (libImaging/Resample.c), reproduced in its
/// arithmetic so results match bit for bit: separable, horizontal pass first over only the rows the
/// vertical pass needs, support widened by the downscale factor (antialiasing), a = −0.5, weights
/// normalised per output pixel then rounded to 22-bit fixed point, each pass rounded and clipped
/// to uint8.
package enum PILResample {
    static let precisionBits = 32 - 8 - 2

    static func cubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For output pixels `range` of `outSize`: first input index, tap count, and fixed-point
    /// weights (`ksize` per pixel). Each pixel's weights depend on its index alone, so a window
    /// gets the same weights as the whole row.
    static func coefficients(inSize: Int, outSize: Int, range: Range<Int>) -> (bounds: [(Int, Int)], ksize: Int, weights: [Int32]) {
        let support = 2.0
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let radius = support * filterScale
        let ksize = Int(radius.rounded(.up)) * 2 + 1
        var bounds: [(Int, Int)] = []
        var weights = [Int32](repeating: 0, count: range.count * ksize)
        var k = [Double](repeating: 0, count: ksize)
        for (i, xx) in range.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            // C's (int) truncates toward zero; center − radius + 0.5 can be negative.
            let xmin = max(Int(center - radius + 0.5), 0)
            let xmax = min(Int(center + radius + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<xmax {
                k[x] = cubic((Double(x + xmin) - center + 0.5) * ss)
                total += k[x]
            }
            for x in 0..<xmax {
                let w = total != 0 ? k[x] / total : k[x]
                let scaled = w * Double(1 << precisionBits)
                weights[i * ksize + x] = Int32(w < 0 ? scaled - 0.5 : scaled + 0.5)
            }
            bounds.append((xmin, xmax))
        }
        return (bounds, ksize, weights)
    }

    @inline(__always) static func clip8(_ v: Int) -> UInt8 {
        if v >= 255 << precisionBits { return 255 }
        if v <= 0 { return 0 }
        return UInt8(v >> precisionBits)
    }

    package static func bicubic(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        bicubic(image, width: width, height: height, columns: 0..<width, rows: 0..<height)
    }

    /// The window `columns` × `rows` of the image resized to width × height, for the cost of
    /// the window: each pass computes only the output pixels the window needs.
    package static func bicubic(_ image: RGBImage, width: Int, height: Int, columns: Range<Int>, rows: Range<Int>) -> RGBImage {
        let needH = width != image.width, needV = height != image.height
        let half = 1 << (precisionBits - 1)
        let outW = columns.count
        // Input rows the vertical pass reads (the window's own rows when there is none); the
        // vertical bounds move with them.
        var vertical = needV ? coefficients(inSize: image.height, outSize: height, range: rows) : nil
        var first = rows.lowerBound, last = rows.upperBound
        if var v = vertical, let lo = v.bounds.first, let hi = v.bounds.last {
            first = lo.0
            last = hi.0 + hi.1
            v.bounds = v.bounds.map { ($0.0 - first, $0.1) }
            vertical = v
        }
        let midH = last - first
        // Horizontal pass (or a plain crop of the columns): midH × outW.
        var mid = [UInt8](repeating: 0, count: outW * midH * 3)
        let srcW = image.width
        image.pixels.withUnsafeBufferPointer { s in
            if needH {
                let horizontal = coefficients(inSize: image.width, outSize: width, range: columns)
                horizontal.weights.withUnsafeBufferPointer { kk in
                    for y in 0..<midH {
                        let row = (y + first) * srcW * 3
                        for xx in 0..<outW {
                            let (xmin, n) = horizontal.bounds[xx]
                            let k = xx * horizontal.ksize
                            var s0 = half, s1 = half, s2 = half
                            for x in 0..<n {
                                let p = row + (x + xmin) * 3, w = Int(kk[k + x])
                                s0 += Int(s[p]) * w; s1 += Int(s[p + 1]) * w; s2 += Int(s[p + 2]) * w
                            }
                            let o = (y * outW + xx) * 3
                            mid[o] = clip8(s0); mid[o + 1] = clip8(s1); mid[o + 2] = clip8(s2)
                        }
                    }
                }
            } else {
                for y in 0..<midH {
                    for x in 0..<(outW * 3) { mid[y * outW * 3 + x] = s[((y + first) * srcW + columns.lowerBound) * 3 + x] }
                }
            }
        }
        guard let v = vertical else { return RGBImage(width: outW, height: midH, pixels: mid) }
        let outH = rows.count
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        mid.withUnsafeBufferPointer { s in
            v.weights.withUnsafeBufferPointer { kk in
                for yy in 0..<outH {
                    let (ymin, n) = v.bounds[yy]
                    let k = yy * v.ksize
                    for xx in 0..<outW {
                        var s0 = half, s1 = half, s2 = half
                        for y in 0..<n {
                            let p = ((y + ymin) * outW + xx) * 3, w = Int(kk[k + y])
                            s0 += Int(s[p]) * w; s1 += Int(s[p + 1]) * w; s2 += Int(s[p + 2]) * w
                        }
                        let o = (yy * outW + xx) * 3
                        out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
                    }
                }
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out)
    }
}

/// How an image file becomes a model's input: the eval transform above with a model's own size,
/// crop fraction and normalisation, and optionally grey (for models trained on grey images, such
/// as the bundled digits). Stored in the checkpoints of this package, so that `predict` feeds a
/// model what it was trained on.
package struct InputTransform: Codable, Equatable, Sendable {
    /// Side of the square input, px.
    package var size: Int
    /// The shorter side is resized to int(size / cropPct) before the centre crop (1: no margin).
    package var cropPct: Double
    package var mean: [Float]
    package var std: [Float]
    /// PIL's convert("L") (ITU-R 601-2 luma), replicated to the three channels.
    package var grayscale: Bool

    package init(size: Int, cropPct: Double, mean: [Float], std: [Float], grayscale: Bool = false) {
        (self.size, self.cropPct, self.mean, self.std, self.grayscale) = (size, cropPct, mean, std, grayscale)
    }

    /// The official Vim/DeiT eval transform: ImageNet mean and std, crop 0.875.
    package static func imagenet(size: Int, cropPct: Double = 0.875) -> InputTransform {
        InputTransform(size: size, cropPct: cropPct, mean: EvalTransform.mean, std: EvalTransform.std)
    }

    /// Rejects a stored transform no model input can come from (an edited checkpoint), naming the
    /// field, before any image is resized with it.
    package func validate(source: String) throws {
        func refuse(_ field: String, _ value: Any, _ allowed: String) -> FileError {
            .invalidValue(path: source, field: "transform." + field, value: "\(value)", allowed: allowed)
        }
        guard (1...65_536).contains(size) else { throw refuse("size", size, "1...65536") }
        guard cropPct > 0.05 && cropPct <= 1 else { throw refuse("cropPct", cropPct, "(0.05, 1]") }
        guard mean.count == 3, mean.allSatisfy(\.isFinite) else { throw refuse("mean", mean, "3 finite numbers") }
        guard std.count == 3, std.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw refuse("std", std, "3 positive finite numbers") }
    }

    /// CHW float32 [3, size, size].
    package func apply(_ image: RGBImage) -> [Float] {
        let crop = EvalTransform.resizedCenterCrop(image, resize: Int(Double(size) / cropPct), crop: size)
        var out = [Float](repeating: 0, count: 3 * size * size)
        let plane = size * size
        for i in 0..<plane {
            let r = Int(crop.pixels[3 * i]), g = Int(crop.pixels[3 * i + 1]), b = Int(crop.pixels[3 * i + 2])
            // PIL: L = (R·299 + G·587 + B·114 + 500) / 1000, in integers.
            let grey: Int = (r * 299 + g * 587 + b * 114 + 500) / 1000
            let rgb = grayscale ? SIMD3(grey, grey, grey) : SIMD3(r, g, b)
            for c in 0..<3 {
                // float32 as torchvision: img.float().div(255), then sub(mean).div(std).
                let v = Float(rgb[c]) / 255
                out[c * plane + i] = (v - mean[c]) / std[c]
            }
        }
        return out
    }
}
