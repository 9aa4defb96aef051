// The final logit softcap of nanochat and Gemma 2: logits = c · tanh(logits / c), which keeps every logit within
// (−c, c) without changing their order. Applied in place; its backward needs only the capped value.

/// tanh(z) lane by lane from e = exp(−2|z|) ≤ 1: tanh|z| = (1 − e)/(1 + e), with z's sign.
@inline(__always)
private func tanh(_ z: SIMD16<Float>) -> SIMD16<Float> {
    let e = exponential(-2 * pointwiseMax(z, -z))
    var t = (1 - e) / (1 + e)
    t.replace(with: -t, where: z .< 0)
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
