import Foundation
import MambaTensor

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
    /// Weight of the direction keep-ratio loss in training (the official 10).
    public var blockPruningWeight: Double = 10
    /// Weight of the logit and token distillation from the dense teacher in training (the official 0.5).
    public var distillWeight: Double = 0.5
    /// The official loss divides the token-ratio term by 3 whatever the number of stages (its
    /// default `pruning_loc` has three entries); kept by default.
    public var tokenRatioDivisor: Double = 3
    /// Temperature of the direction gates' Gumbel-sigmoid in training (the official 2).
    public var gateTemperature: Float = 2
    /// A direction is on when sigmoid(logit) (training: of logit + noise, over τ) exceeds this.
    public var gateThreshold: Float = 0.5

    /// Stages before blocks depth/4, depth/2 and 3·depth/4: the official 6, 12, 18 for 24 blocks,
    /// scaled to other depths (1, 2, 3 for 4 blocks); fewer stages where blocks are too few.
    public static func pruningLoc(depth: Int) -> [Int] {
        var stages: [Int] = []
        for s in [depth / 4, depth / 2, 3 * depth / 4] where s >= 1 && s < depth && !stages.contains(s) { stages.append(s) }
        return stages
    }

    /// DyVM settings: pruning stages before the blocks `pruningLoc`, keeping `int(tokenKeepRatio^s · M)` patch tokens at stage s, direction gates aiming at `blockKeepRatio` on.
    public init(pruningLoc: [Int] = [6, 12, 18], tokenKeepRatio: Double, blockKeepRatio: Double = 0.8) {
        self.pruningLoc = pruningLoc
        self.tokenKeepRatio = tokenKeepRatio
        self.blockKeepRatio = blockKeepRatio
    }

    /// [r, r², r³, …] as the official main.py computes them (Python float powers).
    public var tokenRatios: [Double] { pruningLoc.indices.map { Foundation.pow(tokenKeepRatio, Double($0 + 1)) } }

    /// k_s = int(r^s · M): tokens stage s keeps at inference, from the original patch count M
    /// (a float64 product truncated toward zero: 0.49 · 100 keeps 48). Kept within 0...M, so a
    /// ratio `validate` refuses cannot make it trap.
    public func keepTokens(numPatches M: Int) -> [Int] {
        tokenRatios.map { r in
            let k = r * Double(M)
            return k.isNaN ? 0 : Int(min(max(k, 0), Double(max(M, 0))))
        }
    }

    /// Tokens each block's mixer sees at inference, and the class token's index there.
    public func schedule(numPatches M: Int, depth: Int) -> (tokens: [Int], clsIndex: [Int]) {
        let keep = keepTokens(numPatches: M)
        var t = M + 1, c = M / 2
        var tokens: [Int] = [], cls: [Int] = []
        for i in 0..<max(depth, 0) {
            if let s = pruningLoc.firstIndex(of: i) { t = keep[s] + 1; c = keep[s] / 2 }
            tokens.append(t)
            cls.append(c)
        }
        return (tokens, cls)
    }

    /// The checks of `VimConfig.validate()` for its DyVM part; fields under their fixture JSON names.
    func validate(depth: Int, numPatches M: Int, model: String) throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw ConfigError.invalidValue(model: model, field: "dyvm." + field, value: "\(value)", allowed: allowed) }
        }
        let locations = abbreviated(list: pruningLoc.map(String.init))
        try check(!pruningLoc.isEmpty, "pruning_loc", "[]", "at least one pruning stage")
        try check(zip(pruningLoc, pruningLoc.dropFirst()).allSatisfy { $0 < $1 }, "pruning_loc", locations, "increasing block indices")
        // A stage before block 0 would have no residual stream to score.
        try check(pruningLoc.allSatisfy { $0 >= 1 && $0 < depth }, "pruning_loc", locations, "block indices in 1..<\(depth)")
        try check(tokenKeepRatio > 0 && tokenKeepRatio <= 1, "token_keep_ratio", tokenKeepRatio, "(0, 1]")
        try check(blockKeepRatio > 0 && blockKeepRatio <= 1, "block_keep_ratio", blockKeepRatio, "(0, 1]")
        try check(gateThreshold > 0 && gateThreshold < 1, "block_selection.threshold", gateThreshold, "(0, 1)")
        try check(gateTemperature > 0 && gateTemperature.isFinite, "block_selection.tau", gateTemperature, "positive and finite")
        try check(tokenRatioDivisor > 0 && tokenRatioDivisor.isFinite, "loss.token_ratio_divisor", tokenRatioDivisor, "positive and finite")
        for (field, weight) in [("loss.token_pruning_weight", tokenPruningWeight), ("loss.block_pruning_weight", blockPruningWeight),
                                ("loss.distill_weight", distillWeight)] {
            try check(weight >= 0 && weight.isFinite, field, weight, "finite, at least 0")
        }
        try check(keepTokens(numPatches: M).allSatisfy { $0 >= 1 }, "token_keep_ratio", tokenKeepRatio,
                  "large enough to keep a patch token of \(M) at every stage")
    }
}
