// Fuzz target: a model config JSON (forward --config), compiled into the VisionMambaModels module.
// A config that parses and validates is counted (FLOPs, token schedule), and a small one is
// built and run on one blank image, so that whatever validation lets through must also run.
import Foundation
import MambaTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    do {
        let config = try VimConfig.parse(json: Data(bytes: data, count: size), path: "fuzz.json")
        _ = config.forwardFLOPs()
        _ = config.officialMACs()
        if config.embedDim <= 32, config.depth <= 4, config.imgSize <= 32, config.numClasses <= 100,
           config.dState <= 16, config.expand <= 4, config.inChannels <= 4, config.numPatches <= 64 {
            let model = try VimModel(config: config)
            let pixels = config.inChannels * config.imgSize * config.imgSize
            _ = try model(Tensor(shape: [1, config.inChannels, config.imgSize, config.imgSize],
                                 values: [Float](repeating: 0.5, count: pixels)))
        }
    } catch let error as ConfigError {
        checkMessage(error)
    } catch let error as TensorError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
    return 0
}
