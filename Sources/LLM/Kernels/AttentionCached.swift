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
                for t2 in t1...t {
                    let score = dot(q, key(t2), d) * scale
                    a[t2 - t1] = score
                    maxVal = max(maxVal, score)
                }
                var sum: Float = 0
                for t2 in t1...t {
                    let e = exp(a[t2 - t1] - maxVal)
                    a[t2 - t1] = e
                    sum += e
                }
                let inv = 1 / sum
                for t2 in t1...t { a[t2 - t1] *= inv }
                let o = out + i * s.outWidth + h * d
                for j in 0..<d { o[j] = 0 }
                for t2 in t1...t { axpy(a[t2 - t1], value(t2), o, d) }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
