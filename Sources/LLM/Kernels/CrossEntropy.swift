// Softmax over the real vocabulary and the cross-entropy loss; the backward of both fused.

/// probs[n,:V] = softmax(logits[n,:V]); probs[n,V..<Vp] = 0 (padded columns get no mass).
/// logits and probs are (N,Vp).
func softmaxForward(probs: FloatPointer, logits: ConstFloatPointer, N: Int, V: Int, Vp: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let x = logits + n * Vp, p = probs + n * Vp
            var maxVal = -Float.greatestFiniteMagnitude
            for i in 0..<V { maxVal = max(maxVal, x[i]) }
            var sum: Float = 0
            for i in 0..<V {
                p[i] = exp(x[i] - maxVal)
                sum += p[i]
            }
            let inv = 1 / sum
            for i in 0..<V { p[i] *= inv }
            for i in V..<Vp { p[i] = 0 }
        }
    }
}

/// losses[n] = -log(probs[n, targets[n]]). targets are already checked to be < V.
func crossEntropyForward(losses: FloatPointer, probs: ConstFloatPointer, targets: UnsafePointer<Int32>, N: Int, Vp: Int) {
    for n in 0..<N { losses[n] = -log(probs[n * Vp + Int(targets[n])]) }
}

/// dlogits[n,i] += (probs[n,i] - [i == target]) · dlosses[n] for i < V; padded columns get nothing.
func crossEntropySoftmaxBackward(dlogits: FloatPointer, dlosses: ConstFloatPointer, probs: ConstFloatPointer,
                                 targets: UnsafePointer<Int32>, N: Int, V: Int, Vp: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let dl = dlogits + n * Vp, p = probs + n * Vp, g = dlosses[n]
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
