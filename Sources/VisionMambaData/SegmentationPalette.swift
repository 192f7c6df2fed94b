import Foundation
import MambaIO

/// Colours for drawing label maps: class i is painted `colors[i]`, as mmseg's `show_result` does.
package struct SegmentationPalette: Sendable, Equatable {
    package var colors: [(r: UInt8, g: UInt8, b: UInt8)]

    package static func == (a: Self, b: Self) -> Bool {
        a.colors.elementsEqual(b.colors) { $0.r == $1.r && $0.g == $1.g && $0.b == $1.b }
    }

    /// ADE20K's 150 class names and mmseg's fixed palette for them (bundled:
    /// Resources/ade20k-classes.tsv, one "name<TAB>r g b" line per class).
    package static func ade20k() throws -> (names: [String], palette: SegmentationPalette) {
        guard let url = Bundle.module.url(forResource: "ade20k-classes", withExtension: "tsv"),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw DatasetError.missingBundledData(name: "ade20k-classes.tsv")
        }
        var names: [String] = [], colors: [(r: UInt8, g: UInt8, b: UInt8)] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            let rgb = fields.count == 2 ? fields[1].split(separator: " ").compactMap { UInt8($0) } : []
            guard rgb.count == 3 else { throw DatasetError.missingBundledData(name: "ade20k-classes.tsv") }
            names.append(String(fields[0]))
            colors.append((rgb[0], rgb[1], rgb[2]))
        }
        return (names, SegmentationPalette(colors: colors))
    }

    /// The ADE20K palette for its classes, then well-spread colours for any further ones, so
    /// every model gets a fixed palette (class 0 of a digit-scenes model, the background, is
    /// ADE20K's grey "wall").
    package static func standard(classes: Int) throws -> SegmentationPalette {
        var colors = try ade20k().palette.colors
        var i = colors.count
        while colors.count < classes {
            // The golden-ratio hue walk: neighbouring classes get distant hues.
            let hue = (Double(i) * 0.618_033_988_749_895).truncatingRemainder(dividingBy: 1)
            colors.append(Self.rgb(hue: hue))
            i += 1
        }
        return SegmentationPalette(colors: Array(colors.prefix(classes)))
    }

    static func rgb(hue: Double) -> (r: UInt8, g: UInt8, b: UInt8) {
        func channel(_ shift: Double) -> UInt8 {
            let k = (shift + hue * 6).truncatingRemainder(dividingBy: 6)
            return UInt8((255 * (1 - max(0, min(k, 4 - k, 1)) * 0.8)).rounded())
        }
        return (channel(5), channel(3), channel(1))
    }

    /// The label map [height, width] in colour; labels past the palette (255, ignored) are black.
    package func draw(labels: [UInt8], width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: 3 * width * height)
        for (i, label) in labels.prefix(width * height).enumerated() where Int(label) < colors.count {
            let c = colors[Int(label)]
            (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) = (c.r, c.g, c.b)
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// mmseg's overlay: image · (1 − opacity) + colour mask · opacity, per channel, rounded.
    /// The two must be the same size (resize the mask to the image first).
    package func overlay(_ mask: RGBImage, on image: RGBImage, opacity: Double = 0.5) throws -> RGBImage {
        guard mask.width == image.width, mask.height == image.height else {
            throw DatasetError.labelMapSizeMismatch(path: "overlay", found: [mask.height, mask.width], image: [image.height, image.width])
        }
        let pixels = zip(image.pixels, mask.pixels).map { UInt8((Double($0) * (1 - opacity) + Double($1) * opacity).rounded()) }
        return RGBImage(width: image.width, height: image.height, pixels: pixels)
    }
}
