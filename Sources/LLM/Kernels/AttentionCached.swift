// Causal self-attention for generation: new positions attend over a key/value cache of the earlier ones, so
// a decode step costs one position's work instead of the whole sequence's.

/// For `n` new positions t0..<t0+n: writes their keys and values into the cache, then for each new position t
/// and head h computes scores against cached keys t2 ≤ t, a softmax and the weighted sum of cached values.
/// qkv is (n,3C) laid out [q | k | v] as attentionForward's input; kCache and vCache are (NH,maxT,hs), one
/// contiguous (maxT,hs) block per head; scores is scratch (NH,maxT); out is (n,C).
/// The arithmetic is attentionForward's, in the same order, so a cached run reproduces a full forward exactly.
/// Threads split heads: each head writes only its own cache block, scores row and output columns.
func attentionCachedForward(out: FloatPointer, kCache: FloatPointer, vCache: FloatPointer, scores: FloatPointer,
                            qkv: ConstFloatPointer, t0: Int, n: Int, C: Int, NH: Int, maxT: Int,
                            parallel: ParallelFor) {
    let C3 = 3 * C, hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    parallel(NH) { heads in
        for h in heads {
            let kc = kCache + h * maxT * hs, vc = vCache + h * maxT * hs, a = scores + h * maxT
            for i in 0..<n {
                let row = qkv + i * C3 + h * hs, k = kc + (t0 + i) * hs, v = vc + (t0 + i) * hs
                for j in 0..<hs {
                    k[j] = row[C + j]
                    v[j] = row[2 * C + j]
                }
            }
            for i in 0..<n {
                let t = t0 + i
                let q = qkv + i * C3 + h * hs
                var maxVal = -Float.greatestFiniteMagnitude
                for t2 in 0...t {
                    let s = dot(q, kc + t2 * hs, hs) * scale
                    a[t2] = s
                    maxVal = max(maxVal, s)
                }
                var sum: Float = 0
                for t2 in 0...t {
                    let e = exp(a[t2] - maxVal)
                    a[t2] = e
                    sum += e
                }
                let inv = 1 / sum
                for t2 in 0...t { a[t2] *= inv }
                let o = out + i * C + h * hs
                for j in 0..<hs { o[j] = 0 }
                for t2 in 0...t { axpy(a[t2], vc + t2 * hs, o, hs) }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
