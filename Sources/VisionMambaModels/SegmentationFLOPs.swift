/// Analytic forward FLOPs of one crop through a segmentor (a multiply-add counts 2), by part:
/// the backbone's blocks as `FLOPCount` counts them, the pyramid's transposed convolutions, and
/// the convolutions of the heads. Norms, activations, pooling and resizing are not counted.
package struct SegmentationFLOPCount: Sendable {
    package var backbone: FLOPCount
    package var pyramid: Double
    package var decodeHead: Double
    /// The FCN head runs in training only.
    package var auxiliaryHead: Double
    /// What inference computes: backbone, pyramid and decoder.
    package var total: Double { backbone.total + pyramid + decodeHead }
}

extension SegmentationConfig {
    /// Tokens each block's mixer sees: every patch (no class token), fewer after DyVM's stages.
    package var tokenSchedule: [Int] {
        let b = backbone, M = b.numPatches
        if let deit { return Array(repeating: deit.tokens, count: deit.depth) }
        guard let dyvm = b.dyvm else { return Array(repeating: M, count: b.depth) }
        let keep = dyvm.keepTokens(numPatches: M)
        return (0..<b.depth).map { i in dyvm.pruningLoc.lastIndex { $0 <= i }.map { keep[$0] } ?? M }
    }

    /// `directionRate`: the fraction of (block, direction) pairs a DyVM's gates leave on (1: all).
    package func forwardFLOPs(directionRate: Double = 1) -> SegmentationFLOPCount {
        let b = backbone, D = Double(b.embedDim), C = Double(decodeChannels), K = Double(numClasses)
        // DyVM's scorers read the whole grid at every stage.
        let scored = Array(repeating: b.numPatches, count: b.dyvm?.pruningLoc.count ?? 0)
        // DeiT's blocks (and its unused head) count as matrix products, attention included.
        let blocks = deit.map { FLOPCount(matmul: $0.forwardFLOPs.total, scan: 0, conv: 0) }
            ?? b.blocksFLOPs(tokenSchedule: tokenSchedule, predictorTokens: scored, directionRate: directionRate)
        let sides = levelSides.map(Double.init), grid = Double(grid)
        /// Multiply-adds of a k×k convolution from `inC` to `outC` channels over side² outputs.
        func conv(_ side: Double, _ inC: Double, _ outC: Double, kernel k: Double = 1) -> Double { 2 * side * side * inC * outC * k * k }
        // A 2×2, stride-2 transposed convolution: every input pixel feeds 4 outputs.
        let up = { (inputSide: Double) in 2 * inputSide * inputSide * 4 * D * D }
        let pyramid = b.patchSize == 16 ? up(grid) + up(2 * grid) + up(grid) : up(grid)
        var decode = poolScales.reduce(0.0) { $0 + conv(Double($1), D, C) }          // PPM 1×1
        decode += conv(sides[3], D + Double(poolScales.count) * C, C, kernel: 3)       // PPM bottleneck
        for side in sides.dropLast() { decode += conv(side, D, C) + conv(side, C, C, kernel: 3) }   // laterals, fpn convs
        decode += conv(sides[0], 4 * C, C, kernel: 3) + conv(sides[0], C, K)            // fpn_bottleneck, conv_seg
        let auxSide = sides[auxiliaryIndex], A = Double(auxiliaryChannels)
        let auxiliary = conv(auxSide, D, A, kernel: 3) + conv(auxSide, A, K)
        return SegmentationFLOPCount(backbone: blocks, pyramid: pyramid, decodeHead: decode, auxiliaryHead: auxiliary)
    }
}
