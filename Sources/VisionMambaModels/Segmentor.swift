import MambaNN
import MambaTensor

/// mmseg's `EncoderDecoder` with a Vim, DyVM or DeiT backbone, a UPerHead decoder and an FCN
/// auxiliary head, under the official state-dict names (`backbone.`, `decode_head.`, `auxiliary_head.`).
package final class Segmentor: Module {
    package let config: SegmentationConfig
    package let backbone: any PyramidBackbone
    package let decodeHead: UPerHead
    package let auxiliaryHead: FCNHead

    package init(config: SegmentationConfig) throws {
        try config.validate()
        self.config = config
        if let deit = config.deit {
            backbone = try DeiTSegmentationBackbone(config: DeiTBackboneConfig(name: config.name, backbone: deit, outIndices: config.outIndices))
        } else {
            backbone = try SegmentationBackbone(config: config)
        }
        let D = config.backbone.embedDim
        decodeHead = try UPerHead(inChannels: D, channels: config.decodeChannels, numClasses: config.numClasses,
                                  poolScales: config.poolScales, dropoutRatio: config.dropoutRatio)
        auxiliaryHead = try FCNHead(inChannels: D, channels: config.auxiliaryChannels, numClasses: config.numClasses,
                                    dropoutRatio: config.dropoutRatio)
    }

    package var children: [(String, Module)] {
        [("backbone", backbone), ("decode_head", decodeHead), ("auxiliary_head", auxiliaryHead)]
    }

    /// Every BatchNorm of the model (the pyramid's and the heads'), for synchronising them.
    package var batchNorms: [BatchNorm2d] { descendants.compactMap { $0 as? BatchNorm2d } }

    package func resetParameters(seed: UInt64) {
        backbone.resetParameters(seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0x5E6)
        decodeHead.resetParameters(using: &rng)
        auxiliaryHead.resetParameters(using: &rng)
    }

    /// What one forward pass gives: the four pyramid features, the decoder's logits at stride 4
    /// and the auxiliary head's at its level's stride.
    package struct Outputs {
        package var features: [Tensor]
        package var decodeLogits: Tensor
        package var auxiliaryLogits: Tensor?
        /// DyVM in training: each stage's keep decisions [B, M] and each block's gates [B, 2].
        package var decisions: [Tensor] = []
        package var gates: [Tensor] = []
    }

    /// The forward pass. `training` switches BatchNorm to batch statistics and, with a
    /// `dropoutSeeds` (one per image), Dropout2d on; the auxiliary head runs only when asked (training). A DyVM
    /// backbone trains on the random draws `noise` (`DyVMNoise.draw`).
    package func forward(_ images: Tensor, training: Bool = false, auxiliary: Bool = false, tape: Tape? = nil,
                        dropPath: DropPathDraw? = nil, dropoutSeeds: [UInt64]? = nil, noise: DyVMNoise? = nil,
                        trace: ForwardTrace? = nil) throws -> Outputs {
        let pass = try backbone.encode(images, training: training, tape: tape, dropPath: dropPath, noise: noise, trace: trace)
        let features = pass.features
        let decode = try decodeHead(features, training: training, dropoutSeeds: dropoutSeeds, tape: tape)
        let aux = auxiliary ? try auxiliaryHead(features[config.auxiliaryIndex], training: training,
                                                dropoutSeeds: dropoutSeeds?.map { $0 ^ 0xA0C }, tape: tape) : nil
        return Outputs(features: features, decodeLogits: decode, auxiliaryLogits: aux, decisions: pass.decisions, gates: pass.gates)
    }

    /// A DyVM backbone's random draws for one training step, each image's from its own seed;
    /// nil for Vim, which needs none.
    package func trainingNoise(sampleSeeds: [UInt64]) throws -> DyVMNoise? {
        guard let dyvm = config.backbone.dyvm else { return nil }
        return try DyVMNoise.draw(sampleSeeds: sampleSeeds, numPatches: config.backbone.numPatches,
                                  stages: dyvm.pruningLoc.count, depth: config.backbone.depth)
    }

    /// Logits at the input's resolution [B, K, H, W], as `EncoderDecoder.encode_decode` gives them
    /// (the decoder's output resized bilinearly, align_corners false).
    package func logits(_ images: Tensor) throws -> Tensor {
        let out = try forward(images).decodeLogits
        return try resizeBilinear(out, height: images.shape[2], width: images.shape[3], tape: nil)
    }

    /// The parts of the training loss, each [1], and their sum.
    package struct Loss {
        package var total: Tensor
        package var decode: Tensor
        /// Weighted, as mmseg reports `aux.loss_ce`.
        package var auxiliary: Tensor?
        /// DyVM's `token_ratio_loss` and `block_ratio_loss`, weighted.
        package var tokenRatio: Tensor?
        package var blockRatio: Tensor?
    }

    /// The training loss of mmseg: each head's logits resized to the labels, per-pixel
    /// cross-entropy ignoring 255 and averaged over all pixels, the auxiliary one weighted; with
    /// DyVM, its keep-ratio and gate-ratio terms too. labels: [B·H·W] class indices of the
    /// images' pixels.
    package func loss(_ outputs: Outputs, labels: [Int], height: Int, width: Int, tape: Tape?) throws -> Loss {
        func headLoss(_ logits: Tensor) throws -> Tensor {
            let resized = try resizeBilinear(logits, height: height, width: width, tape: tape)
            return try pixelCrossEntropy(resized, labels: labels, tape: tape)
        }
        let decode = try headLoss(outputs.decodeLogits)
        var loss = Loss(total: decode, decode: decode)
        if let auxLogits = outputs.auxiliaryLogits {
            loss.auxiliary = try scale(headLoss(auxLogits), by: Float(config.auxiliaryLossWeight), tape: tape)
            loss.total = try add(loss.total, loss.auxiliary!, tape: tape)
        }
        if let dyvm = config.backbone.dyvm, !outputs.decisions.isEmpty {
            let ratios = try dyvmRatioLosses(decisions: outputs.decisions, gates: outputs.gates, config: dyvm, tape: tape)
            (loss.tokenRatio, loss.blockRatio) = (ratios.token, ratios.block)
            loss.total = try add(loss.total, add(ratios.token, ratios.block, tape: tape), tape: tape)
        }
        return loss
    }
}
