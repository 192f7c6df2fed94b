import Foundation
import MambaIO
import MambaNN
import MambaTensor

/// One level of `VisionMambaSeg`'s pyramid (`fpn1` … `fpn4`), which turns the single-scale
/// features of the patch grid into strides 4, 8, 16 and 32.
package final class PyramidLevel: Module {
    package enum Kind: Equatable, Sendable {
        /// ×4: ConvTranspose2d(2, 2) → SyncBatchNorm → GELU → ConvTranspose2d(2, 2) (`0`, `1`, `3`).
        case upsample4
        /// ×2: ConvTranspose2d(2, 2) (`0`).
        case upsample2
        case identity
        /// MaxPool2d(k, k).
        case maxPool(Int)
    }

    package let kind: Kind
    package let up: ConvTranspose2d?, norm: BatchNorm2d?, up2: ConvTranspose2d?

    package init(_ kind: Kind, channels: Int) throws {
        self.kind = kind
        up = [.upsample4, .upsample2].contains(kind) ? try ConvTranspose2d(inChannels: channels, outChannels: channels, kernel: 2) : nil
        norm = kind == .upsample4 ? try BatchNorm2d(channels) : nil
        up2 = kind == .upsample4 ? try ConvTranspose2d(inChannels: channels, outChannels: channels, kernel: 2) : nil
    }

    package var children: [(String, Module)] {
        [("0", up as Module?), ("1", norm), ("3", up2)].compactMap { key, module in module.map { (key, $0) } }
    }

    package func resetParameters(using rng: inout SeededGenerator) {
        up?.resetParameters(using: &rng)
        norm?.resetParameters()
        up2?.resetParameters(using: &rng)
    }

    package func callAsFunction(_ x: Tensor, training: Bool, tape: Tape?) throws -> Tensor {
        switch kind {
        case .identity: return x
        case .maxPool(let k): return try maxPool2d(x, kernel: k, stride: k, tape: tape)
        case .upsample2: return try up!(x, tape: tape)
        case .upsample4:
            let y = try norm!(up!(x, tape: tape), training: training, tape: tape)
            return try up2!(gelu(y, tape: tape), tape: tape)
        }
    }
}

