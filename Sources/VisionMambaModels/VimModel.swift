import Foundation
import MambaNN
import MambaTensor

/// `patch_embed`: the Conv2d that turns an image into patch tokens.
package final class PatchEmbed: Module {
    package let proj: Conv2d
    package init(config c: VimConfig) throws {
        proj = try Conv2d(inChannels: c.inChannels, outChannels: c.embedDim, kernel: c.patchSize, stride: c.stride)
    }
    package var children: [(String, Module)] { [("proj", proj)] }

    /// Patch tokens [B, M, D] (with `classToken` inserted at its index when given) plus the
    /// position embedding [1, T, D].
    func embed(_ images: Tensor, positions posEmbed: Tensor, classToken: (token: Tensor, index: Int)?, tape: Tape?) throws -> Tensor {
        var tokens = try proj.tokens(images, tape: tape)                                   // [B, M, D]
        if let classToken { tokens = try insertToken(tokens, token: classToken.token, at: classToken.index, tape: tape) }
        let positions = try selectSamples(posEmbed, [Int](repeating: 0, count: images.shape[0]), tape: tape)
        return try add(tokens, positions, tape: tape)
    }
}

/// Vision Mamba (`VisionMamba` of vim/models_mamba.py) in its released configuration:
/// patch embedding, class token inserted at `clsIndex`, absolute position embedding, `depth`
/// bidirectional blocks with fused add + RMSNorm (residual stream in float32), final RMSNorm on
/// residual + last mixer output, linear head on the class token.
package final class VimModel: Module {
    package private(set) var config: VimConfig
    package let patchEmbed: PatchEmbed
    package let clsToken: Tensor          // cls_token [1, 1, D]
    package private(set) var posEmbed: Tensor  // pos_embed [1, T, D]
    package let layers: [VimBlock]
    package let normF: RMSNorm            // norm_f
    package let head: Linear              // head [C, D] + bias
    /// DyVM's token scorers, one per pruning stage (`score_predictors.<s>`); empty for a plain Vim.
    package let scorePredictors: [TokenPredictor]

    /// A model of `config` (checked by `config.validate()`), with zero weights until
    /// `resetParameters(seed:)` or a load.
    package init(config: VimConfig) throws {
        try config.validate()
        self.config = config
        patchEmbed = try PatchEmbed(config: config)
        clsToken = try Tensor(zeros: [1, 1, config.embedDim])
        posEmbed = try Tensor(zeros: [1, config.tokens, config.embedDim])
        layers = try (0..<config.depth).map { i in
            let mixer: any TokenMixer = try config.dyvm.map { try DyVMMixer(config: config, dyvm: $0) } ?? MambaMixer(config: config)
            let fusion = config.fusion.flatMap { $0.blocks.contains(i) ? (tokens: $0.tokens, preserveOrder: $0.preserveOrder) : nil }
            return VimBlock(norm: try RMSNorm(config.embedDim, eps: config.normEps), mixer: mixer, fusion: fusion)
        }
        normF = try RMSNorm(config.embedDim, eps: config.normEps)
        head = try Linear(config.embedDim, config.numClasses)
        scorePredictors = try (config.dyvm?.pruningLoc ?? []).map { _ in try TokenPredictor(dim: config.embedDim) }
    }

    // state_dict order of the official model (spec/vim.md §1.5).
    package var ownParameters: [(String, Tensor)] { [("cls_token", clsToken), ("pos_embed", posEmbed)] }
    package var children: [(String, Module)] {
        [("patch_embed", patchEmbed), ("head", head)]
            + layers.enumerated().map { ("layers.\($0.offset)", $0.element as Module) }
            + [("norm_f", normF)]
            + scorePredictors.enumerated().map { ("score_predictors.\($0.offset)", $0.element as Module) }
    }

    /// The official initialisation's distributions (spec/vim.md §4), from a seeded generator.
    package func resetParameters(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let fanIn = Double(config.inChannels * config.patchSize * config.patchSize)
        patchEmbed.proj.weight.fillTruncatedNormal(std: (1 / fanIn).squareRoot() / 0.87962566103423978, using: &rng)
        patchEmbed.proj.bias?.fill(0)
        head.weight.fillTruncatedNormal(std: 0.02, using: &rng)
        head.bias!.fill(0)
        posEmbed.fillTruncatedNormal(std: 0.02, using: &rng)
        clsToken.fillTruncatedNormal(std: 0.02, using: &rng)
        for block in layers {
            block.norm.weight.fill(1)
            switch block.mixer {
            case let m as DyVMMixer: m.resetParameters(depth: config.depth, using: &rng)
            case let m as MambaMixer: m.resetParameters(depth: config.depth, using: &rng)
            default: break
            }
        }
        normF.weight.fill(1)
        for p in scorePredictors { p.resetParameters(using: &rng) }
    }

    func replacePositionEmbedding(_ rows: Tensor, config: VimConfig) {
        posEmbed = rows
        self.config = config
    }

    /// Tokens [B, T, D]: patch tokens with the class token inserted at `clsIndex`, plus pos_embed.
    func embed(_ images: Tensor, tape: Tape?) throws -> Tensor {
        try checkInput(shape: images.shape)
        return try patchEmbed.embed(images, positions: posEmbed, classToken: (clsToken, config.clsIndex), tape: tape)
    }

    /// Logits [B, C] for normalised images [B, channels, img_size, img_size]. `blockOutput(i, r)`
    /// receives, when given, the residual stream after block i (residual + mixer output) as
    /// [B, T, D]. With a tape, every op records its backward. `dropPath` turns on stochastic depth
    /// (training only). Images of another shape are refused before anything runs.
    package func callAsFunction(_ images: Tensor, tape: Tape? = nil, dropPath: DropPathDraw? = nil, trace: ForwardTrace? = nil,
                               blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        let feature = try forwardFeatures(images, tape: tape, dropPath: dropPath, trace: trace, blockOutput: blockOutput)
        return try head(feature, tape: tape)
    }

    /// The class-token feature [B, D] after norm_f.
    package func forwardFeatures(_ images: Tensor, tape: Tape? = nil, dropPath draw: DropPathDraw? = nil,
                                trace: ForwardTrace? = nil, blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        // DyVM's training path needs its noise and teacher: dyvmTrainingStep.
        if config.dyvm != nil && tape != nil { throw ConfigError.dyvmForwardWithTape(model: config.name) }
        let pass = try encode(images, tape: tape, dropPath: draw, noise: nil, trace: trace, blockOutput: blockOutput)
        // norm_f sees residual + last mixer output; only the class token row is read out.
        let clsRow = try selectToken(pass.stream.residual!, indices: pass.stream.cls, tape: tape)
        var last = try selectToken(pass.stream.h, indices: pass.stream.cls, tape: tape)
        // The model-level drop path (full rate) on the last mixer output; per sample, so applying
        // it to the class row alone is the same.
        if let draw { last = try MambaTensor.dropPath(last, rate: draw.rate, uniforms: draw.uniforms(forBlock: layers.count), tape: tape) }
        return try addRMSNorm(residual: clsRow, last, weight: normF.weight, eps: normF.eps, tape: tape).normed
    }

    /// Every token after norm_f [B, T, D] and each image's class-token index: what a dense head,
    /// such as a segmentation decoder, reads. `patches` gives the original patch index of every
    /// non-class token (DyVM keeps a subset, reordered); it is nil when Famba-V merged tokens.
    package func forwardTokens(_ images: Tensor, tape: Tape? = nil) throws -> (tokens: Tensor, cls: [Int], patches: [[Int]]?) {
        if config.dyvm != nil && tape != nil { throw ConfigError.dyvmForwardWithTape(model: config.name) }
        let pass = try encode(images, tape: tape, dropPath: nil, noise: nil, trace: nil, blockOutput: nil)
        return (try normalizedTokens(pass.stream, tape: tape), pass.stream.cls, config.fusion == nil ? pass.stream.patches : nil)
    }

    /// norm_f over every token of a pass: [B, T, D].
    func normalizedTokens(_ stream: TokenStream, tape: Tape?) throws -> Tensor {
        try addRMSNorm(residual: stream.residual!, stream.h, weight: normF.weight, eps: normF.eps, tape: tape).normed
    }
}

