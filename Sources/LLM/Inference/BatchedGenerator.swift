// GPT-2 for generation, for one sequence (`Generator`, one slot) or several conversations at once
// (`InferenceEngine`): one key/value cache per slot, a prefill that runs new tokens of one slot, and a decode
// step that runs one new token of every active slot together, so the linear layers read their weights once
// per step for all of them. On a CPU, decoding one sequence is
// bound by reading the weights (a 124M model is 500 MB of floats per token), so a step for S conversations
// costs far less than S steps for one.

/// The batched engine's buffers: `slots` caches of maxT positions, and the scratch activations of one forward
/// pass of up to R = max(maxT, slots) rows (a prefill's positions, or a decode step's one row per slot).
enum BatchedBuffer: Int, CaseIterable {
    case kCache    // (S,L,NH,maxT,hs) keys: per slot, one Generator-shaped (L,NH,maxT,hs) cache
    case vCache    // (S,L,NH,maxT,hs) values, likewise
    case residual  // (R,C)
    case ln        // (R,C)      LayerNorm output (ln1, then ln2, then lnf)
    case lnMean    // (R)
    case lnRstd    // (R)
    case qkv       // (R,3C)
    case atty      // (R,C)
    case proj      // (R,C)
    case fch       // (R,4C)     GELU applied in place
    case scores    // (S,NH,maxT) attention scores, one (NH,maxT) block per decode row
    case logits    // (S,V)      one row per decode row (a prefill writes row 0)
}

/// Sizes and offsets of the batched engine's buffers within one flat Float buffer.
struct BatchedLayout {
    let slots: Int
    let rows: Int  // R
    let offsets: [Int]
    let totalCount: Int

    init(config c: GPT2Config, slots S: Int) {
        let L = c.numLayers, C = c.channels, NH = c.numHeads, T = c.maxSeqLen, R = max(T, S)
        let counts = [S * L * T * C, S * L * T * C, R * C, R * C, R, R, R * 3 * C, R * C, R * C, R * 4 * C,
                      S * NH * T, S * c.vocabSize]
        var offsets = [Int](), total = 0
        for n in counts {
            offsets.append(total)
            total += n
        }
        self.slots = S
        rows = R
        self.offsets = offsets
        totalCount = total
    }

    func offset(_ b: BatchedBuffer) -> Int { offsets[b.rawValue] }
}

/// The forward passes of `Generator` and `InferenceEngine`: S independent sequences, each in its own cache
/// slot. A slot is filled by `prefill` (its prompt, or any run of new tokens); then `decode` runs one token for
/// each of up to S slots, each at its own position. Per row, every kernel computes what a one-slot prefill
/// computes for that sequence alone: the linear layers' outputs are independent of the other rows, and a
/// decode step's kernel is bit-identical to the one a single-token prefill uses on several threads
/// (matmulForwardByOutputs; on one thread a prefill uses matmulForward, which agrees to rounding). All memory
/// (caches for every slot, scratch, the decode rows' descriptions) is allocated here; `prefill` and `decode`
/// allocate nothing. Not thread-safe: one thread drives it.
final class BatchedGenerator {
    let config: GPT2Config
    let weights: GPT2Weights
    let slots: Int
    /// How kernels split work across threads; change it freely between calls.
    var parallel: ParallelFor

    private let layout: BatchedLayout
    private let arena: FloatArena
    private let scratch: MatmulScratch
    private let tokens: UnsafeMutablePointer<Int32>   // (R) ids of the rows being run
    private let positions: UnsafeMutablePointer<Int>  // (S) decode row i's position in its sequence
    private let rowSlots: UnsafeMutablePointer<Int>   // (S) decode row i's slot

