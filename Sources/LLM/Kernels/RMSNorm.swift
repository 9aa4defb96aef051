// RMSNorm over the last dimension of each row, in the three flavours today's models use: x·w (Llama, Qwen2),
// x·(1+w) (Gemma, whose stored weights start at 0), and no weight at all (nanochat). Also QK-norm: the rows are
// then the attention heads inside a fused q|k|v row, `groups` heads of `C` values per row of stride `stride`.

/// How an RMSNorm applies its weight.
public enum RMSNormWeight: String, Sendable, Codable {
    case scale      // y = x̂ · w
    case onePlus    // y = x̂ · (1 + w)
    case none       // y = x̂, no parameters
}

/// The multiplier of x̂ at channel c.
@inline(__always)
private func gain(_ weight: ConstFloatPointer?, _ kind: RMSNormWeight, _ c: Int) -> Float {
    switch kind {
    case .scale: weight![c]
    case .onePlus: 1 + weight![c]
    case .none: 1
    }
}

/// y = x / √(mean(x²) + eps) · gain, per group of C values; saves rstd = 1/√(mean(x²) + eps) for backward.
/// Rows n < N hold `groups` groups each: group g of row n starts at n·stride + g·C in inp and out (for a plain
/// (N,C) tensor, groups 1 and stride C). rstd is (N, groups); weight is (C), or nil for `.none`.
func rmsNormForward(out: FloatPointer, rstd: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer?,
                    kind: RMSNormWeight, eps: Float, N: Int, C: Int, groups: Int = 1, stride: Int? = nil,
                    parallel: ParallelFor) {
    let stride = stride ?? C
    parallel(N * groups) { items in
        for item in items {
            let offset = (item / groups) * stride + (item % groups) * C
            let x = inp + offset, o = out + offset
            var acc = SIMD16<Float>(), c = 0
            while c + 16 <= C {
                let v = loadSIMD16(x + c)
                acc.addProduct(v, v)
                c += 16
            }
            var sumSquares = acc.sum()
            while c < C {
                sumSquares += x[c] * x[c]
                c += 1
            }
            let s = 1 / (sumSquares / Float(C) + eps).squareRoot()
            for c in 0..<C { o[c] = x[c] * s * gain(weight, kind, c) }
            rstd[item] = s
        }
    }
}

/// Accumulates dinp and dweight from dout. With x̂ = x·rstd and g = gain·dout:
/// dx = rstd · (g − x̂ · mean(g · x̂)); dweight += x̂ · dout (for both weighted kinds: d(1+w)/dw = 1).
/// Threads split the groups for dinp, then the channels for dweight (which sums over every group).
func rmsNormBackward(dinp: FloatPointer, dweight: FloatPointer?, dout: ConstFloatPointer, inp: ConstFloatPointer,
                     weight: ConstFloatPointer?, rstd: ConstFloatPointer, kind: RMSNormWeight, N: Int, C: Int,
                     groups: Int = 1, stride: Int? = nil, parallel: ParallelFor) {
    let stride = stride ?? C
    parallel(N * groups) { items in
        for item in items {
            let offset = (item / groups) * stride + (item % groups) * C
            let x = inp + offset, d = dout + offset, dx = dinp + offset
            let s = rstd[item]
            var gNormMean: Float = 0
            for c in 0..<C { gNormMean += gain(weight, kind, c) * d[c] * x[c] * s }
            gNormMean /= Float(C)
            for c in 0..<C { dx[c] += (gain(weight, kind, c) * d[c] - x[c] * s * gNormMean) * s }
        }
    }
    guard kind != .none, let dweight else { return }
    parallel(C) { channels in
        for item in 0..<N * groups {
            let offset = (item / groups) * stride + (item % groups) * C
            let x = inp + offset, d = dout + offset, s = rstd[item]
            for c in channels { dweight[c] += x[c] * s * d[c] }
        }
    }
}
