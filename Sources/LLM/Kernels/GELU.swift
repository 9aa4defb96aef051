// GELU with GPT-2's tanh approximation ("gelu_new" in Hugging Face).
//
// We evaluate 1 + tanh(u) as 2·σ(2u) = 2 / (1 + e^(-2u)): the same function, but without the catastrophic
// cancellation of 1 + tanh(u) when x is very negative (tanh(u) ≈ -1), so nearly dead units keep accurate
// small outputs and gradients. (Adam divides by √v, which turns noise in tiny gradients into whole updates.)

private let geluScale = Float((2.0 / Double.pi).squareRoot())

/// σ(2u) and σ(-2u) = 1 - σ(2u), each without overflow or cancellation: both come from e = exp(-2|u|) ≤ 1.
@inline(__always)
private func sigmoids(_ u: SIMD16<Float>) -> (pos: SIMD16<Float>, neg: SIMD16<Float>) {
    let e = exponential(-2 * lanewiseMax(u, -u))  // exp(-2|u|)
    let big = 1 / (1 + e), small = e / (1 + e)
    var pos = small, neg = big
    pos.replace(with: big, where: u .>= 0)
    neg.replace(with: small, where: u .>= 0)
    return (pos, neg)
}

/// gelu(x) = 0.5 · x · (1 + tanh(u)) = x · σ(2u), u = √(2/π) · (x + 0.044715 · x³), lane by lane.
@inline(__always)
func gelu(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let u: SIMD16<Float> = geluScale * (x + 0.044715 * x * x * x)
    let e = exponential(-2 * lanewiseMax(u, -u))  // exp(-2|u|)
    var s = e / (1 + e)                             // σ(2u) for u < 0
    s.replace(with: 1 / (1 + e), where: u .>= 0)    // σ(2u) for u ≥ 0
    return x * s  // 0.5 · x · 2σ(2u)
}

/// gelu'(x) = 0.5(1 + tanh u) + 0.5 x (1 - tanh² u) · √(2/π)(1 + 3·0.044715 x²), with 0.5(1 + tanh u) = σ(2u)
/// and 1 - tanh² u = 4σ(2u)σ(-2u), lane by lane.
@inline(__always)
func geluDerivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let x2 = x * x
    let (sPos, sNeg) = sigmoids(geluScale * (x + 0.044715 * x2 * x))
    let slope: SIMD16<Float> = geluScale * (1 + 3 * 0.044715 * x2)
    return sPos + 2 * x * sPos * sNeg * slope
}

/// Runs `body` on the values at 16-lane groups of 0..<N within `range` (the last group partly filled), so every
/// element goes through the same lane-wise SIMD arithmetic whatever the thread split.
@inline(__always)
func forEachGroup(_ range: Range<Int>, _ body: (Int, Int) -> Void) {
    var i = range.lowerBound
    while i < range.upperBound {
        let count = min(16, range.upperBound - i)
        body(i, count)
        i += count
    }
}

@inline(__always)
func loadLanes(_ p: ConstFloatPointer, _ i: Int, _ count: Int) -> SIMD16<Float> {
    if count == 16 { return loadSIMD16(p + i) }
    var v = SIMD16<Float>()
    for j in 0..<count { v[j] = p[i + j] }
    return v
}

@inline(__always)
func storeLanes(_ v: SIMD16<Float>, _ p: FloatPointer, _ i: Int, _ count: Int) {
    if count == 16 { storeSIMD16(v, p + i) } else { for j in 0..<count { p[i + j] = v[j] } }
}

/// out = 0.5 · x · (1 + tanh(u)), u = √(2/π) · (x + 0.044715 · x³), elementwise over N values.
func geluForward(out: FloatPointer, inp: ConstFloatPointer, N: Int, parallel: ParallelFor) {
    parallel(N) { range in
        forEachGroup(range) { i, count in
            storeLanes(gelu(loadLanes(inp, i, count)), out, i, count)
        }
    }
}

/// dinp += dout · gelu'(x), elementwise over N values.
func geluBackward(dinp: FloatPointer, inp: ConstFloatPointer, dout: ConstFloatPointer, N: Int, parallel: ParallelFor) {
    parallel(N) { range in
        forEachGroup(range) { i, count in
            let local = geluDerivative(loadLanes(inp, i, count))
            storeLanes(loadLanes(dinp, i, count) + local * loadLanes(dout, i, count), dinp, i, count)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
