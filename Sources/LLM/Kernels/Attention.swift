// Causal multi-head self-attention over a fused QKV activation laid out [q | k | v].

/// For each batch b, head h and query position t: scores against keys t2 ≤ t, softmax, weighted sum of values.
/// inp is (B,T,3C) with head h of q at columns h·hs..<(h+1)·hs, of k at C + …, of v at 2C + …;
/// preatt and att are (B,NH,T,T): att is written in full (zero for t2 > t), preatt only for t2 ≤ t; out is (B,T,C).
func attentionForward(out: FloatPointer, preatt: FloatPointer, att: FloatPointer, inp: ConstFloatPointer,
                      B: Int, T: Int, C: Int, NH: Int, parallel: ParallelFor) {
    let C3 = 3 * C, hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    parallel(B * NH) { pairs in
        for bh in pairs {
            let b = bh / NH, h = bh % NH
            for t in 0..<T {
                let q = inp + (b * T + t) * C3 + h * hs
                let pre = preatt + (bh * T + t) * T, a = att + (bh * T + t) * T
                var maxVal = -Float.greatestFiniteMagnitude
                for t2 in 0...t {
                    let k = inp + (b * T + t2) * C3 + C + h * hs
                    let s = dot(q, k, hs) * scale
                    pre[t2] = s
                    maxVal = max(maxVal, s)
                }
                var sum: Float = 0
                for t2 in 0...t {
                    let e = exp(pre[t2] - maxVal)
                    a[t2] = e
                    sum += e
                }
                let inv = 1 / sum
                for t2 in 0...t { a[t2] *= inv }
                for t2 in t + 1..<T { a[t2] = 0 }
                let o = out + (b * T + t) * C + h * hs
                for i in 0..<hs { o[i] = 0 }
                for t2 in 0...t {
                    axpy(a[t2], inp + (b * T + t2) * C3 + 2 * C + h * hs, o, hs)
                }
            }
        }
    }
}

/// Backward through the weighted sum, the softmax and the scores; accumulates into dinp (B,T,3C).
/// Softmax backward uses the closed form dpre[t2] = att[t2] · (datt[t2] - Σ att·datt), which reads the
/// accumulated datt: the scratch buffers dpreatt and datt (B,NH,T,T) must be zero on entry.
/// Threads split (batch, head) pairs: each pair reads and writes only its own head's columns.
func attentionBackward(dinp: FloatPointer, dpreatt: FloatPointer, datt: FloatPointer, dout: ConstFloatPointer,
                       inp: ConstFloatPointer, att: ConstFloatPointer, B: Int, T: Int, C: Int, NH: Int,
                       parallel: ParallelFor) {
    let C3 = 3 * C, hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    parallel(B * NH) { pairs in
        for bh in pairs {
            let b = bh / NH, h = bh % NH
            for t in 0..<T {
                let a = att + (bh * T + t) * T
                let da = datt + (bh * T + t) * T, dpre = dpreatt + (bh * T + t) * T
                let q = inp + (b * T + t) * C3 + h * hs
                let dq = dinp + (b * T + t) * C3 + h * hs
                let d = dout + (b * T + t) * C + h * hs
                // out = Σ att[t2] · v[t2]
                for t2 in 0...t {
                    let v = inp + (b * T + t2) * C3 + 2 * C + h * hs
                    let dv = dinp + (b * T + t2) * C3 + 2 * C + h * hs
                    da[t2] += dot(v, d, hs)
                    axpy(a[t2], d, dv, hs)
                }
                // att = softmax(preatt) over t2 ≤ t
                var weighted: Float = 0
                for t2 in 0...t { weighted += a[t2] * da[t2] }
                for t2 in 0...t { dpre[t2] += a[t2] * (da[t2] - weighted) }
                // preatt = q · k · scale
                for t2 in 0...t {
                    let k = inp + (b * T + t2) * C3 + C + h * hs
                    let dk = dinp + (b * T + t2) * C3 + C + h * hs
                    let g = dpre[t2] * scale
                    axpy(g, k, dq, hs)
                    axpy(g, q, dk, hs)
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
