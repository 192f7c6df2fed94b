import Foundation

// Backward of the selective scan (SelectiveScan.swift). As the official CUDA kernel does, nothing
// but the inputs is kept from the forward: each task recomputes its states h_t over the sequence,
// then walks back in time carrying g = ∂L/∂h. With Δ_t = softplus(delta_t + bias) (`dt` in the
// code) and the state's decay exp(Δ_t A) (`decay`):
//   yGrad_t  = outGrad_t·scale·SiLU(z_t)             zGrad_t = outGrad_t·scale·y_t·SiLU'(z_t)
//   g_t      = g_{t+1}·exp(Δ_{t+1}A) + yGrad_t·C_t    CGrad_t += yGrad_t·h_t     DGrad += yGrad_t·u_t
//   dtGrad_t = Σ_n g_t·(A·exp(Δ_t A)·h_{t−1} + B_t·u_t)                       BGrad_t += g_t·Δ_t·u_t
//   uGrad_t  = yGrad_t·D + Σ_n g_t·Δ_t·B_t                      AGrad += g_t·Δ_t·exp(Δ_t A)·h_{t−1}
//   deltaGrad_t = dtGrad_t·sigmoid(delta_t + bias) (1 above the softplus threshold)
//   deltaBiasGrad += deltaGrad_t
// B and C are shared by all channels, so their gradients are sums over channels.

/// Where a scan backward writes: deltaGrad is written; uGrad, BGrad, CGrad, zGrad (in their
/// operands' layouts), AGrad [E, N], DGrad and deltaBiasGrad [E] are accumulated.
package struct ScanGradientPointers {
    package var outGrad: UnsafePointer<Float>
    package var uGrad: UnsafeMutablePointer<Float>, deltaGrad: UnsafeMutablePointer<Float>
    package var deltaBiasGrad: UnsafeMutablePointer<Float>, AGrad: UnsafeMutablePointer<Float>
    package var BGrad: UnsafeMutablePointer<Float>, CGrad: UnsafeMutablePointer<Float>
    package var DGrad: UnsafeMutablePointer<Float>, zGrad: UnsafeMutablePointer<Float>

    package init(outGrad: UnsafePointer<Float>, uGrad: UnsafeMutablePointer<Float>, deltaGrad: UnsafeMutablePointer<Float>,
                deltaBiasGrad: UnsafeMutablePointer<Float>, AGrad: UnsafeMutablePointer<Float>,
                BGrad: UnsafeMutablePointer<Float>, CGrad: UnsafeMutablePointer<Float>,
                DGrad: UnsafeMutablePointer<Float>, zGrad: UnsafeMutablePointer<Float>) {
        (self.outGrad, self.uGrad, self.deltaGrad, self.deltaBiasGrad, self.AGrad) = (outGrad, uGrad, deltaGrad, deltaBiasGrad, AGrad)
        (self.BGrad, self.CGrad, self.DGrad, self.zGrad) = (BGrad, CGrad, DGrad, zGrad)
    }
}

