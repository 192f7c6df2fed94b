import CPNG
import Foundation

/// A segmentation label map: one class index per pixel, row-major [height, width].
package struct LabelMap: Sendable, Equatable {
    package let width: Int
    package let height: Int
    package let labels: [UInt8]

    /// Reads a PNG label map as mmseg reads one with Pillow ('unchanged'): an 8-bit grey map gives
    /// its values, a palette map its indices, never the palette's colours. Any other PNG (colour,
    /// 16-bit) is refused, as its pixels are not class indices.
    package static func decode(_ path: String) throws -> LabelMap {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileManager.default.fileExists(atPath: path) ? FileError.unreadable(path: path, reason: "cannot read the file") : FileError.notFound(path: path)
        }
        return try decode([UInt8](data), path: path)
    }

    static func decode(_ bytes: [UInt8], path: String, maxPixels: Int = ImageDecoder.maxPixels) throws -> LabelMap {
        guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
            throw bytes.isEmpty ? FileError.empty(path: path) : FileError.unsupportedLabelMap(path: path, reason: "not a PNG file")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        func failure() -> FileError {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            return .decodeFailed(path: path, format: "PNG", reason: message)
        }
        let began = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw failure() }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0 else { throw FileError.decodeFailed(path: path, format: "PNG", reason: "no pixels") }
        guard let count = ImageDecoder.byteCount(width: width, height: height, channels: 1, maxPixels: maxPixels) else {
            throw FileError.imageTooLarge(path: path, width: width, height: height)
        }
        let format = image.format
        var labels = [UInt8](repeating: 0, count: count)
        if format & UInt32(PNG_FORMAT_FLAG_COLORMAP) != 0 {
            // Palette: read the indices with the file's own colormap, which libpng keeps in order
            // for a palette file, so index i stays i.
            guard image.colormap_entries <= 256 else { throw FileError.unsupportedLabelMap(path: path, reason: "more than 256 palette entries") }
            var colormap = [UInt8](repeating: 0, count: 4 * 256)
            image.format = UInt32(PNG_FORMAT_FLAG_COLORMAP | PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
            let done = labels.withUnsafeMutableBufferPointer { out in
                colormap.withUnsafeMutableBufferPointer { map in png_image_finish_read(&image, nil, out.baseAddress, 0, map.baseAddress) }
            }
            guard done != 0 else { throw failure() }
        } else if format & UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_LINEAR) == 0 {
            // 8-bit grey (alpha, if any, is dropped, as Pillow's 'LA' → 'L' would).
            image.format = 0   // PNG_FORMAT_GRAY
            let done = labels.withUnsafeMutableBufferPointer { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard done != 0 else { throw failure() }
        } else {
            let kind = format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0 ? "16-bit" : "colour"
            throw FileError.unsupportedLabelMap(path: path, reason: "a \(kind) PNG; label maps are 8-bit grey or palette PNGs")
        }
        return LabelMap(width: width, height: height, labels: labels)
    }
}
