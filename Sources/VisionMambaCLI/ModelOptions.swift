import ArgumentParser
import Foundation
import MambaTensor
import VisionMamba

extension PositionEmbeddingInterpolation: ExpressibleByArgument {}

/// `--model`/`--config`, `--weights` and the resolution flags, shared by forward and predict.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model name or alias from the zoo (vision-mamba models).")
    var model: String?

    @Option(help: "A fixture-format JSON file describing the model (instead of --model).")
    var config: String?

    @Option(help: "Weights: a PyTorch .pth checkpoint or a .safetensors file.")
    var weights: String

    @Option(name: .customLong("img-size"), help: "Run at this resolution; pos_embed is interpolated bicubically.")
    var imgSize: Int?

    @Option(name: .customLong("pos-embed-interp"),
            help: "How pos_embed moves to a new grid: cls-aware (class row from its real index) or official (row 0 as class row, as the official main.py).")
    var posEmbedInterp: PositionEmbeddingInterpolation = .classTokenAware

    @Flag(name: .customLong("non-strict"), help: "Load what fits; ignore missing and unexpected tensors.")
    var nonStrict = false

    func validate() throws {
        if (model == nil) == (config == nil) { throw ValidationError("give exactly one of --model or --config") }
        try validateSizes(imgSize: imgSize, patchSize: nil)
    }

    func makeConfig() throws -> VimConfig {
        if let config { return try VimConfig.load(json: config) }
        return try ModelZoo.resolve(model!)
    }

    /// The model with its weights loaded, moved to --img-size if given, once its passes over
    /// `batch` images are estimated to fit in memory (`VimConfig.checkFitsInMemory`).
    func makeModel(batch: Int, training: Bool = false, keepsBlockOutputs: Bool = false) throws -> VimModel {
        let config = try makeConfig()
        var target = config
        if let imgSize { target.imgSize = imgSize }
        try target.checkFitsInMemory(batch: batch, training: training, keepsBlockOutputs: keepsBlockOutputs)
        let net = try VimModel(config: config)
        let skipped = try net.load(weights: weights, strict: !nonStrict)
        if nonStrict && !skipped.isEmpty {
            FileHandle.standardError.write(Data("warning: \(skipped)\n".utf8))
        }
        if let imgSize { try net.setImageSize(imgSize, interpolation: posEmbedInterp) }
        return net
    }
}
