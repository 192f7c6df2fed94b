import Foundation

/// The CPU backend: host memory, OpenBLAS (Accelerate on Apple platforms) for matrix products,
/// and the Swift SIMD kernels in this module for everything else. Every kernel gives the same
/// bits for any thread count (see `parallelFor` and `gemm`).
package final class CPUBackend: Backend {
    package static let shared = CPUBackend()
    package var device: Device { .cpu }

    private let pool = StoragePool()

    private init() {}

    package func allocate(count: Int) -> Storage {
        let block = pool.take(bytes: max(count, 1) * 4)
        return Storage(device: .cpu, count: count, address: block.address) { [pool] in pool.give($0, bytes: block.bytes) }
    }

    package func fill(_ t: Tensor, with value: Float) {
        forEachRow(t) { row, _ in row.update(repeating: value, count: t.columnCount) }
    }

    package func read(_ t: Tensor) -> [Float] {
        var values = [Float](repeating: 0, count: t.count)
        guard t.count > 0 else { return values }
        values.withUnsafeMutableBufferPointer { out in
            forEachRow(t) { row, r in (out.baseAddress! + r * t.columnCount).update(from: row, count: t.columnCount) }
        }
        return values
    }

    package func write(_ values: [Float], into t: Tensor) {
        guard t.count > 0 else { return }
        values.withUnsafeBufferPointer { src in
            forEachRow(t) { row, r in row.update(from: src.baseAddress! + r * t.columnCount, count: t.columnCount) }
        }
    }

    package func copy(_ source: Tensor, into destination: Tensor) {
        let n = destination.columnCount
        if source.columnCount == n {
            forEachRow(destination) { row, r in row.update(from: source.data + r * source.rowStride, count: n) }
        } else {
            // Same count, different last dimension: both must be contiguous (`reshaped` copies).
            precondition(source.isContiguous && destination.isContiguous, "copy between layouts of different rows")
            destination.data.update(from: source.data, count: source.count)
        }
    }

    /// body(row r's first element, r) for every row of t.
    private func forEachRow(_ t: Tensor, _ body: (UnsafeMutablePointer<Float>, Int) -> Void) {
        guard t.count > 0 else { return }
        for r in 0..<t.rowCount { body(t.data + r * t.rowStride, r) }
    }

    package func matrixProduct(_ op: MatrixProduct) {
        let m = op.c.rowCount, n = op.c.columnCount
        let k = op.transposeA ? op.a.rowCount : op.a.columnCount
        gemm(transA: op.transposeA, transB: op.transposeB, m: m, n: n, k: k, alpha: op.alpha,
             op.a.data, lda: op.a.rowStride, op.b.data, ldb: op.b.rowStride, beta: op.beta, op.c.data, ldc: op.c.rowStride)
    }

    package func broadcastRows(_ vector: Tensor, into matrix: Tensor) {
        let n = matrix.columnCount, v = vector.data
        forEachRowStrided(matrix) { row, _ in row.update(from: v, count: n) }
    }

    package func sumRows(_ matrix: Tensor, into vector: Tensor) {
        let n = matrix.columnCount, v = vector.data
        // Column blocks in parallel; each column adds its rows in order, as the old bias kernel did.
        parallelFor(n, grain: 64) { cols in
            for r in 0..<matrix.rowCount {
                let row = matrix.data + r * matrix.rowStride
                for c in cols { v[c] += row[c] }
            }
        }
    }

    package func map(_ function: PointwiseFunction, _ x: Tensor, into y: Tensor, accumulate: Bool) {
        let n = y.columnCount
        forEachRowStrided(y) { out, r in
            let src = x.data + r * x.rowStride
            switch function {
            case .negativeExp:
                for i in 0..<n { let v = -Foundation.exp(src[i]); out[i] = accumulate ? out[i] + v : v }
            case .gelu:
                for i in 0..<n {
                    let v = Double(src[i])
                    let g = Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
                    out[i] = accumulate ? out[i] + g : g
                }
            case .scale(let s):
                for i in 0..<n { out[i] = accumulate ? out[i] + src[i] * s : src[i] * s }
            case .relu:
                for i in 0..<n { let v = max(src[i], 0); out[i] = accumulate ? out[i] + v : v }
            }
        }
    }

    package func combine(_ function: PointwiseCombination, _ a: Tensor, _ b: Tensor, into y: Tensor, accumulate: Bool) {
        let n = y.columnCount
        forEachRowStrided(y) { out, r in
            let pa = a.data + r * a.rowStride, pb = b.data + r * b.rowStride
            switch function {
            case .add:
                for i in 0..<n { out[i] = accumulate ? out[i] + (pa[i] + pb[i]) : pa[i] + pb[i] }
            case .multiply:
                for i in 0..<n { out[i] = accumulate ? out[i] + pa[i] * pb[i] : pa[i] * pb[i] }
            case .interpolate(let w):
                for i in 0..<n { let v = w * pa[i] + (1 - w) * pb[i]; out[i] = accumulate ? out[i] + v : v }
            case .reluGradient:
                for i in 0..<n { let v = pb[i] > 0 ? pa[i] : 0; out[i] = accumulate ? out[i] + v : v }
            case .geluGradient:
                for i in 0..<n {
                    let v = Double(pb[i])
                    let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot())), pdf = exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
                    let g = Float(Double(pa[i]) * (cdf + v * pdf))
                    out[i] = accumulate ? out[i] + g : g
                }
            }
        }
    }

    package func scaleRows(_ x: Tensor, by factors: Tensor, into y: Tensor, accumulate: Bool) {
        let n = y.columnCount, f = factors.data, step = elementStep(factors)
        forEachRowStrided(y) { out, r in
            let src = x.data + r * x.rowStride, s = f[r * step]
            if accumulate { for i in 0..<n { out[i] += src[i] * s } } else { for i in 0..<n { out[i] = src[i] * s } }
        }
    }

    package func rowDots(_ a: Tensor, _ b: Tensor, into dots: Tensor) {
        let n = a.columnCount, d = dots.data, step = elementStep(dots)
        for r in 0..<a.rowCount {
            let pa = a.data + r * a.rowStride, pb = b.data + r * b.rowStride
            var acc = 0.0
            for i in 0..<n { acc += Double(pa[i]) * Double(pb[i]) }
            d[r * step] += Float(acc)
        }
    }

    package func sumOfSquares(_ x: Tensor) -> Double {
        var total = 0.0
        for r in 0..<x.rowCount {
            let row = x.data + r * x.rowStride
            for i in 0..<x.columnCount { total += Double(row[i]) * Double(row[i]) }
        }
        return total
    }

    package func adamW(_ op: AdamWStep) {
        let pp = op.parameter.data, gp = op.gradient.data, mp = op.firstMoment.data, vp = op.secondMoment.data
        let (decay, stepSize, b1, b2, bc2Sqrt, e) = (op.decay, op.stepSize, op.beta1, op.beta2, op.secondCorrectionRoot, op.eps)
        parallelFor(op.parameter.count, grain: 16384) { range in
            for i in range {
                let gi = gp[i]
                pp[i] *= decay
                mp[i] = b1 * mp[i] + (1 - b1) * gi
                vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                pp[i] -= stepSize * mp[i] / (vp[i].squareRoot() / bc2Sqrt + e)
            }
        }
    }

    /// Elements from one entry of a per-row vector to the next: 1, or the row stride of a
    /// one-wide column view.
    private func elementStep(_ t: Tensor) -> Int {
        if t.isContiguous { return 1 }
        precondition(t.columnCount == 1, "per-row values must be contiguous or one column")
        return t.rowStride
    }

    /// body(row r, r) for every row of y, rows shared out over threads when there is work enough:
    /// an elementwise pass over fewer than 2^18 elements is done before a woken thread would
    /// start, and under CPU contention each wake-up costs a scheduling slice.
    private func forEachRowStrided(_ y: Tensor, _ body: (UnsafeMutablePointer<Float>, Int) -> Void) {
        let n = y.columnCount
        parallelFor(y.rowCount, grain: max(1, (1 << 18) / max(n, 1))) { rows in
            for r in rows { body(y.data + r * y.rowStride, r) }
        }
    }

    package func gatherRows(_ source: Tensor, indices: [Int], into destination: Tensor) {
        let n = destination.columnCount
        precondition(indices.count == destination.rowCount && source.columnCount == n
                     && indices.allSatisfy { $0 >= 0 && $0 < source.rowCount }, "gather outside its operands")
        for (i, s) in indices.enumerated() {
            (destination.data + i * destination.rowStride).update(from: source.data + s * source.rowStride, count: n)
        }
    }

    package func scatterAddRows(_ source: Tensor, indices: [Int], weights: [Float]?, into destination: Tensor) {
        let n = source.columnCount
        precondition(indices.count == source.rowCount && destination.columnCount == n && (weights?.count ?? indices.count) == indices.count
                     && indices.allSatisfy { $0 >= 0 && $0 < destination.rowCount }, "scatter outside its operands")
        for (i, d) in indices.enumerated() {
            let src = source.data + i * source.rowStride, dst = destination.data + d * destination.rowStride
            if let w = weights?[i] { for c in 0..<n { dst[c] += src[c] * w } } else { for c in 0..<n { dst[c] += src[c] } }
        }
    }

    package func addRMSNorm(_ op: AddRMSNorm) {
        addRMSNormForward(y: op.normed.data, residual: op.residual.data, x: op.x?.data, weight: op.weight.data,
                          rstd: op.rstd?.data, rows: op.residual.rowCount, dim: op.residual.columnCount, eps: op.eps)
    }

    package func addRMSNormBackward(residual r: Tensor, rstd: Tensor, weight: Tensor, _ g: AddRMSNormGradients) {
        MambaTensor.addRMSNormBackward(rowGrad: g.rowGrad.data, yGrad: g.normedGrad?.data, rGrad: g.residualGrad?.data,
                           r: r.data, rstd: rstd.data, weight: weight.data, weightGrad: g.weightGrad.data,
                           rows: r.rowCount, dim: r.columnCount)
    }

    package func layerNorm(_ op: LayerNormOperands) {
        let D = op.x.columnCount, w = op.weight.data, b = op.bias.data
        parallelFor(op.x.rowCount, grain: max(1, 4096 / max(D, 1))) { rows in
            for r in rows {
                let src = op.x.data + r * op.x.rowStride, dst = op.y.data + r * op.y.rowStride
                let (mean, rstd) = self.rowStatistics(src, count: D, eps: op.eps)
                for d in 0..<D { dst[d] = Float((Double(src[d]) - mean) * rstd) * w[d] + b[d] }
            }
        }
    }

    /// xGrad += rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)), ĝ = yGrad · weight; the row statistics
    /// are recomputed from x.
    package func layerNormBackward(_ op: LayerNormOperands, _ g: LayerNormGradients) {
        let D = op.x.columnCount, w = op.weight.data
        let wg = g.weightGrad.data, bg = g.biasGrad.data
        for r in 0..<op.x.rowCount {
            let src = op.x.data + r * op.x.rowStride, yRow = g.yGrad.data + r * g.yGrad.rowStride
            let (mean, rstd) = rowStatistics(src, count: D, eps: op.eps)
            var m1 = 0.0, m2 = 0.0
            for d in 0..<D {
                let xh = (Double(src[d]) - mean) * rstd, xHatGrad = Double(yRow[d]) * Double(w[d])
                wg[d] += Float(Double(yRow[d]) * xh)
                bg[d] += yRow[d]
                m1 += xHatGrad; m2 += xHatGrad * xh
            }
            m1 /= Double(D); m2 /= Double(D)
            guard let xGrad = g.xGrad else { continue }
            let xRow = xGrad.data + r * xGrad.rowStride
            for d in 0..<D {
                let xh = (Double(src[d]) - mean) * rstd, xHatGrad = Double(yRow[d]) * Double(w[d])
                xRow[d] += Float(rstd * (xHatGrad - m1 - xh * m2))
            }
        }
    }

    /// Mean and 1/sqrt(var + eps) of one row, in double precision (biased variance, as torch).
    private func rowStatistics(_ row: UnsafePointer<Float>, count D: Int, eps: Float) -> (mean: Double, rstd: Double) {
        var mean = 0.0
        for d in 0..<D { mean += Double(row[d]) }
        mean /= Double(D)
        var variance = 0.0
        for d in 0..<D { let c = Double(row[d]) - mean; variance += c * c }
        return (mean, 1 / (variance / Double(D) + Double(eps)).squareRoot())
    }

    package func softmaxRows(_ x: Tensor, into y: Tensor) {
        softmaxForward(y: y.data, ldy: y.rowStride, x: x.data, ldx: x.rowStride, rows: x.rowCount, n: x.columnCount)
    }

    package func softmaxRowsBackward(y: Tensor, yGrad: Tensor, into xGrad: Tensor, accumulate: Bool) {
        softmaxBackward(xGrad: xGrad.data, ldxg: xGrad.rowStride, y: y.data, ldy: y.rowStride, yGrad: yGrad.data,
                        ldyg: yGrad.rowStride, rows: y.rowCount, n: y.columnCount, accumulate: accumulate)
    }

    package func causalConv1dSiLU(_ op: CausalConv1dSiLU) {
        causalConv1dSiLUForward(out: op.out.data, x: op.x.data, ldx: op.x.rowStride, weight: op.weight.data, bias: op.bias.data,
                                batch: op.batch, length: op.length, channels: op.x.columnCount,
                                kernel: op.weight.count / max(op.x.columnCount, 1), reverse: op.reverse)
    }

    package func causalConv1dSiLUBackward(_ op: CausalConv1dSiLU, _ g: CausalConv1dSiLUGradients) {
        precondition(g.xGrad.rowStride == op.x.rowStride, "x and its gradient must share a layout")
        MambaTensor.causalConv1dSiLUBackward(xGrad: g.xGrad.data, weightGrad: g.weightGrad.data, biasGrad: g.biasGrad.data,
                                 outGrad: g.outGrad.data, x: op.x.data, ldx: op.x.rowStride, weight: op.weight.data,
                                 bias: op.bias.data, batch: op.batch, length: op.length, channels: op.x.columnCount,
                                 kernel: op.weight.count / max(op.x.columnCount, 1), reverse: op.reverse)
    }

    package func selectiveScan(_ op: SelectiveScan) {
        precondition(op.B.rowStride == op.C.rowStride, "B and C must share a layout")
        selectiveScanForward(pointers(op), out: op.out.data, accumulate: op.accumulate)
    }

    package func selectiveScanBackward(_ op: SelectiveScan, _ g: SelectiveScanGradients) {
        precondition(g.BGrad.rowStride == op.B.rowStride && g.CGrad.rowStride == op.B.rowStride
                     && g.zGrad.rowStride == op.z.rowStride, "gradients must share their operands' layouts")
        MambaTensor.selectiveScanBackward(pointers(op), ScanGradientPointers(
            outGrad: g.outGrad.data, uGrad: g.uGrad.data, deltaGrad: g.deltaGrad.data, deltaBiasGrad: g.deltaBiasGrad.data,
            AGrad: g.AGrad.data, BGrad: g.BGrad.data, CGrad: g.CGrad.data, DGrad: g.DGrad.data, zGrad: g.zGrad.data))
    }

    private func pointers(_ op: SelectiveScan) -> ScanPointers {
        precondition(op.B.rowStride == op.C.rowStride, "B and C must share a layout")
        return ScanPointers(u: op.u.data, delta: op.delta.data, deltaBias: op.deltaBias.data, A: op.A.data, B: op.B.data, C: op.C.data,
                            ldBC: op.B.rowStride, D: op.D.data, z: op.z.data, ldz: op.z.rowStride, batch: op.batch,
                            length: op.length, channels: op.u.columnCount, states: op.A.columnCount, reverse: op.reverse,
                            scale: op.scale)
    }

    package func patchColumns(_ images: Tensor, patch: Int, stride: Int, into cols: Tensor) {
        let (b, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        im2col(cols.data, images.data, batch: b, inChannels: c, height: h, width: w, patch: patch, stride: stride,
               gridH: patchGrid(size: h, patch: patch, stride: stride), gridW: patchGrid(size: w, patch: patch, stride: stride))
    }
}

