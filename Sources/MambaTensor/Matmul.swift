#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// C[M,N] = A[M,K] · B[N,K]ᵀ (+ C when `accumulate`), row-major, through BLAS sgemm (OpenBLAS, or Accelerate on Apple platforms).
/// `lda`, `ldb`, `ldc` are row strides, so column blocks of a wider matrix can be used in place.
/// Called from one thread only: OpenBLAS runs its own pool (never nest it inside parallelFor).
@inlinable
public func matmulTransposedB(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int,
    _ b: UnsafePointer<Float>, ldb: Int,
    m: Int, n: Int, k: Int, accumulate: Bool = false
) {
    guard m > 0 && n > 0 else { return }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                1, a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
}

/// General sgemm on row-major operands: C = alpha·op(A)·op(B) + beta·C.
@inlinable
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0 && n > 0 else { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y[rows, out] = x[rows, in] · weight[out, in]ᵀ + bias[out]: torch.nn.functional.linear.
public func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          rows: Int, inFeatures: Int, outFeatures: Int) {
    if let bias {
        for r in 0..<rows { (y + r * outFeatures).update(from: bias, count: outFeatures) }
    }
    matmulTransposedB(y, ldc: outFeatures, x, lda: inFeatures, weight, ldb: inFeatures,
                      m: rows, n: outFeatures, k: inFeatures, accumulate: bias != nil)
}

/// Backward of `linearForward`: xGrad += yGrad·weight, weightGrad += yGradᵀ·x, biasGrad += Σ_rows yGrad.
public func linearBackward(
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
