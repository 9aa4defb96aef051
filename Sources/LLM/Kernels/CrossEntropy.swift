// Softmax over the real vocabulary and the cross-entropy loss; the backward of both fused.

/// probs[n,:V] = softmax(logits[n,:V]); probs[n,V..<Vp] = 0 (padded columns get no mass).
/// logits and probs are (N,Vp).
func softmaxForward(probs: FloatPointer, logits: ConstFloatPointer, N: Int, V: Int, Vp: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let x = logits + n * Vp, p = probs + n * Vp
            var maxVal = -Float.greatestFiniteMagnitude
            for i in 0..<V { maxVal = max(maxVal, x[i]) }
            // e^(x - max) sixteen at a time (the last group partly filled), summed in Double.
            var sum = 0.0, i = 0
            while i < V {
                let count = min(16, V - i)
                var v = SIMD16<Float>(repeating: maxVal)
                for j in 0..<count { v[j] = x[i + j] }
                let e = exponential(v - maxVal)
                if count == 16 { storeSIMD16(e, p + i) } else { for j in 0..<count { p[i + j] = e[j] } }
                for j in 0..<count { sum += Double(e[j]) }
                i += count
            }
            let inv = Float(1 / sum)
            for i in 0..<V { p[i] *= inv }
            for i in V..<Vp { p[i] = 0 }
        }
    }
}

/// losses[n] = -log(probs[n, targets[n]]); 0 where the target is -1 (ignored). targets are checked to be < V.
func crossEntropyForward(losses: FloatPointer, probs: ConstFloatPointer, targets: UnsafePointer<Int32>, N: Int, Vp: Int) {
    for n in 0..<N { losses[n] = targets[n] < 0 ? 0 : -log(probs[n * Vp + Int(targets[n])]) }
}

/// dlogits[n,i] += (probs[n,i] - [i == target]) · dlosses[n] for i < V; padded columns get nothing, and
/// neither do positions with dlosses[n] = 0 (ignored targets).
func crossEntropySoftmaxBackward(dlogits: FloatPointer, dlosses: ConstFloatPointer, probs: ConstFloatPointer,
                                 targets: UnsafePointer<Int32>, N: Int, V: Int, Vp: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let dl = dlogits + n * Vp, p = probs + n * Vp, g = dlosses[n]
            if g == 0 { continue }
            let target = Int(targets[n])
            for i in 0..<V { dl[i] += (p[i] - (i == target ? 1 : 0)) * g }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
