// Token + position embedding: the first layer of GPT-2.

/// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
/// out is (B,T,C), inp is (B,T) token ids already checked to be < V, wte is (Vp,C), wpe is (maxT,C).
func encoderForward(out: FloatPointer, inp: UnsafePointer<Int32>, wte: ConstFloatPointer, wpe: ConstFloatPointer,
                    B: Int, T: Int, C: Int, parallel: ParallelFor) {
    parallel(B * T) { rows in
        for bt in rows {
            let t = bt % T
            let o = out + bt * C, e = wte + Int(inp[bt]) * C, p = wpe + t * C
            for c in 0..<C { o[c] = e[c] + p[c] }
        }
    }
}

/// dwte[inp[b,t],:] += dout[b,t,:] and dwpe[t,:] += dout[b,t,:].
/// Several positions can share a token, so threads split the channels, not the positions.
func encoderBackward(dwte: FloatPointer, dwpe: FloatPointer, dout: ConstFloatPointer, inp: UnsafePointer<Int32>,
                     B: Int, T: Int, C: Int, parallel: ParallelFor) {
    parallel(C) { channels in
        for bt in 0..<B * T {
            let t = bt % T
            let d = dout + bt * C, e = dwte + Int(inp[bt]) * C, p = dwpe + t * C
            for c in channels {
                e[c] += d[c]
                p[c] += d[c]
            }
        }
    }
}
