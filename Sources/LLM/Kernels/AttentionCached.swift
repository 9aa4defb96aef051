// Causal self-attention for generation: new positions attend over a key/value cache of the earlier ones, so
// a decode step costs one position's work instead of the whole sequence's.

/// For `n` new positions t0..<t0+n: writes their keys and values into the cache, then for each new position t
/// and query head h computes scores against the cached keys the shape lets it see (first(t)...t), a softmax and
/// the weighted sum of cached values. qkv is (n, qkvWidth) laid out as attentionForward's input; kCache and
/// vCache are (H_kv,maxT,d), one contiguous (maxT,d) block per key/value head; scores is scratch (H,maxT); out is
/// (n, outWidth). The arithmetic is attentionForward's, in the same order, so a cached run reproduces a full
/// forward exactly. Threads split the key/value heads to fill the cache, then the query heads.
func attentionCachedForward(out: FloatPointer, kCache: FloatPointer, vCache: FloatPointer, scores: FloatPointer,
                            qkv: ConstFloatPointer, t0: Int, n: Int, shape s: AttentionShape, maxT: Int,
                            parallel: ParallelFor) {
    let W = s.qkvWidth, H = s.heads, d = s.headSize, scale = s.scale
    parallel(s.kvHeads) { groups in
        for g in groups {
            for i in 0..<n {
                let row = qkv + i * W
                (kCache + (g * maxT + t0 + i) * d).update(from: row + (H + g) * d, count: d)
                (vCache + (g * maxT + t0 + i) * d).update(from: row + (H + s.kvHeads + g) * d, count: d)
            }
        }
    }
    parallel(H) { heads in
        for h in heads {
            let g = h / s.group
            let kc = kCache + g * maxT * d, vc = vCache + g * maxT * d, a = scores + h * maxT
            for i in 0..<n {
                let t = t0 + i, t1 = s.first(t)
                let q = qkv + i * W + h * d
                var maxVal = -Float.greatestFiniteMagnitude
                for t2 in t1...t {
                    let score = dot(q, kc + t2 * d, d) * scale
                    a[t2] = score
                    maxVal = max(maxVal, score)
                }
                var sum: Float = 0
                for t2 in t1...t {
                    let e = exp(a[t2] - maxVal)
                    a[t2] = e
                    sum += e
                }
                let inv = 1 / sum
                for t2 in t1...t { a[t2] *= inv }
                let o = out + i * s.outWidth + h * d
                for j in 0..<d { o[j] = 0 }
                for t2 in t1...t { axpy(a[t2], vc + t2 * d, o, d) }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
