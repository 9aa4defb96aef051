// The linear layer for decoding. matmulForward splits rows across threads, and a decode step has one row, so
// it would run on one core; this variant splits the output channels instead.

/// out[n,o] = bias[o] + sum_c inp[n,c] · weight[o,c], with threads splitting the output channels o.
/// out is (N,OC), inp is (N,C), weight is (OC,C), bias is (OC) or nil. Meant for small N (1 when decoding):
/// each weight row is read once and used for every input row. Every output is the same float computation as
/// matmulForward's, so the two give identical results.
func matmulForwardByOutputs(out: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer,
                            bias: ConstFloatPointer?, N: Int, C: Int, OC: Int, parallel: ParallelFor) {
    parallel(OC) { outputs in
        for j in outputs {
            let w = weight + j * C, b = bias?[j] ?? 0
            for n in 0..<N { out[n * OC + j] = b + dot(inp + n * C, w, C) }
        }
    }
}
