import CPNG
import CTurboJPEG
import Foundation

/// 8-bit RGB pixels, row-major, channels interleaved (H, W, 3).
package struct RGBImage: Sendable {
    package private(set) var width: Int
    package private(set) var height: Int
    package private(set) var pixels: [UInt8]

    /// Our own decoders and transforms build `pixels` for the size they pass (the decoders check
    /// file sizes before they allocate), so a mismatch is a programming error and traps; the
    /// initialiser is not public, so no caller outside the package can reach it.
    package init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(width)x\(height) RGB needs \(width * height * 3) bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng) files to RGB as PIL's `convert("RGB")` gives
/// them: greyscale replicated to three channels, alpha dropped (not blended), palettes expanded.
package enum ImageDecoder {
    /// Images with more pixels than this are refused before anything is allocated (4 bytes
    /// per pixel while decoding: 1 GiB).
    package static let maxPixels = 1 << 28

    /// `maxPixels` refuses larger images from their header, before their pixels are allocated.
    package static func decode(_ path: String, maxPixels: Int = maxPixels) throws -> RGBImage {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FileError.notFound(path: path) }
        if isDir.boolValue { throw FileError.isDirectory(path: path) }
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError.unreadable(path: path, reason: "cannot read the file") }
        return try decode([UInt8](data), path: path, maxPixels: maxPixels)
    }

    /// Decodes an image already in memory; `path` names it in errors. A smaller `maxPixels`
    /// keeps each run of the fuzz target fast; the checks are the same.
    package static func decode(_ bytes: [UInt8], path: String, maxPixels: Int = maxPixels) throws -> RGBImage {
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try decodeJPEG(bytes, path: path, maxPixels: maxPixels) }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try decodePNG(bytes, path: path, maxPixels: maxPixels) }
        throw bytes.isEmpty ? FileError.empty(path: path) : FileError.unsupportedImage(path: path)
    }

    /// width × height × channels for positive sizes from a file header, or nil when too large.
    static func byteCount(width: Int, height: Int, channels: Int, maxPixels: Int = maxPixels) -> Int? {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else { return nil }
        return pixels * channels                        // at most 4 · 2^28
    }

    static func decodeJPEG(_ bytes: [UInt8], path: String, maxPixels: Int = maxPixels) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw FileError.decodeFailed(path: path, format: "JPEG", reason: "cannot start the decoder") }
        defer { tjDestroy(handle) }
        func failure() -> FileError {
            .decodeFailed(path: path, format: "JPEG", reason: String(cString: tjGetErrorStr2(handle)).trimmingCharacters(in: .whitespaces))
        }
        let (w, h, colorspace) = try jpegSize(handle, bytes, path: path)
        let width = Int32(w), height = Int32(h)
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        guard let count = byteCount(width: w, height: h, channels: isCMYK ? 4 : 3, maxPixels: maxPixels) else {
            throw FileError.imageTooLarge(path: path, width: w, height: h)
        }
        var out = [UInt8](repeating: 0, count: count)
        let status = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(bytes.count), dst.baseAddress, width, 0, height,
                              Int32(isCMYK ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), 0)
            }
        }
        // A warning (e.g. a premature end of data) still yields an image, as PIL with
        // LOAD_TRUNCATED_IMAGES would; PIL by default raises, and so do we.
        guard status == 0 else { throw failure() }
        if isCMYK {
            // PIL reads libjpeg's CMYK as inverted ("CMYK;I"), then converts each channel as
            // nk − nk·c/255 with nk = 255 − k and its rounded MULDIV255.
            var rgb = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
            for i in 0..<(Int(width) * Int(height)) {
                let nk = Int(out[4 * i + 3])                 // 255 − k, as k = 255 − raw
                for c in 0..<3 {
                    let t = (255 - Int(out[4 * i + c])) * nk + 128
                    rgb[3 * i + c] = UInt8(clamping: nk - (((t >> 8) + t) >> 8))
                }
            }
            out = rgb
        }
        return RGBImage(width: Int(width), height: Int(height), pixels: out)
    }

    static func decodePNG(_ bytes: [UInt8], path: String, maxPixels: Int = maxPixels) throws -> RGBImage {
        // libpng's simplified API reports errors through `message` instead of longjmp.
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
        guard let count = byteCount(width: width, height: height, channels: 4, maxPixels: maxPixels) else {
            throw FileError.imageTooLarge(path: path, width: width, height: height)
        }
        // Read as RGBA and drop alpha: PIL's convert("RGB") discards alpha without blending.
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)  // PNG_FORMAT_RGBA
        var rgba = [UInt8](repeating: 0, count: count)
        let finished = rgba.withUnsafeMutableBufferPointer { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw failure() }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }
}