    init(weights: GPT2Weights, slots: Int, parallel: ParallelFor) {
        precondition(slots >= 1, "a batched generator needs at least one slot")
        config = weights.config
        self.weights = weights
        self.slots = slots
        self.parallel = parallel
        layout = BatchedLayout(config: config, slots: slots)
        arena = FloatArena(count: layout.totalCount)
        scratch = MatmulScratch(threads: max(parallel.threads, ProcessInfoCores.count))
        tokens = .allocate(capacity: layout.rows)
        tokens.initialize(repeating: 0, count: layout.rows)
        positions = .allocate(capacity: slots)
        positions.initialize(repeating: 0, count: slots)
        rowSlots = .allocate(capacity: slots)
        rowSlots.initialize(repeating: 0, count: slots)
    }

    deinit {
        tokens.deallocate()
        positions.deallocate()
        rowSlots.deallocate()
    }

    // MARK: - Views into the arenas

    private func param(_ t: ParameterTensor) -> FloatPointer { weights.arena.base + weights.layout.offset(t) }
    private func buffer(_ b: BatchedBuffer) -> FloatPointer { arena.base + layout.offset(b) }

    /// Layer l's (NH,maxT,hs) key and value caches of `slot`.
    private func caches(slot: Int, layer l: Int) -> (k: FloatPointer, v: FloatPointer) {
        let c = config, perLayer = c.maxSeqLen * c.channels, offset = (slot * c.numLayers + l) * perLayer
        return (buffer(.kCache) + offset, buffer(.vCache) + offset)
    }

    /// Reads the logits (V entries) of row `row` of the last `decode`, or of the last `prefill` (row 0).
    func withLogits<R>(row: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        precondition(row >= 0 && row < slots, "logits row \(row) is not below \(slots)")
        let start = layout.offset(.logits) + row * config.vocabSize
        return arena.withBuffer(start..<start + config.vocabSize, body)
    }

    // MARK: - Prefill

    /// Runs `tokens` at positions t0..<t0+n of `slot`, whose cache must hold positions 0..<t0 (a prompt starts
    /// at 0; a later start appends to, or recomputes the end of, what the slot holds), and leaves the logits of
    /// the last one in row 0. Throws, touching nothing, if a token is not below V or t0+n passes maxT.
    func prefill(slot: Int, tokens newTokens: ArraySlice<Int32>, at t0: Int = 0) throws(ModelError) {
        let n = newTokens.count, V = config.vocabSize
        precondition(slot >= 0 && slot < slots, "slot \(slot) is not below \(slots)")
        precondition(n > 0, "a prefill needs at least one token")
        precondition(t0 >= 0, "start \(t0) is negative")
        guard t0 + n <= config.maxSeqLen else { throw .sequenceTooLong(seq: t0 + n, maxSeqLen: config.maxSeqLen) }
        for i in 0..<n {  // indexed: a for-in over the slice allocates in debug builds
            let tok = newTokens[newTokens.startIndex + i]
            guard tok >= 0 && Int(tok) < V else {
                throw .tokenOutOfRange(what: "input", index: t0 + i, token: tok, vocabSize: V)
            }
            tokens[i] = tok
        }
        let c = config, C = c.channels, p = parallel
        // Position t0 + i's embedding is row i of wpe shifted by t0.
        encoderForward(out: buffer(.residual), inp: tokens, wte: param(.wte), wpe: param(.wpe) + t0 * C, B: 1, T: n,
                       C: C, parallel: p)
        for l in 0..<c.numLayers {
            let cache = caches(slot: slot, layer: l)
            layer(l, rows: n, decoding: false) { atty, qkv in
                attentionCachedForward(out: atty, kCache: cache.k, vCache: cache.v, scores: buffer(.scores), qkv: qkv,
                                       t0: t0, n: n, C: C, NH: c.numHeads, maxT: c.maxSeqLen, parallel: p)
            }
        }
        head(lastRows: 1, of: n, decoding: false)
    }

    // MARK: - Decode

