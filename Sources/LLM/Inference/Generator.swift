// GPT-2 for generation: a forward pass over only the new positions of one sequence, against a key/value cache
// of the earlier ones. Prefill is one call with the whole prompt; each decode step is one call with one token.

/// The generation engine: a GPT-2 that runs one growing sequence (`generate` is the sampling loop on top). It
/// keeps every layer's keys and values for the positions it has seen, so a forward pass of n new tokens costs
/// n positions' work (plus attention over the cache) and leaves the logits of the last one. The cache and all
/// scratch memory, for the model's whole context (maxT), are one allocation made here; `forward` allocates
/// nothing. The weights are only read.
public final class Generator {
    public let config: GPT2Config
    public let weights: GPT2Weights
    /// How kernels split work across threads; change it freely between calls.
    public var parallel: ParallelFor
    /// Positions held in the cache; the next `forward` appends after them.
    public private(set) var count = 0

    private let layout: InferenceLayout
    private let arena: FloatArena                    // the InferenceLayout buffers
    private let scratch: MatmulScratch               // packing buffers for the batched (prefill) matmuls
    private let tokens: UnsafeMutablePointer<Int32>  // (maxT) ids of the positions being run

    public init(weights: GPT2Weights, parallel: ParallelFor = .allCores) {
        config = weights.config
        self.weights = weights
        self.parallel = parallel
        layout = InferenceLayout(config: config)
        arena = FloatArena(count: layout.totalCount)
        scratch = MatmulScratch(threads: max(parallel.threads, ProcessInfoCores.count))
        tokens = .allocate(capacity: config.maxSeqLen)
        tokens.initialize(repeating: 0, count: config.maxSeqLen)
    }

    deinit { tokens.deallocate() }

    /// Forgets every cached position.
    public func reset() { count = 0 }

    // MARK: - Views into the arenas

    private func param(_ t: ParameterTensor) -> FloatPointer { weights.arena.base + weights.layout.offset(t) }
    private func buffer(_ b: InferenceBuffer) -> FloatPointer { arena.base + layout.offset(b) }

    /// Reads the logits of the last position of the last `forward`: V entries, the padded vocabulary left out.
    public func withLogits<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        let start = layout.offset(.logits)
        return arena.withBuffer(start..<start + config.vocabSize, body)
    }

    /// The logits of the last position of the last `forward` (V entries, a copy).
    public func logits() -> [Float] { withLogits { Array($0) } }

    // MARK: - Forward

    /// Runs `newTokens` at positions start..<start+n, adds their keys and values to the cache and leaves the
    /// last one's logits in `logits()`. `start` defaults to `count` (append); an earlier start drops the
    /// cached positions from there on, so `forward(sequence[...], at: 0)` recomputes a whole sequence.
    /// Throws, leaving the cache as it was, if a token is not below V or the positions would pass maxT.
    /// Allocates nothing.
    public func forward(_ newTokens: ArraySlice<Int32>, at start: Int? = nil) throws(ModelError) {
        let t0 = start ?? count, n = newTokens.count, V = config.vocabSize
        precondition(t0 >= 0 && t0 <= count, "start \(t0) is not within the \(count) cached positions")
        precondition(n > 0, "forward needs at least one token")
        guard t0 + n <= config.maxSeqLen else { throw .sequenceTooLong(seq: t0 + n, maxSeqLen: config.maxSeqLen) }
        for i in 0..<n {  // indexed: a for-in over the slice allocates in debug builds
            let tok = newTokens[newTokens.startIndex + i]
            guard tok >= 0 && Int(tok) < V else {
                throw .tokenOutOfRange(what: "input", index: t0 + i, token: tok, vocabSize: V)
            }
            tokens[i] = tok
        }
        runForward(t0: t0, n: n)
        count = t0 + n
    }

    private func runForward(t0: Int, n: Int) {
        let c = config, L = c.numLayers, C = c.channels, NH = c.numHeads, T = c.maxSeqLen, p = parallel
        let x = buffer(.residual), ln = buffer(.ln), mean = buffer(.lnMean), rstd = buffer(.lnRstd)
        let qkv = buffer(.qkv), atty = buffer(.atty), proj = buffer(.proj), fch = buffer(.fch)
        // Position t0 + i's embedding is row i of wpe shifted by t0.
        encoderForward(out: x, inp: tokens, wte: param(.wte), wpe: param(.wpe) + t0 * C, B: 1, T: n, C: C, parallel: p)
        for l in 0..<L {
            // This layer's weights and cache.
            let w = LayerTensors(weights.arena.base, weights.layout, layer: l)
            let kCache = buffer(.kCache) + l * T * C, vCache = buffer(.vCache) + l * T * C

            // x += attproj(attention(qkv(ln1(x)))), with attention over the cache.
            layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: w.ln1w, bias: w.ln1b, N: n, C: C,
                             parallel: p)
            linear(out: qkv, inp: ln, weight: w.qkvw, bias: w.qkvb, N: n, C: C, OC: 3 * C)
            attentionCachedForward(out: atty, kCache: kCache, vCache: vCache, scores: buffer(.scores), qkv: qkv,
                                   t0: t0, n: n, C: C, NH: NH, maxT: T, parallel: p)
            linear(out: proj, inp: atty, weight: w.attprojw, bias: w.attprojb, N: n, C: C, OC: C)
            residualForward(out: x, inp1: x, inp2: proj, N: n * C, parallel: p)
            // x += fcproj(gelu(fc(ln2(x)))).
            layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: w.ln2w, bias: w.ln2b, N: n, C: C,
                             parallel: p)
            linear(out: fch, inp: ln, weight: w.fcw, bias: w.fcb, N: n, C: C, OC: 4 * C)
            geluForward(out: fch, inp: fch, N: n * 4 * C, parallel: p)
            linear(out: proj, inp: fch, weight: w.fcprojw, bias: w.fcprojb, N: n, C: 4 * C, OC: C)
            residualForward(out: x, inp1: x, inp2: proj, N: n * C, parallel: p)
        }
        // Only the last position needs logits: its final LayerNorm, then the LM head (tied to wte) over V rows.
        layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x + (n - 1) * C, weight: param(.lnfw),
                         bias: param(.lnfb), N: 1, C: C, parallel: p)
        linear(out: buffer(.logits), inp: ln, weight: param(.wte), bias: nil, N: 1, C: C, OC: c.vocabSize)
    }

    /// A linear layer over N rows: threads split the rows when there are enough of them (prefill), else the
    /// output channels (decode). Both kernels compute each output identically.
    private func linear(out: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
                        N: Int, C: Int, OC: Int) {
        if N >= parallel.threads {
            matmulForward(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC, parallel: parallel,
                          scratch: scratch)
        } else {
            matmulForwardByOutputs(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC,
                                   parallel: parallel)
        }
    }
}