extension Tensor {
    /// Element 0 in host memory: for CPU kernels and tests only, never for model code.
    package var data: UnsafeMutablePointer<Float> {
        precondition(device == .cpu, "host pointer of a \(device) tensor")
        return storage.address.assumingMemoryBound(to: Float.self) + offset
    }

    /// The elements as one host buffer; the tensor must be contiguous.
    package var buffer: UnsafeMutableBufferPointer<Float> {
        precondition(isContiguous, "buffer of a strided view")
        return UnsafeMutableBufferPointer(start: data, count: count)
    }
}

/// Host buffers for tensors, kept for reuse instead of freed. A training step or a forward pass
/// asks for the same sizes every time, so after the first one nearly every buffer comes back from
/// here. Two costs of going to malloc each time are avoided: large blocks served as fresh mmap'd
/// pages fault in again on every use (a third of the conv kernel's time at batch 8), and large
/// blocks kept in the heap instead fragment it around the small long-lived ones, which had peak
/// RSS at twice the live tensors in training. Blocks of 64 KiB and more are cached by size class;
/// the cache holds at most as many bytes as were ever live at once, and gives the oldest back to
/// the system beyond that.
final class StoragePool: @unchecked Sendable {
    private static let smallest = 64 << 10
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]   // by byte count
    private var order: [(bytes: Int, address: UnsafeMutableRawPointer)] = []   // cached blocks, oldest first
    private var cached = 0, live = 0, peakLive = 0


    /// A block of at least `bytes`. Large blocks come in size classes an eighth of a power of two
    /// apart (at most 12.5% larger than asked), so that a cached block serves every request of its
    /// class: a training step asks for the same sizes each time, DyVM's shrinking stages for
    /// nearby ones.
    func take(bytes: Int) -> (address: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= Self.smallest else { return (allocate(bytes), bytes) }
        let size = Self.sizeClass(bytes)
        lock.lock()
        live += size
        peakLive = max(peakLive, live)
        if let address = free[size]?.popLast() {
            cached -= size
            order.removeAll { $0.address == address }
            lock.unlock()
            return (address, size)
        }
        lock.unlock()
        return (allocate(size), size)
    }

    /// The smallest 2^k · (1 + j/8) of at least `bytes`.
    static func sizeClass(_ bytes: Int) -> Int {
        let power = 1 << (Int.bitWidth - 1 - (bytes - 1).leadingZeroBitCount)   // the largest 2^k below bytes (k ≥ 16 here)
        let step = power / 8
        return power + (bytes - power + step - 1) / step * step
    }

    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.bindMemory(to: Float.self, capacity: bytes / 4)
        return raw
    }

    func give(_ address: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= Self.smallest else { address.deallocate(); return }
        lock.lock()
        live -= bytes
        free[bytes, default: []].append(address)
        order.append((bytes, address))
        cached += bytes
        var released: [UnsafeMutableRawPointer] = []
        while cached > peakLive, let oldest = order.first {
            order.removeFirst()
            free[oldest.bytes]!.removeAll { $0 == oldest.address }
            cached -= oldest.bytes
            released.append(oldest.address)
        }
        lock.unlock()
        for address in released { address.deallocate() }
    }
}

