// Famba-V's cross-layer token fusion: ToMe's bipartite soft matching (spec/famba-v.md §2).
//
// For each sample, tokens at even positions (set A) each propose one edge to their most
// cosine-similar token at an odd position (set B); the r A tokens with the strongest edges are
// merged into their B partners by an unweighted mean that includes the destination (no size
// tracking). The output is [surviving A tokens, in order] ++ [all B tokens, in order], or, with
// `preserveOrder`, the surviving tokens in their original sequence order. The same plan is
// applied to every tensor laid out like the metric (normalised hidden states and residual).
// A protected token (the class token) is never merged: at an even position it is never a
// source, at an odd one never a destination, so its value passes through unchanged.

/// Where every output token of one fusion comes from, per sample.
package struct FusionPlan: Sendable {
    package let batch: Int
    package let tokensIn: Int
    package let tokensOut: Int
    /// [batch][tokensOut]: the input position each output token starts from.
    package let source: [[Int]]
    /// [batch][tokensIn]: the output index each input token is averaged into.
    package let destination: [[Int]]
    /// [batch][tokensOut]: how many input tokens each output token averages.
    package let count: [[Int]]
    /// [batch]: the protected token's new index, when one was protected.
    package let protectedIndex: [Int]?
}

/// The fusion plan for metric [B, T, C] removing min(r, (T − p)/2) tokens per sample, where p = 1
/// when a token is protected (ToMe's cap; r ≤ 0 is the identity). `protected` is the class
/// token's index per sample.
package func bipartiteSoftMatching(_ metric: Tensor, r: Int, protected: [Int]?, preserveOrder: Bool = false) throws -> FusionPlan {
    guard metric.rank == 3 else { throw TensorError.rankMismatch(tensor: "metric", expected: 3, found: metric.shape) }
    let (B, T, C) = (metric.shape[0], metric.shape[1], metric.shape[2])
    if let protected {
        guard protected.count == B else { throw TensorError.valueCountMismatch(tensor: "protected", expected: B, found: protected.count) }
        if let bad = protected.first(where: { $0 < 0 || $0 >= T }) { throw TensorError.indexOutOfRange(tensor: "protected", index: bad, count: T) }
    }
    let reserved = protected == nil ? 0 : 1
    let rEff = max(0, min(r, (T - reserved) / 2))
    let nA = (T + 1) / 2, nB = T / 2
    if rEff == 0 {   // nothing to merge: the identity, in the original order (as ToMe's do_nothing)
        return FusionPlan(batch: B, tokensIn: T, tokensOut: T, source: Array(repeating: Array(0..<T), count: B),
                          destination: Array(repeating: Array(0..<T), count: B), count: Array(repeating: Array(repeating: 1, count: T), count: B),
                          protectedIndex: protected)
    }
    var sources: [[Int]] = [], destinations: [[Int]] = [], counts: [[Int]] = [], newProtected: [Int] = []
    let values = metric.array   // the matching runs on the host
    for b in 0..<B {
        // Cosine similarity of every A token to every B token (no epsilon, as ToMe).
        var unit = [Double](repeating: 0, count: T * C)
        for t in 0..<T {
            let row = values[((b * T + t) * C)...]
            var norm = 0.0
            for c in row.indices.prefix(C) { norm += Double(row[c]) * Double(row[c]) }
            norm = norm.squareRoot()
            for (c, v) in row.prefix(C).enumerated() { unit[t * C + c] = Double(v) / norm }
        }
        let p = protected?[b]
        var bestScore = [Double](repeating: -.infinity, count: nA), bestB = [Int](repeating: 0, count: nA)
        for a in 0..<nA {
            if let p, p % 2 == 0, a == p / 2 { continue }          // protected source row stays −inf
            for j in 0..<nB {
                if let p, p % 2 == 1, j == (p - 1) / 2 { continue } // protected destination column
                var s = 0.0
                for c in 0..<C { s += unit[(2 * a) * C + c] * unit[(2 * j + 1) * C + c] }
                if s > bestScore[a] { bestScore[a] = s; bestB[a] = j }
            }
        }
        // Strongest edges first; ties keep the lower index (torch's argsort gives no guarantee).
        let order = (0..<nA).sorted { bestScore[$0] > bestScore[$1] || (bestScore[$0] == bestScore[$1] && $0 < $1) }
        let merged = Set(order.prefix(rEff)), survivors = order.dropFirst(rEff).sorted()
        // Output slots: surviving A tokens then B tokens, or everything in sequence order.
        var slotOfInput = [Int](repeating: -1, count: T), source = [Int]()
        if preserveOrder {
            for t in 0..<T where t % 2 == 1 || !merged.contains(t / 2) { slotOfInput[t] = source.count; source.append(t) }
        } else {
            for a in survivors { slotOfInput[2 * a] = source.count; source.append(2 * a) }
            for j in 0..<nB { slotOfInput[2 * j + 1] = source.count; source.append(2 * j + 1) }
        }
        var destination = slotOfInput, count = [Int](repeating: 1, count: source.count)
        for a in merged {
            let slot = slotOfInput[2 * bestB[a] + 1]
            destination[2 * a] = slot
            count[slot] += 1
        }
        sources.append(source); destinations.append(destination); counts.append(count)
        if let p { newProtected.append(slotOfInput[p]) }
    }
    return FusionPlan(batch: B, tokensIn: T, tokensOut: T - rEff, source: sources, destination: destinations,
                      count: counts, protectedIndex: protected == nil ? nil : newProtected)
}

/// Applies a plan to x [B, T, D]: each output token is the mean of the inputs sent to it.
/// Backward: every contributor receives 1/n of its output token's gradient.
package func mergeTokens(_ x: Tensor, plan: FusionPlan, tape: Tape?) throws -> Tensor {
    guard x.rank == 3 else { throw TensorError.rankMismatch(tensor: "x", expected: 3, found: x.shape) }
    let (B, T, D) = (x.shape[0], x.shape[1], x.shape[2])
    guard B == plan.batch && T == plan.tokensIn else {
        throw TensorError.shapeMismatch(tensor: "x", expected: [plan.batch, plan.tokensIn, D], found: x.shape)
    }
    let To = plan.tokensOut
    if To == T && plan.source.allSatisfy({ $0 == Array(0..<T) }) { return x }
    // Output token o is the mean of its inputs: input row (b, t) adds 1/n of itself to it.
    var targets: [Int] = [], weights: [Float] = []
    for b in 0..<B {
        for t in 0..<T {
            let o = plan.destination[b][t]
            targets.append(b * To + o); weights.append(1 / Float(plan.count[b][o]))
        }
    }
    let be = x.backend
    let y = Tensor(zeroed: [B, To, D], device: x.device)
    be.scatterAddRows(x, indices: targets, weights: weights, into: y)
    let xSlot = x.slot, ySlot = y.slot        // the scatter needs no values
    tape?.record {
        guard let yGrad = ySlot.grad, xSlot.requiresGrad else { return }
        // Every contributor receives 1/n of its output token's gradient.
        let picked = Tensor(uninitializedShape: [B, T, D], device: yGrad.device)
        be.gatherRows(yGrad, indices: targets, into: picked)
        let factors = Tensor(ownValues: weights, shape: [B * T], device: yGrad.device)
        let g = xSlot.buffer()
        be.scaleRows(picked, by: factors, into: g, accumulate: true)
    }
    return y
}
