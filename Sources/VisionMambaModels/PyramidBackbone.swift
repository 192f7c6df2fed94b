import MambaNN
import MambaTensor

/// What a segmentor's backbone gives its heads: the four pyramid levels of a batch of images
/// (strides 4, 8, 16 and 32). The Vim and DyVM backbone (`SegmentationBackbone`) is one, DeiT's
/// (`DeiTSegmentationBackbone`) another; the segmentor and its trainer see only this.
package protocol PyramidBackbone: Module {
    /// One pass: the four levels and, for DyVM in training, its decisions and gates. `noise`
    /// feeds DyVM's random decisions in training; `trace` gets its records.
    func encode(_ images: Tensor, training: Bool, tape: Tape?, dropPath: DropPathDraw?,
                noise: DyVMNoise?, trace: ForwardTrace?) throws -> SegmentationBackbone.Pass
    /// Starts the backbone from a classification checkpoint; returns the tensors it lacked.
    func loadClassificationWeights(_ path: String, interpolation: PositionEmbeddingInterpolation) throws -> [String]
    /// The official initialisation without pretrained weights.
    func resetParameters(seed: UInt64)
}

extension PyramidBackbone {
    /// The four pyramid features [B, D, side, side] of normalised images, in evaluation mode.
    package func features(_ images: Tensor) throws -> [Tensor] {
        try encode(images, training: false, tape: nil, dropPath: nil, noise: nil, trace: nil).features
    }

    @discardableResult
    package func loadClassificationWeights(_ path: String) throws -> [String] {
        try loadClassificationWeights(path, interpolation: .classTokenAware)
    }
}

extension SegmentationBackbone: PyramidBackbone {}

extension DeiTSegmentationBackbone: PyramidBackbone {
    /// DeiT has neither DyVM's draws nor stochastic depth here; asking for them is an error.
    package func encode(_ images: Tensor, training: Bool, tape: Tape?, dropPath: DropPathDraw?,
                       noise: DyVMNoise?, trace: ForwardTrace?) throws -> SegmentationBackbone.Pass {
        if noise != nil { throw ConfigError.requiresDyVM(model: config.name) }
        if let dropPath, dropPath.rate > 0 {
            throw ConfigError.invalidValue(model: config.name, field: "drop_path_rate", value: "\(dropPath.rate)", allowed: "0 (DeiT's backbone here has no stochastic depth)")
        }
        return SegmentationBackbone.Pass(features: try self(images, training: training, tape: tape))
    }

    /// timm's DeiT puts its class token first, so the interpolation mode does not matter.
    package func loadClassificationWeights(_ path: String, interpolation: PositionEmbeddingInterpolation) throws -> [String] {
        try loadClassificationWeights(path)
    }
}
