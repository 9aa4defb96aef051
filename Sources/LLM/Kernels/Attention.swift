// Causal self-attention over a fused q|k|v activation: H query heads sharing H_kv key/value heads (multi-head
// when H_kv = H, grouped-query when it divides H, multi-query when it is 1), head size d independent of the
// model width, an optional sliding window, and any score scale.

/// The shape of one attention layer's input and output rows.
///
/// A row of the fused input holds the H query heads, then the H_kv key heads, then the H_kv value heads, d
/// values each: query head h at h·d, key head g at (H + g)·d, value head g at (H + H_kv + g)·d. Query head h
/// reads key/value head h / (H / H_kv). A row of the output holds the H heads' results, H·d values.
/// With a window W > 0, position t attends to t2 with t − W < t2 ≤ t (W positions, itself included), as
/// Hugging Face's sliding-window layers do; W = 0 means the whole causal prefix.
public struct AttentionShape: Sendable, Equatable {
    public var heads: Int        // H
    public var kvHeads: Int      // H_kv
    public var headSize: Int     // d
    public var window: Int       // W, 0 for none
    public var scale: Float      // scores are q·k·scale (1/√d unless the model says otherwise)

    public init(heads: Int, kvHeads: Int, headSize: Int, window: Int = 0, scale: Float? = nil) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.headSize = headSize
        self.window = window
        self.scale = scale ?? 1 / Float(headSize).squareRoot()
    }

    /// Floats in one fused input row: (H + 2·H_kv)·d.
    public var qkvWidth: Int { (heads + 2 * kvHeads) * headSize }
    /// Floats in one output row: H·d.
    public var outWidth: Int { heads * headSize }
    /// Query heads per key/value head.
    var group: Int { heads / kvHeads }
    /// The first key position that query position t sees.
    @inline(__always) func first(_ t: Int) -> Int { window > 0 ? max(0, t - window + 1) : 0 }
}

/// For each batch b, query head h and position t: scores against keys t2 in first(t)...t, softmax, weighted sum of
/// values. inp is (B,T,qkvWidth); preatt and att are (B,H,T,T): att is written in full (zero outside the
/// attended range), preatt only inside it; out is (B,T,outWidth).
func attentionForward(out: FloatPointer, preatt: FloatPointer, att: FloatPointer, inp: ConstFloatPointer,
                      B: Int, T: Int, shape s: AttentionShape, parallel: ParallelFor) {
    let W = s.qkvWidth, H = s.heads, d = s.headSize, scale = s.scale
    parallel(B * H) { pairs in
        for bh in pairs {
            let b = bh / H, h = bh % H
            let kOffset = (H + h / s.group) * d, vOffset = (H + s.kvHeads + h / s.group) * d
            for t in 0..<T {
                let q = inp + (b * T + t) * W + h * d
                let pre = preatt + (bh * T + t) * T, a = att + (bh * T + t) * T
                let t1 = s.first(t)
                @inline(__always) func key(_ t2: Int) -> ConstFloatPointer { inp + (b * T + t2) * W + kOffset }
                var maxVal = -Float.greatestFiniteMagnitude
                var t2 = t1
                while t2 + 4 <= t + 1 {  // four keys at a time: independent chains, each exactly `dot`
                    let score = dot4(q, key(t2), key(t2 + 1), key(t2 + 2), key(t2 + 3), d) * scale
                    for k in 0..<4 {
                        pre[t2 + k] = score[k]
                        maxVal = max(maxVal, score[k])
                    }
                    t2 += 4
                }
                while t2 <= t {
                    let score = dot(q, key(t2), d) * scale
                    pre[t2] = score
                    maxVal = max(maxVal, score)
                    t2 += 1
                }
                (a + t1).update(from: pre + t1, count: t - t1 + 1)
                let inv = 1 / exponentiateAndSum(a + t1, t - t1 + 1, minus: maxVal)
                for t2 in 0..<t1 { a[t2] = 0 }
                for t2 in t1...t { a[t2] *= inv }
                for t2 in t + 1..<T { a[t2] = 0 }
                weightedSum(out: out + (b * T + t) * s.outWidth + h * d, weights: a + t1, count: t - t1 + 1, d: d) {
                    inp + (b * T + t1 + $0) * W + vOffset
                }
            }
        }
    }
}

/// x[i] = exp(x[i] − maxVal) for i < n, in SIMD registers 16 at a time (`exponential`), and returns their sum
/// (16 lanes, then across them). Training's attention and the cached attention of generation share it, so the
/// two compute the same probabilities.
@inline(__always)
func exponentiateAndSum(_ x: FloatPointer, _ n: Int, minus maxVal: Float) -> Float {
    let m = SIMD16<Float>(repeating: maxVal)
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let e = exponential(loadSIMD16(x + i) - m)
        storeSIMD16(e, x + i)
        acc += e
        i += 16
    }
    var sum = acc.sum()
    if i < n {
        let count = n - i, e = exponential(loadLanes(x, i, count) - m)
        storeLanes(e, x, i, count)
        for j in 0..<count { sum += e[j] }
    }
    return sum
}

/// Backward through the weighted sum, the softmax and the scores; accumulates into dinp (B,T,qkvWidth).
/// Softmax backward uses the closed form dpre[t2] = att[t2] · (datt[t2] − Σ att·datt), which reads the
/// accumulated datt: the scratch buffers dpreatt and datt (B,H,T,T) must be zero on entry.
/// Threads split (batch, key/value head) pairs: the query heads of one group all add into the same key and value
/// gradients, so a group is one thread's.
func attentionBackward(dinp: FloatPointer, dpreatt: FloatPointer, datt: FloatPointer, dout: ConstFloatPointer,
                       inp: ConstFloatPointer, att: ConstFloatPointer, B: Int, T: Int, shape s: AttentionShape,
                       parallel: ParallelFor) {
    let W = s.qkvWidth, H = s.heads, d = s.headSize, scale = s.scale
    parallel(B * s.kvHeads) { pairs in
        for bg in pairs {
            let b = bg / s.kvHeads, g = bg % s.kvHeads
            let kOffset = (H + g) * d, vOffset = (H + s.kvHeads + g) * d
            for h in g * s.group..<(g + 1) * s.group {
                let bh = b * H + h
                for t in 0..<T {
                    let t1 = s.first(t)
                    let a = att + (bh * T + t) * T
                    let da = datt + (bh * T + t) * T, dpre = dpreatt + (bh * T + t) * T
                    let q = inp + (b * T + t) * W + h * d
                    let dq = dinp + (b * T + t) * W + h * d
                    let dy = dout + (b * T + t) * s.outWidth + h * d
                    // out = Σ att[t2] · v[t2]
                    for t2 in t1...t {
                        let row = (b * T + t2) * W
                        da[t2] += dot(inp + row + vOffset, dy, d)
                        axpy(a[t2], dy, dinp + row + vOffset, d)
                    }
                    // att = softmax(preatt) over the attended range
                    var weighted: Float = 0
                    for t2 in t1...t { weighted += a[t2] * da[t2] }
                    for t2 in t1...t { dpre[t2] += a[t2] * (da[t2] - weighted) }
                    // preatt = q · k · scale
                    for t2 in t1...t {
                        let row = (b * T + t2) * W
                        let grad = dpre[t2] * scale
                        axpy(grad, inp + row + kOffset, dq, d)
                        axpy(grad, q, dinp + row + kOffset, d)
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
