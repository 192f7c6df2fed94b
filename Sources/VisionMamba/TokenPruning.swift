import MambaTensor

/// The token stream between DyVM blocks: the last mixer output, the residual, each image's class
/// index and the original patch index (0..<M) of every non-class slot.
struct PrunedStream {
    var h: Tensor
    var residual: Tensor
    var cls: [Int]
    var patches: [[Int]]
}

extension VimModel {
    /// DyVM's inference pruning at stage s (spec/dyvm.md §3.1): the predictor scores the non-class
    /// tokens of h + residual, the top k_s by log P(keep) survive in their original order
    /// (indices sorted ascending), the mixer output and the residual are gathered alike, and the
    /// class token goes back at index k_s / 2.
    func prune(_ stream: PrunedStream, stage s: Int, keep k: Int, trace: ForwardTrace?) throws -> PrunedStream {
        let (B, T, D) = (stream.h.shape[0], stream.h.shape[1], stream.h.shape[2])
        let N = T - 1
        let x = Tensor(uninitializedShape: [B, N, D])
        for b in 0..<B {
            var j = 0
            for t in 0..<T where t != stream.cls[b] {
                let dst = x.data + (b * N + j) * D, hr = stream.h.data + (b * T + t) * D, rr = stream.residual.data + (b * T + t) * D
                for d in 0..<D { dst[d] = hr[d] + rr[d] }
                j += 1
            }
        }
        let logp = try Profiler.measure("token_predictor") { try scorePredictors[s](x) }
        let h = Tensor(uninitializedShape: [B, k + 1, D]), r = Tensor(uninitializedShape: [B, k + 1, D])
        var indices: [Int] = [], patches: [[Int]] = []
        let c = k / 2
        for b in 0..<B {
            let score = (0..<N).map { logp.data[(b * N + $0) * 2] }
            let kept = (0..<N).sorted { score[$0] > score[$1] }.prefix(k).sorted()
            indices += kept
            patches.append(kept.map { stream.patches[b][$0] })
            // Non-class slot j of the input sits at sequence index j (before the class) or j + 1.
            let order = kept.prefix(c).map { $0 } + [-1] + kept.dropFirst(c).map { $0 }
            for (o, j) in order.enumerated() {
                let t = j < 0 ? stream.cls[b] : (j < stream.cls[b] ? j : j + 1)
                (h.data + (b * (k + 1) + o) * D).update(from: stream.h.data + (b * T + t) * D, count: D)
                (r.data + (b * (k + 1) + o) * D).update(from: stream.residual.data + (b * T + t) * D, count: D)
            }
        }
        trace?.record("prune.\(s).logp", shape: [B, N, 2], floats: logp.array)
        trace?.record("prune.\(s).index", shape: [B, k], ints: indices)
        trace?.record("prune.\(s).patch", shape: [B, k], ints: patches.flatMap { $0 })
        return PrunedStream(h: h, residual: r, cls: [Int](repeating: c, count: B), patches: patches)
    }
}
