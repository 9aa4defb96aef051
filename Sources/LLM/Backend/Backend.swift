// The seam between the model and the hardware: every operation the transformer runs, over buffers the backend
// owns. The model (Model/Transformer.swift, Model/TransformerBlock.swift) is written once against this
// protocol; the CPU backend implements it with the kernels in Kernels/, and a GPU backend implements the same
// operations with its own kernels over device buffers.
//
// What a backward pass needs from its forward may depend on the backend: the CPU keeps each attention's
// probabilities (`att`), where a flash-style GPU kernel would keep only one log-sum-exp per row.

/// A buffer of Floats as the backend sees it. On the CPU it is host memory.
typealias Buffer = UnsafeMutablePointer<Float>

/// The operations of a decoder-only transformer. Shapes are in each kernel's documentation (Kernels/); every
/// backward adds into its gradient outputs.
protocol Backend: AnyObject {
    /// How the CPU's kernels split work across threads.
    var parallel: ParallelFor { get set }
    /// When set, each operation's wall time is added to it.
    var profile: OpProfile? { get set }

    func embed(out: Buffer, tokens: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, wte: Buffer, wpe: Buffer?,
               scale: Float, N: Int, C: Int)
    func embedBackward(dwte: Buffer, dwpe: Buffer?, dout: Buffer, tokens: UnsafePointer<Int32>,
                       positions: UnsafePointer<Int32>, scale: Float, N: Int, C: Int)

    /// LayerNorm (`mean` given) or RMSNorm of `kind`, over `groups` groups of C per row of `stride` floats.
    func norm(out: Buffer, mean: Buffer?, rstd: Buffer, inp: Buffer, weight: Buffer?, bias: Buffer?,
              kind: NormKind, eps: Float, N: Int, C: Int, groups: Int, stride: Int)
    func normBackward(dinp: Buffer, dweight: Buffer?, dbias: Buffer?, dout: Buffer, inp: Buffer, weight: Buffer?,
                      mean: Buffer?, rstd: Buffer, kind: NormKind, N: Int, C: Int, groups: Int, stride: Int)

    /// out = inp · weightᵀ + bias. `decoding`: a few rows of a decode step, for which the CPU reads each
    /// weight row once for all of them instead of packing the matrix.
    func linear(out: Buffer, inp: Buffer, weight: Buffer, bias: Buffer?, N: Int, C: Int, OC: Int, decoding: Bool)
    /// linear with the weight in quantized blocks (generation of a GGUF model): its parts stacked by output rows.
    func linear(out: Buffer, inp: Buffer, weight: QuantizedLinear, bias: Buffer?, N: Int, C: Int, OC: Int,
                decoding: Bool)
    /// embed with wte kept quantized.
    func embed(out: Buffer, tokens: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, wte: QuantizedMatrix,
               wpe: Buffer?, scale: Float, N: Int, C: Int)
    /// dweight (and dbias) nil: a frozen layer (LoRA's base), whose input gradient alone is computed.
    func linearBackward(dinp: Buffer, dweight: Buffer?, dbias: Buffer?, dout: Buffer, inp: Buffer, weight: Buffer,
                        N: Int, C: Int, OC: Int)
    /// The input gradient of a frozen linear layer kept in quantized blocks (LoRA on a GGUF base).
    func linearBackward(dinp: Buffer, dout: Buffer, weight: QuantizedLinear, N: Int, C: Int, OC: Int)

    /// A low-rank adapter's output added to OC columns of a linear layer's (rows ldOut apart): out += s·(inp·Aᵀ)·Bᵀ.
    /// `u` is N·rank floats of scratch.
    func loraForward(out: Buffer, ldOut: Int, inp: Buffer, a: Buffer, b: Buffer, u: Buffer, scale: Float, N: Int,
                     C: Int, OC: Int, rank: Int)
    /// Its backward pass: adds into dinp, dA and dB.
    func loraBackward(dinp: Buffer, da: Buffer, db: Buffer, dout: Buffer, ldDout: Int, inp: Buffer, a: Buffer,
                      b: Buffer, u: Buffer, du: Buffer, scale: Float, N: Int, C: Int, OC: Int, rank: Int)

    /// Rotates `heads` heads at the start of each row in place (inverse: the backward pass).
    func rope(_ x: Buffer, positions: UnsafePointer<Int32>, table: RotaryTable, N: Int, heads: Int, stride: Int,
              inverse: Bool)

    func attention(out: Buffer, preatt: Buffer, att: Buffer, inp: Buffer, B: Int, T: Int, shape: AttentionShape)
    func attentionBackward(dinp: Buffer, dpreatt: Buffer, datt: Buffer, dout: Buffer, inp: Buffer, att: Buffer,
                           B: Int, T: Int, shape: AttentionShape)
    /// New positions t0..<t0+n of one sequence against its key/value cache of `capacity` positions (generation).
    func cachedAttention(out: Buffer, kCache: Buffer, vCache: Buffer, scores: Buffer, qkv: Buffer, t0: Int, n: Int,
                         shape: AttentionShape, capacity: Int)
    /// A decode step's attention: row i (of `rows`) is one new position, positions[i], of the sequence whose cache
    /// starts at kCache/vCache + slots[i]·slotStride. scores holds (H, capacity) per row.
    func decodeAttention(out: Buffer, kCache: Buffer, vCache: Buffer, slotStride: Int, scores: Buffer, qkv: Buffer,
                         slots: UnsafePointer<Int>, positions: UnsafePointer<Int32>, rows: Int, shape: AttentionShape,
                         capacity: Int)

    /// The MLP's activation: inp (N, F or 2F) → out (N, F).
    func activation(out: Buffer, inp: Buffer, kind: MLPActivation, N: Int, F: Int)
    func activationBackward(dinp: Buffer, inp: Buffer, dout: Buffer, kind: MLPActivation, N: Int, F: Int)

    /// Copies N rows of `width` floats (row strides dstStride and srcStride).
    func copy(_ dst: Buffer, _ src: Buffer, N: Int, width: Int, dstStride: Int, srcStride: Int)

    func residual(out: Buffer, inp1: Buffer, inp2: Buffer, N: Int)
    func residualBackward(dinp1: Buffer, dinp2: Buffer, dout: Buffer, N: Int)

    func softcap(_ logits: Buffer, cap: Float, N: Int, V: Int, Vp: Int)
    func softcapBackward(_ dlogits: Buffer, capped: Buffer, cap: Float, N: Int, V: Int, Vp: Int)

    /// probs = softmax(logits) over V of Vp columns; losses = −log probs[target] (0 for target −1).
    func softmaxCrossEntropy(probs: Buffer, losses: Buffer, logits: Buffer, targets: UnsafePointer<Int32>, N: Int,
                             V: Int, Vp: Int)
    func softmaxCrossEntropyBackward(dlogits: Buffer, dlosses: Buffer, probs: Buffer, targets: UnsafePointer<Int32>,
                                     N: Int, V: Int, Vp: Int)
}
