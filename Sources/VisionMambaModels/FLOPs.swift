/// Analytic forward FLOPs of one image (a multiply-add counts 2): the matrix products exactly,
/// the scan at 6 per state update (Δ·A, exp, h update, C·h) and the conv at 2 per tap.
package struct FLOPCount: Sendable {
    package var matmul: Double
    package var scan: Double
    package var conv: Double
    package var total: Double { matmul + scan + conv }
}

extension VimConfig {
    /// Tokens each block's mixer sees: all of them, fewer after Famba-V fusions or DyVM stages.
    package var tokenSchedule: [Int] {
        if let fusion { return fusion.schedule(tokens: tokens, depth: depth) }
        if let dyvm { return dyvm.schedule(numPatches: numPatches, depth: depth).tokens }
        return Array(repeating: tokens, count: depth)
    }

    /// Σ over blocks of the tokens each mixer sees.
    package var tokenLayers: Int { tokenSchedule.reduce(0, +) }

    /// What this engine computes per image, both scan directions. `directionRate` is the fraction
    /// of (block, direction) pairs a DyVM's gates leave on (1: all).
    package func forwardFLOPs(directionRate: Double = 1) -> FLOPCount {
        var count = blocksFLOPs(tokenSchedule: tokenSchedule, predictorTokens: predictorTokens, directionRate: directionRate)
        count.matmul += 2 * Double(embedDim * numClasses)                // the head
        return count
    }

    /// The patch embedding and the blocks with `tokenSchedule` tokens, plus DyVM's scorers over
    /// `predictorTokens` tokens per stage and its direction heads.
    func blocksFLOPs(tokenSchedule: [Int], predictorTokens: [Int], directionRate: Double) -> FLOPCount {
        let M = Double(numPatches), D = Double(embedDim), E = Double(dInner)
        let R = Double(dtRank), N = Double(dState), K = Double(dConv)
        var matmul = 2 * M * Double(inChannels) * Double(patchSize) * Double(patchSize) * D, scan = 0.0, conv = 0.0
        let rate = dyvm == nil ? 1 : directionRate
        for t in tokenSchedule.map(Double.init) {
            matmul += 2 * t * D * 2 * E                                  // in_proj
                + rate * 2 * (2 * t * E * (R + 2 * N) + 2 * t * R * E)  // x_proj, dt_proj, both directions
                + 2 * t * E * D                                          // out_proj
            scan += rate * 2 * t * E * N * 6
            conv += rate * 2 * t * E * K * 2
            if dyvm != nil { matmul += 2 * 2 * E * 2 }                   // the direction head
        }
        for n in predictorTokens.map(Double.init) { matmul += 2 * n * predictorMACsPerToken }   // DyVM's token scorers
        return FLOPCount(matmul: matmul, scan: scan, conv: conv)
    }

    package var forwardFLOPs: FLOPCount { forwardFLOPs() }

    /// Multiply-accumulates of one token through a DyVM predictor's four Linears.
    var predictorMACsPerToken: Double {
        let (d, d2, d4) = (Double(embedDim), Double(embedDim / 2), Double(embedDim / 4))
        return d * d + d * d2 + d2 * d4 + d4 * 2
    }

    /// Tokens each DyVM predictor scores: the non-class tokens entering its stage.
    var predictorTokens: [Int] {
        guard let dyvm else { return [] }
        let keep = dyvm.keepTokens(numPatches: numPatches)
        return [numPatches] + keep.dropLast()
    }

    /// Multiply-accumulates as the official DyVM `calc_flops.py` counts them (spec/dyvm.md §8.2):
    /// the patch conv, every Linear outside the mixers (predictors, head), and per mixer a closed
    /// formula over one scan direction only, whose conv, x_proj, dt_proj and scan terms are scaled
    /// by `blockKeepRatio` (the measured mean gate rate). Norms and the gate heads are not counted.
    package func officialMACs(blockKeepRatio: Double = 1) -> Double {
        let D = Double(embedDim), Di = Double(dInner), R = Double(dtRank), N = Double(dState), K = Double(dConv)
        var macs = D * Double(patchSize) * Double(patchSize) * Double(inChannels) * Double(numPatches) + D * Double(numClasses)
        let bkr = dyvm == nil ? 1 : blockKeepRatio
        for l in tokenSchedule.map(Double.init) {
            macs += l * D * 2 * Di + l * Di * D                                          // in_proj, out_proj
            macs += bkr * ((l + K - 1) * Di * K + l * Di * (R + 2 * N) + l * R * Di + 9 * l * Di * N + 2 * l * Di)
        }
        for n in predictorTokens.map(Double.init) { macs += n * predictorMACsPerToken }
        return macs
    }
}
