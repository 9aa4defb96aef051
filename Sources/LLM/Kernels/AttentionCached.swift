// Causal self-attention for generation: new positions attend over a key/value cache of the earlier ones, so
// a decode step costs one position's work instead of the whole sequence's.

/// For `n` new positions t0..<t0+n: for each new position t and query head h, scores against the keys the shape
/// lets it see (first(t)...t), a softmax and the weighted sum of the values; then the new keys and values join
/// the cache. qkv is (n, qkvWidth) laid out as attentionForward's input; out is (n, outWidth); scores is scratch
/// (H, capacity). kCache and vCache are (H_kv, capacity, d), one block per key/value head, and position t lives in
/// row t % capacity: with capacity ≥ every position (the model's maxT) that is row t; a sliding-window layer's
/// cache is a ring of its window's length, which holds exactly the positions its next query needs.
/// Positions below t0 are read from the cache, the new ones from qkv itself (so a ring never loses a key a new
/// position still needs); afterwards the last min(n, capacity) new positions are written. The arithmetic is
/// attentionForward's, in the same order, so a cached run reproduces a full forward exactly. Threads split the
/// query heads, then the key/value heads.
func attentionCachedForward(out: FloatPointer, kCache: FloatPointer, vCache: FloatPointer, scores: FloatPointer,
                            qkv: ConstFloatPointer, t0: Int, n: Int, shape s: AttentionShape, capacity: Int,
                            parallel: ParallelFor) {
    let W = s.qkvWidth, H = s.heads, d = s.headSize, scale = s.scale
    precondition(s.window == 0 ? capacity >= t0 + n : capacity >= min(s.window, t0 + n),
                 "a cache of \(capacity) positions cannot hold what positions \(t0)..<\(t0 + n) attend to")
    parallel(H) { heads in
        for h in heads {
            let g = h / s.group
            let kc = kCache + g * capacity * d, vc = vCache + g * capacity * d
            let kNew = qkv + (H + g) * d, vNew = qkv + (H + s.kvHeads + g) * d
            @inline(__always) func key(_ t2: Int) -> ConstFloatPointer {
                if t2 < t0 { return ConstFloatPointer(kc + (t2 % capacity) * d) }
                return kNew + (t2 - t0) * W
            }
            @inline(__always) func value(_ t2: Int) -> ConstFloatPointer {
                if t2 < t0 { return ConstFloatPointer(vc + (t2 % capacity) * d) }
                return vNew + (t2 - t0) * W
            }
            let a = scores + h * capacity  // a query attends to at most `capacity` positions
            for i in 0..<n {
                let t = t0 + i, t1 = s.first(t)
                let q = qkv + i * W + h * d
                var maxVal = -Float.greatestFiniteMagnitude
                var t2 = t1
                while t2 + 4 <= t + 1 {  // four keys at a time: independent chains, each exactly `dot`
                    let score = dot4(q, key(t2), key(t2 + 1), key(t2 + 2), key(t2 + 3), d) * scale
                    for k in 0..<4 {
                        a[t2 - t1 + k] = score[k]
                        maxVal = max(maxVal, score[k])
                    }
                    t2 += 4
                }
                while t2 <= t {
                    let score = dot(q, key(t2), d) * scale
                    a[t2 - t1] = score
                    maxVal = max(maxVal, score)
                    t2 += 1
                }
                let inv = 1 / exponentiateAndSum(a, t - t1 + 1, minus: maxVal)
                for t2 in t1...t { a[t2 - t1] *= inv }
                weightedSum(out: out + i * s.outWidth + h * d, weights: a, count: t - t1 + 1, d: d) { value(t1 + $0) }
            }
        }
    }
    parallel(s.kvHeads) { groups in
        for g in groups {
            for t in max(t0, t0 + n - capacity)..<t0 + n {
                let row = qkv + (t - t0) * W, slot = t % capacity
                (kCache + (g * capacity + slot) * d).update(from: row + (H + g) * d, count: d)
                (vCache + (g * capacity + slot) * d).update(from: row + (H + s.kvHeads + g) * d, count: d)
            }
        }
    }
}

/// Four dot products of q with k0…k3 (n values each), each computed exactly as `dot` computes it.
@inline(__always)
func dot4(_ q: ConstFloatPointer, _ k0: ConstFloatPointer, _ k1: ConstFloatPointer, _ k2: ConstFloatPointer,
          _ k3: ConstFloatPointer, _ n: Int) -> SIMD4<Float> {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let x = loadSIMD16(q + i)
        a0.addProduct(x, loadSIMD16(k0 + i))
        a1.addProduct(x, loadSIMD16(k1 + i))
        a2.addProduct(x, loadSIMD16(k2 + i))
        a3.addProduct(x, loadSIMD16(k3 + i))
        i += 16
    }
    var sums = SIMD4<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    while i < n {
        sums[0] += q[i] * k0[i]
        sums[1] += q[i] * k1[i]
        sums[2] += q[i] * k2[i]
        sums[3] += q[i] * k3[i]
        i += 1
    }
    return sums
}

/// o[j] = Σ_m weights[m] · value(m)[j] for j < d, m < count, accumulated in m's order with `axpy`'s operations
/// (so bit for bit what zeroing o and calling axpy once per m gives), but 64 columns at a time held in
/// registers instead of o being read and written once per m.
@inline(__always)
func weightedSum(out o: FloatPointer, weights: ConstFloatPointer, count: Int, d: Int,
                 value: (Int) -> ConstFloatPointer) {
    var j = 0
    while j + 64 <= d {
        var o0 = SIMD16<Float>(), o1 = SIMD16<Float>(), o2 = SIMD16<Float>(), o3 = SIMD16<Float>()
        for m in 0..<count {
            let w = SIMD16<Float>(repeating: weights[m]), v = value(m) + j
            o0.addProduct(w, loadSIMD16(v))
            o1.addProduct(w, loadSIMD16(v + 16))
            o2.addProduct(w, loadSIMD16(v + 32))
            o3.addProduct(w, loadSIMD16(v + 48))
        }
        storeSIMD16(o0, o + j)
        storeSIMD16(o1, o + j + 16)
        storeSIMD16(o2, o + j + 32)
        storeSIMD16(o3, o + j + 48)
        j += 64
    }
    while j + 16 <= d {
        var acc = SIMD16<Float>()
        for m in 0..<count { acc.addProduct(SIMD16<Float>(repeating: weights[m]), loadSIMD16(value(m) + j)) }
        storeSIMD16(acc, o + j)
        j += 16
    }
    while j < d {  // axpy's scalar tail: a product, then a sum
        var acc: Float = 0
        for m in 0..<count { acc += weights[m] * value(m)[j] }
        o[j] = acc
        j += 1
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