    /// Describes decode row `row`: `token` goes to `position` of `slot`, whose cache must hold positions
    /// 0..<position (and has its later ones overwritten). The token must be below V (the engine only feeds
    /// back tokens it sampled). Rows 0..<count are run by `decode(rows: count)`; each slot at most once.
    func setRow(_ row: Int, slot: Int, token: Int32, position: Int) {
        precondition(row >= 0 && row < slots && slot >= 0 && slot < slots, "row \(row) or slot \(slot) out of range")
        precondition(token >= 0 && Int(token) < config.vocabSize, "token \(token) is not below \(config.vocabSize)")
        precondition(position >= 0 && position < config.maxSeqLen, "position \(position) is past the context")
        tokens[row] = token
        positions[row] = position
        rowSlots[row] = slot
    }

    /// One decode step over rows 0..<count (see `setRow`): each row's token joins its slot's cache and row i of
    /// the logits holds what comes after it. The linear layers run over all rows at once.
    func decode(rows count: Int) {
        precondition(count >= 1 && count <= slots, "a decode step runs 1...\(slots) rows, not \(count)")
        let c = config, C = c.channels, NH = c.numHeads, T = c.maxSeqLen, p = parallel
        let x = buffer(.residual), wte = param(.wte), wpe = param(.wpe)
        // Row i's embedding: its token's, plus its own position's.
        for i in 0..<count {
            let o = x + i * C, e = wte + Int(tokens[i]) * C, pe = wpe + positions[i] * C
            for j in 0..<C { o[j] = e[j] + pe[j] }
        }
        for l in 0..<c.numLayers {
            layer(l, rows: count, decoding: true) { atty, qkv in
                // Each row attends over its own slot's cache. With enough rows threads take whole rows, else
                // they split each row's heads; either way a head's arithmetic is attentionCachedForward's.
                let split = count >= p.threads
                let perRow = split ? ParallelFor(threads: 1) : p
                (split ? p : ParallelFor(threads: 1))(count) { rows in
                    for i in rows {
                        let cache = caches(slot: rowSlots[i], layer: l)
                        attentionCachedForward(out: atty + i * C, kCache: cache.k, vCache: cache.v,
                                               scores: buffer(.scores) + i * NH * T, qkv: qkv + i * 3 * C,
                                               t0: positions[i], n: 1, C: C, NH: NH, maxT: T, parallel: perRow)
                    }
                }
            }
        }
        head(lastRows: count, of: count, decoding: true)
    }

    // MARK: - Shared pieces

    /// Transformer block l over `rows` rows of the residual stream; `attention(atty, qkv)` fills atty from qkv.
    private func layer(_ l: Int, rows n: Int, decoding: Bool, attention: (FloatPointer, ConstFloatPointer) -> Void) {
        let C = config.channels, p = parallel
        let x = buffer(.residual), ln = buffer(.ln), mean = buffer(.lnMean), rstd = buffer(.lnRstd)
        let qkv = buffer(.qkv), atty = buffer(.atty), proj = buffer(.proj), fch = buffer(.fch)
        let w = LayerTensors(weights.arena.base, weights.layout, layer: l)
        // x += attproj(attention(qkv(ln1(x)))).
        layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: w.ln1w, bias: w.ln1b, N: n, C: C, parallel: p)
        linear(out: qkv, inp: ln, weight: w.qkvw, bias: w.qkvb, N: n, C: C, OC: 3 * C, decoding: decoding)
        attention(atty, qkv)
        linear(out: proj, inp: atty, weight: w.attprojw, bias: w.attprojb, N: n, C: C, OC: C, decoding: decoding)
        residualForward(out: x, inp1: x, inp2: proj, N: n * C, parallel: p)
        // x += fcproj(gelu(fc(ln2(x)))).
        layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: w.ln2w, bias: w.ln2b, N: n, C: C, parallel: p)
        linear(out: fch, inp: ln, weight: w.fcw, bias: w.fcb, N: n, C: C, OC: 4 * C, decoding: decoding)
        geluForward(out: fch, inp: fch, N: n * 4 * C, parallel: p)
        linear(out: proj, inp: fch, weight: w.fcprojw, bias: w.fcprojb, N: n, C: 4 * C, OC: C, decoding: decoding)
        residualForward(out: x, inp1: x, inp2: proj, N: n * C, parallel: p)
    }

    /// The final LayerNorm and the LM head (tied to wte) for the last `k` of the `n` rows of the residual stream,
    /// into logits rows 0..<k.
    private func head(lastRows k: Int, of n: Int, decoding: Bool) {
        let C = config.channels, ln = buffer(.ln)
        layerNormForward(out: ln, mean: buffer(.lnMean), rstd: buffer(.lnRstd), inp: buffer(.residual) + (n - k) * C,
                         weight: param(.lnfw), bias: param(.lnfb), N: k, C: C, parallel: parallel)
        linear(out: buffer(.logits), inp: ln, weight: param(.wte), bias: nil, N: k, C: C, OC: config.vocabSize,
               decoding: decoding)
    }

    /// A linear layer over N rows. A prefill lets threads split the rows when there are enough of them, else
    /// the output channels. A decode step always runs `matmulForwardDecode`, which reads
    /// each weight row once for all the rows; matmulForward would repack every weight matrix each step for a
    /// handful of rows. Every kernel computes each output row independently of the other rows.
    private func linear(out: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
                        N: Int, C: Int, OC: Int, decoding: Bool) {
        if decoding {
            matmulForwardDecode(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC, parallel: parallel)
        } else if N >= parallel.threads {
            matmulForward(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC, parallel: parallel,
                          scratch: scratch)
        } else {
            matmulForwardByOutputs(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC,
                                   parallel: parallel)
        }
    }
}

