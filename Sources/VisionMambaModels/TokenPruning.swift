import MambaTensor

extension VimModel {
    /// The non-class slots of each sequence, in order: sequence index j (before the class token)
    /// or j + 1.
    func nonClassSlots(_ cls: [Int], tokens T: Int) -> [[Int]] {
        cls.map { c in (0..<T).filter { $0 != c } }
    }

    /// DyVM's inference pruning at stage s (spec/dyvm.md §3.1): the predictor scores the non-class
    /// tokens of h + residual, the top k_s by log P(keep) survive in their original order
    /// (indices sorted ascending), the mixer output and the residual are gathered alike, and the
    /// class token goes back at index k_s / 2.
    func prune(_ stream: TokenStream, stage s: Int, keep k: Int, trace: ForwardTrace?) throws -> TokenStream {
        let (B, T) = (stream.h.shape[0], stream.h.shape[1])
        let N = T - 1
        let others = nonClassSlots(stream.cls, tokens: T)
        let x = try add(gatherRows(stream.h, index: others, tape: nil), gatherRows(stream.residual!, index: others, tape: nil), tape: nil)
        let logp = try Profiler.measure("token_predictor") { try scorePredictors[s](x) }.array
        var indices: [Int] = [], patches: [[Int]] = [], sequence: [[Int]] = []
        let c = k / 2
        for b in 0..<B {
            let score = (0..<N).map { logp[(b * N + $0) * 2] }
            let kept = (0..<N).sorted { score[$0] > score[$1] }.prefix(k).sorted()
            indices += kept
            patches.append(kept.map { stream.patches[b][$0] })
            // The class token sits between the first c kept tokens and the rest.
            sequence.append(kept.prefix(c).map { others[b][$0] } + [stream.cls[b]] + kept.dropFirst(c).map { others[b][$0] })
        }
        trace?.record("prune.\(s).logp", shape: [B, N, 2], floats: logp)
        trace?.record("prune.\(s).index", shape: [B, k], ints: indices)
        trace?.record("prune.\(s).patch", shape: [B, k], ints: patches.flatMap { $0 })
        return TokenStream(h: try gatherRows(stream.h, index: sequence, tape: nil),
                           residual: try gatherRows(stream.residual!, index: sequence, tape: nil),
                           cls: [Int](repeating: c, count: B), patches: patches)
    }
}
