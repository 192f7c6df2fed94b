/// What a device must provide for the ops to run on it: memory, a matrix product, the Mamba
/// kernels (conv, scan, norms) with their backward passes, and a few row-wise and elementwise
/// primitives. Ops (`linear`, `selectiveScan`, ...) check their operands, allocate outputs on the
/// operands' device and call these; model code calls ops only. `CPUBackend` holds the CPU
/// kernels; a GPU backend implements the same methods over device memory and adds a `Device`
/// case (docs/Backend.md lists the contract in prose).
///
/// Operands are tensors, possibly views: as matrices they are `rowCount` × `columnCount` with
/// rows `rowStride` apart. Every method may assume what its op checked: shapes agree, the
/// tensors named contiguous are, and every operand lives on this backend's device. Gradients
/// are accumulated (`+=`) unless a method says it writes.
package protocol Backend: AnyObject, Sendable {
    var device: Device { get }

    // Memory.
    func allocate(count: Int) -> Storage
    func fill(_ tensor: Tensor, with value: Float)
    func read(_ tensor: Tensor) -> [Float]
    func write(_ values: [Float], into tensor: Tensor)
    /// destination = source, element for element (same shape; either may be a view).
    func copy(_ source: Tensor, into destination: Tensor)

    // Dense algebra.
    func matrixProduct(_ op: MatrixProduct)
    /// Every row of `matrix` set to `vector` (a bias before a product accumulates onto it).
    func broadcastRows(_ vector: Tensor, into matrix: Tensor)
    /// vector += Σ_rows matrix (a bias gradient).
    func sumRows(_ matrix: Tensor, into vector: Tensor)
    /// y = f(x) or, with `accumulate`, y += f(x), elementwise.
    func map(_ function: PointwiseFunction, _ x: Tensor, into y: Tensor, accumulate: Bool)
    /// y = f(a, b) or y += f(a, b), elementwise.
    func combine(_ function: PointwiseCombination, _ a: Tensor, _ b: Tensor, into y: Tensor, accumulate: Bool)
    /// y[r, :] = x[r, :] · factors[r], or += with `accumulate` (masks, gates, drop path). The
    /// factors are one per row: contiguous, or a one-wide column view.
    func scaleRows(_ x: Tensor, by factors: Tensor, into y: Tensor, accumulate: Bool)
    /// Σ x², in double precision, in a fixed order (gradient clipping).
    func sumOfSquares(_ x: Tensor) -> Double
    /// dots[r] += Σ_c a[r, c] · b[r, c], summed in double precision (the gradient of `scaleRows`'
    /// factors, laid out as they are).
    func rowDots(_ a: Tensor, _ b: Tensor, into dots: Tensor)

    // Optimizer.
    /// One AdamW step (decoupled weight decay, bias-corrected moments) on a parameter in place.
    func adamW(_ op: AdamWStep)

    // Rows.
    /// destination row i = source row indices[i].
    func gatherRows(_ source: Tensor, indices: [Int], into destination: Tensor)
    /// destination row indices[i] += weights[i] · source row i (weights nil: 1), in order of i.
    func scatterAddRows(_ source: Tensor, indices: [Int], weights: [Float]?, into destination: Tensor)

    // Normalisation.
    func addRMSNorm(_ op: AddRMSNorm)
    func addRMSNormBackward(residual: Tensor, rstd: Tensor, weight: Tensor, _ gradients: AddRMSNormGradients)
    func layerNorm(_ op: LayerNormOperands)
    func layerNormBackward(_ op: LayerNormOperands, _ gradients: LayerNormGradients)

    // Attention.
    /// y[r, :] = softmax(x[r, :]) over the last dimension, row by row (y may be x itself).
    func softmaxRows(_ x: Tensor, into y: Tensor)
    /// xGrad = y ⊙ (yGrad − Σ_row yGrad ⊙ y) per row, or += with `accumulate`; when written,
    /// xGrad may be yGrad itself.
    func softmaxRowsBackward(y: Tensor, yGrad: Tensor, into xGrad: Tensor, accumulate: Bool)

    // Mamba.
    func causalConv1dSiLU(_ op: CausalConv1dSiLU)
    func causalConv1dSiLUBackward(_ op: CausalConv1dSiLU, _ gradients: CausalConv1dSiLUGradients)
    func selectiveScan(_ op: SelectiveScan)
    func selectiveScanBackward(_ op: SelectiveScan, _ gradients: SelectiveScanGradients)

    // Images.
    /// cols [B·G_h·G_w, C·p·p]: the pixels each patch token sees, in the weight's (c, y, x) order.
    func patchColumns(_ images: Tensor, patch: Int, stride: Int, into cols: Tensor)

    // Dense image ops, on contiguous NCHW tensors (see the ops in Ops/Convolution.swift and
    // beside it for what each computes).
    /// A convolution's columns of one image: cols [C·k·k, pixels] (written) from image [C, H, W],
    /// or with `transposed` the columns added back into the image (the input gradient).
    func imageColumns(_ op: ImageColumns, transposed: Bool)
    /// blocks [C·k·k, H·W] → image [C, H·k, W·k] (written, or added with `accumulate`), each
    /// pixel's C·k·k values spread over its k × k block; or with `inverse` the reverse gather.
    func depthToSpace(_ blocks: Tensor, image: Tensor, channels: Int, height: Int, width: Int, block: Int, inverse: Bool, accumulate: Bool)
    /// Per channel of x [B, C, plane] (and of x ⊙ y when y is given): Σ over B and the plane, in
    /// double precision and a fixed order.
    func channelSums(_ x: Tensor, _ y: Tensor?, channels: Int) -> [Double]
    /// out = a · aScale[c] + b · bScale[c] + shift[c] per channel c of [B, C, plane] tensors (b
    /// optional), written or added with `accumulate`.
    func channelAffine(_ op: ChannelAffine)
    /// Max over k × k windows of stride s: y [B·C, H', W'] and each maximum's index in its plane
    /// (the first on ties); with `backward`, yGrad routed to those indices of xGrad.
    func maxPool(_ x: Tensor, y: Tensor, indices: inout [Int32], kernel: Int, stride: Int, height: Int, width: Int)
    func maxPoolBackward(_ yGrad: Tensor, xGrad: Tensor, indices: [Int32], planeSize: Int)
    /// A separable resample of [B·C, H, W] planes to [B·C, H', W']: each output row (column) a
    /// weighted sum of input rows (columns) given as taps; with `transposed` the adjoint, added
    /// into the input (the gradient of bilinear resizing and of average pooling).
    func resample(_ op: Resample, transposed: Bool)
    /// y[b] = x[b]ᵀ for b in 0..<batch: [rows, columns] → [columns, rows], written or added.
    func transposeMatrices(_ x: Tensor, into y: Tensor, batch: Int, rows: Int, columns: Int, accumulate: Bool)
    /// Per pixel of logits [B, K, plane]: −log softmax at its label, 0 where ignored ([B·plane]).
    func pixelCrossEntropy(_ op: PixelCrossEntropy) -> [Double]
    /// logitsGrad += scale · (softmax − one-hot of the label) per pixel; ignored pixels add nothing.
    func pixelCrossEntropyBackward(_ op: PixelCrossEntropy, logitsGrad: Tensor, scale: Float)
    /// Per pixel of logits [B, K, plane]: the class of the largest logit (the first on ties).
    func argmaxChannels(_ logits: Tensor, classes: Int) -> [Int]
    /// y = x·cos + rotate_half(x)·sin over [B, L, D] with cos, sin [L, D]; with `transposed`, the
    /// adjoint (the gradient), added into y.
    func rotary(_ x: Tensor, cos: Tensor, sin: Tensor, into y: Tensor, transposed: Bool)
}

