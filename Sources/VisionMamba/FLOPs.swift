/// Analytic forward FLOPs of one image (a multiply-add counts 2): the matrix products exactly,
/// the scan at 6 per state update (Δ·A, exp, h update, C·h) and the conv at 2 per tap.
public struct FLOPCount: Sendable {
    public var matmul: Double
    public var scan: Double
    public var conv: Double
    public var total: Double { matmul + scan + conv }
}

extension VimConfig {
    public var forwardFLOPs: FLOPCount {
        let T = Double(tokens), M = Double(numPatches), D = Double(embedDim), E = Double(dInner)
        let R = Double(dtRank), N = Double(dState), K = Double(dConv), L = Double(depth)
        let patch = 2 * M * Double(inChannels * patchSize * patchSize) * D
        let perBlock = 2 * T * D * 2 * E                           // in_proj
            + 2 * (2 * T * E * (R + 2 * N) + 2 * T * R * E)       // x_proj, dt_proj, both directions
            + 2 * T * E * D                                        // out_proj
        let head = 2 * D * Double(numClasses)
        return FLOPCount(matmul: patch + L * perBlock + head,
                         scan: L * 2 * T * E * N * 6,
                         conv: L * 2 * T * E * K * 2)
    }
}