/// The token stream between blocks.
struct TokenStream {
    /// The last mixer output (the embedded tokens before block 0).
    var h: Tensor
    /// The residual stream; nil before block 0, whose residual is its input.
    var residual: Tensor?
    /// Each image's class-token index (fusion and pruning move it).
    var cls: [Int]
    /// The original patch index of every non-class slot.
    var patches: [[Int]]
    /// DyVM training: the keep policy of the non-class slots [B, M] and, with the class token's 1
    /// inserted, the mask the mixers apply [B, T].
    var policy: Tensor?
    var mask: Tensor?
}

/// One forward pass: its final stream and what the blocks reported.
struct ForwardPass {
    var stream: TokenStream
    /// DyVM training: keep decisions per stage [B, M] and gates per block [B, 2].
    var decisions: [Tensor] = []
    var gates: [Tensor] = []
}

extension VimModel {
    /// The forward pass every mode shares: the embedding, then for each block DyVM's pruning stage
    /// when one sits before it, and the block (drop path, add + norm, Famba-V fusion, mixer).
    /// DyVM prunes by its top-k scores at inference and by noisy decisions and a mask when given
    /// training `noise`. The trace gets each mode's records under the fixtures' names.
    func encode(_ images: Tensor, tape: Tape?, dropPath draw: DropPathDraw?, noise: DyVMNoise?, trace: ForwardTrace?,
                blockOutput: ((Int, Tensor) -> Void)?) throws -> ForwardPass {
        try checkInput(shape: images.shape)
        let B = images.shape[0], M = config.numPatches
        if let draw { try draw.check(batch: B) }
        var stream = TokenStream(h: try Profiler.measure("patch_embed") { try embed(images, tape: tape) }, residual: nil,
                                 cls: [Int](repeating: config.clsIndex, count: B),
                                 patches: [[Int]](repeating: Array(0..<M), count: B))
        var pass = ForwardPass(stream: stream)
        var tokens: [Int] = [], clsPositions: [Int] = [], directions: [Int] = []
        for (i, block) in layers.enumerated() {
            if let dyvm = config.dyvm, let s = dyvm.pruningLoc.firstIndex(of: i), stream.residual != nil {
                if let noise {
                    let stage = try sampleKeep(stream, stage: s, noise: noise.token[s], tape: tape, trace: trace)
                    stream = stage.stream
                    pass.decisions.append(stage.decision)
                } else {
                    stream = try prune(stream, stage: s, keep: dyvm.keepTokens(numPatches: M)[s], trace: trace)
                }
            }
            // Block i drops the previous block's mixer output with rate dpr[i − 1]
            // (dpr = linspace(0, rate, depth)); block 0 has nothing to drop.
            let drop = draw.flatMap { d in i > 0 ? (rate: d.rate(forBlock: i, depth: layers.count), uniforms: d.uniforms(forBlock: i)) : nil }
            var context = MixerContext(tape: tape, cls: stream.cls, mask: stream.mask, gateNoise: noise?.block[i])
            let out = try block(stream.h, residual: stream.residual, dropPath: drop, context: &context)
            (stream.h, stream.residual, stream.cls) = (out.out, out.residual, context.cls)
            tokens.append(out.out.shape[1])
            clsPositions.append(stream.cls[0])
            if let gates = context.gates {
                pass.gates.append(gates)
                directions += gates.array.map { Int($0) }
                trace?.record("block.\(i).head_logits", shape: [B, 2], floats: context.headLogits)
            }
            if let blockOutput { blockOutput(i, try streamAfterBlock(residual: out.residual, mixerOutput: out.out)) }
        }
        if noise != nil {
            trace?.record("directions", shape: [layers.count, B, 2], ints: directions)
        } else {
            if config.fusion != nil || config.dyvm != nil { trace?.record("tokens", shape: [tokens.count], ints: tokens) }
            if config.dyvm != nil {
                trace?.record("cls_position", shape: [tokens.count], ints: clsPositions)
                trace?.record("directions", shape: [tokens.count, B, 2], ints: directions)
            }
        }
        pass.stream = stream
        return pass
    }
}

