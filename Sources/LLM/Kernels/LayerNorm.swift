// LayerNorm over the channels of each position, as GPT-2 uses before attention and MLP (eps 1e-5).

/// out = (x - mean) / sqrt(var + eps) * weight + bias, per row of C; saves mean and rstd for backward.
/// out, inp are (N,C); mean, rstd are (N); weight, bias are (C). N = B·T.
func layerNormForward(out: FloatPointer, mean: FloatPointer, rstd: FloatPointer, inp: ConstFloatPointer,
                      weight: ConstFloatPointer, bias: ConstFloatPointer, N: Int, C: Int, eps: Float = 1e-5,
                      parallel: ParallelFor) {
    parallel(N) { rows in
        for i in rows {
            let x = inp + i * C, o = out + i * C
            var m: Float = 0
            for c in 0..<C { m += x[c] }
            m /= Float(C)
            var v: Float = 0
            for c in 0..<C {
                let d = x[c] - m
                v += d * d
            }
            v /= Float(C)  // biased variance, as PyTorch's LayerNorm
            let s = 1 / (v + eps).squareRoot()
            for c in 0..<C { o[c] = (x[c] - m) * s * weight[c] + bias[c] }
            mean[i] = m
            rstd[i] = s
        }
    }
}

/// Accumulates dinp, dweight, dbias from dout. With norm = (x - mean)·rstd and g = weight·dout:
/// dx = rstd · (g - mean(g) - norm · mean(g · norm)); dweight += norm · dout; dbias += dout.
/// Threads split rows for dinp, then channels for dweight/dbias (which sum over rows).
func layerNormBackward(dinp: FloatPointer, dweight: FloatPointer?, dbias: FloatPointer?, dout: ConstFloatPointer,
                       inp: ConstFloatPointer, weight: ConstFloatPointer, mean: ConstFloatPointer,
                       rstd: ConstFloatPointer, N: Int, C: Int, parallel: ParallelFor) {
    parallel(N) { rows in
        for i in rows {
            let x = inp + i * C, d = dout + i * C, dx = dinp + i * C
            let m = mean[i], s = rstd[i]
            var gMean: Float = 0, gNormMean: Float = 0
            for c in 0..<C {
                let g = weight[c] * d[c]
                gMean += g
                gNormMean += g * (x[c] - m) * s
            }
            gMean /= Float(C)
            gNormMean /= Float(C)
            for c in 0..<C {
                let norm = (x[c] - m) * s
                dx[c] += (weight[c] * d[c] - gMean - norm * gNormMean) * s
            }
        }
    }
    guard let dweight, let dbias else { return }  // a frozen norm (LoRA): the input's gradient alone
    parallel(C) { channels in
        for i in 0..<N {
            let x = inp + i * C, d = dout + i * C
            let m = mean[i], s = rstd[i]
            for c in channels {
                dweight[c] += (x[c] - m) * s * d[c]
                dbias[c] += d[c]
            }
        }
    }
}
