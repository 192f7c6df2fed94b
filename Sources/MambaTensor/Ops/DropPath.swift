/// Stochastic depth as timm's `drop_path`: each sample's whole residual branch is kept with
/// probability 1 − rate and then scaled by 1 / (1 − rate) (mask keep = floor(1 − rate + U[0,1))).
/// The identity at rate 0. The per-sample mask is all the backward needs.
package func dropPath(_ x: Tensor, rate: Double, rng: inout SeededGenerator, tape: Tape?) throws -> Tensor {
    guard rate != 0 else { return x }
    guard x.rank >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    return try dropPath(x, rate: rate, uniforms: (0..<x.shape[0]).map { _ in rng.uniform() }, tape: tape)
}

/// The same with each sample's U[0, 1) draw given (`uniforms[b]`).
package func dropPath(_ x: Tensor, rate: Double, uniforms: [Double], tape: Tape?) throws -> Tensor {
    // rate 1 would scale the kept branches by 1/0.
    guard rate >= 0, rate < 1 else { throw TensorError.invalidArgument(name: "rate", value: rate, allowed: "[0, 1)") }
    guard rate > 0 else { return x }
    guard x.rank >= 1 else { throw TensorError.rankMismatch(tensor: "x", expected: 1, found: x.shape) }
    guard uniforms.count == x.shape[0] else { throw TensorError.valueCountMismatch(tensor: "uniforms", expected: x.shape[0], found: uniforms.count) }
    let keep = 1 - rate
    let scales = try Tensor(shape: [x.shape[0]], values: uniforms.map { Float((keep + $0).rounded(.down) / keep) }, device: x.device)
    scales.requiresGrad = false
    return try scaleSamples(x, by: scales, tape: tape)
}
