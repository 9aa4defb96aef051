// Linear layers: out = inp · Wᵀ + bias with weights stored (out, in), and both backward products.
// Simple SIMD dot/axpy loops: clearly correct first; the cache-blocked kernels come with the speed work.

/// out[n,o] = bias[o] + sum_c inp[n,c] · weight[o,c]
/// out is (N,OC), inp is (N,C), weight is (OC,C), bias is (OC) or nil. N = B·T.
func matmulForward(out: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
                   N: Int, C: Int, OC: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let x = inp + n * C, o = out + n * OC
            for j in 0..<OC {
                o[j] = (bias?[j] ?? 0) + dot(x, weight + j * C, C)
            }
        }
    }
}

/// dinp += dout · weight; dweight += doutᵀ · inp; dbias += column sums of dout.
/// dinp is (N,C), dweight is (OC,C), dbias is (OC) or nil, dout is (N,OC).
/// Threads split rows of dinp, then rows (output channels) of dweight, so no two threads share a write.
func matmulBackward(dinp: FloatPointer, dweight: FloatPointer, dbias: FloatPointer?, dout: ConstFloatPointer,
                    inp: ConstFloatPointer, weight: ConstFloatPointer, N: Int, C: Int, OC: Int,
                    parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let d = dout + n * OC, dx = dinp + n * C
            for j in 0..<OC { axpy(d[j], weight + j * C, dx, C) }
        }
    }
    parallel(OC) { outputs in
        for j in outputs {
            let dw = dweight + j * C
            var db: Float = 0
            for n in 0..<N {
                let g = dout[n * OC + j]
                db += g
                axpy(g, inp + n * C, dw, C)
            }
            if let dbias { dbias[j] += db }
        }
    }
}
