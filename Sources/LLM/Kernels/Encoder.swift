// The embedding layer: a token's row of wte, times a scale (Gemma: √C), plus its position's row of wpe where the
// model has learned positions (GPT-2; models with RoPE have none).

/// out[n,:] = scale · wte[inp[n],:] + wpe[positions[n],:] (no wpe term when wpe is nil).
/// out is (N,C), inp is (N) token ids already checked to be < V, positions is (N), wte is (Vp,C), wpe is (maxT,C).
func encoderForward(out: FloatPointer, inp: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
                    wte: ConstFloatPointer, wpe: ConstFloatPointer?, scale: Float = 1, N: Int, C: Int,
                    parallel: ParallelFor) {
    parallel(N) { rows in
        for n in rows {
            let o = out + n * C
            o.update(from: wte + Int(inp[n]) * C, count: C)
            scaleAndAddPosition(o, wpe: wpe.map { $0 + Int(positions[n]) * C }, scale: scale, C: C)
        }
    }
}

/// o = o · scale + p, or o · scale without a position row, or o + p with scale 1: the embedding's arithmetic
/// after the token's row is in o.
@inline(__always)
private func scaleAndAddPosition(_ o: FloatPointer, wpe p: ConstFloatPointer?, scale: Float, C: Int) {
    if let p {
        if scale == 1 {
            for c in 0..<C { o[c] = o[c] + p[c] }
        } else {
            for c in 0..<C { o[c] = o[c] * scale + p[c] }
        }
    } else if scale != 1 {
        for c in 0..<C { o[c] = o[c] * scale }
    }
}

/// encoderForward with wte kept quantized (Q8_0, Q6_K, …): each token's row is dequantized into out, then
/// scaled and wpe added exactly as encoderForward does, so a table read from its blocks gives the float table's
/// result (the dequantized row is the float row).
func encoderForward(out: FloatPointer, inp: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
                    wte: QuantizedMatrix, wpe: ConstFloatPointer?, scale: Float = 1, N: Int, C: Int,
                    parallel: ParallelFor) {
    precondition(wte.cols == C, "embedding rows of \(wte.cols) for \(C) channels")
    parallel(N) { rows in
        for n in rows {
            let o = out + n * C
            wte.dequantizeRow(Int(inp[n]), into: o)
            scaleAndAddPosition(o, wpe: wpe.map { $0 + Int(positions[n]) * C }, scale: scale, C: C)
        }
    }
}

/// dwte[inp[n],:] += scale · dout[n,:] and dwpe[positions[n],:] += dout[n,:].
/// Several positions can share a token, so threads split the channels, not the positions.
func encoderBackward(dwte: FloatPointer, dwpe: FloatPointer?, dout: ConstFloatPointer, inp: UnsafePointer<Int32>,
                     positions: UnsafePointer<Int32>, scale: Float = 1, N: Int, C: Int, parallel: ParallelFor) {
    parallel(C) { channels in
        for n in 0..<N {
            let d = dout + n * C, e = dwte + Int(inp[n]) * C
            if let dwpe {
                let p = dwpe + Int(positions[n]) * C
                for c in channels {
                    e[c] += scale == 1 ? d[c] : scale * d[c]
                    p[c] += d[c]
                }
            } else {
                for c in channels { e[c] += scale * d[c] }
            }
        }
    }
}
