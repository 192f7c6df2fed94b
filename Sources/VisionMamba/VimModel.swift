import Foundation
import MambaNN
import MambaTensor

/// `patch_embed`: the Conv2d that turns an image into patch tokens.
public final class PatchEmbed: Module {
    public let proj: Conv2d
    public init(config c: VimConfig) throws {
        proj = try Conv2d(inChannels: c.inChannels, outChannels: c.embedDim, kernel: c.patchSize, stride: c.stride)
    }
    public var children: [(String, Module)] { [("proj", proj)] }
}

/// Vision Mamba (`VisionMamba` of vim/models_mamba.py) in its released configuration:
/// patch embedding, class token inserted at `clsIndex`, absolute position embedding, `depth`
/// bidirectional blocks with fused add + RMSNorm (residual stream in float32), final RMSNorm on
/// residual + last mixer output, linear head on the class token.
public final class VimModel: Module {
    public private(set) var config: VimConfig
    public let patchEmbed: PatchEmbed
    public let clsToken: Tensor          // cls_token [1, 1, D]
    public private(set) var posEmbed: Tensor  // pos_embed [1, T, D]
    public let layers: [VimBlock]
    public let normF: RMSNorm            // norm_f
    public let head: Linear              // head [C, D] + bias
    /// DyVM's token scorers, one per pruning stage (`score_predictors.<s>`); empty for a plain Vim.
    public let scorePredictors: [TokenPredictor]
    /// Tokens each block's mixer saw in the last forward pass.
    public private(set) var lastTokenSchedule: [Int] = []

    /// A model of `config` (checked by `config.validate()`), with zero weights until
    /// `resetParameters(seed:)` or a load.
    public init(config: VimConfig) throws {
        try config.validate()
        self.config = config
        patchEmbed = try PatchEmbed(config: config)
        clsToken = try Tensor(zeros: [1, 1, config.embedDim])
        posEmbed = try Tensor(zeros: [1, config.tokens, config.embedDim])
        layers = try (0..<config.depth).map { _ in try VimBlock(config: config) }
        normF = try RMSNorm(config.embedDim, eps: config.normEps)
        head = try Linear(config.embedDim, config.numClasses)
        scorePredictors = try (config.dyvm?.pruningLoc ?? []).map { _ in try TokenPredictor(dim: config.embedDim) }
    }

    // state_dict order of the official model (spec/vim.md §1.5).
    public var ownParameters: [(String, Tensor)] { [("cls_token", clsToken), ("pos_embed", posEmbed)] }
    public var children: [(String, Module)] {
        [("patch_embed", patchEmbed), ("head", head)]
            + layers.enumerated().map { ("layers.\($0.offset)", $0.element as Module) }
            + [("norm_f", normF)]
            + scorePredictors.enumerated().map { ("score_predictors.\($0.offset)", $0.element as Module) }
    }

    /// The official initialisation's distributions (spec/vim.md §4), from a seeded generator.
    public func resetParameters(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let fanIn = Double(config.inChannels * config.patchSize * config.patchSize)
        patchEmbed.proj.weight.fillTruncatedNormal(std: (1 / fanIn).squareRoot() / 0.87962566103423978, using: &rng)
        patchEmbed.proj.bias.buffer.update(repeating: 0)
        head.weight.fillTruncatedNormal(std: 0.02, using: &rng)
        head.bias!.buffer.update(repeating: 0)
        posEmbed.fillTruncatedNormal(std: 0.02, using: &rng)
        clsToken.fillTruncatedNormal(std: 0.02, using: &rng)
        for block in layers {
            block.norm.weight.buffer.update(repeating: 1)
            block.mixer.resetParameters(depth: config.depth, using: &rng)
        }
        normF.weight.buffer.update(repeating: 1)
        for p in scorePredictors { p.resetParameters(using: &rng) }
    }

    func replacePositionEmbedding(_ rows: Tensor, config: VimConfig) {
        posEmbed = rows
        self.config = config
    }