/// The same gradients one channel at a time in double precision, for `channels` of the
/// operands' channels: the tail that does not fill 16 lanes, and the tests' reference.
package func selectiveScanBackwardReference(_ s: ScanPointers, _ g: ScanGradientPointers, channels: Range<Int>) {
    let (u, delta, deltaBias, A, B, C, ldBC, D, z, ldz) = (s.u, s.delta, s.deltaBias, s.A, s.B, s.C, s.ldBC, s.D, s.z, s.ldz)
    let (uGrad, deltaGrad, deltaBiasGrad, AGrad, BGrad, CGrad, DGrad, zGrad, outGrad)
        = (g.uGrad, g.deltaGrad, g.deltaBiasGrad, g.AGrad, g.BGrad, g.CGrad, g.DGrad, g.zGrad, g.outGrad)
    let (batch, width, states, reverse, scale, length) = (s.batch, s.channels, s.states, s.reverse, s.scale, s.length)
    let E = width, N = states, L = length
    // Tasks of a fixed 4 channels (never a share of the thread count), each with its own B/C
    // gradient partials, added in task order after the parallel loop: the same bits for any
    // number of threads.
    let per = 4
    let tasks = (channels.count + per - 1) / per
    guard tasks > 0 else { return }
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: tasks * batch * L * 2 * N)
    partial.initialize(repeating: 0, count: tasks * batch * L * 2 * N)
    defer { partial.deallocate() }
    parallelFor(tasks) { range in
        var h = [Double](repeating: 0, count: L * N)     // h_t for every step of one channel
        var g = [Double](repeating: 0, count: N)
        for task in range {
            let bc = partial + task * batch * L * 2 * N   // [batch·L][B | C]
            for e in (channels.lowerBound + task * per)..<min(channels.upperBound, channels.lowerBound + (task + 1) * per) {
                var aGrad = [Double](repeating: 0, count: N), skipGrad = 0.0, biasGrad = 0.0
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
                        let gatedGrad = Double(outGrad[row * E + e]) * Double(scale)   // of y·SiLU(z)
                        let yGrad = gatedGrad * zv * s
                        zGrad[row * ldz + e] += Float(gatedGrad * y * s * (1 + zv * (1 - s)))
                        skipGrad += yGrad * ut
                        var utGrad = yGrad * Double(D[e]), dtGrad = 0.0
                        for n in 0..<N {
                            let gn = g[n] + yGrad * Double(C[row * ldBC + n])
                            let hp = step > 0 ? h[(step - 1) * N + n] : 0
                            let decay = exp(dt * a[n]), bn = Double(B[row * ldBC + n])
                            bc[row * 2 * N + N + n] += yGrad * h[step * N + n]
                            bc[row * 2 * N + n] += gn * dt * ut
                            dtGrad += gn * (a[n] * decay * hp + bn * ut)
                            utGrad += gn * dt * bn
                            aGrad[n] += gn * dt * decay * hp
                            g[n] = gn * decay
                        }
                        let vGrad = v > 20 ? dtGrad : dtGrad / (1 + exp(-v))
                        deltaGrad[row * E + e] = Float(vGrad)
                        biasGrad += vGrad
                        uGrad[row * E + e] += Float(utGrad)
                    }
                }
                for n in 0..<N { AGrad[e * N + n] += Float(aGrad[n]) }
                DGrad[e] += Float(skipGrad)
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

/// Gradients of one direction. uGrad, zGrad (row stride ldz) and BGrad/CGrad (row stride ldBC)
/// are accumulated (+=); deltaGrad [batch, L, E] is written; AGrad [E, N], DGrad, deltaBiasGrad
/// [E] are accumulated. Other arguments as in `selectiveScanForward`.
///
/// A block of 16 channels (two SIMD8 halves) is worked on by one thread for the whole batch, so
/// the per-channel gradients (A, D, Δ bias) need no locks; its states h_t for one sequence live in
/// a [L][N][2] buffer.
package func selectiveScanBackward(_ s: ScanPointers, _ g: ScanGradientPointers) {
    let (u, delta, deltaBias, A, B, C, ldBC, D, z, ldz) = (s.u, s.delta, s.deltaBias, s.A, s.B, s.C, s.ldBC, s.D, s.z, s.ldz)
    let (uGrad, deltaGrad, deltaBiasGrad, AGrad, BGrad, CGrad, DGrad, zGrad, outGrad)
        = (g.uGrad, g.deltaGrad, g.deltaBiasGrad, g.AGrad, g.BGrad, g.CGrad, g.DGrad, g.zGrad, g.outGrad)
    let (batch, channels, states, reverse, scale, length) = (s.batch, s.channels, s.states, s.reverse, s.scale, s.length)
    let E = channels, N = states, L = length, rows = batch * L
    let blocks = E / 16
    let AT = UnsafeMutablePointer<Float>.allocate(capacity: N * E)   // [N, E]
    defer { AT.deallocate() }
    for e in 0..<E { for n in 0..<N { AT[n * E + e] = A[e * N + n] } }
    // B and C gradients are sums over channels, and float addition is not associative: to give
    // the same bits for any thread count, the sum must not follow how parallelFor split the
    // channels. So the 16-channel blocks are cut into groups of a fixed size that depends on E
    // only (up to 4 blocks, at least 8 groups when E allows, so 1, 2 or 4 threads share them
    // evenly). A group adds its blocks in order into SIMD lanes of a [rows][B | C] buffer (the
    // horizontal sums stay out of the token loop), sums the lanes once into its own partial, and
    // the partials are added in group order at the end. The lane buffer is one per thread, reused
    // from group to group, and a group's partial is rows·2N floats (266 KiB for Vim-T at 32 px,
    // batch 32), not the 2 MiB of lanes per block that a buffer per block would take.
    let blocksPerGroup = min(4, max(1, blocks / 8))
    let groups = (blocks + blocksPerGroup - 1) / blocksPerGroup
    let groupSums = UnsafeMutablePointer<Float>.allocate(capacity: groups * rows * 2 * N)  // [groups][rows][B | C]
    defer { groupSums.deallocate() }

    parallelFor(groups) { range in
        let hist = UnsafeMutablePointer<Float8>.allocate(capacity: L * N * 2)
        let g = UnsafeMutablePointer<Float8>.allocate(capacity: N * 2)
        let aGrad = UnsafeMutablePointer<Float8>.allocate(capacity: N * 2)
        let pb = UnsafeMutablePointer<Float8>.allocate(capacity: rows * 2 * N)   // [rows][B | C] lanes
        pb.initialize(repeating: Float8(), count: rows * 2 * N)
        let zeroState = UnsafeMutablePointer<Float8>.allocate(capacity: N * 2)  // h_{-1}
        zeroState.initialize(repeating: Float8(), count: N * 2)
        defer { hist.deallocate(); g.deallocate(); aGrad.deallocate(); pb.deallocate(); zeroState.deallocate() }
        for group in range {
            if group > range.lowerBound { pb.update(repeating: Float8(), count: rows * 2 * N) }
            for block in (group * blocksPerGroup)..<min(blocks, (group + 1) * blocksPerGroup) {
                let e = block * 16
                let bias0 = load8(deltaBias + e), bias1 = load8(deltaBias + e + 8)
                let skip0 = load8(D + e), skip1 = load8(D + e + 8)
                var skip0Grad = Float8(), skip1Grad = Float8(), bias0Grad = Float8(), bias1Grad = Float8()
                aGrad.initialize(repeating: Float8(), count: N * 2)
                for b in 0..<batch {
                    // Forward again, keeping h_t of every step. In the loops over states, pointers
                    // step through A, h, g and the lanes: index arithmetic there would be
                    // overflow-checked in every iteration.
                    var prev = UnsafePointer(zeroState)
                    for step in 0..<L {
                        let t = reverse ? L - 1 - step : step, row = b * L + t
                        let dt0 = softplus8(load8(delta + row * E + e) + bias0)
                        let dt1 = softplus8(load8(delta + row * E + e + 8) + bias1)
                        let dtu0 = dt0 * load8(u + row * E + e), dtu1 = dt1 * load8(u + row * E + e + 8)
                        let Bt = B + row * ldBC, h = hist + step * N * 2
                        var a = AT + e, hn = h, pn = prev
                        for n in 0..<N {
                            hn[0] = (dtu0 * Bt[n]).plusProduct(exp8(dt0 * load8(a)), pn[0])
                            hn[1] = (dtu1 * Bt[n]).plusProduct(exp8(dt1 * load8(a + 8)), pn[1])
                            a += E; hn += 2; pn += 2
                        }
                        prev = UnsafePointer(h)
                    }
                    // Back in time, carrying g = ∂L/∂h.
                    g.initialize(repeating: Float8(), count: N * 2)
                    for step in stride(from: L - 1, through: 0, by: -1) {
                        let t = reverse ? L - 1 - step : step, row = b * L + t
                        let v0 = load8(delta + row * E + e) + bias0, v1 = load8(delta + row * E + e + 8) + bias1
                        let dt0 = softplus8(v0), dt1 = softplus8(v1)
                        let u0 = load8(u + row * E + e), u1 = load8(u + row * E + e + 8)
                        let zr = z + row * ldz + e
                        let z0 = load8(zr), z1 = load8(zr + 8)
                        let Bt = B + row * ldBC, Ct = C + row * ldBC, h = hist + step * N * 2
                        var y0 = skip0 * u0, y1 = skip1 * u1
                        var hy = h
                        for n in 0..<N {
                            y0 = y0.plusProduct(hy[0], Ct[n]); y1 = y1.plusProduct(hy[1], Ct[n])
                            hy += 2
                        }
                        let s0 = sigmoid8(z0), s1 = sigmoid8(z1)
                        let o0 = load8(outGrad + row * E + e) * scale, o1 = load8(outGrad + row * E + e + 8) * scale
                        let y0Grad = o0 * z0 * s0, y1Grad = o1 * z1 * s1
                        let zg = zGrad + row * ldz + e
                        store8(zg, load8(zg) + o0 * y0 * s0 * (1 + z0 * (1 - s0)))
                        store8(zg + 8, load8(zg + 8) + o1 * y1 * s1 * (1 + z1 * (1 - s1)))
                        skip0Grad = skip0Grad.plusProduct(y0Grad, u0); skip1Grad = skip1Grad.plusProduct(y1Grad, u1)
                        var u0Grad = y0Grad * skip0, u1Grad = y1Grad * skip1, dt0Grad = Float8(), dt1Grad = Float8()
                        let dtu0 = dt0 * u0, dtu1 = dt1 * u1
                        var a = AT + e, hn = UnsafePointer(h), hp = step > 0 ? UnsafePointer(h - 2 * N) : UnsafePointer(zeroState)
                        var gs = g, ag = aGrad, laneB = pb + row * 2 * N, laneC = laneB + N
                        for n in 0..<N {
                            let a0 = load8(a), a1 = load8(a + 8)
                            let bn = Bt[n], cn = Ct[n]
                            let gn0 = gs[0].plusProduct(y0Grad, cn), gn1 = gs[1].plusProduct(y1Grad, cn)
                            let hp0 = hp[0], hp1 = hp[1]
                            let decay0 = exp8(dt0 * a0), decay1 = exp8(dt1 * a1)
                            laneC[0] = laneC[0].plusProduct(y0Grad, hn[0]).plusProduct(y1Grad, hn[1])
                            laneB[0] = laneB[0].plusProduct(gn0, dtu0).plusProduct(gn1, dtu1)
                            let aDecayHp0 = a0 * decay0 * hp0, aDecayHp1 = a1 * decay1 * hp1
                            dt0Grad = dt0Grad.plusProduct(gn0, aDecayHp0.plusProduct(u0, bn))
                            dt1Grad = dt1Grad.plusProduct(gn1, aDecayHp1.plusProduct(u1, bn))
                            u0Grad = u0Grad.plusProduct(gn0 * dt0, bn); u1Grad = u1Grad.plusProduct(gn1 * dt1, bn)
                            ag[0] = ag[0].plusProduct(gn0 * dt0, decay0 * hp0)
                            ag[1] = ag[1].plusProduct(gn1 * dt1, decay1 * hp1)
                            gs[0] = gn0 * decay0
                            gs[1] = gn1 * decay1
                            a += E; hn += 2; hp += 2; gs += 2; ag += 2; laneB += 1; laneC += 1
                        }
                        // softplus'(v) = sigmoid(v); above the threshold softplus is v and the slope 1,
                        // which sigmoid already rounds to in float32.
                        let v0Grad = dt0Grad * sigmoid8(v0), v1Grad = dt1Grad * sigmoid8(v1)
                        store8(deltaGrad + row * E + e, v0Grad); store8(deltaGrad + row * E + e + 8, v1Grad)
                        bias0Grad += v0Grad; bias1Grad += v1Grad
                        let ug = uGrad + row * E + e
                        store8(ug, load8(ug) + u0Grad); store8(ug + 8, load8(ug + 8) + u1Grad)
                    }
                }
                for n in 0..<N {
                    for lane in 0..<8 {
                        AGrad[(e + lane) * N + n] += aGrad[2 * n][lane]
                        AGrad[(e + 8 + lane) * N + n] += aGrad[2 * n + 1][lane]
                    }
                }
                store8(DGrad + e, load8(DGrad + e) + skip0Grad); store8(DGrad + e + 8, load8(DGrad + e + 8) + skip1Grad)
                store8(deltaBiasGrad + e, load8(deltaBiasGrad + e) + bias0Grad)
                store8(deltaBiasGrad + e + 8, load8(deltaBiasGrad + e + 8) + bias1Grad)
            }
            let sums = groupSums + group * rows * 2 * N
            for i in 0..<(rows * 2 * N) { sums[i] = pb[i].sum() }
        }
    }
    parallelFor(rows, grain: 64) { range in
        for row in range {
            for n in 0..<N {
                var sb: Float = 0, sc: Float = 0
                for group in 0..<groups {
                    sb += groupSums[(group * rows + row) * 2 * N + n]
                    sc += groupSums[(group * rows + row) * 2 * N + N + n]
                }
                BGrad[row * ldBC + n] += sb
                CGrad[row * ldBC + n] += sc
            }
        }
    }
    if blocks * 16 < E {
        selectiveScanBackwardReference(s, g, channels: blocks * 16..<E)
    }
}
