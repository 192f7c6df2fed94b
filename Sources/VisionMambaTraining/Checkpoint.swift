import Foundation
import MambaIO
import MambaNN
import MambaTensor
import VisionMamba

/// What a run has done so far; stored inside the checkpoint (safetensors metadata) and beside it
/// as checkpoint.json.
public struct TrainingState: Codable, Equatable, Sendable {
    public var options: TrainOptions
    /// Epochs completed (the next epoch to run).
    public var epochsDone: Int
    public var optimizerStep: Int
    public var bestTop1: Double
    public var history: [EpochMetrics]
}

/// A training checkpoint: model parameters under their official names, `optimizer.exp_avg.<name>`,
/// `optimizer.exp_avg_sq.<name>`, `model_ema.<name>` when EMA is on, and the training state as JSON
/// in the safetensors metadata. One file, written atomically, so a crash leaves the previous one.
enum Checkpoint {
    static let fileName = "checkpoint.safetensors"

    static func save(model: VimModel, optimizer: AdamW, ema: [String: Tensor]?, state: TrainingState,
                     to path: String) throws {
        var file = TensorFile()
        for (name, p) in model.namedParameters() { file.append(name, StoredTensor(shape: p.shape, floats: p.array)) }
        for (name, p) in model.namedParameters() {
            file.append("optimizer.exp_avg.\(name)", StoredTensor(shape: p.shape, floats: optimizer.m[name]!.array))
            file.append("optimizer.exp_avg_sq.\(name)", StoredTensor(shape: p.shape, floats: optimizer.v[name]!.array))
        }
        if let ema {
            for (name, p) in model.namedParameters() { file.append("model_ema.\(name)", StoredTensor(shape: p.shape, floats: ema[name]!.array)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let json = try encoder.encode(state)
        file.metadata["training_state"] = String(decoding: json, as: UTF8.self)
        try SafeTensors.write(file, to: path)
        try writeAtomically(json, to: URL(fileURLWithPath: path).deletingPathExtension().path + ".json")
    }

    /// `path` is a checkpoint file or a run directory (meaning its checkpoint).
    static func resolve(_ path: String) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            return (path as NSString).appendingPathComponent(fileName)
        }
        return path
    }

    static func load(_ path: String) throws -> (file: TensorFile, state: TrainingState) {
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["training_state"] else { throw TrainingError.notATrainingCheckpoint(path: path) }
        do {
            return (file, try JSONDecoder().decode(TrainingState.self, from: Data(json.utf8)))
        } catch {
            throw TrainingError.unreadableTrainingState(path: path, reason: "\(error)")
        }
    }
}
