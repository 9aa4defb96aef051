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
        // SIMD16 body and scalar tail do the same operations in the same order, so they round alike.
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let g = loadSIMD16(grads + i) * gradScale
            let p = loadSIMD16(params + i) * decay
            var mv = loadSIMD16(m + i)
            mv += oneMinusBeta1 * (g - mv)
            let vv = loadSIMD16(v + i) * beta2f + oneMinusBeta2 * g * g
            storeSIMD16(mv, m + i)
            storeSIMD16(vv, v + i)
            storeSIMD16(p - stepSize * mv / (vv.squareRoot() / bias2Sqrt + epsf), params + i)
            i += 16
        }
        while i < range.upperBound {
            let g = grads[i] * gradScale
            params[i] *= decay
            m[i] += oneMinusBeta1 * (g - m[i])  // torch's lerp toward g
            v[i] = v[i] * beta2f + oneMinusBeta2 * g * g
            params[i] -= stepSize * m[i] / (v[i].squareRoot() / bias2Sqrt + epsf)
            i += 1
        }
    }
}

/// Σ x² over blocks of 65,536 floats: block b's sum (in Double) goes to partials[b]. Blocks are fixed, so the
/// caller's ordered sum of partials is the same for any thread count.
func sumOfSquaresByBlock(_ x: ConstFloatPointer, count n: Int, partials: UnsafeMutablePointer<Double>,
                         parallel: ParallelFor) {
    let blocks = (n + sumBlock - 1) / sumBlock
    parallel(blocks) { range in
        for b in range {
            let start = b * sumBlock, end = min(start + sumBlock, n)
            var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
            var i = start
            while i + 16 <= end {
                let v = loadSIMD16(x + i)
                let lo = SIMD8<Double>(v.lowHalf), hi = SIMD8<Double>(v.highHalf)
                acc0.addProduct(lo, lo)
                acc1.addProduct(hi, hi)
                i += 16
            }
            var sum = (acc0 + acc1).sum()
            while i < end {
                sum += Double(x[i]) * Double(x[i])
                i += 1
            }
            partials[b] = sum
        }
    }
}

let sumBlock = 65_536

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