    /// Tokens [B, T, D]: patch tokens with the class token inserted at `clsIndex`, plus pos_embed.
    func embed(_ images: Tensor, tape: Tape?) throws -> Tensor {
        try checkInput(shape: images.shape)
        let c = config
        let proj = patchEmbed.proj
        let patches = try proj.tokens(images)                         // [B, M, D]
        let batch = images.shape[0], M = c.numPatches, T = c.tokens, D = c.embedDim, ci = c.clsIndex
        let h = Tensor(uninitializedShape: [batch, T, D])
        for b in 0..<batch {
            let src = patches.data + b * M * D, dst = h.data + b * T * D
            dst.update(from: src, count: ci * D)
            (dst + ci * D).update(from: clsToken.data, count: D)
            (dst + (ci + 1) * D).update(from: src + ci * D, count: (M - ci) * D)
            for i in 0..<(T * D) { dst[i] += posEmbed.data[i] }
        }
        let hSlot = h.slot
        tape?.record { [self] in
            guard let g = hSlot.grad else { return }
            let patchGrad = Tensor(uninitializedShape: [batch * M, D])
            let clsGrad = clsToken.gradBuffer(), posGrad = posEmbed.gradBuffer()
            for b in 0..<batch {
                let gb = g.data + b * T * D
                for i in 0..<(T * D) { posGrad.data[i] += gb[i] }
                for d in 0..<D { clsGrad.data[d] += gb[ci * D + d] }
                (patchGrad.data + b * M * D).update(from: gb, count: ci * D)
                (patchGrad.data + (b * M + ci) * D).update(from: gb + (ci + 1) * D, count: (M - ci) * D)
            }
            // The conv as im2col · weightᵀ: recompute the columns for the weight gradient.
            let K = c.inChannels * c.patchSize * c.patchSize, G = c.grid
            let cols = Tensor(uninitializedShape: [batch * M, K])
            im2col(cols.data, images.data, batch: batch, inChannels: c.inChannels, height: c.imgSize, width: c.imgSize,
                   patch: c.patchSize, stride: c.stride, gridH: G, gridW: G)
            linearBackward(xGrad: nil, weightGrad: proj.weight.gradBuffer().data, biasGrad: proj.bias.gradBuffer().data,
                           yGrad: patchGrad.data, x: cols.data, weight: proj.weight.data, rows: batch * M, inFeatures: K, outFeatures: D)
        }
        return h
    }

    /// Logits [B, C] for normalised images [B, channels, img_size, img_size]. `blockOutput(i, r)`
    /// receives, when given, the residual stream after block i (residual + mixer output) as
    /// [B, T, D]. With a tape, every op records its backward. `dropPath` turns on stochastic depth
    /// (training only). Images of another shape are refused before anything runs.
    public func callAsFunction(_ images: Tensor, tape: Tape? = nil, dropPath: DropPathDraw? = nil, trace: ForwardTrace? = nil,
                               blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        let feature = try forwardFeatures(images, tape: tape, dropPath: dropPath, trace: trace, blockOutput: blockOutput)
        return try linear(feature, weight: head.weight, bias: head.bias, tape: tape)
    }

