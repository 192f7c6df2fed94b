import Foundation
import MambaIO
import MambaNN
import MambaTensor

/// A DeiT as a dense-prediction backbone with the pyramid of the Vim segmentation backbone: the
/// outputs of the `outIndices` blocks, class token dropped, as [B, D, G, G] maps, then fpn1 (×4),
/// fpn2 (×2), fpn3 (identity) and fpn4 (max pool 2) for strides 4, 8, 16 and 32. It is the DeiT-T
/// baseline of the Vim paper's high-resolution comparison (`upernet-deit-tiny`).
package struct DeiTBackboneConfig: Codable, Equatable, Sendable {
    package var name: String
    /// The DeiT's shape; its `imgSize` is the size the backbone runs at, its head is not built.
    package var backbone: DeiTConfig
    /// Blocks whose outputs become features, ascending; four of them.
    package var outIndices: [Int]

    package init(name: String, backbone: DeiTConfig, outIndices: [Int]) {
        self.name = name
        self.backbone = backbone
        self.outIndices = outIndices
    }

    package var grid: Int { backbone.grid }
    /// The four levels' sides: 4G, 2G, G, G / 2.
    package var levelSides: [Int] { [4 * grid, 2 * grid, grid, grid / 2] }

    package func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw ConfigError.invalidValue(model: name, field: field, value: "\(value)", allowed: allowed) }
        }
        var b = backbone
        b.name = name
        try b.validate()
        try check(b.patchSize == 16, "patch_size", b.patchSize, "16 (the pyramid of strides 4 to 32)")
        try check(grid % 2 == 0, "img_size", b.imgSize, "a multiple of 32 (the coarsest level pools the grid by 2)")
        try checkOutIndices(outIndices, depth: b.depth, model: name)
    }
}

/// The DeiT backbone with its pyramid under timm's names (`cls_token`, `pos_embed`,
/// `patch_embed.proj`, `blocks.<i>`) plus `fpn1` … `fpn4` as the Vim backbone names them.
package final class DeiTSegmentationBackbone: Module {
    package let config: DeiTBackboneConfig
    package let patchEmbed: DeiTPatchEmbed
    package let clsToken: Tensor                 // cls_token [1, 1, D]
    package let posEmbed: Tensor                 // pos_embed [1, T, D]
    package let blocks: [DeiTBlock]
    package let pyramid: [PyramidLevel]          // fpn1 … fpn4

    package init(config: DeiTBackboneConfig) throws {
        try config.validate()
        self.config = config
        let c = config.backbone
        patchEmbed = try DeiTPatchEmbed(config: c)
        clsToken = try Tensor(zeros: [1, 1, c.embedDim])
        posEmbed = try Tensor(zeros: [1, c.tokens, c.embedDim])
        blocks = try (0..<c.depth).map { _ in try DeiTBlock(config: c) }
        pyramid = try [PyramidLevel.Kind.upsample4, .upsample2, .identity, .maxPool(2)].map { try PyramidLevel($0, channels: c.embedDim) }
    }

    package var ownParameters: [(String, Tensor)] { [("cls_token", clsToken), ("pos_embed", posEmbed)] }
    package var children: [(String, Module)] {
        [("patch_embed", patchEmbed as Module)] + blocks.enumerated().map { ("blocks.\($0.offset)", $0.element as Module) }
            + pyramid.enumerated().map { ("fpn\($0.offset + 1)", $0.element as Module) }
    }

    /// timm's DeiT init for the transformer (see `DeiT.resetParameters`), PyTorch's for the pyramid.
    package func resetParameters(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        resetTransformer(patchEmbed: patchEmbed, posEmbed: posEmbed, clsToken: clsToken, blocks: blocks, using: &rng)
        for level in pyramid { level.resetParameters(using: &rng) }
    }

    /// Throws unless images are [B, channels, img_size, img_size].
    package func checkInput(shape: [Int]) throws {
        let c = config.backbone
        guard shape.count == 4, shape[0] >= 1, shape[1] == c.inChannels, shape[2] == c.imgSize, shape[3] == c.imgSize else {
            throw ConfigError.inputShapeMismatch(model: config.name, channels: c.inChannels, size: c.imgSize, found: shape)
        }
    }

    /// The four pyramid features [B, D, side, side] (`levelSides`) of normalised images. With
    /// `training`, the pyramid's BatchNorm uses batch statistics.
    package func callAsFunction(_ images: Tensor, training: Bool = false, tape: Tape? = nil) throws -> [Tensor] {
        try checkInput(shape: images.shape)
        let B = images.shape[0], G = config.grid, M = config.backbone.numPatches
        var x = try patchEmbed.proj.tokens(images, tape: tape)                         // [B, M, D]
        x = try insertToken(x, token: clsToken, at: 0, tape: tape)                     // [B, T, D]
        x = try add(x, selectSamples(posEmbed, [Int](repeating: 0, count: B), tape: tape), tape: tape)
        let patches = [[Int]](repeating: Array(1...M), count: B)
        var features: [Tensor] = []
        for (i, block) in blocks.enumerated() {
            x = try block(x, tape: tape)
            if config.outIndices.contains(i) {
                // The class token is dropped; the patch rows are the G × G grid, row-major.
                features.append(try tokensToChannels(gatherRows(x, index: patches, tape: tape), height: G, width: G, tape: tape))
            }
            if i == config.outIndices.last { break }   // later blocks feed no feature
        }
        return try zip(features, pyramid).map { try $1($0, training: training, tape: tape) }
    }

    /// Starts the transformer from a DeiT classification checkpoint (timm's released `.pth` or
    /// safetensors): `head.*` and `norm.*` are dropped and pos_embed is resampled to this grid.
    /// Returns the tensors the checkpoint did not provide (the pyramid).
    @discardableResult
    package func loadClassificationWeights(_ path: String) throws -> [String] {
        var tensors = try VimModel.modelTensors(path)
        for name in tensors.keys where name.hasPrefix("head.") || name.hasPrefix("norm.") { tensors.removeValue(forKey: name) }
        let c = config.backbone, D = c.embedDim
        if let pos = tensors["pos_embed"], pos.shape != posEmbed.shape {
            let rows = pos.shape.count == 3 && pos.shape[0] == 1 && pos.shape[2] == D ? pos.shape[1] : 0
            let side = rows >= 2 ? Int(Double(rows - 1).squareRoot()) : 0
            guard side >= 1, side * side == rows - 1 else {
                throw StateDictError.mismatch(source: path, problems: [.shapeMismatch(key: "pos_embed", expected: posEmbed.shape, found: pos.shape)])
            }
            let moved = try resamplePositionEmbedding(pos.floats(), embedDim: D, grid: side, newGrid: c.grid)
            tensors["pos_embed"] = StoredTensor(shape: posEmbed.shape, floats: moved)
        }
        let report = try load(stateDict: tensors, strict: false, source: path)
        if !report.unexpected.isEmpty {
            throw StateDictError.mismatch(source: path, problems: report.unexpected.map { .unexpectedKey(key: $0, found: tensors[$0]?.shape ?? []) })
        }
        return report.missing
    }
}
