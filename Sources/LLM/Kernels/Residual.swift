// Residual connections: out = a + b, and the gradient flowing unchanged to both branches.

/// out = inp1 + inp2, elementwise over N values.
func residualForward(out: FloatPointer, inp1: ConstFloatPointer, inp2: ConstFloatPointer, N: Int,
                     parallel: ParallelFor) {
    parallel(N, minimumPerThread: 1 << 14) { range in  // a decode step's few rows: not worth waking a worker
        for i in range { out[i] = inp1[i] + inp2[i] }
    }
}

/// dinp1 += dout; dinp2 += dout.
func residualBackward(dinp1: FloatPointer, dinp2: FloatPointer, dout: ConstFloatPointer, N: Int,
                      parallel: ParallelFor) {
    parallel(N) { range in
        for i in range {
            dinp1[i] += dout[i]
            dinp2[i] += dout[i]
        }
    }
}
