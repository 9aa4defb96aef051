// The AdamW update, in the same order of float operations as torch.optim.AdamW.

/// One AdamW step over n parameters. `gradScale` multiplies each gradient first (gradient clipping).
/// p -= lr·wd·p; m = m + (1-β1)·(g - m); v = β2·v + (1-β2)·g²;
/// p -= (lr / (1-β1^t)) · m / (√v / √(1-β2^t) + eps).
/// Scalars are formed in Double and rounded once, as PyTorch does with Python floats. √v is computed in SIMD
/// registers (`squareRoot`), within about an ulp of the correctly rounded value.
func adamWUpdate(params: FloatPointer, grads: ConstFloatPointer, m: FloatPointer, v: FloatPointer, n: Int,
                 gradScale: Float, lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double,
                 step: Int, parallel: ParallelFor) {
    let stepSize = Float(lr / (1 - pow(beta1, Double(step))))
    let bias2Sqrt = Float((1 - pow(beta2, Double(step))).squareRoot())
    let decay = Float(1 - lr * weightDecay)
    let oneMinusBeta1 = Float(1 - beta1), beta2f = Float(beta2), oneMinusBeta2 = Float(1 - beta2)
    let epsf = Float(eps)
    // Threads split whole 16-float blocks, so each parameter takes the same path (and rounding) for any
    // thread count; a last partial block goes through the same SIMD code with its lanes gathered.
    @inline(__always) func adam(_ g: SIMD16<Float>, _ p: inout SIMD16<Float>, _ mv: inout SIMD16<Float>,
                                _ vv: inout SIMD16<Float>) {
        let g = g * gradScale
        p *= decay
        mv += oneMinusBeta1 * (g - mv)  // torch's lerp toward g
        vv = vv * beta2f + oneMinusBeta2 * g * g
        p -= stepSize * mv / (squareRoot(vv) / bias2Sqrt + epsf)
    }
    parallel((n + 15) / 16) { blocks in
        for b in blocks {
            let i = b * 16
            if i + 16 <= n {
                var p = loadSIMD16(params + i), mv = loadSIMD16(m + i), vv = loadSIMD16(v + i)
                adam(loadSIMD16(grads + i), &p, &mv, &vv)
                storeSIMD16(p, params + i)
                storeSIMD16(mv, m + i)
                storeSIMD16(vv, v + i)
            } else {
                var g = SIMD16<Float>(), p = g, mv = g, vv = g
                for j in 0..<n - i { (g[j], p[j], mv[j], vv[j]) = (grads[i + j], params[i + j], m[i + j], v[i + j]) }
                adam(g, &p, &mv, &vv)
                for j in 0..<n - i { (params[i + j], m[i + j], v[i + j]) = (p[j], mv[j], vv[j]) }
            }
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