    /// The class-token feature [B, D] after norm_f.
    public func forwardFeatures(_ images: Tensor, tape: Tape? = nil, dropPath draw: DropPathDraw? = nil,
                                trace: ForwardTrace? = nil, blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        // DyVM's training path needs its noise and teacher: dyvmTrainingStep.
        if config.dyvm != nil && tape != nil { throw ConfigError.dyvmForwardWithTape(model: config.name) }
        try checkInput(shape: images.shape)
        if let draw { try draw.check(batch: images.shape[0]) }
        var h = try Profiler.measure("patch_embed") { try embed(images, tape: tape) }
        var residual: Tensor? = nil           // block 0's residual is the embedded tokens themselves
        // The class token's index per sample: fusions may move it (not when it sits first).
        var cls = [Int](repeating: config.clsIndex, count: images.shape[0])
        var seen: [Int] = [], seenCls: [Int] = []
        var patches = [[Int]](repeating: Array(0..<config.numPatches), count: images.shape[0])
        var directions: [Int] = []
        for (i, block) in layers.enumerated() {
            if let dyvm = config.dyvm, let s = dyvm.pruningLoc.firstIndex(of: i), let r = residual {
                let keep = dyvm.keepTokens(numPatches: config.numPatches)[s]
                let pruned = try prune(PrunedStream(h: h, residual: r, cls: cls, patches: patches), stage: s, keep: keep, trace: trace)
                (h, residual, cls, patches) = (pruned.h, pruned.residual, pruned.cls, pruned.patches)
            }
            // Block i drops the previous block's mixer output with rate dpr[i − 1]
            // (dpr = linspace(0, rate, depth)); block 0 has nothing to drop.
            if let draw, i > 0 {
                h = try MambaTensor.dropPath(h, rate: draw.rate(forBlock: i, depth: layers.count), uniforms: draw.uniforms(forBlock: i), tape: tape)
            }
            var (r, u) = try Profiler.measure("add_rms_norm") {
                try addRMSNorm(residual: residual, h, weight: block.norm.weight, eps: block.norm.eps, tape: tape)
            }
            // Famba-V: fuse after the add + norm, before the mixer, with the normalised tokens as
            // the metric and the same plan on the residual stream.
            if let fusion = config.fusion, fusion.tokens > 0, fusion.blocks.contains(i) {
                let plan = try Profiler.measure("token_fusion") {
                    try bipartiteSoftMatching(u, r: fusion.tokens, protected: cls, preserveOrder: fusion.preserveOrder)
                }
                u = try mergeTokens(u, plan: plan, tape: tape)
                r = try mergeTokens(r, plan: plan, tape: tape)
                cls = plan.protectedIndex!
            }
            seen.append(u.shape[1])
            seenCls.append(cls[0])
            residual = r
            if config.dyvm != nil {
                let gated = try block.mixer.gatedForward(u, cls: cls, threshold: config.dyvm!.gateThreshold)
                h = gated.out
                directions += gated.on.map { $0 ? 1 : 0 }
                trace?.record("block.\(i).head_logits", shape: [u.shape[0], 2], floats: gated.logits)
            } else {
                h = try block.mixer(u, tape: tape)
            }
            blockOutput?(i, streamAfterBlock(residual: r, mixerOutput: h))
        }
        // norm_f sees residual + last mixer output; only the class token row is read out.
        lastTokenSchedule = seen
        if config.fusion != nil || config.dyvm != nil { trace?.record("tokens", shape: [seen.count], ints: seen) }
        if config.dyvm != nil {
            trace?.record("cls_position", shape: [seen.count], ints: seenCls)
            trace?.record("directions", shape: [seen.count, images.shape[0], 2], ints: directions)
        }
        let clsRow = try selectToken(residual!, indices: cls, tape: tape)
        var last = try selectToken(h, indices: cls, tape: tape)
        // The model-level drop path (full rate) on the last mixer output; per sample, so applying
        // it to the class row alone is the same.
        if let draw { last = try MambaTensor.dropPath(last, rate: draw.rate, uniforms: draw.uniforms(forBlock: layers.count), tape: tape) }
        return try addRMSNorm(residual: clsRow, last, weight: normF.weight, eps: normF.eps, tape: tape).normed
    }
}

extension VimModel {
    /// The residual stream after a block, residual + mixer output, as the fixtures' `block.<i>.out`.
    func streamAfterBlock(residual r: Tensor, mixerOutput h: Tensor) -> Tensor {
        let out = r.copy()
        for j in 0..<out.count { out.data[j] += h.data[j] }
        return out
    }

    /// Parameter count of a config without allocating it (spec/vim.md §1.4).
    public static func parameterCount(_ c: VimConfig) -> Int {
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
    public func checkInput(shape: [Int]) throws {
        let c = config
        guard shape.count == 4, shape[0] >= 1, shape[1] == c.inChannels, shape[2] == c.imgSize, shape[3] == c.imgSize else {
            throw ConfigError.inputShapeMismatch(model: c.name, channels: c.inChannels, size: c.imgSize, found: shape)
        }
    }
}

/// Stochastic depth for one training step: the model's drop-path rate and the seed of that
/// step's masks.
public struct DropPathDraw: Sendable {
    public var rate: Double
    /// One seed per sample of the batch: a sample's masks depend on it alone, not on the batch
    /// it shares (so they are the same whatever the number of data-parallel ranks).
    public var sampleSeeds: [UInt64]
    public init(rate: Double, sampleSeeds: [UInt64]) { self.rate = rate; self.sampleSeeds = sampleSeeds }

    /// Each sample's U[0, 1) draw for block i (i = depth: the model-level drop on the last output).
    public func uniforms(forBlock i: Int) -> [Double] {
        sampleSeeds.map { seed in
            var g = SeededGenerator(seed: seed ^ (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15))
            return g.uniform()
        }
    }

    /// The rate block i applies (to block i − 1's output): linspace(0, rate, depth)[i − 1].
    public func rate(forBlock i: Int, depth: Int) -> Double {
        depth > 1 ? rate * Double(i - 1) / Double(depth - 1) : 0
    }

    /// Refuses a rate outside [0, 1) and seeds that are not one per sample of the batch.
    func check(batch: Int) throws {
        guard rate >= 0, rate < 1 else { throw TensorError.invalidArgument(name: "drop path rate", value: rate, allowed: "[0, 1)") }
        guard sampleSeeds.count == batch else { throw TensorError.valueCountMismatch(tensor: "sampleSeeds", expected: batch, found: sampleSeeds.count) }
    }
}
