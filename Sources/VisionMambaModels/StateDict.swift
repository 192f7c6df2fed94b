import MambaIO
import Foundation
import MambaNN
import MambaTensor

extension StoredTensor: StateDictValue {}

extension VimModel {
    /// Loads weights from a `.pth` or `.safetensors` file; strict unless told otherwise.
    @discardableResult
    package func load(weights path: String, strict: Bool = true, ema: Bool = false) throws -> StateDictReport {
        try load(stateDict: try Self.modelTensors(path, ema: ema), strict: strict, source: path)
    }

    /// The model's tensors in a weights file. A training checkpoint of this package also holds
    /// `optimizer.*` and `model_ema.*` tensors: the model's own (or, with `ema`, the EMA's) are kept.
    package static func modelTensors(_ path: String, ema: Bool = false) throws -> [String: StoredTensor] {
        let file = try CheckpointFile.readStateDict(path)
        let isTraining = file.metadata["training_state"] != nil || file.names.contains { $0.hasPrefix("optimizer.") }
        guard isTraining else {
            if ema { throw StateDictError.missingEMA(source: path) }
            return file.tensors
        }
        var out: [String: StoredTensor] = [:]
        for (name, t) in file.tensors {
            if ema {
                if name.hasPrefix("model_ema.") { out[String(name.dropFirst("model_ema.".count))] = t }
            } else if !name.hasPrefix("optimizer.") && !name.hasPrefix("model_ema.") {
                out[name] = t
            }
        }
        if ema && out.isEmpty { throw StateDictError.missingEMA(source: path) }
        return out
    }

    /// Loads weights for fine-tuning, as the official main.py `--finetune` does (spec/vim.md §5.13):
    /// a head of another class count is dropped (the new head keeps its initialisation), and
    /// pos_embed is interpolated to this model's grid; everything else must fit.
    /// Returns the names left at their initial values.
    @discardableResult
    package func loadForFineTuning(weights path: String, interpolation: PositionEmbeddingInterpolation) throws -> [String] {
        var tensors = try Self.modelTensors(path)
        let shapes = Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.0, $0.1.shape) })
        var kept: [String] = []
        for name in ["head.weight", "head.bias"] where tensors[name] != nil && tensors[name]!.shape != shapes[name] {
            tensors.removeValue(forKey: name)
            kept.append(name)
        }
        if let pos = tensors["pos_embed"], pos.shape != posEmbed.shape {
            // [1, G² + 1, D] of some grid G: anything else cannot be interpolated.
            let rows = pos.shape.count == 3 ? pos.shape[1] : 0, D = config.embedDim
            let side = rows >= 2 ? Int(Double(rows - 1).squareRoot()) : 0
            guard pos.shape.count == 3, pos.shape[0] == 1, pos.shape[2] == D, side >= 1, side * side == rows - 1 else {
                throw StateDictError.mismatch(source: path, problems: [.shapeMismatch(key: "pos_embed", expected: posEmbed.shape, found: pos.shape)])
            }
            // The checkpoint's own grid, with its class token where this model family puts it.
            var source = config
            source.imgSize = side                                   // any size whose grid is `side` with patch = stride = 1
            source.patchSize = 1
            source.stride = 1
            source.fusion = nil                                     // only the grid matters here
            source.dyvm = nil
            let rowsOut = try interpolatePositionEmbedding(pos.floats(), config: source, newGrid: config.grid, mode: interpolation)
            tensors["pos_embed"] = StoredTensor(shape: [1, config.tokens, D], floats: rowsOut)
        }
        try load(stateDict: tensors, strict: false, source: path)
        let missing = Set(shapes.keys).subtracting(tensors.keys)
        return kept + missing.sorted().filter { !kept.contains($0) }
    }

    /// The parameters as a tensor file under their official names, in state_dict order.
    package func stateDict() -> TensorFile {
        var file = TensorFile()
        for (name, t) in namedParameters() { file.append(name, StoredTensor(shape: t.shape, floats: t.array)) }
        return file
    }
}