/// out[n,o] = bias[o] + sum_c inp[n,c] · weight[o,c] for a decode step's few rows, with threads splitting the
/// output channels. out is (N,OC), inp is (N,C), weight is (OC,C), bias is (OC) or nil.
///
/// matmulForwardByOutputs computes the same, one `dot` at a time: a single chain of dependent FMAs, which
/// leaves the FMA units idle for most of their latency once the weight row is in cache. Here tiles of 4 rows
/// keep four independent accumulators and load each 16-float piece of a weight row once for all 4. Each
/// accumulator still sees exactly `dot`'s operations in `dot`'s order (one SIMD16 sum over the 16-wide
/// pieces, its lane sum, then the scalar tail), so every output is bit-identical to matmulForwardByOutputs'
/// and does not depend on N or on which tile a row falls in.
func matmulForwardDecode(out: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer,
                         bias: ConstFloatPointer?, N: Int, C: Int, OC: Int, parallel: ParallelFor) {
    parallel(OC) { outputs in
        for j in outputs {
            let w = weight + j * C, b = bias?[j] ?? 0
            var n0 = 0
            while n0 + 4 <= N {
                decodeTile(out: out + n0 * OC + j, OC: OC, inp: inp + n0 * C, w: w, b: b, C: C)
                n0 += 4
            }
            while n0 < N {
                out[n0 * OC + j] = b + dot(inp + n0 * C, w, C)
                n0 += 1
            }
        }
    }
}

/// Rows 0..<4 of inp (row stride C) against one weight row w: out[r·OC] = b + dot(inp + r·C, w, C).
@inline(__always)
private func decodeTile(out: FloatPointer, OC: Int, inp: ConstFloatPointer, w: ConstFloatPointer, b: Float, C: Int) {
    let x0 = inp, x1 = inp + C, x2 = inp + 2 * C, x3 = inp + 3 * C
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i + 16 <= C {
        let v = loadSIMD16(w + i)
        a0.addProduct(loadSIMD16(x0 + i), v)
        a1.addProduct(loadSIMD16(x1 + i), v)
        a2.addProduct(loadSIMD16(x2 + i), v)
        a3.addProduct(loadSIMD16(x3 + i), v)
        i += 16
    }
    var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
    while i < C {  // dot's scalar tail
        s0 += x0[i] * w[i]
        s1 += x1[i] * w[i]
        s2 += x2[i] * w[i]
        s3 += x3[i] * w[i]
        i += 1
    }
    out[0] = b + s0
    out[OC] = b + s1
    out[2 * OC] = b + s2
    out[3 * OC] = b + s3
}
