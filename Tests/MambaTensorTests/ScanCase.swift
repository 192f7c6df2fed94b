@testable import MambaTensor

/// The scan kernels on host arrays, laid out as the mixer lays them out: B and C are columns
/// `bOffset ..< bOffset + N` and `bOffset + N ..< bOffset + 2N` of `xdbl` (rows P wide), z is the
/// second half of rows 2E wide. Tensors hold the arrays so their pointers stay valid.
struct ScanCase {
    var u: [Float], delta: [Float], bias: [Float], A: [Float], D: [Float], xdbl: [Float], z: [Float]
    let batch: Int, length: Int, channels: Int, states: Int, P: Int, bOffset: Int

    /// The gradients a backward produced: of u, delta, deltaBias, A, D, xdbl (B and C columns) and z.
    struct Gradients { var u: [Float], delta: [Float], bias: [Float], A: [Float], D: [Float], xdbl: [Float], z: [Float]
        var all: [Float] { u + delta + bias + A + D + xdbl + z }
    }

    private func held(_ v: [Float]) -> Tensor { try! Tensor(shape: [v.count], values: v) }

    private func withPointers<R>(scale: Float, reverse: Bool, _ body: (ScanPointers) -> R) -> R {
        let (ut, dt, bt, at, Dt, xt, zt) = (held(u), held(delta), held(bias), held(A), held(D), held(xdbl), held(z))
        let (E, N) = (channels, states)
        return body(ScanPointers(u: ut.data, delta: dt.data, deltaBias: bt.data, A: at.data, B: xt.data + bOffset,
                                 C: xt.data + bOffset + N, ldBC: P, D: Dt.data, z: zt.data + E, ldz: 2 * E,
                                 batch: batch, length: length, channels: E, states: N, reverse: reverse, scale: scale))
    }

    /// `out` after the forward kernel (SIMD entry point, or the double-precision reference).
    func forward(out: [Float], scale: Float, accumulate: Bool, reverse: Bool, reference: Bool = false) -> [Float] {
        let o = held(out)
        withPointers(scale: scale, reverse: reverse) { s in
            if reference { selectiveScanReference(s, out: o.data, accumulate: accumulate, channels: 0..<channels) }
            else { selectiveScanForward(s, out: o.data, accumulate: accumulate) }
        }
        return o.array
    }

    /// The gradients after the backward kernel, starting from `start` (they accumulate, except delta's).
    func backward(seed: [Float], scale: Float, reverse: Bool, start: Gradients, reference: Bool = false) -> Gradients {
        let (E, N) = (channels, states)
        let g = (held(seed), held(start.u), held(start.delta), held(start.bias), held(start.A), held(start.D), held(start.xdbl), held(start.z))
        withPointers(scale: scale, reverse: reverse) { s in
            let p = ScanGradientPointers(outGrad: g.0.data, uGrad: g.1.data, deltaGrad: g.2.data, deltaBiasGrad: g.3.data, AGrad: g.4.data,
                                         BGrad: g.6.data + bOffset, CGrad: g.6.data + bOffset + N, DGrad: g.5.data, zGrad: g.7.data + E)
            if reference { selectiveScanBackwardReference(s, p, channels: 0..<E) } else { selectiveScanBackward(s, p) }
        }
        return Gradients(u: g.1.array, delta: g.2.array, bias: g.3.array, A: g.4.array, D: g.5.array, xdbl: g.6.array, z: g.7.array)
    }

    /// Gradients that all start at `value` (delta's is written, so any start will do).
    func gradients(startingAt value: Float) -> Gradients {
        func f(_ n: Int) -> [Float] { [Float](repeating: value, count: n) }
        return Gradients(u: f(u.count), delta: f(delta.count), bias: f(bias.count), A: f(A.count), D: f(D.count), xdbl: f(xdbl.count), z: f(z.count))
    }
}
