import CPNG
import Foundation

/// Writes 8-bit PNGs (libpng's simplified API): label maps as grey values, and RGB images such as
/// a coloured mask or its overlay on a photo.
package enum PNGEncoder {
    /// A grey PNG whose values are `pixels` (row-major, width × height): a label map.
    package static func grey(_ pixels: [UInt8], width: Int, height: Int) throws -> Data {
        try encode(pixels, width: width, height: height, channels: 1)
    }

    package static func rgb(_ image: RGBImage) throws -> Data {
        try encode(image.pixels, width: image.width, height: image.height, channels: 3)
    }

    static func encode(_ pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> Data {
        guard width > 0, height > 0, pixels.count == width * height * channels, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw FileError.invalidValue(path: "PNG image", field: "pixels", value: "\(pixels.count) bytes for \(width)×\(height)×\(channels)",
                                         allowed: "width × height × channels bytes, sizes positive")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0
        defer { png_image_free(&image) }
        var size = 0
        // The first call sizes the output, the second writes it.
        guard pixels.withUnsafeBufferPointer({ png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil) }) != 0 else {
            throw FileError.unwritable(path: "PNG image", reason: message(image))
        }
        var out = [UInt8](repeating: 0, count: size)
        let written = out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard written != 0 else { throw FileError.unwritable(path: "PNG image", reason: message(image)) }
        return Data(out.prefix(size))
    }

    private static func message(_ image: png_image) -> String {
        withUnsafeBytes(of: image.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}
