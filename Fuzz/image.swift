// Fuzz target: JPEG/PNG decoding, then the eval transform. The first byte chooses the crop
// size (255: 224, as the models use; else 1 to 64, which runs faster and covers padding and
// odd sizes); the rest is the image file. Images are limited to 2^20 pixels here so that each
// run stays fast; the size checks are the same code as with the library's limit. The header
// reader (what ImageFolder checks up front) must accept every image the decoder accepts, with
// the same size.
@testable import MambaIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let imgSize = data[0] == 255 ? 224 : 1 + Int(data[0]) % 64
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let header: Result<ImageHeader, Error> = Result { try ImageDecoder.header(bytes, path: "fuzz.img", maxPixels: 1 << 20) }
    if case .failure(let error) = header {
        if let error = error as? FileError { checkMessage(error) } else { untyped(error) }
    }
    do {
        let image = try ImageDecoder.decode(bytes, path: "fuzz.img", maxPixels: 1 << 20)
        guard case .success(let found) = header, found == ImageHeader(width: image.width, height: image.height) else {
            fatalError("the header reader disagrees with the decoder: \(header)")
        }
        let pixels = EvalTransform.apply(image, imgSize: imgSize)
        if pixels.count != 3 * imgSize * imgSize || pixels.contains(where: { !$0.isFinite }) { fatalError("bad transform output") }
    } catch let error as FileError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
    return 0
}
