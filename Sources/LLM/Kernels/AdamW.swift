// The AdamW update, in the same order of float operations as torch.optim.AdamW.

/// One AdamW step over n parameters. `gradScale` multiplies each gradient first (gradient clipping).
/// p -= lr·wd·p; m = m + (1-β1)·(g - m); v = β2·v + (1-β2)·g²;
/// p -= (lr / (1-β1^t)) · m / (√v / √(1-β2^t) + eps).
/// Scalars are formed in Double and rounded once, as PyTorch does with Python floats.
func adamWUpdate(params: FloatPointer, grads: ConstFloatPointer, m: FloatPointer, v: FloatPointer, n: Int,
                 gradScale: Float, lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double,
                 step: Int, parallel: ParallelFor) {
    let stepSize = Float(lr / (1 - pow(beta1, Double(step))))
    let bias2Sqrt = Float((1 - pow(beta2, Double(step))).squareRoot())
    let decay = Float(1 - lr * weightDecay)
    let oneMinusBeta1 = Float(1 - beta1), beta2f = Float(beta2), oneMinusBeta2 = Float(1 - beta2)
    let epsf = Float(eps)
    parallel(n) { range in
        for i in range {
            let g = grads[i] * gradScale
            params[i] *= decay
            m[i] += oneMinusBeta1 * (g - m[i])  // torch's lerp toward g
            v[i] = v[i] * beta2f + oneMinusBeta2 * g * g
            params[i] -= stepSize * m[i] / (v[i].squareRoot() / bias2Sqrt + epsf)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
