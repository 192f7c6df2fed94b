import Foundation

/// The shape of a DeiT (timm's `VisionTransformer` as `deit_tiny_patch16_224` builds it): a
/// patch-p Conv2d, a class token at index 0, an absolute position embedding, `depth` pre-norm
/// blocks (LayerNorm → multi-head attention → residual, LayerNorm → MLP with exact GELU →
/// residual), a final LayerNorm and a linear head on the class token.
package struct DeiTConfig: Codable, Equatable, Sendable {
    package var name: String
    package var imgSize: Int
    package var patchSize: Int
    package var embedDim: Int
    package var depth: Int
    package var numHeads: Int
    /// The MLP's hidden width is mlpRatio · embedDim (4 in every DeiT).
    package var mlpRatio: Int = 4
    package var numClasses: Int
    package var inChannels: Int = 3
    /// timm's ViT LayerNorms use eps 1e-6.
    package var normEps: Float = 1e-6

    package init(name: String, imgSize: Int, patchSize: Int, embedDim: Int, depth: Int, numHeads: Int, numClasses: Int) {
        self.name = name
        self.imgSize = imgSize
        self.patchSize = patchSize
        self.embedDim = embedDim
        self.depth = depth
        self.numHeads = numHeads
        self.numClasses = numClasses
    }

    /// Grid side G = img / p (0 for sizes `validate()` refuses).
    package var grid: Int { patchSize > 0 && imgSize >= patchSize && imgSize <= 65_536 ? imgSize / patchSize : 0 }
    /// M = G²
    package var numPatches: Int { grid * grid }
    /// T = M + 1 (the class token first).
    package var tokens: Int { numPatches + 1 }
    package var headDim: Int { numHeads > 0 ? embedDim / numHeads : 0 }
    package var hiddenDim: Int { mlpRatio &* embedDim }

    /// Rejects what the model cannot be built or run with, by timm's argument names.
    package func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw ConfigError.invalidValue(model: name, field: field, value: "\(value)", allowed: allowed) }
        }
        try check((1...65_536).contains(imgSize), "img_size", imgSize, "1...65536")
        try check((1...imgSize).contains(patchSize), "patch_size", patchSize, "1...img_size (\(imgSize))")
        // timm's PatchEmbed (strict_img_size) takes whole patches only.
        try check(imgSize % patchSize == 0, "img_size", imgSize, "a multiple of patch_size (\(patchSize))")
        try check((1...65_536).contains(embedDim), "embed_dim", embedDim, "1...65536")
        try check((1...4096).contains(depth), "depth", depth, "1...4096")
        try check((1...embedDim).contains(numHeads) && embedDim % numHeads == 0, "num_heads", numHeads,
                  "a divisor of embed_dim (\(embedDim))")
        try check((1...64).contains(mlpRatio), "mlp_ratio", mlpRatio, "1...64")
        try check((1...16_777_216).contains(numClasses), "num_classes", numClasses, "1...16777216")
        try check((1...64).contains(inChannels), "in_chans", inChannels, "1...64")
        try check(normEps > 0 && normEps.isFinite, "norm eps", normEps, "positive and finite")
    }

    /// Estimated peak bytes of a forward pass (or a training step) of `batch` images, from the
    /// sizes: 32 MiB of runtime, the parameters (four times in training: weights, gradients, AdamW's
    /// moments), the input, and per image the attention probabilities of every head (H·T² floats)
    /// plus the widest live activations of a block, T·(6D + 2·hidden) floats; a training step keeps
    /// both for every block. Half again for the heap's freed blocks. Saturates at Int.max.
    package func estimatedBytes(batch: Int, training: Bool = false) -> Int {
        let B = Double(max(batch, 0)), T = Double(tokens), D = Double(embedDim), Hd = Double(hiddenDim)
        let input = B * Double(inChannels * imgSize) * Double(imgSize)
        let perBlock = Double(numHeads) * T * T + T * (6 * D + 2 * Hd)
        let perImage = training ? Double(depth + 1) * perBlock : perBlock
        let parameters = Double(parameterCount) * (training ? 4 : 1)
        let bytes = 32 * 1_048_576 + 4 * (parameters + 1.5 * (input + B * perImage))
        return bytes < Double(Int.max) ? Int(bytes) : Int.max
    }

    /// Throws `ConfigError.tooLarge` when `estimatedBytes` exceeds `availableBytes` (the machine's
    /// physical memory), after `validate()`: call it before the model or a batch is allocated.
    package func checkFitsInMemory(batch: Int, training: Bool = false,
                                  availableBytes: Int = Int(clamping: ProcessInfo.processInfo.physicalMemory)) throws {
        try validate()
        guard batch >= 1 else { throw ConfigError.invalidValue(model: name, field: "batch", value: "\(batch)", allowed: "at least 1") }
        let estimate = estimatedBytes(batch: batch, training: training)
        guard estimate <= availableBytes else {
            throw ConfigError.tooLarge(model: name, batch: batch, training: training, estimatedBytes: estimate, availableBytes: availableBytes)
        }
    }

    /// Parameter count without allocating the model.
    package var parameterCount: Int {
        let D = embedDim, Hd = hiddenDim, p = patchSize
        let block = 2 * 2 * D + (3 * D * D + 3 * D) + (D * D + D) + (Hd * D + Hd) + (D * Hd + D)
        return D * inChannels * p * p + D + D + tokens * D + depth * block + 2 * D + numClasses * D + numClasses
    }

    /// Analytic forward FLOPs of one image (a multiply-add counts 2), as `VimConfig.forwardFLOPs`:
    /// the patch conv, per block qkv, Q Kᵀ, P V, proj and the MLP, and the head. The softmax, norms
    /// and GELU are not counted.
    package var forwardFLOPs: (matmul: Double, attention: Double, total: Double) {
        let T = Double(tokens), D = Double(embedDim), Hd = Double(hiddenDim)
        let patch = 2 * Double(numPatches) * Double(inChannels * patchSize * patchSize) * D
        let linear = 2 * T * D * (3 * D + D + 2 * Hd)
        let scores = 2 * 2 * T * T * D                 // Q Kᵀ and P V over all heads
        let matmul = patch + Double(depth) * linear + 2 * D * Double(numClasses)
        let attention = Double(depth) * scores
        return (matmul, attention, matmul + attention)
    }
}
