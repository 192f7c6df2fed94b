import CPNG
import CTurboJPEG
import Foundation

/// 8-bit RGB pixels, row-major, channels interleaved (H, W, 3).
public struct RGBImage: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(width)x\(height) RGB needs \(width * height * 3) bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng) files to RGB as PIL's `convert("RGB")` gives
/// them: greyscale replicated to three channels, alpha dropped (not blended), palettes expanded.
public enum ImageDecoder {
    public static func decode(_ path: String) throws -> RGBImage {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw IOFailure(path, "no such file") }
        if isDir.boolValue { throw IOFailure(path, "is a directory, not an image") }
        guard let data = FileManager.default.contents(atPath: path) else { throw IOFailure(path, "cannot read file") }
        let bytes = [UInt8](data)
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try decodeJPEG(bytes, path: path) }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try decodePNG(bytes, path: path) }
        throw IOFailure(path, bytes.isEmpty ? "empty file" : "not a JPEG or PNG image")
    }

    static func decodeJPEG(_ bytes: [UInt8], path: String) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw IOFailure(path, "cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        func failure(_ what: String) -> IOFailure {
            IOFailure(path, "\(what): \(String(cString: tjGetErrorStr2(handle)).trimmingCharacters(in: .whitespaces))")
        }
        var width: Int32 = 0, height: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        let ok = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(bytes.count), &width, &height, &subsamp, &colorspace)
        }
        guard ok == 0, width > 0, height > 0 else { throw failure("unreadable JPEG header") }
        guard Int(width) * Int(height) <= 1 << 28 else { throw IOFailure(path, "JPEG of \(width)x\(height) pixels is too large") }
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let channels = isCMYK ? 4 : 3
        var out = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        let status = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(bytes.count), dst.baseAddress, width, 0, height,
                              Int32(isCMYK ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), 0)
            }
        }
        // A warning (e.g. a premature end of data) still yields an image, as PIL with
        // LOAD_TRUNCATED_IMAGES would; PIL by default raises, and so do we.
        guard status == 0 else { throw failure("cannot decode JPEG") }
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

    static func decodePNG(_ bytes: [UInt8], path: String) throws -> RGBImage {
        // libpng's simplified API reports errors through `message` instead of longjmp.
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        func failure(_ what: String) -> IOFailure {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            return IOFailure(path, "\(what): \(message)")
        }
        let began = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw failure("unreadable PNG") }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width * height <= 1 << 28 else { throw IOFailure(path, "PNG of \(width)x\(height) pixels is not supported") }
        // Read as RGBA and drop alpha: PIL's convert("RGB") discards alpha without blending.
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)  // PNG_FORMAT_RGBA
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let finished = rgba.withUnsafeMutableBufferPointer { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw failure("cannot decode PNG") }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }
}
