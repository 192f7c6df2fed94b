import Foundation

// The CPU kernels of the dense image ops (segmentation heads and the backbone's pyramid). Every
// kernel splits its work so that each output element is computed by one thread in a fixed order:
// results do not depend on the thread count.

extension CPUBackend {
    package func imageColumns(_ op: ImageColumns, transposed: Bool) {
        let (C, H, W, k, s, pad) = (op.channels, op.height, op.width, op.kernel, op.stride, op.padding)
        let image = op.image.data, cols = op.cols.data
        let P = op.pixels.count, first = op.pixels.lowerBound, outW = op.outWidth
        if !transposed {
            // Row (c, ky, kx) of cols: for each output pixel, the input pixel that tap reads (0 outside).
            parallelFor(C * k * k, grain: 1) { taps in
                for tap in taps {
                    let c = tap / (k * k), ky = tap / k % k, kx = tap % k
                    let dst = cols + tap * P, src = image + c * H * W
                    for p in 0..<P {
                        let oy = (first + p) / outW, ox = (first + p) % outW
                        let y = oy * s + ky - pad, x = ox * s + kx - pad
                        dst[p] = y >= 0 && y < H && x >= 0 && x < W ? src[y * W + x] : 0
                    }
                }
            }
        } else {
            // The adjoint, by input channel so that no two threads add into the same pixel; the
            // taps of a channel add in a fixed order.
            parallelFor(C, grain: 1) { channels in
                for c in channels {
                    let dstPlane = image + c * H * W
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let src = cols + ((c * k + ky) * k + kx) * P
                            for p in 0..<P {
                                let oy = (first + p) / outW, ox = (first + p) % outW
                                let y = oy * s + ky - pad, x = ox * s + kx - pad
                                if y >= 0 && y < H && x >= 0 && x < W { dstPlane[y * W + x] += src[p] }
                            }
                        }
                    }
                }
            }
        }
    }

    package func depthToSpace(_ blocks: Tensor, image: Tensor, channels C: Int, height H: Int, width W: Int, block k: Int,
                             inverse: Bool, accumulate: Bool) {
        let b = blocks.data, img = image.data, outW = W * k
        parallelFor(C, grain: 1) { cs in
            for c in cs {
                for dy in 0..<k {
                    for dx in 0..<k {
                        let row = b + ((c * k + dy) * k + dx) * H * W
                        for y in 0..<H {
                            let line = img + (c * H * k + y * k + dy) * outW + dx
                            for x in 0..<W {
                                if inverse {
                                    if accumulate { row[y * W + x] += line[x * k] } else { row[y * W + x] = line[x * k] }
                                } else {
                                    if accumulate { line[x * k] += row[y * W + x] } else { line[x * k] = row[y * W + x] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    package func channelSums(_ x: Tensor, _ y: Tensor?, channels C: Int) -> [Double] {
        let B = x.shape[0], plane = x.count / max(B * C, 1)
        var sums = [Double](repeating: 0, count: C)
        let px = x.data, py = y?.data
        sums.withUnsafeMutableBufferPointer { out in
            parallelFor(C, grain: 1) { cs in
                for c in cs {
                    var acc = 0.0
                    for b in 0..<B {
                        let base = (b * C + c) * plane
                        if let py { for i in 0..<plane { acc += Double(px[base + i]) * Double(py[base + i]) } }
                        else { for i in 0..<plane { acc += Double(px[base + i]) } }
                    }
                    out[c] = acc
                }
            }
        }
        return sums
    }

    package func channelAffine(_ op: ChannelAffine) {
        let C = op.channels, B = op.out.shape[0], plane = op.out.count / max(B * C, 1)
        let a = op.a.data, b = op.b?.data, out = op.out.data
        parallelFor(B * C, grain: max(1, 4096 / max(plane, 1))) { planes in
            for bc in planes {
                let c = bc % C, base = bc * plane
                let sa = op.aScale[c], sb = op.bScale?[c] ?? 0, shift = op.shift?[c] ?? 0
                for i in 0..<plane {
                    var v = a[base + i] * sa + shift
                    if let b { v += b[base + i] * sb }
                    out[base + i] = op.accumulate ? out[base + i] + v : v
                }
            }
        }
    }

    package func maxPool(_ x: Tensor, y: Tensor, indices: inout [Int32], kernel k: Int, stride s: Int, height H: Int, width W: Int) {
        let planes = x.count / max(H * W, 1), oh = (H - k) / s + 1, ow = (W - k) / s + 1
        let px = x.data, py = y.data
        indices.withUnsafeMutableBufferPointer { idx in
            parallelFor(planes, grain: 1) { ps in
                for p in ps {
                    let src = px + p * H * W
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var best = -Float.infinity, at = Int32(-1)
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let i = (oy * s + ky) * W + ox * s + kx
                                    // NaN wins, as in PyTorch; otherwise the first maximum.
                                    if src[i] > best || src[i].isNaN && !best.isNaN || at < 0 { best = src[i]; at = Int32(i) }
                                }
                            }
                            py[(p * oh + oy) * ow + ox] = best
                            idx[(p * oh + oy) * ow + ox] = at
                        }
                    }
                }
            }
        }
    }

    package func maxPoolBackward(_ yGrad: Tensor, xGrad: Tensor, indices: [Int32], planeSize: Int) {
        let per = indices.count / max(xGrad.count / max(planeSize, 1), 1)
        let g = yGrad.data, dx = xGrad.data
        parallelFor(xGrad.count / max(planeSize, 1), grain: 1) { ps in
            for p in ps {
                for j in 0..<per { dx[p * planeSize + Int(indices[p * per + j])] += g[p * per + j] }
            }
        }
    }

    package func resample(_ op: Resample, transposed: Bool) {
        let (inH, inW, outH, outW) = (op.inHeight, op.inWidth, op.outHeight, op.outWidth)
        let input = op.input.data, output = op.output.data
        parallelFor(op.planes, grain: 1) { ps in
            // Rows first into a scratch plane [outH, inW], then columns.
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: outH * inW)
            defer { scratch.deallocate() }
            for p in ps {
                let src = input + p * inH * inW, dst = output + p * outH * outW
                if !transposed {
                    for i in 0..<outH {
                        let line = scratch + i * inW
                        line.update(repeating: 0, count: inW)
                        for (t, w) in zip(op.rowTaps[i], op.rowWeights[i]) {
                            let s = src + t * inW
                            for x in 0..<inW { line[x] += w * s[x] }
                        }
                    }
                    for i in 0..<outH {
                        let line = scratch + i * inW, out = dst + i * outW
                        for j in 0..<outW {
                            var v: Float = 0
                            for (t, w) in zip(op.columnTaps[j], op.columnWeights[j]) { v += w * line[t] }
                            out[j] = v
                        }
                    }
                } else {
                    // The adjoint: output gradients (here `output`) spread back into `input`, added.
                    for i in 0..<outH {
                        let line = scratch + i * inW, g = dst + i * outW
                        line.update(repeating: 0, count: inW)
                        for j in 0..<outW {
                            for (t, w) in zip(op.columnTaps[j], op.columnWeights[j]) { line[t] += w * g[j] }
                        }
                    }
                    for i in 0..<outH {
                        let line = scratch + i * inW
                        for (t, w) in zip(op.rowTaps[i], op.rowWeights[i]) {
                            let s = src + t * inW
                            for x in 0..<inW { s[x] += w * line[x] }
                        }
                    }
                }
            }
        }
    }

    package func transposeMatrices(_ x: Tensor, into y: Tensor, batch: Int, rows: Int, columns: Int, accumulate: Bool) {
        let px = x.data, py = y.data, tile = 32
        parallelFor(batch * ((columns + tile - 1) / tile), grain: 1) { jobs in
            for job in jobs {
                let b = job / ((columns + tile - 1) / tile), c0 = job % ((columns + tile - 1) / tile) * tile
                let src = px + b * rows * columns, dst = py + b * rows * columns
                for r0 in stride(from: 0, to: rows, by: tile) {
                    for c in c0..<min(c0 + tile, columns) {
                        for r in r0..<min(r0 + tile, rows) {
                            let v = src[r * columns + c]
                            dst[c * rows + r] = accumulate ? dst[c * rows + r] + v : v
                        }
                    }
                }
            }
        }
    }

    package func pixelCrossEntropy(_ op: PixelCrossEntropy) -> [Double] {
        let (K, plane) = (op.classes, op.plane), logits = op.logits.data
        var losses = [Double](repeating: 0, count: op.batch * plane)
        losses.withUnsafeMutableBufferPointer { out in
            op.labels.withUnsafeBufferPointer { labels in
                parallelFor(op.batch * plane, grain: 1024) { pixels in
                    for q in pixels {
                        let label = labels[q]
                        if label == op.ignoreIndex { continue }
                        let base = logits + (q / plane) * K * plane + q % plane
                        var m = -Float.infinity
                        for k in 0..<K { m = max(m, base[k * plane]) }
                        var z = 0.0
                        for k in 0..<K { z += Foundation.exp(Double(base[k * plane] - m)) }
                        out[q] = Foundation.log(z) - Double(base[Int(label) * plane] - m)
                    }
                }
            }
        }
        return losses
    }

    package func pixelCrossEntropyBackward(_ op: PixelCrossEntropy, logitsGrad: Tensor, scale: Float) {
        let (K, plane) = (op.classes, op.plane), logits = op.logits.data, grad = logitsGrad.data
        op.labels.withUnsafeBufferPointer { labels in
            parallelFor(op.batch * plane, grain: 1024) { pixels in
                for q in pixels {
                    let label = labels[q]
                    if label == op.ignoreIndex { continue }
                    let offset = (q / plane) * K * plane + q % plane
                    let base = logits + offset, g = grad + offset
                    var m = -Float.infinity
                    for k in 0..<K { m = max(m, base[k * plane]) }
                    var z = 0.0
                    for k in 0..<K { z += Foundation.exp(Double(base[k * plane] - m)) }
                    for k in 0..<K {
                        let p = Foundation.exp(Double(base[k * plane] - m)) / z - (k == Int(label) ? 1 : 0)
                        g[k * plane] += Float(p) * scale
                    }
                }
            }
        }
    }

    package func argmaxChannels(_ logits: Tensor, classes K: Int) -> [Int] {
        let B = logits.shape[0], plane = logits.count / max(B * K, 1), x = logits.data
        var out = [Int](repeating: 0, count: B * plane)
        out.withUnsafeMutableBufferPointer { o in
            parallelFor(B * plane, grain: 4096) { pixels in
                for q in pixels {
                    let base = x + (q / plane) * K * plane + q % plane
                    var best = 0
                    for k in 1..<max(K, 1) where base[k * plane] > base[best * plane] { best = k }
                    o[q] = best
                }
            }
        }
        return out
    }

    package func rotary(_ x: Tensor, cos: Tensor, sin: Tensor, into y: Tensor, transposed: Bool) {
        let L = cos.shape[0], D = cos.shape[1], B = x.count / max(L * D, 1)
        let px = x.data, py = y.data, pc = cos.data, ps = sin.data
        parallelFor(B * L, grain: 16) { tokens in
            for t in tokens {
                let src = px + t * D, dst = py + t * D, c = pc + (t % L) * D, s = ps + (t % L) * D
                for i in stride(from: 0, to: D, by: 2) {
                    if !transposed {
                        // rotate_half pairs (x0, x1) → (−x1, x0).
                        dst[i] = src[i] * c[i] - src[i + 1] * s[i]
                        dst[i + 1] = src[i + 1] * c[i + 1] + src[i] * s[i + 1]
                    } else {
                        dst[i] += src[i] * c[i] + src[i + 1] * s[i + 1]
                        dst[i + 1] += src[i + 1] * c[i + 1] - src[i] * s[i]
                    }
                }
            }
        }
    }
}