/// The columns of one image for a k × k convolution with zero padding: cols [C·k·k, P] covers
/// output pixels `pixels` (row-major over the output's width).
package struct ImageColumns {
    package var image: Tensor, cols: Tensor
    package var channels: Int, height: Int, width: Int
    package var kernel: Int, stride: Int, padding: Int
    package var outWidth: Int, pixels: Range<Int>
}

/// out = a · aScale[c] + b · bScale[c] + shift[c] over [B, C, plane].
package struct ChannelAffine {
    package var a: Tensor, aScale: [Float]
    package var b: Tensor?, bScale: [Float]?
    package var shift: [Float]?
    package var out: Tensor
    package var channels: Int, accumulate: Bool
}

/// A separable resample: output row i = Σ_t rowWeights[i][t] · input row rowTaps[i][t], and the
/// same along columns, over `planes` planes of [inHeight, inWidth] → [outHeight, outWidth].
package struct Resample {
    package var input: Tensor, output: Tensor
    package var planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    package var rowTaps: [[Int]], rowWeights: [[Float]], columnTaps: [[Int]], columnWeights: [[Float]]
}

/// Logits [batch, classes, plane] and one label per pixel (`ignoreIndex` where unlabelled).
package struct PixelCrossEntropy {
    package var logits: Tensor, labels: [Int32]
    package var batch: Int, classes: Int, plane: Int, ignoreIndex: Int32
}

