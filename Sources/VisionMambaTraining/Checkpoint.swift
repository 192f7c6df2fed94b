import Foundation
import MambaIO
import MambaNN
import MambaTensor
import VisionMambaModels

/// What a run has done so far; stored inside the checkpoint (safetensors metadata) and beside it
/// as checkpoint.json.
package struct TrainingState: Codable, Equatable, Sendable {
    package var options: TrainOptions
    /// Epochs completed (the next epoch to run).
    package var epochsDone: Int
    package var optimizerStep: Int
    package var bestTop1: Double
    package var history: [EpochMetrics]
    /// The dataset's class names, in label order (absent in checkpoints of older releases).
    package var classNames: [String]? = nil
    /// How an image file becomes this model's input: the dataset's validation transform.
    package var transform: InputTransform? = nil
}

/// A training checkpoint: model parameters under their official names, `optimizer.exp_avg.<name>`,
/// `optimizer.exp_avg_sq.<name>`, `model_ema.<name>` when EMA is on, and the training state as JSON
/// in the safetensors metadata. One file, written atomically, so a crash leaves the previous one.
package enum Checkpoint {
    static let fileName = "checkpoint.safetensors"

    /// The model's state dict (parameters and buffers), its optimizer moments and EMA, and
    /// `state` as JSON (a classification `TrainingState` or a `SegmentationTrainingState`).
    static func save<State: Encodable>(model: any Module, optimizer: AdamW, ema: [String: Tensor]?, state: State,
                                       to path: String) throws {
        var file = TensorFile()
        for (name, p) in model.namedState() { file.append(name, StoredTensor(shape: p.shape, floats: p.array)) }
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

    /// The training state of the checkpoint a resumed run starts from: `path` is a checkpoint
    /// file or a run folder (meaning its checkpoint).
    package static func trainingState(_ path: String) throws -> TrainingState {
        try load(resolve(path)).state
    }

    /// `path` is a checkpoint file or a run directory (meaning its checkpoint).
    static func resolve(_ path: String) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            return (path as NSString).appendingPathComponent(fileName)
        }
        return path
    }

    /// The checkpoint's tensors and its training state, checked by `TrainingState.validate(path:)`.
    static func load(_ path: String) throws -> (file: TensorFile, state: TrainingState) {
        if try CheckpointFile.isTorchFile(path) { throw TrainingError.notATrainingCheckpoint(path: path) }
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["training_state"] else { throw TrainingError.notATrainingCheckpoint(path: path) }
        return (file, try state(json: json, path: path))
    }

    /// The training state a checkpoint at `path` stores as `json`, decoded and validated.
    static func state(json: String, path: String) throws -> TrainingState {
        let stored: StoredTrainingState
        do {
            stored = try JSONDecoder().decode(StoredTrainingState.self, from: Data(json.utf8))
        } catch {
            throw TrainingError.unreadableTrainingState(path: path, reason: "\(error)")
        }
        // Missing options take their defaults when decoded (older checkpoints), but the seed is
        // the run's random state: every draw of a resumed run derives from it, and a default
        // would continue another run's sequence.
        guard stored.hasSeed else {
            throw TrainingError.invalidCheckpointState(path: path, field: "options.seed", value: "missing",
                                                       allowed: "the run's random seed, an unsigned 64-bit integer")
        }
        try stored.state.validate(path: path)
        return stored.state
    }

    /// The training state of a checkpoint file of this package, validated; nil when the file has
    /// none (plain weights).
    package static func storedState(_ path: String) throws -> TrainingState? {
        if try CheckpointFile.isTorchFile(path) { return nil }
        let file = try SafeTensors.read(path)
        guard let json = file.metadata["training_state"] else { return nil }
        return try state(json: json, path: path)
    }
}

/// A stored training state, and whether its options hold the key `seed` (whatever its value:
/// `TrainOptions` decodes that).
private struct StoredTrainingState: Decodable {
    var state: TrainingState
    var hasSeed: Bool

    private enum StateKeys: String, CodingKey { case options }
    private enum OptionKeys: String, CodingKey { case seed }

    init(from decoder: Decoder) throws {
        state = try TrainingState(from: decoder)
        let options = try decoder.container(keyedBy: StateKeys.self).nestedContainer(keyedBy: OptionKeys.self, forKey: .options)
        hasSeed = options.contains(.seed)
    }
}

extension TrainingState {
    /// Rejects a stored state that no run could have written (an edited or damaged checkpoint)
    /// before anything uses it: the options as `TrainOptions.validate()` checks them, epochsDone
    /// within the run's epochs, a non-negative step count, a top-1 that is a percentage, and one
    /// history entry per finished epoch, numbered in order. Errors name the field as stored.
    func validate(path: String) throws {
        func refuse(_ field: String, _ value: Any, _ allowed: String) -> TrainingError {
            .invalidCheckpointState(path: path, field: field, value: "\(value)", allowed: allowed)
        }
        do {
            try options.validate()
        } catch let TrainingError.invalidOption(name, value, allowed) {
            throw refuse("options." + name, value, allowed)
        } catch let ConfigError.invalidValue(_, field, value, allowed) {
            throw refuse("options.model." + field, value, allowed)
        }
        // Comparisons are written so that NaN fails them.
        guard (0...options.epochs).contains(epochsDone) else { throw refuse("epochsDone", epochsDone, "0...\(options.epochs) (the run's epochs)") }
        guard optimizerStep >= 0 else { throw refuse("optimizerStep", optimizerStep, "at least 0") }
        guard bestTop1 >= 0 && bestTop1 <= 100 else { throw refuse("bestTop1", bestTop1, "0...100") }
        guard history.count == epochsDone else {
            throw refuse("history", "\(history.count) entries", "one per finished epoch (\(epochsDone))")
        }
        if let i = history.indices.first(where: { history[$0].epoch != $0 }) {
            throw refuse("history[\(i)].epoch", history[i].epoch, "\(i) (entries in epoch order)")
        }
        if let classNames, classNames.count != options.model.numClasses {
            throw refuse("classNames", "\(classNames.count) names", "one per class of the model (\(options.model.numClasses))")
        }
        try transform?.validate(source: path)
    }
}
