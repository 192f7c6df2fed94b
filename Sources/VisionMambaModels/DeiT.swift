import Foundation
import MambaNN
import MambaTensor

/// timm's `Attention`: qkv Linear(D, 3D) with bias, per-head softmax(Q Kᵀ · d^−½) V, proj Linear(D, D).
package final class DeiTAttention: Module {
    package let qkv: Linear
    package let proj: Linear
    package let numHeads: Int

    package init(dim: Int, numHeads: Int) throws {
        qkv = try Linear(dim, 3 * dim)
        proj = try Linear(dim, dim)
        self.numHeads = numHeads
    }

    package var children: [(String, Module)] { [("qkv", qkv), ("proj", proj)] }

    /// [B, T, D] → [B, T, D].
    package func callAsFunction(_ x: Tensor, tape: Tape?) throws -> Tensor {
        let headDim = qkv.inFeatures / numHeads
        // timm: self.scale = head_dim ** -0.5, computed in Python floats.
        let scale = Float(pow(Double(headDim), -0.5))
        return try proj(MambaTensor.attention(qkv(x, tape: tape), heads: numHeads, scale: scale, tape: tape), tape: tape)
    }
}

/// timm's `Mlp`: fc1 → GELU (exact, erf) → fc2.
package final class DeiTMlp: Module {
    package let fc1: Linear
    package let fc2: Linear

    package init(dim: Int, hidden: Int) throws {
        fc1 = try Linear(dim, hidden)
        fc2 = try Linear(hidden, dim)
    }

    package var children: [(String, Module)] { [("fc1", fc1), ("fc2", fc2)] }

    package func callAsFunction(_ x: Tensor, tape: Tape?) throws -> Tensor {
        try fc2(gelu(fc1(x, tape: tape), tape: tape), tape: tape)
    }
}

/// timm's ViT `Block`: x + attn(norm1(x)), then + mlp(norm2(·)) (no layer scale, no drop path).
package final class DeiTBlock: Module {
    package let norm1: LayerNorm
    package let attn: DeiTAttention
    package let norm2: LayerNorm
    package let mlp: DeiTMlp

    package init(config c: DeiTConfig) throws {
        norm1 = try LayerNorm(c.embedDim, eps: c.normEps)
        attn = try DeiTAttention(dim: c.embedDim, numHeads: c.numHeads)
        norm2 = try LayerNorm(c.embedDim, eps: c.normEps)
        mlp = try DeiTMlp(dim: c.embedDim, hidden: c.hiddenDim)
    }

    package var children: [(String, Module)] { [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp)] }

    package func callAsFunction(_ x: Tensor, tape: Tape?) throws -> Tensor {
        let x = try add(x, attn(norm1(x, tape: tape), tape: tape), tape: tape)
        return try add(x, mlp(norm2(x, tape: tape), tape: tape), tape: tape)
    }
}

/// timm's init of the transformer's parts, shared by the classifier and the segmentation
/// backbone: the patch conv PyTorch's default, pos_embed trunc_normal(0.02), cls_token
/// normal(1e-6), every Linear trunc_normal(0.02) with zero bias, LayerNorms 1 and 0.
func resetTransformer(patchEmbed: DeiTPatchEmbed, posEmbed: Tensor, clsToken: Tensor, blocks: [DeiTBlock], using rng: inout SeededGenerator) {
    patchEmbed.proj.resetParameters(using: &rng)
    posEmbed.fillTruncatedNormal(std: 0.02, using: &rng)
    clsToken.fillNormal(std: 1e-6, using: &rng)
    for block in blocks {
        for linear in [block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2] {
            linear.weight.fillTruncatedNormal(std: 0.02, using: &rng)
            linear.bias?.fill(0)
        }
        for n in [block.norm1, block.norm2] { n.weight.fill(1); n.bias.fill(0) }
    }
}

/// timm's `PatchEmbed` (`patch_embed.proj`): Conv2d(C, D, p, stride p).
package final class DeiTPatchEmbed: Module {
    package let proj: Conv2d
    package init(config c: DeiTConfig) throws {
        proj = try Conv2d(inChannels: c.inChannels, outChannels: c.embedDim, kernel: c.patchSize, stride: c.patchSize)
    }
    package var children: [(String, Module)] { [("proj", proj)] }
}

