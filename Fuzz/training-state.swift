// Fuzz target: the training state a checkpoint stores as JSON in its metadata (train --resume,
// eval of a checkpoint), classification's and segmentation's, compiled into the
// VisionMambaTraining module.
import Foundation
import VisionMambaModels

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTrainingState(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let json = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    typedErrorsOnly {
        let state = try Checkpoint.state(json: json, path: "fuzz.safetensors")
        _ = state.options.effectiveLR
        _ = state.options.model.forwardFLOPs()
    }
    // The same bytes as a segmentation run's state (Vim, DyVM or DeiT backbone).
    typedErrorsOnly {
        let state = try SegmentationTrainer.state(json: json, path: "fuzz.safetensors")
        _ = state.options.model.forwardFLOPs()
        _ = state.options.model.tokenSchedule
        _ = state.options.schedule.lr(forIteration: state.iterationsDone)
    }
    return 0
}

/// Runs `body`: a training or config error must be one bounded line; any other error is a finding.
func typedErrorsOnly(_ body: () throws -> Void) {
    do {
        try body()
    } catch let error as TrainingError {
        checkMessage(error)
    } catch let error as ConfigError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
}
