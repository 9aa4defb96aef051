// The MLP activations besides GPT-2's GELU: the gated ones of Llama (SwiGLU: silu(gate)·up) and Gemma (GeGLU:
// gelu_tanh(gate)·up), and nanochat's ReLU². A gated MLP's first matmul writes [gate | up] side by side in one
// row of 2F values, so both come from one pass over the input.

/// How an MLP turns its first matmul's output into its second matmul's input.
public enum MLPActivation: String, Sendable, Codable {
    case gelu          // GPT-2: gelu_tanh(x), F values in, F out
    case swiGLU        // Llama, Qwen2: silu(gate) · up, 2F in, F out
    case geGLU         // Gemma: gelu_tanh(gate) · up, 2F in, F out
    case reluSquared   // nanochat: max(x, 0)², F in, F out

    public var isGated: Bool { self == .swiGLU || self == .geGLU }
}

/// σ(x) lane by lane, without overflow: from e = exp(-|x|) ≤ 1.
@inline(__always)
private func sigmoid(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let e = exponential(-lanewiseMax(x, -x))
    var s = e / (1 + e)
    s.replace(with: 1 / (1 + e), where: x .>= 0)
    return s
}

/// out[n,i] = act(gate[n,i]) · up[n,i] for i < F, act = silu (x·σ(x)) or tanh GELU. inp is (N,2F) with the
/// gate in columns 0..<F and up in F..<2F; out is (N,F).
func gatedForward(out: FloatPointer, inp: ConstFloatPointer, activation: MLPActivation, N: Int, F: Int,
                  parallel: ParallelFor) {
    precondition(activation.isGated, "\(activation) is not a gated activation")
    // Decided once: comparing a String-backed enum goes through its raw strings, far too slow per 16 lanes.
    let silu = activation == .swiGLU
    parallel(N) { rows in
        for n in rows {
            let gate = inp + n * 2 * F, up = gate + F, o = out + n * F
            forEachGroup(0..<F) { i, count in
                let g = loadLanes(gate, i, count)
                let a = silu ? g * sigmoid(g) : gelu(g)
                storeLanes(a * loadLanes(up, i, count), o, i, count)
            }
        }
    }
}

/// dgate += dout · up · act'(gate); dup += dout · act(gate). dinp is (N,2F) laid out as gatedForward's input.
/// silu'(x) = σ(x) · (1 + x · (1 − σ(x))).
func gatedBackward(dinp: FloatPointer, inp: ConstFloatPointer, dout: ConstFloatPointer, activation: MLPActivation,
                   N: Int, F: Int, parallel: ParallelFor) {
    precondition(activation.isGated, "\(activation) is not a gated activation")
    let silu = activation == .swiGLU
    parallel(N) { rows in
        for n in rows {
            let gate = inp + n * 2 * F, up = gate + F, dgate = dinp + n * 2 * F, dup = dgate + F, d = dout + n * F
            forEachGroup(0..<F) { i, count in
                let g = loadLanes(gate, i, count), dy = loadLanes(d, i, count)
                let value: SIMD16<Float>, slope: SIMD16<Float>
                if silu {
                    let s = sigmoid(g)
                    value = g * s
                    slope = s * (1 + g * (1 - s))
                } else {
                    value = gelu(g)
                    slope = geluDerivative(g)
                }
                storeLanes(loadLanes(dgate, i, count) + dy * loadLanes(up, i, count) * slope, dgate, i, count)
                storeLanes(loadLanes(dup, i, count) + dy * value, dup, i, count)
            }
        }
    }
}

/// out = max(x, 0)², elementwise over N values.
func reluSquaredForward(out: FloatPointer, inp: ConstFloatPointer, N: Int, parallel: ParallelFor) {
    parallel(N) { range in
        forEachGroup(range) { i, count in
            let r = lanewiseMax(loadLanes(inp, i, count), SIMD16(repeating: 0))
            storeLanes(r * r, out, i, count)
        }
    }
}

/// dinp += dout · 2·max(x, 0), elementwise over N values.
func reluSquaredBackward(dinp: FloatPointer, inp: ConstFloatPointer, dout: ConstFloatPointer, N: Int,
                         parallel: ParallelFor) {
    parallel(N) { range in
        forEachGroup(range) { i, count in
            let r = lanewiseMax(loadLanes(inp, i, count), SIMD16(repeating: 0))
            storeLanes(loadLanes(dinp, i, count) + 2 * r * loadLanes(dout, i, count), dinp, i, count)
        }
    }
}
