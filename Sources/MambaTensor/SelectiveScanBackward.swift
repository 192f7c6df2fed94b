import Foundation

// Backward of the selective scan (SelectiveScan.swift). As the official CUDA kernel does, nothing
// but the inputs is kept from the forward: each task recomputes its states h_t over the sequence,
// then walks back in time carrying g = dL/dh:
//   dy_t  = outGrad_t·scale·SiLU(z_t)             dz_t = outGrad_t·scale·y_t·SiLU'(z_t)
//   g_t   = g_{t+1}·exp(Δ_{t+1}A) + dy_t·C_t       dC_t += dy_t·h_t      dD += dy_t·u_t
//   dΔ_t  = Σ_n g_t·(A·exp(Δ_t A)·h_{t−1} + B_t·u_t)                    dB_t += g_t·Δ_t·u_t
//   du_t  = dy_t·D + Σ_n g_t·Δ_t·B_t                                   dA   += g_t·Δ_t·exp(Δ_t A)·h_{t−1}
//   ddelta_t = dΔ_t·sigmoid(delta_t + bias) (1 above the softplus threshold), dbias += ddelta_t
// B and C are shared by all channels, so their gradients are sums over channels.

/// Gradients of one direction. uGrad, zGrad (row stride ldz) and BGrad/CGrad (row stride ldBC)
/// are accumulated (+=); deltaGrad [batch, L, E] is written; AGrad [E, N], DGrad, deltaBiasGrad
/// [E] are accumulated. Other arguments as in `selectiveScanForward`.
public func selectiveScanBackward(
    uGrad: UnsafeMutablePointer<Float>, deltaGrad: UnsafeMutablePointer<Float>,
    deltaBiasGrad: UnsafeMutablePointer<Float>, AGrad: UnsafeMutablePointer<Float>,
    BGrad: UnsafeMutablePointer<Float>, CGrad: UnsafeMutablePointer<Float>,
    DGrad: UnsafeMutablePointer<Float>, zGrad: UnsafeMutablePointer<Float>,
    outGrad: UnsafePointer<Float>, scale: Float,
    u: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>,
    A: UnsafePointer<Float>, B: UnsafePointer<Float>, C: UnsafePointer<Float>, ldBC: Int,
    D: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
    batch: Int, length: Int, channels: Int, states: Int, reverse: Bool
) {
    let E = channels, N = states, L = length
    // Channel tasks; each keeps its own B/C gradient partials, summed after the parallel loop.
    let tasks = min(E, max(1, Parallel.threads * 4))
    let per = (E + tasks - 1) / tasks
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: tasks * batch * L * 2 * N)
    partial.initialize(repeating: 0, count: tasks * batch * L * 2 * N)
    defer { partial.deallocate() }
    parallelFor(tasks) { range in
        var h = [Double](repeating: 0, count: L * N)     // h_t for every step of one channel
        var g = [Double](repeating: 0, count: N)
        for task in range {
            let bc = partial + task * batch * L * 2 * N   // [batch·L][B | C]
            for e in (task * per)..<min(E, (task + 1) * per) {
                var aGrad = [Double](repeating: 0, count: N), dGrad = 0.0, biasGrad = 0.0
                let a = (0..<N).map { Double(A[e * N + $0]) }
                for b in 0..<batch {
                    // Forward again, keeping the states.
                    for step in 0..<L {
                        let t = reverse ? L - 1 - step : step, row = b * L + t
                        let v = Double(delta[row * E + e] + deltaBias[e])
                        let dt = v > 20 ? v : log1p(exp(v)), ut = Double(u[row * E + e])
                        for n in 0..<N {
                            let prev = step > 0 ? h[(step - 1) * N + n] : 0
                            h[step * N + n] = exp(dt * a[n]) * prev + dt * Double(B[row * ldBC + n]) * ut
                        }
                    }
                    for n in 0..<N { g[n] = 0 }
                    for step in stride(from: L - 1, through: 0, by: -1) {
                        let t = reverse ? L - 1 - step : step, row = b * L + t
                        let v = Double(delta[row * E + e] + deltaBias[e])
                        let dt = v > 20 ? v : log1p(exp(v)), ut = Double(u[row * E + e])
                        var y = Double(D[e]) * ut
                        for n in 0..<N { y += Double(C[row * ldBC + n]) * h[step * N + n] }
                        let zv = Double(z[row * ldz + e]), s = 1 / (1 + exp(-zv))
                        let dout = Double(outGrad[row * E + e]) * Double(scale)
                        let dy = dout * zv * s
                        zGrad[row * ldz + e] += Float(dout * y * s * (1 + zv * (1 - s)))
                        dGrad += dy * ut
                        var du = dy * Double(D[e]), ddt = 0.0
                        for n in 0..<N {
                            let gn = g[n] + dy * Double(C[row * ldBC + n])
                            let hp = step > 0 ? h[(step - 1) * N + n] : 0
                            let dA = exp(dt * a[n]), bn = Double(B[row * ldBC + n])
                            bc[row * 2 * N + N + n] += dy * h[step * N + n]
                            bc[row * 2 * N + n] += gn * dt * ut
                            ddt += gn * (a[n] * dA * hp + bn * ut)
                            du += gn * dt * bn
                            aGrad[n] += gn * dt * dA * hp
                            g[n] = gn * dA
                        }
                        let dRaw = v > 20 ? ddt : ddt / (1 + exp(-v))
                        deltaGrad[row * E + e] = Float(dRaw)
                        biasGrad += dRaw
                        uGrad[row * E + e] += Float(du)
                    }
                }
                for n in 0..<N { AGrad[e * N + n] += Float(aGrad[n]) }
                DGrad[e] += Float(dGrad)
                deltaBiasGrad[e] += Float(biasGrad)
            }
        }
    }
    for row in 0..<(batch * L) {
        for n in 0..<N {
            var sb = 0.0, sc = 0.0
            for task in 0..<tasks {
                sb += partial[(task * batch * L + row) * 2 * N + n]
                sc += partial[(task * batch * L + row) * 2 * N + N + n]
            }
            BGrad[row * ldBC + n] += Float(sb)
            CGrad[row * ldBC + n] += Float(sc)
        }
    }
}
