// The final logit softcap of nanochat and Gemma 2: logits = c · tanh(logits / c), which keeps every logit within
// (−c, c) without changing their order. Applied in place; its backward needs only the capped value.

/// tanh(z) lane by lane. For |z| ≥ 1/8, from e = exp(−2|z|) ≤ 1: tanh|z| = (1 − e)/(1 + e), with z's sign. Below
/// that, 1 − e would cancel away most of its digits (relative error 1e-2 at |z| = 1e-6), so the Taylor series
/// z − z³/3 + 2z⁵/15 − 17z⁷/315 takes over; its next term is below 2e-9 of tanh z there.
@inline(__always)
private func tanh(_ z: SIMD16<Float>) -> SIMD16<Float> {
    let magnitude = lanewiseMax(z, -z)
    let e = exponential(-2 * magnitude)
    var t = (1 - e) / (1 + e)
    t.replace(with: -t, where: z .< 0)
    let z2 = z * z
    var series = SIMD16<Float>(repeating: -17.0 / 315)
    series = SIMD16<Float>(repeating: 2.0 / 15).addingProduct(series, z2)
    series = SIMD16<Float>(repeating: -1.0 / 3).addingProduct(series, z2)
    series = z.addingProduct(z * z2, series)
    t.replace(with: series, where: magnitude .< 0.125)
    return t
}

/// x = cap · tanh(x / cap), in place, for columns 0..<V of N rows of stride Vp (the padding is left alone).
func softcapForward(_ x: FloatPointer, cap: Float, N: Int, V: Int, Vp: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let row = x + n * Vp
            forEachGroup(0..<V) { i, count in
                storeLanes(cap * tanh(loadLanes(row, i, count) / cap), row, i, count)
            }
        }
    }
}

/// dx = dy · (1 − (y / cap)²) in place on the gradient d (N rows of stride Vp, columns 0..<V), where y is the
/// capped output softcapForward left.
func softcapBackward(_ d: FloatPointer, capped y: ConstFloatPointer, cap: Float, N: Int, V: Int, Vp: Int,
                     parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let g = d + n * Vp, out = y + n * Vp
            forEachGroup(0..<V) { i, count in
                let t = loadLanes(out, i, count) / cap
                storeLanes(loadLanes(g, i, count) * (1 - t * t), g, i, count)
            }
        }
    }
}
