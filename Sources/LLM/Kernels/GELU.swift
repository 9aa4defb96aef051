// GELU with GPT-2's tanh approximation ("gelu_new" in Hugging Face).
//
// We evaluate 1 + tanh(u) as 2·σ(2u) = 2 / (1 + e^(-2u)): the same function, but without the catastrophic
// cancellation of 1 + tanh(u) when x is very negative (tanh(u) ≈ -1), so nearly dead units keep accurate
// small outputs and gradients. (Adam divides by √v, which turns noise in tiny gradients into whole updates.)

private let geluScale = Float((2.0 / Double.pi).squareRoot())

/// σ(2u) and σ(-2u) = 1 - σ(2u), each without overflow or cancellation: both come from e = exp(-2|u|) ≤ 1.
@inline(__always)
private func sigmoids(_ u: Float) -> (pos: Float, neg: Float) {
    let e = exp(-2 * abs(u))
    let big = 1 / (1 + e), small = e / (1 + e)
    return u >= 0 ? (big, small) : (small, big)
}

/// out = 0.5 · x · (1 + tanh(u)), u = √(2/π) · (x + 0.044715 · x³), elementwise over N values.
func geluForward(out: FloatPointer, inp: ConstFloatPointer, N: Int, parallel: ParallelFor) {
    parallel(N) { range in
        for i in range {
            let x = inp[i]
            out[i] = x * sigmoids(geluScale * (x + 0.044715 * x * x * x)).pos  // 0.5 · x · 2σ(2u)
        }
    }
}

/// dinp += dout · gelu'(x), gelu'(x) = 0.5(1 + tanh u) + 0.5 x (1 - tanh² u) · √(2/π)(1 + 3·0.044715 x²),
/// with 0.5(1 + tanh u) = σ(2u) and 1 - tanh² u = 4σ(2u)σ(-2u).
func geluBackward(dinp: FloatPointer, inp: ConstFloatPointer, dout: ConstFloatPointer, N: Int, parallel: ParallelFor) {
    parallel(N) { range in
        for i in range {
            let x = inp[i]
            let (sPos, sNeg) = sigmoids(geluScale * (x + 0.044715 * x * x * x))
            let local = sPos + 2 * x * sPos * sNeg * geluScale * (1 + 3 * 0.044715 * x * x)
            dinp[i] += local * dout[i]
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