/// The Vim segmentation backbone, hustvl/Vim `seg/backbone/vim.py` `VisionMambaSeg`: patch
/// embedding and position embedding without a class token, the Vim blocks (RoPE before each
/// when configured), the mixer output of the `outIndices` blocks as [B, D, G, G] features, and
/// the pyramid. `norm_f` is kept for the state dict; the official forward never applies it.
///
/// With DyVM (its `Semantic_Segmentation` backbone) the blocks gate their scan directions, and
/// pruning stages before `pruningLoc` drop tokens. Tokens are kept on the patch grid between
/// blocks: a pruned token keeps, for the features, the last mixer output it reached.
package final class SegmentationBackbone: Module {
    package let config: SegmentationConfig
    package let patchEmbed: PatchEmbed
    package let posEmbed: Tensor                 // pos_embed [1, M, D]
    package let rope: VisionRotaryEmbedding?
    package let layers: [VimBlock]
    package let normF: RMSNorm
    package let pyramid: [PyramidLevel]          // fpn1 … fpn4
    /// DyVM's token scorers, one per pruning stage (`score_predictors.<s>`); empty for Vim.
    package let scorePredictors: [TokenPredictor]

    package init(config: SegmentationConfig) throws {
        try config.validate()
        self.config = config
        let c = config.backbone
        patchEmbed = try PatchEmbed(config: c)
        posEmbed = try Tensor(zeros: [1, c.numPatches, c.embedDim])
        rope = config.rope ? try VisionRotaryEmbedding(embedDim: c.embedDim, grid: c.grid, pretrainGrid: config.ropePretrainGrid) : nil
        layers = try (0..<c.depth).map { _ in
            let mixer: any TokenMixer = try c.dyvm.map { try DyVMMixer(config: c, dyvm: $0) } ?? MambaMixer(config: c)
            return VimBlock(norm: try RMSNorm(c.embedDim, eps: c.normEps), mixer: mixer)
        }
        normF = try RMSNorm(c.embedDim, eps: c.normEps)
        let kinds: [PyramidLevel.Kind] = c.patchSize == 16 ? [.upsample4, .upsample2, .identity, .maxPool(2)]
                                                            : [.upsample2, .identity, .maxPool(2), .maxPool(4)]
        pyramid = try kinds.map { try PyramidLevel($0, channels: c.embedDim) }
        scorePredictors = try (c.dyvm?.pruningLoc ?? []).map { _ in try TokenPredictor(dim: c.embedDim) }
    }

    // state_dict order: VisionMamba's own parameters, then its modules as registered
    // (patch_embed, rope, layers, norm_f, DyVM's score_predictors), then fpn1 … fpn4.
    package var ownParameters: [(String, Tensor)] { [("pos_embed", posEmbed)] }
    package var children: [(String, Module)] {
        [("patch_embed", patchEmbed as Module)] + (rope.map { [("rope", $0 as Module)] } ?? [])
            + layers.enumerated().map { ("layers.\($0.offset)", $0.element as Module) }
            + [("norm_f", normF)]
            + scorePredictors.enumerated().map { ("score_predictors.\($0.offset)", $0.element as Module) }
            + pyramid.enumerated().map { ("fpn\($0.offset + 1)", $0.element as Module) }
    }

    /// The official initialisation without pretrained weights: the Vim model's own, then
    /// `init_weights`' trunc_normal(0.02) with zero bias on every Linear (dt_proj included).
    /// DyVM's direction heads start open and its scorers as in classification.
    package func resetParameters(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let c = config.backbone
        let fanIn = Double(c.inChannels * c.patchSize * c.patchSize)
        patchEmbed.proj.weight.fillTruncatedNormal(std: (1 / fanIn).squareRoot() / 0.87962566103423978, using: &rng)
        patchEmbed.proj.bias?.fill(0)
        posEmbed.fillTruncatedNormal(std: 0.02, using: &rng)
        for block in layers {
            block.norm.weight.fill(1)
            let gated = block.mixer as? DyVMMixer
            guard let mixer = gated?.mamba ?? block.mixer as? MambaMixer else { continue }
            mixer.resetParameters(depth: c.depth, using: &rng)
            for linear in [mixer.inProj, mixer.xProj, mixer.xProjB, mixer.dtProj, mixer.dtProjB, mixer.outProj] {
                linear.weight.fillTruncatedNormal(std: 0.02, using: &rng)
                linear.bias?.fill(0)
            }
            if let gated {
                gated.blockHead.weight.fill(0)
                gated.blockHead.bias!.fill(5)
            }
        }
        normF.weight.fill(1)
        for p in scorePredictors { p.resetParameters(using: &rng) }
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
    /// `training`, BatchNorm uses batch statistics and updates its running ones; `dropPath`
    /// turns on stochastic depth.
    package func callAsFunction(_ images: Tensor, training: Bool = false, tape: Tape? = nil, dropPath draw: DropPathDraw? = nil) throws -> [Tensor] {
        try encode(images, training: training, tape: tape, dropPath: draw, noise: nil, trace: nil).features
    }

    /// One pass: the pyramid features and, for DyVM in training, each stage's keep decisions
    /// [B, M] (grid order) and each block's gates [B, 2], which its ratio losses read.
    package struct Pass {
        package var features: [Tensor]
        package var decisions: [Tensor] = []
        package var gates: [Tensor] = []
        package init(features: [Tensor], decisions: [Tensor] = [], gates: [Tensor] = []) {
            (self.features, self.decisions, self.gates) = (features, decisions, gates)
        }
    }

    /// The forward pass of every mode. DyVM prunes by its top-k scores at inference; in training
    /// (which needs `noise`) it keeps every token, sorted kept-first with the dropped ones zeroed
    /// and masked in the scans, and decides by noisy samples with straight-through gradients. The
    /// trace gets DyVM's records under the fixtures' names.
    package func encode(_ images: Tensor, training: Bool, tape: Tape?, dropPath draw: DropPathDraw?,
                       noise: DyVMNoise?, trace: ForwardTrace?) throws -> Pass {
        try checkInput(shape: images.shape)
        let (B, G, M) = (images.shape[0], config.grid, config.backbone.numPatches)
        if let draw { try draw.check(batch: B) }
        let dyvm = config.backbone.dyvm
        if let dyvm, training {
            guard let noise else { throw ConfigError.dyvmTrainingNeedsNoise(model: config.name) }
            try noise.check(batch: B, numPatches: M, stages: dyvm.pruningLoc.count, depth: layers.count)
        }
        let noise = training ? noise : nil
        // The stream on the grid [B, M, D]: the last mixer output and the residual (zero where a
        // token was pruned), and what pruned tokens last reached (`feature_hidden_states` and
        // `feature_residual`, zero where a token is alive).
        var h = try patchEmbed.embed(images, positions: posEmbed, classToken: nil, tape: tape)
        var residual: Tensor? = nil
        var frozen: (h: Tensor, residual: Tensor)? = nil
        // The grid tokens each block sees, in sequence order, the keep policy [B, M] and the
        // training mask over the sequence.
        var order: [[Int]]? = nil
        var policy: Tensor? = nil, mask: Tensor? = nil
        var pass = Pass(features: [])
        var tokens: [Int] = [], directions: [Int] = []
        for (i, block) in layers.enumerated() {
            if let rope {
                h = try rope(h, tape: tape)
                if let r = residual, config.ropeResidual { residual = try rope(r, tape: tape) }
            }
            if let dyvm, let s = dyvm.pruningLoc.firstIndex(of: i), let r = residual {
                let full = (h: try adding(h, frozen?.h, tape: tape), residual: try adding(r, frozen?.residual, tape: tape))
                let alive = try policy ?? constant([B, M], 1, device: h.device)
                let logp = try Profiler.measure("token_predictor") {
                    try scorePredictors[s](add(full.h, full.residual, tape: tape), policy: alive, tape: tape)
                }
                let keep: Tensor
                if let noise {
                    keep = try multiply(gumbelSoftmaxKeep(logp, noise: noise.token[s], tape: tape), alive, tape: tape)
                    let kept = keep.array
                    // Kept tokens first, then the dropped ones, each in grid order.
                    order = (0..<B).map { b in
                        (0..<M).filter { kept[b * M + $0] > 0.5 } + (0..<M).filter { kept[b * M + $0] <= 0.5 }
                    }
                    mask = try gatherRows(keep, index: order!, tape: tape)
                    trace?.record("prune.\(s).decision", shape: [B, M], ints: kept.map { Int($0) })
                    pass.decisions.append(keep)
                } else {
                    // The top k_s of all M tokens by log P(keep) among those alive, in grid order
                    // (k_s shrinks from stage to stage, so enough are alive).
                    let k = dyvm.keepTokens(numPatches: M)[s]
                    let score = logp.array, active = alive.array
                    order = (0..<B).map { b in
                        let candidates = (0..<M).filter { active[b * M + $0] > 0.5 }
                        return Array(candidates.sorted { score[(b * M + $0) * 2] > score[(b * M + $1) * 2] }.prefix(k)).sorted()
                    }
                    var values = [Float](repeating: 0, count: B * M)
                    for (b, row) in order!.enumerated() { for t in row { values[b * M + t] = 1 } }
                    keep = Tensor(ownValues: values, shape: [B, M], device: h.device)
                    trace?.record("prune.\(s).keep", shape: [B, k], ints: order!.flatMap { $0 })
                }
                trace?.record("prune.\(s).logp", shape: [B, M, 2], floats: logp.array)
                let dropped = try add(constant([B, M], 1, device: h.device), scale(keep, by: -1, tape: tape), tape: tape)
                h = try scaleRows(full.h, by: keep, tape: tape)
                residual = try scaleRows(full.residual, by: keep, tape: tape)
                frozen = (try scaleRows(full.h, by: dropped, tape: tape), try scaleRows(full.residual, by: dropped, tape: tape))
                policy = keep
            }
            let drop = draw.flatMap { d in i > 0 ? (rate: d.rate(forBlock: i, depth: layers.count), uniforms: d.uniforms(forBlock: i)) : nil }
            var context = MixerContext(tape: tape, cls: [], mask: mask, gateNoise: noise?.block[i])
            context.gateInput = .tokenMean
            if let order {
                // The block sees its tokens in sequence order; its outputs go back to the grid.
                let (hs, rs) = try Profiler.measure("token_order") {
                    (try gatherRows(h, index: order, tape: tape), try residual.map { try gatherRows($0, index: order, tape: tape) })
                }
                let out = try block(hs, residual: rs, dropPath: drop, context: &context)
                (h, residual) = try Profiler.measure("token_order") {
                    (try scatterRows(out.out, index: order, count: M, tape: tape), try scatterRows(out.residual, index: order, count: M, tape: tape))
                }
                tokens.append(order[0].count)
            } else {
                (h, residual) = try block(h, residual: residual, dropPath: drop, context: &context)
                tokens.append(M)
            }
            if let gates = context.gates {
                pass.gates.append(gates)
                directions += gates.array.map { Int($0) }
                trace?.record("block.\(i).head_logits", shape: [B, 2], floats: context.headLogits)
            }
            if config.outIndices.contains(i) {
                pass.features.append(try tokensToChannels(adding(h, frozen?.h, tape: tape), height: G, width: G, tape: tape))
            }
        }
        if dyvm != nil {
            trace?.record("tokens", shape: [tokens.count], ints: tokens)
            trace?.record("directions", shape: [layers.count, B, 2], ints: directions)
        }
        pass.features = try zip(pass.features, pyramid).map { try $1($0, training: training, tape: tape) }
        return pass
    }
}

/// a + b, or a when b is nil.
private func adding(_ a: Tensor, _ b: Tensor?, tape: Tape?) throws -> Tensor {
    try b.map { try add(a, $0, tape: tape) } ?? a
}

extension SegmentationBackbone {
    /// Starts the backbone from a classification checkpoint (a released `.pth` or one of ours), as
    /// the official `init_weights` does: the head, RoPE tables and class token are dropped, the
    /// patch embedding too when its patch size differs, and pos_embed is moved to this grid.
    /// `interpolation` says where the checkpoint's class-token row is: `.official` treats row 0
    /// as the class row, which is what the official small config's init does with the released
    /// middle-token checkpoints (and the tiny config, without a class token, cannot load them at
    /// all); `.classTokenAware` takes it from its real index. Returns the backbone's tensors the
    /// checkpoint did not provide (the pyramid).
    @discardableResult
    package func loadClassificationWeights(_ path: String, interpolation: PositionEmbeddingInterpolation = .classTokenAware) throws -> [String] {
        var tensors = try VimModel.modelTensors(path)
        for name in tensors.keys where name.hasPrefix("head.") || name.hasPrefix("rope.") || name == "cls_token" {
            tensors.removeValue(forKey: name)
        }
        if let proj = tensors["patch_embed.proj.weight"], proj.shape.count == 4, proj.shape[3] != config.backbone.patchSize {
            tensors.removeValue(forKey: "patch_embed.proj.weight")
            tensors.removeValue(forKey: "patch_embed.proj.bias")
        }
        let c = config.backbone, D = c.embedDim
        if let pos = tensors["pos_embed"] {
            let rows = pos.shape.count == 3 && pos.shape[0] == 1 && pos.shape[2] == D ? pos.shape[1] : 0
            let withClass = Int(Double(max(rows - 1, 0)).squareRoot()), without = Int(Double(rows).squareRoot())
            let floats = pos.floats()
            let grid: [Float]
            if rows > 0 && without * without == rows {
                grid = bicubicResize(floats, inH: without, inW: without, channels: D, outH: c.grid, outW: c.grid)
            } else if rows > 1 && withClass * withClass == rows - 1 {
                var source = c
                (source.imgSize, source.patchSize, source.stride) = (withClass, 1, 1)
                let moved = try interpolatePositionEmbedding(floats, config: source, newGrid: c.grid, mode: interpolation)
                let classRow = interpolation == .official || c.clsPosition == .first ? 0 : c.numPatches / 2
                grid = Array(moved[0..<(classRow * D)] + moved[((classRow + 1) * D)...])
            } else {
                throw StateDictError.mismatch(source: path, problems: [.shapeMismatch(key: "pos_embed", expected: posEmbed.shape, found: pos.shape)])
            }
            tensors["pos_embed"] = StoredTensor(shape: [1, c.numPatches, D], floats: grid)
        }
        let report = try load(stateDict: tensors, strict: false, source: path)
        if !report.unexpected.isEmpty {
            throw StateDictError.mismatch(source: path, problems: report.unexpected.map { .unexpectedKey(key: $0, found: tensors[$0]?.shape ?? []) })
        }
        return report.missing
    }
}
