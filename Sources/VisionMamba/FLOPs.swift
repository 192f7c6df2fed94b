/// Analytic forward FLOPs of one image (a multiply-add counts 2): the matrix products exactly,
/// the scan at 6 per state update (Δ·A, exp, h update, C·h) and the conv at 2 per tap.
public struct FLOPCount: Sendable {
    public var matmul: Double
    public var scan: Double
    public var conv: Double
    public var total: Double { matmul + scan + conv }
}

extension VimConfig {
    /// Tokens each block's mixer sees (all of them without fusion).
    public var tokenSchedule: [Int] { fusion?.schedule(tokens: tokens, depth: depth) ?? Array(repeating: tokens, count: depth) }

    /// Σ over blocks of the tokens each mixer sees.
    public var tokenLayers: Int { tokenSchedule.reduce(0, +) }

    public var forwardFLOPs: FLOPCount {
        let M = Double(numPatches), D = Double(embedDim), E = Double(dInner)
        let R = Double(dtRank), N = Double(dState), K = Double(dConv)
        let patch = 2 * M * Double(inChannels * patchSize * patchSize) * D
        var matmul = patch + 2 * D * Double(numClasses), scan = 0.0, conv = 0.0
        for t in tokenSchedule.map(Double.init) {
            matmul += 2 * t * D * 2 * E                            // in_proj
                + 2 * (2 * t * E * (R + 2 * N) + 2 * t * R * E)   // x_proj, dt_proj, both directions
                + 2 * t * E * D                                    // out_proj
            scan += 2 * t * E * N * 6
            conv += 2 * t * E * K * 2
        }
        return FLOPCount(matmul: matmul, scan: scan, conv: conv)
    }
}