/// c = alpha · op(a) · op(b) + beta · c, op = transpose when the flag is set; a, b, c as matrices.
package struct MatrixProduct {
    package var a: Tensor, b: Tensor, c: Tensor
    package var transposeA = false, transposeB = false
    package var alpha: Float = 1, beta: Float = 0

    package init(a: Tensor, b: Tensor, c: Tensor, transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0) {
        (self.a, self.b, self.c) = (a, b, c)
        (self.transposeA, self.transposeB, self.alpha, self.beta) = (transposeA, transposeB, alpha, beta)
    }
}

/// Elementwise functions of one tensor.
package enum PointwiseFunction: Sendable {
    /// −exp(x): a Mamba mixer's A from A_log.
    case negativeExp
    /// The exact (erf) GELU.
    case gelu
    /// x · s for a constant s.
    case scale(Float)
    /// max(x, 0).
    case relu
}

/// Elementwise functions of two tensors.
package enum PointwiseCombination: Sendable {
    case add, multiply
    /// a · GELU'(b): the GELU backward, a the output gradient and b the input.
    case geluGradient
    /// w · a + (1 − w) · b (an exponential moving average, a the average).
    case interpolate(Float)
    /// a where b > 0, else 0: the ReLU backward, a the output gradient and b the input.
    case reluGradient
}

/// torch.optim.AdamW on one parameter: p ← p·(1 − lr·wd); m ← β₁m + (1 − β₁)g;
/// v ← β₂v + (1 − β₂)g²; p ← p − stepSize · m / (√v / √(1 − β₂ᵗ) + eps), stepSize = lr / (1 − β₁ᵗ).
package struct AdamWStep {
    package var parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor
    package var decay: Float, stepSize: Float, beta1: Float, beta2: Float, secondCorrectionRoot: Float, eps: Float

    package init(parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor,
                decay: Float, stepSize: Float, beta1: Float, beta2: Float, secondCorrectionRoot: Float, eps: Float) {
        (self.parameter, self.gradient, self.firstMoment, self.secondMoment) = (parameter, gradient, firstMoment, secondMoment)
        (self.decay, self.stepSize, self.beta1, self.beta2) = (decay, stepSize, beta1, beta2)
        (self.secondCorrectionRoot, self.eps) = (secondCorrectionRoot, eps)
    }
}

/// The fused residual add + RMSNorm: residual ← residual + x (x nil: residual is the input
/// itself), normed = residual · rstd · weight. The residual is updated in place.
package struct AddRMSNorm {
    package var residual: Tensor
    package var x: Tensor?
    package var weight: Tensor, normed: Tensor
    /// 1 / sqrt(mean(residual²) + eps) per row, written when given.
    package var rstd: Tensor?
    package var eps: Float
}

/// Gradients of `AddRMSNorm`: `rowGrad` (written) receives d residual_in = d x.
package struct AddRMSNormGradients {
    package var normedGrad: Tensor?
    package var residualGrad: Tensor?
    package var rowGrad: Tensor, weightGrad: Tensor
}

/// y = (x − mean) / sqrt(var + eps) · weight + bias over the last dimension.
package struct LayerNormOperands {
    package var x: Tensor, weight: Tensor, bias: Tensor, y: Tensor, eps: Float
}

package struct LayerNormGradients {
    package var yGrad: Tensor
    package var xGrad: Tensor?
    package var weightGrad: Tensor, biasGrad: Tensor
}

/// out = SiLU(causal depthwise conv(x) + bias) over tokens of `batch` sequences of `length`;
/// x [B·L, E] rows (may be a column view), weight [E, K], out contiguous. `reverse` runs the
/// conv from the end of each sequence (Vim's backward branch without a flipped copy).
package struct CausalConv1dSiLU {
    package var x: Tensor, weight: Tensor, bias: Tensor, out: Tensor
    package var batch: Int, length: Int, reverse: Bool
}

package struct CausalConv1dSiLUGradients {
    package var outGrad: Tensor, xGrad: Tensor, weightGrad: Tensor, biasGrad: Tensor
}

/// mamba_ssm's selective scan with delta_softplus, D skip and SiLU(z) gate, in token-major
/// layout: out = scale · y (+ out when `accumulate`). u, delta, out contiguous [B·L, E]; B, C,
/// z may be column views; A [E, N] (already −exp(A_log)); D, deltaBias [E].
package struct SelectiveScan {
    package var u: Tensor, delta: Tensor, deltaBias: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, z: Tensor
    package var out: Tensor
    package var scale: Float = 1, accumulate = false
    package var batch: Int, length: Int, reverse: Bool
}

/// deltaGrad is written; the rest accumulate. Each has its operand's shape and layout.
package struct SelectiveScanGradients {
    package var outGrad: Tensor
    package var uGrad: Tensor, deltaGrad: Tensor, deltaBiasGrad: Tensor, AGrad: Tensor
    package var BGrad: Tensor, CGrad: Tensor, DGrad: Tensor, zGrad: Tensor
}
