import ArgumentParser
import VisionMambaModels

/// DyVM flags, named as the official main.py's: turn a Vim into a DyVM or change a DyVM's stages.
struct DyVMOptions: ParsableArguments {
    @Flag(help: "Add DyVM token pruning and direction selection to a Vim model.") var dyvm = false
    @Option(name: .customLong("pruning-loc"), help: "Blocks before which the pruning stages run (default: depth/4, depth/2, 3·depth/4, so 6,12,18 for 24 blocks).")
    var pruningLoc: String?
    @Option(name: .customLong("token-keep-ratio"), help: "r: stage s keeps int(r^s · M) patch tokens (default: the model's, else 0.7).")
    var tokenKeepRatio: Double?
    @Option(name: .customLong("block-keep-ratio"), help: "b: target mean of the direction gates (default: the model's, else 0.8).")
    var blockKeepRatio: Double?
    @Option(name: .customLong("gate-threshold"), help: "A direction runs when its gate's sigmoid exceeds this (official 0.5).") var gateThreshold: Float?

    // Comparisons are written so that NaN fails them.
    func validate() throws {
        for (flag, value) in [("--token-keep-ratio", tokenKeepRatio), ("--block-keep-ratio", blockKeepRatio)] {
            if let value, !(value > 0 && value <= 1) { throw ValidationError("\(flag) must be in (0, 1]") }
        }
        if let gateThreshold, !(gateThreshold > 0 && gateThreshold < 1) { throw ValidationError("--gate-threshold must be in (0, 1)") }
    }

    var isSet: Bool { dyvm || pruningLoc != nil || tokenKeepRatio != nil || blockKeepRatio != nil || gateThreshold != nil }

    /// `config` with these settings applied (a DyVM when asked for or already one).
    func apply(to config: VimConfig) throws -> VimConfig {
        var c = config
        guard isSet || c.dyvm != nil else { return c }
        var d = c.dyvm ?? DyVMConfig(pruningLoc: DyVMConfig.pruningLoc(depth: c.depth), tokenKeepRatio: 0.7)
        if let pruningLoc {
            d.pruningLoc = try pruningLoc.split(separator: ",").map { part in
                guard let i = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--pruning-loc: '\(part)' is not a block index")
                }
                return i
            }
        }
        if let tokenKeepRatio { d.tokenKeepRatio = tokenKeepRatio }
        if let blockKeepRatio { d.blockKeepRatio = blockKeepRatio }
        if let gateThreshold { d.gateThreshold = gateThreshold }
        c.dyvm = d
        try c.validate()
        return c
    }
}

/// DyVM's loss weights: only training uses them.
struct DyVMLossOptions: ParsableArguments {
    @Option(name: .customLong("token-pruning-weight"), help: "Weight of the token keep-ratio loss (official 10).") var tokenPruningWeight: Double?
    @Option(name: .customLong("block-pruning-weight"), help: "Weight of the direction keep-ratio loss (official 10).") var blockPruningWeight: Double?
    @Option(name: .customLong("distill-weight"), help: "Weight of the logit and token distillation (official 0.5).") var distillWeight: Double?
    @Option(name: .customLong("token-ratio-divisor"), help: "The token-ratio loss is divided by 3 in the official code whatever the stage count; pass the stage count to deviate.")
    var tokenRatioDivisor: Double?

    func validate() throws {
        for (flag, value) in [("--token-pruning-weight", tokenPruningWeight), ("--block-pruning-weight", blockPruningWeight),
                              ("--distill-weight", distillWeight)] {
            if let value, !(value >= 0 && value.isFinite) { throw ValidationError("\(flag) must be a finite number, at least 0") }
        }
        if let tokenRatioDivisor, !(tokenRatioDivisor > 0 && tokenRatioDivisor.isFinite) {
            throw ValidationError("--token-ratio-divisor must be positive")
        }
    }

    var isSet: Bool { tokenPruningWeight != nil || blockPruningWeight != nil || distillWeight != nil || tokenRatioDivisor != nil }

    /// `config`'s DyVM settings with these weights; refused for a model without DyVM.
    func apply(to config: VimConfig) throws -> VimConfig {
        guard isSet else { return config }
        guard var d = config.dyvm else { throw ValidationError("the DyVM loss weights need --dyvm or a DyVM model") }
        if let tokenPruningWeight { d.tokenPruningWeight = tokenPruningWeight }
        if let blockPruningWeight { d.blockPruningWeight = blockPruningWeight }
        if let distillWeight { d.distillWeight = distillWeight }
        if let tokenRatioDivisor { d.tokenRatioDivisor = tokenRatioDivisor }
        var c = config
        c.dyvm = d
        try c.validate()
        return c
    }
}
