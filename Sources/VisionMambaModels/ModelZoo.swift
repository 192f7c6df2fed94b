import Foundation

/// The registered Vim models (hustvl/Vim `vim/models_mamba.py`, every `@register_model`) under
/// their official names, plus short aliases. One literal table; nothing registers itself.
public enum ModelZoo {
    /// A classification model of the zoo: its official name, short aliases and shape.
    public struct Entry: Sendable {
        /// The official name (the one the released checkpoints carry).
        public let name: String
        /// Short names that resolve to it (`vim-tiny`, …).
        public let aliases: [String]
        /// The model's shape and settings.
        public let config: VimConfig
        /// The released weights this shape matches (Hugging Face file name), if any.
        public let weights: String?
        /// Where the released weights are published, if any.
        public let weightsURL: String?
    }

    /// `repository` is the Hugging Face model repository (hustvl's README links them).
    private static func vim(_ name: String, _ aliases: [String], dim: Int, stride: Int,
                            repository: String, weights: String) -> Entry {
        Entry(name: name, aliases: aliases,
              config: VimConfig(name: name, imgSize: 224, patchSize: 16, stride: stride, embedDim: dim,
                                depth: 24, numClasses: 1000),
              weights: weights, weightsURL: "https://huggingface.co/hustvl/\(repository)/resolve/main/\(weights)")
    }

    /// DyVM on a Vim backbone (NUS-HPC-AI-Lab/DyVM `DyVMTiny`/`DyVMSmall`/`DyVMBase`): stages
    /// before blocks 6, 12, 18 and the released scripts' keep ratios.
    private static func dyvm(_ name: String, _ aliases: [String], dim: Int, tokenKeep: Double, blockKeep: Double) -> Entry {
        var c = VimConfig(name: name, imgSize: 224, patchSize: 16, stride: 16, embedDim: dim, depth: 24, numClasses: 1000)
        c.dyvm = DyVMConfig(pruningLoc: [6, 12, 18], tokenKeepRatio: tokenKeep, blockKeepRatio: blockKeep)
        return Entry(name: name, aliases: aliases, config: c, weights: nil, weightsURL: nil)
    }

    /// Every classification model, Vim and DyVM, in size order (Famba-V fusion is a setting of
    /// any of them: `VimConfig.fusion`).
    public static let entries: [Entry] = [
        Entry(name: digits.name, aliases: [digits.name], config: digits, weights: nil, weightsURL: nil),
        vim("vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
            ["vim-tiny", "vim-t"], dim: 192, stride: 16, repository: "Vim-tiny-midclstok", weights: "vim_t_midclstok_76p1acc.pth"),
        vim("vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
            ["vim-tiny-stride8", "vim-tiny+", "vim-t+"], dim: 192, stride: 8, repository: "Vim-tiny-midclstok", weights: "vim_t_midclstok_ft_78p3acc.pth"),
        vim("vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
            ["vim-small", "vim-s"], dim: 384, stride: 16, repository: "Vim-small-midclstok", weights: "vim_s_midclstok_80p5acc.pth"),
        vim("vim_small_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
            ["vim-small-stride8", "vim-small+", "vim-s+"], dim: 384, stride: 8, repository: "Vim-small-midclstok", weights: "vim_s_midclstok_ft_81p6acc.pth"),
        // Vim-B's official name says "middle_cls_token", not "midclstok"; its divide flag is
        // misspelt in the official code and only the constructor default keeps it on.
        vim("vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2",
            ["vim-base", "vim-b"], dim: 768, stride: 16, repository: "Vim-base-midclstok", weights: "vim_b_midclstok_81p9acc.pth"),
        dyvm("DyVMTiny", ["dyvm-tiny", "dyvm-t"], dim: 192, tokenKeep: 0.9, blockKeep: 0.8),
        dyvm("DyVMSmall", ["dyvm-small", "dyvm-s"], dim: 384, tokenKeep: 0.7, blockKeep: 0.8),
        dyvm("DyVMBase", ["dyvm-base", "dyvm-b"], dim: 768, tokenKeep: 0.7, blockKeep: 0.7),
    ]

    /// The segmentation models of hustvl/Vim's `seg/configs/vim/upernet/` (UperNet on ADE20K at
    /// 512 px, 150 classes) under their config names plus short aliases.
    public struct SegmentationEntry: Sendable {
        /// The official config's name.
        public let name: String
        /// Short names that resolve to it (`upernet-vim-tiny`, …).
        public let aliases: [String]
        /// The segmentor's shape and settings.
        public let config: SegmentationConfig
    }

    private static func upernet(_ name: String, _ aliases: [String], dim: Int, rope: Bool) -> SegmentationEntry {
        let backbone = VimConfig(name: name, imgSize: 512, patchSize: 16, stride: 16, embedDim: dim, depth: 24, numClasses: 150)
        var c = SegmentationConfig(name: name, backbone: backbone, outIndices: [5, 11, 17, 23], numClasses: 150, decodeChannels: dim)
        (c.rope, c.ropeResidual) = (rope, rope)
        // The small config leaves `if_divide_out` unset, which is False at the commit that added
        // the segmentation code: its two scan directions are summed, not averaged.
        c.backbone.divideOut = !rope
        return SegmentationEntry(name: name, aliases: aliases, config: c)
    }

