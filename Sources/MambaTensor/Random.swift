import Foundation

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same numbers
/// on every machine, which deterministic runs need.
package struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    package mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box-Muller).
    package mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}


// Initialisers for our own modules, whose bounds and deviations come from validated configs
// (a truncated normal of a huge deviation would redraw almost forever).
extension Tensor {
    /// Fills with U(−bound, bound).
    package func fillUniform(_ bound: Double, using rng: inout SeededGenerator) {
        backend.write((0..<count).map { _ in Float((2 * rng.uniform() - 1) * bound) }, into: self)
    }

    /// Fills with N(mean, std²).
    package func fillNormal(mean: Double = 0, std: Double, using rng: inout SeededGenerator) {
        backend.write((0..<count).map { _ in Float(mean + rng.normal() * std) }, into: self)
    }

    /// Fills with N(0, std²) truncated at ±2 absolute, as timm's `trunc_normal_(std=…)`.
    package func fillTruncatedNormal(std: Double, using rng: inout SeededGenerator) {
        let values: [Float] = (0..<count).map { _ in
            var v: Double
            repeat { v = rng.normal() * std } while abs(v) > 2
            return Float(v)
        }
        backend.write(values, into: self)
    }
}

extension SeededGenerator {
    /// Gamma(shape, 1) by Marsaglia and Tsang (boosted for shape < 1); NaN unless shape is a
    /// positive finite number (the rejection loop would never end on one).
    package mutating func gamma(_ shape: Double) -> Double {
        guard shape > 0, shape.isFinite else { return .nan }
        if shape < 1 { return gamma(shape + 1) * Foundation.pow(max(uniform(), 1e-300), 1 / shape) }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat { x = normal(); v = 1 + c * x } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if Foundation.log(max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }

    /// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
    package mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(a), y = gamma(b)
        return x / (x + y)
    }

    /// Uniform integer in 0..<n.
    package mutating func int(below n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}