extension VimModel {
    /// The residual stream after a block, residual + mixer output, as the fixtures' `block.<i>.out`.
    func streamAfterBlock(residual r: Tensor, mixerOutput h: Tensor) throws -> Tensor {
        try add(r, h, tape: nil)
    }

    /// Parameter count of a config without allocating it (spec/vim.md §1.4).
    package static func parameterCount(_ c: VimConfig) -> Int {
        let D = c.embedDim, E = c.dInner, R = c.dtRank, N = c.dState, K = c.dConv, p = c.patchSize
        let block = 3 * E * D + 2 * E * (K + 2 * R + 3 * N + 3) + D
        let vim = c.depth * block + (c.inChannels * p * p * D + D) + D + c.tokens * D + D + (D * c.numClasses + c.numClasses)
        guard let dyvm = c.dyvm else { return vim }
        // Per stage a PredictorLG (LayerNorm, D→D, D→D/2, D/2→D/4, D/4→2); per block a [2, 2E] head.
        let predictor = 2 * D + (D * D + D) + (D * (D / 2) + D / 2) + ((D / 2) * (D / 4) + D / 4) + (2 * (D / 4) + 2)
        return vim + dyvm.pruningLoc.count * predictor + c.depth * (2 * 2 * E + 2)
    }
}

