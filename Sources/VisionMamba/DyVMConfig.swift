import Foundation

/// DyVM (Dynamic Vision Mamba) settings: token pruning stages and per-image scan-direction
/// selection on top of a Vim (spec/dyvm.md).
public struct DyVMConfig: Codable, Equatable, Sendable {
    /// Blocks before which the pruning stages run (the official 6, 12, 18 for 24 blocks).
    public var pruningLoc: [Int]
    /// r: stage s keeps int(r^s · M) of the M original patch tokens.
    public var tokenKeepRatio: Double
    /// b: the target mean of the direction gates (a training loss term only).
    public var blockKeepRatio: Double
    /// Training: the loss weights of the official `DyVMLoss_Token_Block` and the gate temperature.
    public var tokenPruningWeight: Double = 10
    public var blockPruningWeight: Double = 10
    public var distillWeight: Double = 0.5
    /// The official loss divides the token-ratio term by 3 whatever the number of stages (its
    /// default `pruning_loc` has three entries); kept by default.
    public var tokenRatioDivisor: Double = 3
    public var gateTemperature: Float = 2
    /// A direction is on when sigmoid(logit) (training: of logit + noise, over τ) exceeds this.
    public var gateThreshold: Float = 0.5

    public init(pruningLoc: [Int] = [6, 12, 18], tokenKeepRatio: Double, blockKeepRatio: Double = 0.8) {
        self.pruningLoc = pruningLoc
        self.tokenKeepRatio = tokenKeepRatio
        self.blockKeepRatio = blockKeepRatio
    }

    /// [r, r², r³, …] as the official main.py computes them (Python float powers).
    public var tokenRatios: [Double] { (1...pruningLoc.count).map { Foundation.pow(tokenKeepRatio, Double($0)) } }

    /// k_s = int(r^s · M): tokens stage s keeps at inference, from the original patch count M
    /// (a float64 product truncated toward zero: 0.49 · 100 keeps 48).
    public func keepTokens(numPatches M: Int) -> [Int] { tokenRatios.map { Int($0 * Double(M)) } }

    /// Tokens each block's mixer sees at inference, and the class token's index there.
    public func schedule(numPatches M: Int, depth: Int) -> (tokens: [Int], clsIndex: [Int]) {
        let keep = keepTokens(numPatches: M)
        var t = M + 1, c = M / 2
        var tokens: [Int] = [], cls: [Int] = []
        for i in 0..<depth {
            if let s = pruningLoc.firstIndex(of: i) { t = keep[s] + 1; c = keep[s] / 2 }
            tokens.append(t)
            cls.append(c)
        }
        return (tokens, cls)
    }

    func validate(depth: Int, numPatches M: Int, name: String) throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ConfigError("\(name): \(message)") } }
        try check(!pruningLoc.isEmpty, "DyVM needs at least one pruning stage")
        try check(pruningLoc == pruningLoc.sorted() && Set(pruningLoc).count == pruningLoc.count,
                  "pruning locations must be increasing (got \(pruningLoc))")
        try check(pruningLoc.allSatisfy { $0 >= 1 && $0 < depth },
                  "pruning locations must be in 1..<\(depth) (a stage before block 0 has no residual stream to score; got \(pruningLoc))")
        try check(tokenKeepRatio > 0 && tokenKeepRatio <= 1, "token keep ratio must be in (0, 1] (got \(tokenKeepRatio))")
        try check(blockKeepRatio >= 0 && blockKeepRatio <= 1, "block keep ratio must be in [0, 1] (got \(blockKeepRatio))")
        try check(gateThreshold > 0 && gateThreshold < 1, "gate threshold must be in (0, 1) (got \(gateThreshold))")
        try check(gateTemperature > 0 && tokenRatioDivisor > 0, "gate temperature and token-ratio divisor must be positive")
        try check(keepTokens(numPatches: M).allSatisfy { $0 >= 1 }, "the keep ratio \(tokenKeepRatio) leaves no patch token of \(M) at some stage")
    }
}