    /// DyVM's segmentation backbone (NUS-HPC-AI-Lab/DyVM `Semantic_Segmentation`, its 160k
    /// configs' flags: no class token, no RoPE, directions averaged): pruning before blocks 6, 12
    /// and 18 keeping 0.8, 0.8² and 0.8³ of the tokens, the ratio losses at the weights its
    /// backbone hard-codes (20 and 20, gate target 0.8, divided by the three stages).
    private static func upernetDyVM(_ name: String, _ aliases: [String], dim: Int) -> SegmentationEntry {
        var c = upernet(name, aliases, dim: dim, rope: false).config
        var dyvm = DyVMConfig(pruningLoc: [6, 12, 18], tokenKeepRatio: 0.8, blockKeepRatio: 0.8)
        (dyvm.tokenPruningWeight, dyvm.blockPruningWeight, dyvm.tokenRatioDivisor) = (20, 20, 3)
        c.backbone.dyvm = dyvm
        return SegmentationEntry(name: name, aliases: aliases, config: c)
    }

    /// DeiT-T (timm's `deit_tiny_patch16_224`) under the same pyramid and heads: features after
    /// blocks 3, 5, 7 and 11, no stochastic depth; the baseline of the Vim paper's comparisons.
    private static func upernetDeiT(_ name: String, _ aliases: [String]) -> SegmentationEntry {
        let backbone = VimConfig(name: name, imgSize: 512, patchSize: 16, stride: 16, embedDim: 192, depth: 12, numClasses: 150)
        var c = SegmentationConfig(name: name, backbone: backbone, outIndices: [3, 5, 7, 11], numClasses: 150, decodeChannels: 192)
        c.deit = DeiTConfig(name: name, imgSize: 512, patchSize: 16, embedDim: 192, depth: 12, numHeads: 3, numClasses: 150)
        c.dropPathRate = 0
        return SegmentationEntry(name: name, aliases: aliases, config: c)
    }

    /// The small segmentor the bundled digit scenes train in minutes: 64 px scenes, patch 8 (the
    /// pyramid's patch-8 form, strides 4 to 32), 4 blocks of width 64, features after every
    /// block, 11 classes (background and the ten digits).
    public static let digitScenes: SegmentationConfig = {
        let backbone = VimConfig(name: "upernet-vim-digits", imgSize: 64, patchSize: 8, stride: 8, embedDim: 64, depth: 4, numClasses: 11)
        var c = SegmentationConfig(name: "upernet-vim-digits", backbone: backbone, outIndices: [0, 1, 2, 3], numClasses: 11, decodeChannels: 64)
        c.auxiliaryChannels = 32
        return c
    }()

    /// Every segmentation model: UperNet on Vim, DyVM and DeiT backbones.
    public static let segmentationEntries: [SegmentationEntry] = [
        SegmentationEntry(name: digitScenes.name, aliases: [digitScenes.name], config: digitScenes),
        upernet("upernet_vim_tiny_24_512_slide_60k", ["upernet-vim-tiny", "upernet-vim-t"], dim: 192, rope: false),
        upernet("upernet_vim_small_24_512_slide_60k", ["upernet-vim-small", "upernet-vim-s"], dim: 384, rope: true),
        upernetDyVM("upernet-dyvm-tiny", ["upernet-dyvm-tiny", "upernet-dyvm-t"], dim: 192),
        upernetDyVM("upernet-dyvm-small", ["upernet-dyvm-small", "upernet-dyvm-s"], dim: 384),
        upernetDeiT("upernet_deit_tiny_12_512", ["upernet-deit-tiny", "upernet-deit-t"]),
    ]

    /// The segmentation entry for a config name or alias (spelt as `entry(named:)` takes them).
    public static func segmentationEntry(named name: String) throws -> SegmentationEntry {
        let alias = name.lowercased().replacingOccurrences(of: "_", with: "-")
        if let e = segmentationEntries.first(where: { $0.name == name || $0.aliases.contains(alias) }) { return e }
        throw ConfigError.unknownModel(name: name, valid: segmentationEntries.flatMap { $0.aliases.prefix(1) })
    }

    /// Whether a name is one of the segmentation models.
    public static func isSegmentation(_ name: String) -> Bool { (try? segmentationEntry(named: name)) != nil }

    /// The entry for an official name or alias. Aliases are case-insensitive and take timm's
    /// underscore spelling too (`vim_tiny` is `vim-tiny`).
    public static func entry(named name: String) throws -> Entry {
        let alias = name.lowercased().replacingOccurrences(of: "_", with: "-")
        if let e = entries.first(where: { $0.name == name || $0.aliases.contains(alias) }) { return e }
        throw ConfigError.unknownModel(name: name, valid: entries.flatMap { $0.aliases.prefix(2) })
    }

    /// The shape of the classification model `name` (official name or alias).
    ///
    /// ```swift
    /// let tiny = try ModelZoo.config(named: "vim-tiny")   // 24 blocks, width 192
    /// ```
    public static func config(named name: String) throws -> VimConfig { try entry(named: name).config }

    /// The small model the bundled digits train (8 px, patch 2, 4 blocks of width 64).
    public static let digits = VimConfig(name: "vim-digits", imgSize: 8, patchSize: 2, stride: 2, embedDim: 64, depth: 4, numClasses: 10)

    /// What a `--model` argument names: a fixture-format JSON file or a zoo name.
    public static func resolve(_ model: String) throws -> VimConfig {
        if model.hasSuffix(".json") { return try VimConfig.load(json: model) }
        return try config(named: model)
    }
}
