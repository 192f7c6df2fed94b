#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// C[M,N] = A[M,K] · B[N,K]ᵀ (+ C when `accumulate`), row-major; `gemm` with B transposed.
/// `lda`, `ldb`, `ldc` are row strides, so column blocks of a wider matrix can be used in place.
package func matmulTransposedB(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int,
    _ b: UnsafePointer<Float>, ldb: Int,
    m: Int, n: Int, k: Int, accumulate: Bool = false
) {
    gemm(transA: false, transB: true, m: m, n: n, k: k, a, lda: lda, b, ldb: ldb, beta: accumulate ? 1 : 0, c, ldc: ldc)
}

/// General sgemm on row-major operands: C = alpha·op(A)·op(B) + beta·C, the same bits for any
/// thread count once `EngineSettings.configure` has put BLAS on one thread.
///
/// BLAS's own threads are not used, because OpenBLAS's result follows their number: threaded
/// sgemm gives each thread a share of C sized by the thread count, and the x86 kernel (Haswell and
/// Zen: sgemm_kernel_8x4_haswell_2.c) sums k in one accumulator on full tiles but in two, even and
/// odd k added at the end, on the 8×4 edge tiles. Which elements fall on edges moved with the
/// split, so about 5% of in_proj's outputs changed in the last bit between 1 and 2 threads. Here C
/// is cut into blocks of rows (of columns when C is wider than tall) whose edges depend on the
/// shape only, each block is one single-threaded sgemm, and parallelFor shares the blocks out. The
/// reduction over k always stays inside one sgemm call, so a weight gradient (k = rows) is split
/// by its output features, as llm.c's matmul_backward does.
package func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0 && n > 0 else { return }
    guard EngineSettings.splitsProducts else {   // BLAS threads the product as the host set it up
        sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    }
    let byColumns = n > m, span = byColumns ? n : m
    let blocks = gemmBlocks(span: span, work: m * n * k)
    parallelFor(blocks) { range in
        for block in range {
            // Block edges on multiples of 16 rows or columns: whole kernel tiles on both sides.
            let lo = span * block / blocks / 16 * 16
            let hi = block == blocks - 1 ? span : span * (block + 1) / blocks / 16 * 16
            guard lo < hi else { continue }
            if byColumns {   // C[:, lo..<hi] = op(A) · op(B)[:, lo..<hi]
                sgemm(transA, transB, m, hi - lo, k, alpha, a, lda, transB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc)
            } else {         // C[lo..<hi, :] = op(A)[lo..<hi, :] · op(B)
                sgemm(transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc)
            }
        }
    }
}

/// Blocks for a product of `work` multiply-adds whose output is `span` rows (or columns) long: a
/// power of two up to 8, so 1, 2, 4 or 8 threads get equal shares, with at least 2^19
/// multiply-adds (about 10 µs of one core) and 32 rows per block. Every block packs the whole
/// shared operand again, which more blocks would pay for on these matrix sizes; with 2^21 the
/// small products of a batch-1 forward pass (x_proj: 197 × 44 × 384) ran on one thread.
func gemmBlocks(span: Int, work: Int) -> Int {
    var blocks = 1
    while blocks < 8 && work / (2 * blocks) >= 1 << 19 && span / (2 * blocks) >= 32 { blocks *= 2 }
    return blocks
}

/// One sgemm call on row-major operands: single-threaded once `EngineSettings.configure` has
/// run, else threaded as BLAS is set up.
@inline(__always)
func sgemm(
    _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
    _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y[rows, out] = x[rows, in] · weight[out, in]ᵀ + bias[out]: torch.nn.functional.linear.
package func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          rows: Int, inFeatures: Int, outFeatures: Int) {
    if let bias {
        for r in 0..<rows { (y + r * outFeatures).update(from: bias, count: outFeatures) }
    }
    matmulTransposedB(y, ldc: outFeatures, x, lda: inFeatures, weight, ldb: inFeatures,
                      m: rows, n: outFeatures, k: inFeatures, accumulate: bias != nil)
}

/// Backward of `linearForward`: xGrad += yGrad·weight, weightGrad += yGradᵀ·x, biasGrad += Σ_rows yGrad.
package func linearBackward(
    xGrad: UnsafeMutablePointer<Float>?, weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?,
    yGrad: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    if let xGrad {
        gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
             yGrad, lda: outFeatures, weight, ldb: inFeatures, beta: 1, xGrad, ldc: inFeatures)
    }
    if let weightGrad {
        gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
             yGrad, lda: outFeatures, x, ldb: inFeatures, beta: 1, weightGrad, ldc: inFeatures)
    }
    if let biasGrad {
        for r in 0..<rows { for o in 0..<outFeatures { biasGrad[o] += yGrad[r * outFeatures + o] } }
    }
}