/// DeiT, as timm's `VisionTransformer` for `deit_tiny_patch16_224` and its family, under timm's
/// state-dict names: `cls_token` [1, 1, D], `pos_embed` [1, T, D], `patch_embed.proj`,
/// `blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`, `head`.
package final class DeiT: Module {
    package private(set) var config: DeiTConfig
    package let patchEmbed: DeiTPatchEmbed
    package let clsToken: Tensor
    package private(set) var posEmbed: Tensor
    package let blocks: [DeiTBlock]
    package let norm: LayerNorm
    package let head: Linear

    /// A model of `config` (checked by `validate()`), zero weights until `resetParameters` or a load.
    package init(config: DeiTConfig) throws {
        try config.validate()
        self.config = config
        patchEmbed = try DeiTPatchEmbed(config: config)
        clsToken = try Tensor(zeros: [1, 1, config.embedDim])
        posEmbed = try Tensor(zeros: [1, config.tokens, config.embedDim])
        blocks = try (0..<config.depth).map { _ in try DeiTBlock(config: config) }
        norm = try LayerNorm(config.embedDim, eps: config.normEps)
        head = try Linear(config.embedDim, config.numClasses)
    }

    // timm's state_dict order: cls_token, pos_embed, patch_embed, blocks, norm, head.
    package var ownParameters: [(String, Tensor)] { [("cls_token", clsToken), ("pos_embed", posEmbed)] }
    package var children: [(String, Module)] {
        [("patch_embed", patchEmbed as Module)] + blocks.enumerated().map { ("blocks.\($0.offset)", $0.element as Module) }
            + [("norm", norm), ("head", head)]
    }

    /// timm's default init (`init_weights` with mode ''): pos_embed trunc_normal(0.02), cls_token
    /// normal(1e-6), every Linear trunc_normal(0.02) with zero bias, LayerNorms 1 and 0, the patch
    /// conv PyTorch's default.
    package func resetParameters(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        resetTransformer(patchEmbed: patchEmbed, posEmbed: posEmbed, clsToken: clsToken, blocks: blocks, using: &rng)
        norm.weight.fill(1)
        norm.bias.fill(0)
        head.weight.fillTruncatedNormal(std: 0.02, using: &rng)
        head.bias?.fill(0)
    }

    /// Throws unless images are [B, in_chans, img_size, img_size] with B ≥ 1.
    package func checkInput(shape: [Int]) throws {
        let c = config
        guard shape.count == 4, shape[0] >= 1, shape[1] == c.inChannels, shape[2] == c.imgSize, shape[3] == c.imgSize else {
            throw ConfigError.inputShapeMismatch(model: c.name, channels: c.inChannels, size: c.imgSize, found: shape)
        }
    }

    /// Every token after the last block, before the final norm: [B, T, D] with the class token at
    /// index 0. `blockOutput(i, x)` receives each block's output. `features` lists blocks whose
    /// outputs are also returned (the segmentation backbone's pyramid inputs).
    package func forwardTokens(_ images: Tensor, tape: Tape? = nil, features: Set<Int> = [],
                              blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> (tokens: Tensor, features: [Tensor]) {
        try checkInput(shape: images.shape)
        var x = try patchEmbed.proj.tokens(images, tape: tape)                        // [B, M, D]
        x = try insertToken(x, token: clsToken, at: 0, tape: tape)                    // [B, T, D]
        x = try add(x, selectSamples(posEmbed, [Int](repeating: 0, count: images.shape[0]), tape: tape), tape: tape)
        var kept: [Tensor] = []
        for (i, block) in blocks.enumerated() {
            x = try block(x, tape: tape)
            blockOutput?(i, x)
            if features.contains(i) { kept.append(x) }
        }
        return (x, kept)
    }

    /// Logits [B, C]: the final norm on the class token, then the head (timm's global_pool 'token';
    /// LayerNorm works row by row, so norming the class row alone is the same).
    package func callAsFunction(_ images: Tensor, tape: Tape? = nil, blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        let tokens = try forwardTokens(images, tape: tape, blockOutput: blockOutput).tokens
        return try head(norm(selectToken(tokens, index: 0, tape: tape), tape: tape), tape: tape)
    }

    /// Moves the model to another input resolution: `pos_embed` resampled as timm's
    /// `resample_abs_pos_embed` (class row kept apart, the grid bicubic, align_corners false).
    package func setImageSize(_ size: Int) throws {
        var c = config
        c.imgSize = size
        try c.validate()
        guard c.grid != config.grid else { config = c; return }
        let rows = try resamplePositionEmbedding(posEmbed.array, embedDim: config.embedDim, grid: config.grid, newGrid: c.grid)
        posEmbed = try Tensor(shape: [1, c.tokens, c.embedDim], values: rows)
        config = c
    }
}

/// pos_embed rows [1 + G², D] (class row first) moved to a grid of `newGrid`: the class row kept,
/// the G × G rows resized bicubically (timm's `resample_abs_pos_embed` with one prefix token).
package func resamplePositionEmbedding(_ rows: [Float], embedDim D: Int, grid G: Int, newGrid: Int) throws -> [Float] {
    guard D >= 1, G >= 1 else { throw TensorError.invalidArgument(name: "grid", value: Double(G), allowed: "at least 1") }
    guard (1...65_536).contains(newGrid) else { throw TensorError.invalidArgument(name: "newGrid", value: Double(newGrid), allowed: "1...65536") }
    guard rows.count == (G * G + 1) * D else { throw TensorError.valueCountMismatch(tensor: "pos_embed", expected: (G * G + 1) * D, found: rows.count) }
    let grid = bicubicResize(Array(rows[D...]), inH: G, inW: G, channels: D, outH: newGrid, outW: newGrid)
    return Array(rows[0..<D]) + grid
}
