import Foundation

/// mmseg's EncoderDecoder as hustvl/Vim's `seg/configs/vim/upernet/*.py` build it: the Vim
/// segmentation backbone (`VisionMambaSeg`: no class token, features after `outIndices`, a
/// four-level pyramid), mmseg 0.29's UPerHead on all four levels and an FCNHead on one.
public struct SegmentationConfig: Codable, Equatable, Sendable {
    /// The model's name (`upernet-vim-tiny`, …).
    public var name: String
    /// The backbone's shape; its `imgSize` is the crop the model runs on (512 for ADE20K) and its
    /// class token is never used (the official backbone deletes it). With `dyvm`, the DyVM
    /// segmentation backbone: pruning stages keep int(ratio · M) of all M patch tokens.
    public var backbone: VimConfig
    /// Blocks whose mixer output (`hidden_states`) becomes a feature, ascending; four of them.
    public var outIndices: [Int]
    /// EVA-02's VisionRotaryEmbeddingFast on the tokens before every block (`if_rope`), and on the
    /// residual stream too (`if_rope_residual`); `ropePretrainGrid` is its `pt_hw_seq_len`.
    public var rope = false
    /// Rotary embedding on the residual stream too (`if_rope_residual`).
    public var ropeResidual = false
    /// The rotary embedding's pre-training grid side (`pt_hw_seq_len`).
    public var ropePretrainGrid = 14
    /// The backbone's stochastic depth (VisionMamba's default 0.1, which the configs keep).
    public var dropPathRate = 0.1
    /// Classes of the label maps (150 for ADE20K).
    public var numClasses: Int
    /// UPerHead's `channels` and `pool_scales`.
    public var decodeChannels: Int
    /// UPerHead's pyramid pooling scales (`pool_scales`).
    public var poolScales = [1, 2, 3, 6]
    /// A DeiT (timm's VisionTransformer) backbone in place of Vim's, with the same pyramid; then
    /// `backbone` carries only the shape the rest of the pipeline reads (crop size, patch size,
    /// width, depth), which must agree with it.
    package var deit: DeiTConfig? = nil
    /// The FCN auxiliary head: its `channels`, the feature it reads (`in_index`), its loss weight.
    public var auxiliaryChannels = 256
    /// The pyramid level the FCN head reads (`in_index`).
    public var auxiliaryIndex = 2
    /// The FCN head's loss weight.
    public var auxiliaryLossWeight = 0.4
    /// Dropout2d before each head's classifier (`dropout_ratio`).
    public var dropoutRatio = 0.1

    /// A UperNet of `numClasses` classes on `backbone`, with features after the blocks `outIndices` and `decodeChannels` channels in the heads; the other settings keep the official defaults.
    public init(name: String, backbone: VimConfig, outIndices: [Int], numClasses: Int, decodeChannels: Int) {
        self.name = name
        self.backbone = backbone
        self.outIndices = outIndices
        self.numClasses = numClasses
        self.decodeChannels = decodeChannels
    }

    /// The crop the model runs on, for the backbone of either kind.
    public var cropSize: Int {
        get { backbone.imgSize }
        set { backbone.imgSize = newValue; deit?.imgSize = newValue }
    }

    /// Tokens a block of the backbone sees at first: the patches, and DeiT's class token.
    public var tokens: Int { deit?.tokens ?? backbone.numPatches }

    /// The side of the patch grid, and the four feature levels' sides (strides 4, 8, 16, 32 for
    /// patch 16; 4, 8, 16, 32 too for patch 8, whose grid is twice as fine).
    public var grid: Int { backbone.grid }
    /// The four feature levels' sides in pixels of the feature map.
    public var levelSides: [Int] {
        let g = grid
        return backbone.patchSize == 16 ? [4 * g, 2 * g, g, g / 2] : [2 * g, g, g / 2, g / 4]
    }