extension VimModel {
    /// Throws unless `shape` is [B, channels, img_size, img_size] with B ≥ 1 for this model (at
    /// its current resolution, after `setImageSize`).
    package func checkInput(shape: [Int]) throws {
        let c = config
        guard shape.count == 4, shape[0] >= 1, shape[1] == c.inChannels, shape[2] == c.imgSize, shape[3] == c.imgSize else {
            throw ConfigError.inputShapeMismatch(model: c.name, channels: c.inChannels, size: c.imgSize, found: shape)
        }
    }
}

/// Stochastic depth for one training step: the model's drop-path rate and the seed of that
/// step's masks.
package struct DropPathDraw: Sendable {
    package var rate: Double
    /// One seed per sample of the batch: a sample's masks depend on it alone, not on the batch
    /// it shares (so they are the same whatever the number of data-parallel ranks).
    package var sampleSeeds: [UInt64]
    package init(rate: Double, sampleSeeds: [UInt64]) { self.rate = rate; self.sampleSeeds = sampleSeeds }

    /// Each sample's U[0, 1) draw for block i (i = depth: the model-level drop on the last output).
    package func uniforms(forBlock i: Int) -> [Double] {
        sampleSeeds.map { seed in
            var g = SeededGenerator(seed: seed ^ (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15))
            return g.uniform()
        }
    }

    /// The rate block i applies (to block i − 1's output): linspace(0, rate, depth)[i − 1].
    package func rate(forBlock i: Int, depth: Int) -> Double {
        depth > 1 ? rate * Double(i - 1) / Double(depth - 1) : 0
    }

    /// Refuses a rate outside [0, 1) and seeds that are not one per sample of the batch.
    func check(batch: Int) throws {
        guard rate >= 0, rate < 1 else { throw TensorError.invalidArgument(name: "drop path rate", value: rate, allowed: "[0, 1)") }
        guard sampleSeeds.count == batch else { throw TensorError.valueCountMismatch(tensor: "sampleSeeds", expected: batch, found: sampleSeeds.count) }
    }
}
