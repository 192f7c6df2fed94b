/// Which blocks fuse tokens (Famba-V), and how.
public struct TokenFusion: Codable, Equatable, Sendable {
    /// Named strategies with the paper's meaning (its strategy figure): `lower` fuses the lower
    /// layers (blocks i < L) and conserves the upper ones; `upper` fuses blocks i > L.
    public enum Strategy: String, Codable, CaseIterable, Sendable {
        case none, all, interleave, lower, upper

        /// The strategy a name means: a raw value, or `no` / `alternate`, the released code's
        /// names for none / interleave.
        public init(name: String) throws {
            switch name {
            case "no": self = .none
            case "alternate": self = .interleave
            default:
                guard let strategy = Strategy(rawValue: name) else {
                    throw ConfigError.unknownFusionStrategy(name: name, valid: ["none", "all", "interleave", "alternate", "lower", "upper"])
                }
                self = strategy
            }
        }
    }

    /// How a strategy name maps to blocks: the paper's meaning, or the released code's per-block
    /// flags (`lower`: i > L, `upper`: i < L, `alternate`: odd i; spec/famba-v.md §4.2), whose
    /// lower/upper are the reverse of the paper's.
    public enum Rule: String, Codable, CaseIterable, Sendable { case paper, official }

    /// Blocks whose mixer input is fused, in ascending order.
    public var blocks: [Int]
    /// r, tokens removed per fusing block (capped at (T − 1) / 2 at each fusion).
    public var tokens: Int
    /// Keep merged tokens in their original spatial order (a deviation from the paper, whose
    /// output order is [surviving even-position tokens] ++ [odd-position tokens]).
    public var preserveOrder: Bool = false

    /// Fusion in the blocks `blocks`, each removing `tokens` tokens by merging them into their most similar neighbours; `preserveOrder` keeps merged tokens in their spatial order (a deviation from the paper).
    public init(blocks: [Int], tokens: Int, preserveOrder: Bool = false) {
        self.blocks = blocks.sorted()
        self.tokens = tokens
        self.preserveOrder = preserveOrder
    }

    /// The blocks a strategy fuses in a model of `depth` blocks.
    public static func blocks(strategy: Strategy, layer: Int, depth: Int, rule: Rule) -> [Int] {
        let all = Array(0..<max(depth, 0))
        switch (strategy, rule) {
        case (.none, _): return []
        case (.all, _): return all
        case (.interleave, _): return all.filter { $0 % 2 == 1 }
        case (.lower, .paper), (.upper, .official): return all.filter { $0 < layer }
        case (.upper, .paper), (.lower, .official): return all.filter { $0 > layer }
        }
    }

    /// Tokens each block's mixer sees, starting from `tokens` tokens (one protected class token).
    public func schedule(tokens: Int, depth: Int) -> [Int] {
        var t = tokens
        return (0..<max(depth, 0)).map { i in
            if blocks.contains(i) { t -= max(0, min(self.tokens, (t - 1) / 2)) }
            return t
        }
    }
}
