// Fuzz target: the restricted unpickler, with numpy's globals allowed (a superset of what the
// .pth reader allows), then every walk a caller makes over what it returns.
@testable import MambaIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var unpickler = Unpickler(path: "fuzz.pkl", bytes: UnsafeRawBufferPointer(start: data, count: size))
    unpickler.allowsNumpy = true
    do {
        let value = try unpickler.load()
        _ = value.description
        if case .dict(let d) = value {
            for v in d.values { if case .object(let o) = v { _ = o.uint8Array() } }
            _ = d.value(forText: "data")
        }
        if case .object(let o) = value { _ = o.uint8Array(); _ = o["model"] }
    } catch let error as FileError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
    return 0
}
