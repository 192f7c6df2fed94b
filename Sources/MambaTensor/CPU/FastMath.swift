import Foundation

// Vectorised exp, log, softplus and SiLU over SIMD8<Float> (one AVX2 register).
//
// Foundation's scalar expf/log1pf cost ~20 ns each; the scans need 58 M exps per Vim-T image,
// so these are built from bit tricks instead: round with the 1.5·2^23 magic number and build
// 2^n from exponent bits (a `.rounded()` + Int32-conversion version measured 14x slower).
// Polynomials are Cephes' expf/logf; both stay within 2 ulp of the correctly rounded result.

package typealias Float8 = SIMD8<Float>

extension SIMD8 where Scalar == Float {
    /// self + a·b, the multiply-add every kernel uses. Fused (one rounding) where the build's
    /// CPU has FMA: every arm64 CPU, and x86-64 when built for a named CPU (Package.swift defines
    /// VISION_MAMBA_FMA with VISION_MAMBA_TARGET_CPU). The x86-64 baseline has no FMA
    /// instruction, and a fused multiply-add there becomes one libm `fmaf` call per lane, which
    /// made whole models about 15x slower; it multiplies, then adds.
    @inline(__always)
    func plusProduct(_ a: Self, _ b: Self) -> Self {
        #if arch(arm64) || VISION_MAMBA_FMA
        addingProduct(a, b)
        #else
        self + a * b
        #endif
    }

    /// self + a·b for a scalar b.
    @inline(__always)
    func plusProduct(_ a: Self, _ b: Scalar) -> Self { plusProduct(a, Self(repeating: b)) }
}

/// a·b + c.
@inline(__always)
func fma8(_ a: Float8, _ b: Float8, _ c: Float) -> Float8 { Float8(repeating: c).plusProduct(a, b) }

@inline(__always)
func bits(_ x: Float8) -> SIMD8<Int32> { unsafeBitCast(x, to: SIMD8<Int32>.self) }

@inline(__always)
func float8(bits x: SIMD8<Int32>) -> Float8 { unsafeBitCast(x, to: Float8.self) }

/// e^x. x = n·ln2 + r (Cody-Waite split of ln2), e^r by Cephes' polynomial, times 2^n built
/// from exponent bits. Clamped to [-87.3, 88.3] so 2^n stays a normal float (e^-87.3 ≈ 1e-38).
@inline(__always)
func exp8(_ x: Float8) -> Float8 {
    let magic = Float8(repeating: 12582912.0)  // 1.5·2^23: adding it rounds to an integer
    // Compare-and-blend: SIMD `clamped`/`pointwiseMin` compile to per-lane calls here.
    let lo = Float8(repeating: -87.3), hi = Float8(repeating: 88.3)
    var x = x.replacing(with: lo, where: x .< lo)
    x = x.replacing(with: hi, where: x .> hi)
    let t = x.plusProduct(x, Float8(repeating: 0.44269504088896341)) + magic  // x·log2(e) + magic
    let n = t - magic
    var r = x.plusProduct(n, Float8(repeating: -0.693359375))
    r = r.plusProduct(n, Float8(repeating: 2.12194440e-4))
    var p = fma8(Float8(repeating: 1.9875691500e-4), r, 1.3981999507e-3)
    p = fma8(p, r, 8.3334519073e-3)
    p = fma8(p, r, 4.1665795894e-2)
    p = fma8(p, r, 1.6666665459e-1)
    p = fma8(p, r, 5.0000001201e-1)
    p = (p * (r * r)).plusProduct(r, Float8(repeating: 1)) + 1
    // The low mantissa bits of t hold n (offset by the magic number's own bits).
    let scale = float8(bits: (bits(t) &- bits(magic) &+ 127) &<< 23)
    return p * scale
}

/// ln x for positive normal x (Cephes logf): x = m·2^e with m in [√½, √2), ln(m) by polynomial.
@inline(__always)
func log8(_ x: Float8) -> Float8 {
    let xb = bits(x)
    // Exponent as a float without an int conversion: 2^23 + k has k in its low bits.
    let ebits = (xb &>> 23) | 0x4B00_0000
    var e = float8(bits: ebits) - Float8(repeating: 8388608 + 126)
    var m = float8(bits: (xb & 0x007F_FFFF) | 0x3F00_0000)  // mantissa in [0.5, 1)
    let small = m .< Float8(repeating: 0.707106781186547524)
    e = e.replacing(with: e - 1, where: small)
    m = m.replacing(with: m + m, where: small) - 1
    let z = m * m
    var p = fma8(Float8(repeating: 7.0376836292e-2), m, -1.1514610310e-1)
    p = fma8(p, m, 1.1676998740e-1)
    p = fma8(p, m, -1.2420140846e-1)
    p = fma8(p, m, 1.4249322787e-1)
    p = fma8(p, m, -1.6668057665e-1)
    p = fma8(p, m, 2.0000714765e-1)
    p = fma8(p, m, -2.4999993993e-1)
    p = fma8(p, m, 3.3333331174e-1)
    var y = p * m * z
    y = y.plusProduct(e, Float8(repeating: -2.12194440e-4))
    y = y.plusProduct(z, Float8(repeating: -0.5))
    return (m + y).plusProduct(e, Float8(repeating: 0.693359375))
}

/// softplus(v) = log(1 + e^v), and v itself above 20 (the threshold of the official
/// selective-scan kernel and of torch.nn.functional.softplus).
@inline(__always)
func softplus8(_ v: Float8) -> Float8 {
    let y = exp8(v)
    let u = 1 + y
    // log1p(y) = log(u) − ((u − 1) − y)/u corrects the rounding of 1 + y for tiny y.
    let l = log8(u) - ((u - 1) - y) / u
    return l.replacing(with: v, where: v .> Float8(repeating: 20))
}

/// SiLU(v) = v · sigmoid(v) = v / (1 + e^-v).
@inline(__always)
func silu8(_ v: Float8) -> Float8 { v / (1 + exp8(-v)) }

/// sigmoid(v) = 1 / (1 + e^-v).
@inline(__always)
func sigmoid8(_ v: Float8) -> Float8 { 1 / (1 + exp8(-v)) }

// Scalar forms for tails and references, in double precision.
@inline(__always) func softplus(_ v: Float) -> Float { v > 20 ? v : Float(log1p(exp(Double(v)))) }
@inline(__always) func silu(_ v: Float) -> Float { Float(Double(v) / (1 + exp(-Double(v)))) }

// Loads and stores of 8 floats; the `count` forms serve the last, partial block of a row. Eight
// element loads and stores, which LLVM joins into one unaligned vector access: the generic
// `loadUnaligned` and `storeBytes` were sometimes left as calls inside the scan's loop, which cost
// the forward scan up to 13%.
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Float8 { Float8(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]) }

@inline(__always)
func load8(_ p: UnsafeMutablePointer<Float>) -> Float8 { load8(UnsafePointer(p)) }

@inline(__always)
func store8(_ p: UnsafeMutablePointer<Float>, _ v: Float8) {
    p[0] = v[0]; p[1] = v[1]; p[2] = v[2]; p[3] = v[3]; p[4] = v[4]; p[5] = v[5]; p[6] = v[6]; p[7] = v[7]
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>, count: Int) -> Float8 {
    if count >= 8 { return load8(p) }
    var v = Float8()
    for i in 0..<count { v[i] = p[i] }
    return v
}

@inline(__always)
func store8(_ p: UnsafeMutablePointer<Float>, _ v: Float8, count: Int) {
    if count >= 8 { store8(p, v); return }
    for i in 0..<count { p[i] = v[i] }
}
