// Fuzz target: a .safetensors file, every tensor converted.
@testable import MambaIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size))
    do {
        let tensors = try SafeTensors.read(file, path: "fuzz.safetensors")
        for name in tensors.names { _ = tensors[name]!.floats() }
    } catch let error as FileError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
    return 0
}
