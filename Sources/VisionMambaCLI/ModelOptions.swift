import ArgumentParser
import Foundation
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

extension PositionEmbeddingInterpolation: ExpressibleByArgument {}

/// `--weights` and, for released weights, `--model`/`--config`, and the resolution flags; shared
/// by forward, predict and features.
struct ModelOptions: ParsableArguments {
    @Option(help: "Weights: a training checkpoint of this package (it describes its model), a PyTorch .pth or a .safetensors file.")
    var weights: String

    @Option(help: "Model name or alias from the zoo (see `vision-mamba models`), needed for released weights; default: the model a training checkpoint stores.")
    var model: String?

    @Option(help: "A fixture-format JSON file describing the model (instead of --model).")
    var config: String?

    @Option(name: .customLong("img-size"), help: "Run at this resolution; pos_embed is interpolated bicubically.")
    var imgSize: Int?

    @Option(name: .customLong("pos-embed-interp"),
            help: "How pos_embed moves to a new grid: cls-aware (class row from its real index) or official (row 0 as class row, as the official main.py).")
    var posEmbedInterp: PositionEmbeddingInterpolation = .classTokenAware

    @Flag(name: .customLong("non-strict"), help: "Load what fits; ignore missing and unexpected tensors.")
    var nonStrict = false

    func validate() throws {
        if model != nil && config != nil { throw ValidationError("give --model or --config, not both") }
        try validateSizes(imgSize: imgSize, patchSize: nil)
    }

    /// The model the weights hold, with its class names and input transform.
    func describe() throws -> ModelDescription {
        let given: VimConfig? = try config.map(VimConfig.load(json:)) ?? model.map(ModelZoo.resolve)
        do {
            var description = try ModelDescription(weights: weights, config: given)
            if let imgSize { description.transform.size = imgSize }   // the model is moved in makeModel
            return description
        } catch TrainingError.notATrainingCheckpoint {
            throw ValidationError("give --model or --config: \(weights) holds weights only, not a training checkpoint that names its model")
        }
    }

    /// The model with its weights loaded, moved to --img-size if given, once its passes over
    /// `batch` images are estimated to fit in memory (`VimConfig.checkFitsInMemory`).
    func makeModel(_ description: ModelDescription, batch: Int, training: Bool = false, keepsBlockOutputs: Bool = false) throws -> VimModel {
        var target = description.config
        if let imgSize { target.imgSize = imgSize }
        try target.checkFitsInMemory(batch: batch, training: training, keepsBlockOutputs: keepsBlockOutputs)
        let net = try VimModel(config: description.config)
        let skipped = try net.load(weights: weights, strict: !nonStrict)
        if nonStrict && !skipped.isEmpty {
            FileHandle.standardError.write(Data("warning: \(skipped)\n".utf8))
        }
        if let imgSize { try net.setImageSize(imgSize, interpolation: posEmbedInterp) }
        return net
    }
}
