// Small SIMD building blocks shared by the kernels: dot products and axpy over contiguous Floats.

typealias FloatPointer = UnsafeMutablePointer<Float>
typealias ConstFloatPointer = UnsafePointer<Float>

/// sum(a[i] * b[i]) for i in 0..<n, in 16-wide SIMD lanes plus a scalar tail.
@inline(__always)
func dot(_ a: ConstFloatPointer, _ b: ConstFloatPointer, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        acc.addProduct(loadSIMD16(a + i), loadSIMD16(b + i))
        i += 16
    }
    var sum = acc.sum()
    while i < n {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}

/// y[i] += alpha * x[i] for i in 0..<n.
@inline(__always)
func axpy(_ alpha: Float, _ x: ConstFloatPointer, _ y: FloatPointer, _ n: Int) {
    let a = SIMD16<Float>(repeating: alpha)
    var i = 0
    while i + 16 <= n {
        var v = loadSIMD16(y + i)
        v.addProduct(a, loadSIMD16(x + i))
        storeSIMD16(v, y + i)
        i += 16
    }
    while i < n {
        y[i] += alpha * x[i]
        i += 1
    }
}

/// The larger of a and b lane by lane, as a compare and a blend. (The stdlib's `pointwiseMax` goes lane by lane,
/// for IEEE maxNum's NaN rule, and so does a comparison written for any SIMD type; on a concrete type the
/// compiler emits one vector compare. Here a NaN in a is kept, one in b ignored: the callers either never see
/// NaN or restore it afterwards.)
@inline(__always)
func lanewiseMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: b .> a) }

/// The smaller of a and b lane by lane (see `lanewiseMax`).
@inline(__always)
func lanewiseMin(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: b .< a) }

@inline(__always)
func loadSIMD16(_ p: ConstFloatPointer) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func storeSIMD16(_ v: SIMD16<Float>, _ p: FloatPointer) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// √x lane by lane for x ≥ 0, within about one ulp, in SIMD registers. (SIMD16.squareRoot() becomes sixteen
/// libm calls.) A bit-trick estimate of 1/√x, three Newton steps, then √x ≈ x·y corrected once with the exact
/// residual x − s² from a fused multiply-add. √0 = 0; NaN stays NaN.
@inline(__always)
func squareRoot(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
    var y = unsafeBitCast(SIMD16<UInt32>(repeating: 0x5F37_59DF) &- (bits &>> 1), to: SIMD16<Float>.self)
    let half = x * 0.5
    for _ in 0..<3 { y = y * (1.5 - half * y * y) }
    let s = x * y
    let residual = x.addingProduct(-s, s)  // x − s², exactly
    return s.addingProduct(residual, y * 0.5)
}

/// eˣ lane by lane, within about 4 ulp, in SIMD registers (libm's expf is one call per lane, and the
/// stdlib's SIMD rounding and int conversion are per-lane calls too, so neither is used). x = n·ln2 + r with
/// |r| ≤ ln2/2: n is rounded by adding 1.5·2²³ (which also leaves n in the low mantissa bits, for 2ⁿ), eʳ is
/// a degree-6 Taylor polynomial (error < 2e-8 on that range). Below -87.3 the result is 0, above 88 it is
/// +inf (the callers only pass x ≤ 0); NaN stays NaN.
@inline(__always)
func exponential(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let lo = SIMD16<Float>(repeating: -87.3), hi = SIMD16<Float>(repeating: 88)
    let clamped = lanewiseMin(lanewiseMax(x, lo), hi)
    let magic = SIMD16<Float>(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer
    let shifted = clamped.addingProduct(clamped, SIMD16(repeating: 0.442_695_04)) + magic  // x·log₂e + magic
    let n = shifted - magic
    let r = clamped.addingProduct(n, SIMD16(repeating: -0.693_145_75))
        .addingProduct(n, SIMD16(repeating: -1.428_606_8e-6))  // x − n·ln2, ln2 in two parts
    var p = SIMD16<Float>(repeating: 1.0 / 120).addingProduct(SIMD16(repeating: 1.0 / 720), r)
    p = SIMD16<Float>(repeating: 1.0 / 24).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 1.0 / 6).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 0.5).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 1).addingProduct(p, r)
    p = SIMD16<Float>(repeating: 1).addingProduct(p, r)
    let nBits = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- unsafeBitCast(magic, to: SIMD16<UInt32>.self)
    var result = p * unsafeBitCast((nBits &+ 127) &<< 23, to: SIMD16<Float>.self)  // p · 2ⁿ
    result.replace(with: 0, where: x .< lo)
    result.replace(with: .infinity, where: x .> hi)
    result.replace(with: x, where: x .!= x)
    return result
}
