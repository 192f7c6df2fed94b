import ArgumentParser
import VisionMambaModels

extension TokenFusion.Rule: ExpressibleByArgument {}

extension TokenFusion.Strategy: ExpressibleByArgument {
    /// A raw value, or the released code's `no` and `alternate`.
    public init?(argument: String) { try? self.init(name: argument) }
}

/// Where merged tokens go: the paper's [surviving even tokens] ++ [odd tokens], or their original
/// spatial order (a deviation).
enum FusionOrder: String, CaseIterable, ExpressibleByArgument {
    case paper, preserve
}

/// Famba-V token fusion flags, shared by train, bench and flops.
struct FusionOptions: ParsableArguments {
    @Option(name: .customLong("fusion-strategy"), help: "none, all, interleave, lower (fuse blocks i < L: the lower layers), upper (i > L).")
    var strategy: TokenFusion.Strategy?
    @Option(name: .customLong("fusion-layer"), help: "L, the boundary of lower/upper.") var layer: Int = 0
    @Option(name: .customLong("fusion-tokens"), help: "r, tokens removed in each fusing block.") var tokens: Int = 0
    @Option(name: .customLong("fusion-blocks"), help: "An explicit set of fusing blocks, e.g. 0,2,4 (instead of a strategy).")
    var blocks: String?
    @Option(name: .customLong("fusion-rule"), help: "paper (default) or official: the released code's per-block flags (lower: i > L, upper: i < L).")
    var rule: TokenFusion.Rule = .paper
    @Option(name: .customLong("fusion-order"), help: "paper (default: [surviving even tokens] ++ [odd tokens]) or preserve (original spatial order; a deviation).")
    var order: FusionOrder = .paper

    func validate() throws {
        if strategy != nil && blocks != nil { throw ValidationError("give --fusion-strategy or --fusion-blocks, not both") }
        if tokens < 0 { throw ValidationError("--fusion-tokens must not be negative") }
        if layer < 0 { throw ValidationError("--fusion-layer must not be negative") }
    }

    /// Whether any fusion was asked for.
    var isSet: Bool { strategy != nil || blocks != nil }

    /// The fusion for a model of `depth` blocks, or nil when none was asked for.
    func make(depth: Int) throws -> TokenFusion? {
        let chosen: [Int]
        if let blocks {
            chosen = try blocks.split(separator: ",").map { part in
                guard let i = Int(part.trimmingCharacters(in: .whitespaces)), i >= 0, i < depth else {
                    throw ValidationError("--fusion-blocks: '\(part)' is not a block index in 0..<\(depth)")
                }
                return i
            }
        } else if let strategy {
            chosen = TokenFusion.blocks(strategy: strategy, layer: layer, depth: depth, rule: rule)
        } else {
            return nil
        }
        return TokenFusion(blocks: chosen, tokens: tokens, preserveOrder: order == .preserve)
    }
}
