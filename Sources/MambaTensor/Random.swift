import Foundation

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same numbers
/// on every machine, which deterministic runs need.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box-Muller).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}


extension Tensor {
    /// Fills with U(−bound, bound).
    public func fillUniform(_ bound: Double, using rng: inout SeededGenerator) {
        for i in 0..<count { data[i] = Float((2 * rng.uniform() - 1) * bound) }
    }

    /// Fills with N(0, std²) truncated at ±2 absolute, as timm's `trunc_normal_(std=…)`.
    public func fillTruncatedNormal(std: Double, using rng: inout SeededGenerator) {
        for i in 0..<count {
            var v: Double
            repeat { v = rng.normal() * std } while abs(v) > 2
            data[i] = Float(v)
        }
    }
}
