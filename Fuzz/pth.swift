// Fuzz target: a PyTorch .pth checkpoint (zip archive, pickle, storages) read as
// CheckpointFile does, and every tensor of its state dict converted.
@testable import MambaIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size))
    do {
        let checkpoint = try TorchCheckpoint.read(ZipArchive(file, path: "fuzz.pth"))
        _ = checkpoint.root.description
        let stateDict = try checkpoint.stateDict()
        for name in stateDict.names { _ = stateDict[name]!.floats() }
    } catch let error as FileError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
    return 0
}