    /// Rejects what the official model cannot be built or run with, by the config's own names.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw ConfigError.invalidValue(model: name, field: field, value: "\(value)", allowed: allowed) }
        }
        var b = backbone
        b.name = name
        try b.validate()
        try check(b.fusion == nil, "backbone", "Famba-V fusion", "a Vim or DyVM backbone")
        if let deit {
            try check(deit.imgSize == b.imgSize && deit.patchSize == b.patchSize && deit.embedDim == b.embedDim && deit.depth == b.depth,
                      "deit", "\(deit.imgSize) px, patch \(deit.patchSize), width \(deit.embedDim), depth \(deit.depth)",
                      "the backbone's \(b.imgSize) px, patch \(b.patchSize), width \(b.embedDim), depth \(b.depth)")
            try check(b.dyvm == nil && !rope, "deit", "with DyVM or RoPE", "a plain DeiT")
            try check(dropPathRate == 0, "drop_path_rate", dropPathRate, "0 with a DeiT backbone (it has no stochastic depth here)")
            try DeiTBackboneConfig(name: name, backbone: deit, outIndices: outIndices).validate()
        }
        // DyVM's segmentation backbone has neither a class token nor RoPE in any official config.
        try check(b.dyvm == nil || !rope, "if_rope", true, "off with DyVM")
        try check([8, 16].contains(b.patchSize) && b.stride == b.patchSize, "patch_size", b.patchSize,
                  "16 or 8, with stride equal to it (the pyramid of VisionMambaSeg)")
        let smallest = b.patchSize == 16 ? 2 : 4
        try check(grid % smallest == 0, "img_size", b.imgSize, "a multiple of \(smallest * b.patchSize) (the coarsest level pools the grid by \(smallest))")
        try checkOutIndices(outIndices, depth: b.depth, model: name)
        try check((1...255).contains(numClasses), "num_classes", numClasses, "1...255 (label maps are 8-bit, 255 ignored)")
        try check((1...65_536).contains(decodeChannels), "channels", decodeChannels, "1...65536")
        try check((1...65_536).contains(auxiliaryChannels), "auxiliary_head.channels", auxiliaryChannels, "1...65536")
        try check(!poolScales.isEmpty && poolScales.allSatisfy { (1...64).contains($0) }, "pool_scales", poolScales, "1...64 each")
        try check((0..<4).contains(auxiliaryIndex), "auxiliary_head.in_index", auxiliaryIndex, "0...3")
        try check(auxiliaryLossWeight >= 0 && auxiliaryLossWeight.isFinite, "auxiliary_head.loss_weight", auxiliaryLossWeight, "finite, at least 0")
        try check(dropoutRatio >= 0 && dropoutRatio < 1, "dropout_ratio", dropoutRatio, "[0, 1)")
        try check(dropPathRate >= 0 && dropPathRate < 1, "drop_path_rate", dropPathRate, "[0, 1)")
        if rope {
            // The official rotary table has one row per patch and is applied to every token of an
            // even-length sequence (an odd one would skip a class token this backbone lacks).
            try check(b.numPatches % 2 == 0, "if_rope", "a grid of \(grid)×\(grid)", "an even number of patches")
            try check(b.embedDim % 4 == 0, "embed_dim", b.embedDim, "a multiple of 4 with RoPE")
            try check((1...1024).contains(ropePretrainGrid), "pt_hw_seq_len", ropePretrainGrid, "1...1024")
        }
        try check(!ropeResidual || rope, "if_rope_residual", true, "only with if_rope")
    }
}

/// A pyramid's four feature blocks: ascending indices of blocks that exist.
func checkOutIndices(_ outIndices: [Int], depth: Int, model: String) throws {
    let ascending = zip(outIndices, outIndices.dropFirst()).allSatisfy { $0 < $1 } && outIndices.allSatisfy { (0..<depth).contains($0) }
    guard outIndices.count == 4, ascending else {
        throw ConfigError.invalidValue(model: model, field: "out_indices", value: "\(outIndices)",
                                       allowed: outIndices.count == 4 ? "ascending block indices in 0..<\(depth)" : "four block indices")
    }
}
