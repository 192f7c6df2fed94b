import Foundation
import MambaIO
#if canImport(CoreGraphics)
import CoreGraphics
#endif

/// Decoded 8-bit pixels, row-major with channels interleaved and no padding between rows.
///
/// ```swift
/// let pixels = try PixelBuffer(width: 2, height: 1, layout: .rgba,
///                              bytes: [255, 0, 0, 255,  0, 0, 255, 255])
/// ```
public struct PixelBuffer: Sendable, Equatable {
    /// How the channels of one pixel are stored.
    public enum Layout: Sendable, Equatable {
        /// Red, green, blue: three bytes a pixel.
        case rgb
        /// Red, green, blue, alpha: four bytes a pixel. Alpha is dropped, as PIL's
        /// `convert("RGB")` drops it, not blended.
        case rgba

        /// Bytes per pixel.
        public var channels: Int { self == .rgb ? 3 : 4 }
    }

    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// The channel layout of ``bytes``.
    public let layout: Layout
    /// `width × height × layout.channels` bytes.
    public let bytes: [UInt8]

    /// Wraps `bytes`, refusing a byte count that does not match the size and layout.
    public init(width: Int, height: Int, layout: Layout, bytes: [UInt8]) throws {
        guard width > 0, height > 0 else { throw VisionMambaError.pixelBufferDimensions(width: width, height: height) }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= ImageDecoder.maxPixels else {
            throw FileError.imageTooLarge(path: "pixel buffer", width: width, height: height)
        }
        guard bytes.count == pixels * layout.channels else {
            throw VisionMambaError.pixelBufferSize(width: width, height: height, expected: pixels * layout.channels, found: bytes.count)
        }
        (self.width, self.height, self.layout, self.bytes) = (width, height, layout, bytes)
    }

    /// The pixels as RGB, alpha dropped.
    var rgb: RGBImage {
        guard layout == .rgba else { return RGBImage(width: width, height: height, pixels: bytes) }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            out[3 * i] = bytes[4 * i]
            out[3 * i + 1] = bytes[4 * i + 1]
            out[3 * i + 2] = bytes[4 * i + 2]
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}

#if canImport(CoreGraphics)
extension PixelBuffer {
    /// The pixels of `image`, drawn into an RGBA buffer (alpha then dropped).
    public init(_ image: CGImage) throws {
        let width = image.width, height = image.height
        guard width > 0, height > 0 else { throw VisionMambaError.pixelBufferDimensions(width: width, height: height) }
        var bytes = [UInt8](repeating: 0, count: width * height * 4)
        let drawn = bytes.withUnsafeMutableBytes { raw -> Bool in
            guard let context = CGContext(data: raw.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                          bytesPerRow: width * 4, space: CGColorSpaceCreateDeviceRGB(),
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else { throw FileError.decodeFailed(path: "CGImage", format: "CGImage", reason: "cannot draw it into an RGBA buffer") }
        try self.init(width: width, height: height, layout: .rgba, bytes: bytes)
    }
}
#endif

/// One image for a model: a file, encoded bytes, or decoded pixels.
///
/// ```swift
/// let inputs: [ImageInput] = [.file(URL(fileURLWithPath: "cat.jpg")), .encoded(pngData)]
/// ```
public enum ImageInput: Sendable {
    /// A JPEG or PNG file.
    case file(URL)
    /// The bytes of a JPEG or PNG file.
    case encoded(Data)
    /// Decoded pixels.
    case pixels(PixelBuffer)

    /// Decodes the image to RGB (greyscale replicated, alpha dropped, palettes expanded). An image
    /// of more than `maxPixels` is refused from its header, before its pixels are allocated.
    func decoded(maxPixels: Int) throws -> RGBImage {
        switch self {
        case .file(let url): return try ImageDecoder.decode(url.path, maxPixels: maxPixels)
        case .encoded(let data): return try ImageDecoder.decode([UInt8](data), path: "image data", maxPixels: maxPixels)
        case .pixels(let buffer):
            guard buffer.width * buffer.height <= maxPixels else {
                throw FileError.imageTooLarge(path: "pixel buffer", width: buffer.width, height: buffer.height)
            }
            return buffer.rgb
        }
    }

    /// A name for the image in results: the file's path, else nil.
    var name: String? {
        if case .file(let url) = self { return url.path }
        return nil
    }
}
