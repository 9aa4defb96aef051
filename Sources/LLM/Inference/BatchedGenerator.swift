// A model for generation, for one sequence (`Generator`, one slot) or several conversations at once
// (`InferenceEngine`): one key/value cache per slot, a prefill that runs new tokens of one slot, and a decode
// step that runs one new token of every active slot together, so the linear layers read their weights once
// per step for all of them. On a CPU, decoding one sequence is
// bound by reading the weights (a 124M model is 500 MB of floats per token), so a step for S conversations
// costs far less than S steps for one. The layers are the training model's `TransformerBlock`s; only the
// attention differs (against the cache).

/// The batched engine's buffers: `slots` key/value caches, and the scratch activations of one forward pass of up
/// to R = max(min(maxT, prefillChunk), slots) rows (a chunk of a prefill's positions, or a decode step's one row
/// per slot).
enum BatchedBuffer: Int, CaseIterable {
    case kCache    // (S, Σ_l H_kv·capacity_l·d) keys: per slot and layer, one (capacity_l,d) block per key/value head
    case vCache    // values, likewise
    case residual  // (R,C)
    case ln        // (R,C)      the norms' output (norm1, then norm2, then the final norm)
    case lnMean    // (R)        LayerNorm only
    case lnRstd    // (R)
    case qkv       // (R,QKV)
    case qkRoped   // (R,QKV)    when the QK-norm follows RoPE
    case qkvAttn   // (R,QKV)    when q and k are rotated or normalised
    case qkRstd    // (R,H+H_kv) when the model has a QK-norm
    case atty      // (R,H·d)
    case proj      // (R,C)      the attention's and the MLP's output projections
    case postNorm  // (R,C)      Gemma's norm of proj
    case fch       // (R,F or 2F)
    case fchAct    // (R,F)
    case scores    // (S,H,maxT) attention scores, one (H,maxT) block per decode row
    case logits    // (S,V)      one row per decode row (a prefill writes row 0)
}

/// Sizes and offsets of the batched engine's buffers within one flat Float buffer.
struct BatchedLayout {
    let slots: Int
    let rows: Int  // R
    let counts: [Int]
    let offsets: [Int]
    let totalCount: Int

    /// Positions each layer's cache holds: maxT, or a sliding-window layer's window (a ring).
    let capacities: [Int]
    /// Where layer l's cache starts within a slot's, and one slot's size, in floats (for keys; values alike).
    let layerOffsets: [Int]
    let slotStride: Int

    init(config c: ModelConfig, slots S: Int) {
        let C = c.channels, T = c.maxSeqLen, R = max(Self.chunkRows(c), S), QKV = c.qkvWidth
        capacities = (0..<c.numLayers).map { c.isSliding($0) ? min(c.slidingWindow, T) : T }
        var offsets = [Int](), perSlot = 0
        for capacity in capacities {
            offsets.append(perSlot)
            perSlot += c.numKVHeads * capacity * c.headSize
        }
        layerOffsets = offsets
        slotStride = perSlot
        let cache = S * perSlot
        let counts: [Int] = BatchedBuffer.allCases.map { b in
            switch b {
            case .kCache, .vCache: cache
            case .residual, .ln, .proj: R * C
            case .lnMean: c.norm == .layerNorm ? R : 0
            case .lnRstd: R
            case .qkv: R * QKV
            case .qkRoped: c.qkNorm == .afterRoPE ? R * QKV : 0
            case .qkvAttn: TransformerBlock.transformsQK(c) ? R * QKV : 0
            case .qkRstd: c.qkNorm != .none ? R * (c.numHeads + c.numKVHeads) : 0
            case .atty: R * c.attentionWidth
            case .postNorm: c.sandwichNorms ? R * C : 0
            case .fch: R * c.fcWidth
            case .fchAct: R * c.hiddenSize
            case .scores: S * c.numHeads * T
            case .logits: S * c.vocabSize
            }
        }
        var bufferOffsets = [Int](), total = 0
        for n in counts {
            bufferOffsets.append(total)
            total += n
        }
        self.slots = S
        rows = R
        self.counts = counts
        self.offsets = bufferOffsets
        totalCount = total
    }

    /// A prompt runs in chunks of this many positions at most, so the scratch does not grow with the context
    /// (Gemma 3's 32768 positions would need 2 GB of it).
    static let prefillChunk = 512

    /// Rows of scratch a prefill chunk needs: min(maxT, prefillChunk).
    static func chunkRows(_ c: ModelConfig) -> Int { min(c.maxSeqLen, prefillChunk) }

    func offset(_ b: BatchedBuffer) -> Int { offsets[b.rawValue] }
    func has(_ b: BatchedBuffer) -> Bool { counts[b.rawValue] > 0 }
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
    let config: ModelConfig
    let weights: ModelWeights
    let slots: Int
    /// How kernels split work across threads; change it freely between calls.
    var parallel: ParallelFor {
        get { backend.parallel }
        set { backend.parallel = newValue }
    }

    /// When set, each operation's wall time is added to it (`llm bench generate --profile`).
    var profile: OpProfile? {
        get { backend.profile }
        set { backend.profile = newValue }
    }

    private let backend: CPUBackend
    private let blocks: [TransformerBlock]
    private let layout: BatchedLayout
    private let arena: FloatArena
    private let tokens: UnsafeMutablePointer<Int32>     // (R) ids of the rows being run
    private let positions: UnsafeMutablePointer<Int32>  // (R) each row's position in its sequence
    private let rowSlots: UnsafeMutablePointer<Int>     // (S) decode row i's slot
    /// Each layer's weights (float pointers, and the quantized linear layers where the model keeps them).
    private let layerTensors: [LayerTensors]
    /// The LM head's quantized rows (V of them), when the model keeps it quantized.
    private let quantizedHead: QuantizedLinear?
    /// Scratch for the weights' LoRA adapter, if they carry one: rank floats per row.
    private let loraScratch: FloatArena?

    init(weights: ModelWeights, slots: Int, parallel: ParallelFor) {
        precondition(slots >= 1, "a batched generator needs at least one slot")
        // A backstop: callers check with `InferenceEngine.checkMemory` first and get a ModelError; one that did
        // not gets this message instead of an allocation abort or the OOM killer.
        do { try MemoryBudget.check(Self.requiredBytes(config: weights.config, slots: slots, parallel: parallel,
                                                       validated: true),
                                    for: "generating with \(slots) slot(s)") } catch {
            preconditionFailure("\(error) (check with InferenceEngine.checkMemory before creating the engine)")
        }
        config = weights.config
        self.weights = weights
        self.slots = slots
        let c = weights.config
        backend = weights.quantized == nil ? CPUBackend(parallel: parallel)
            : CPUBackend(parallel: parallel, quantizedRows: max(slots, CPUBackend.quantizedDotRows),
                         quantizedCols: max(c.channels, c.attentionWidth, c.hiddenSize))
        blocks = TransformerBlock.blocks(config: config)
        let layout = BatchedLayout(config: c, slots: slots)
        self.layout = layout
        let scratch = weights.adapter.map { FloatArena(count: layout.rows * $0.config.rank) }
        let lora = weights.adapter.map { $0.layers(base: $0.arena.base, u: scratch!.base, du: nil) }
        loraScratch = scratch
        layerTensors = (0..<c.numLayers).map {
            LayerTensors(weights.arena.base, weights.layout, layer: $0, quantized: weights.quantized, lora: lora?[$0])
        }
        quantizedHead = weights.quantized?.global[c.tiedEmbeddings ? .wte : .lmHead].map {
            QuantizedLinear(parts: [$0.rows(0..<c.vocabSize)])  // the padded rows are not stored in a GGUF file
        }
        arena = FloatArena(count: layout.totalCount)
        tokens = .allocate(capacity: layout.rows)
        tokens.initialize(repeating: 0, count: layout.rows)
        positions = .allocate(capacity: layout.rows)
        positions.initialize(repeating: 0, count: layout.rows)
        rowSlots = .allocate(capacity: slots)
        rowSlots.initialize(repeating: 0, count: slots)
    }

    deinit {
        tokens.deallocate()
        positions.deallocate()
        rowSlots.deallocate()
    }

    /// Bytes `init` allocates for `slots` slots (the caches, the scratch arena, the row buffers and the matmul
    /// scratch; not the weights), overflow-checked: nil when it overflows an Int or the config is invalid. The
    /// arena is a per-slot part (caches, scores, logits) times S plus a per-row part times R = max(chunk, S); both
    /// come from the layout's own counts at one and two slots, scaled with checked arithmetic.
    /// `validated`: the config is known to be computable (its weights exist), so `validate()` is not required.
    static func requiredBytes(config c: ModelConfig, slots: Int, parallel: ParallelFor = .allCores,
                              validated: Bool = false) -> Int? {
        guard slots >= 1, validated || MemoryBudget.parameterCount(c) != nil else { return nil }
        let chunk = BatchedLayout.chunkRows(c)
        let one = BatchedLayout(config: c, slots: 1).totalCount
        let floats: Int?
        if chunk >= 2 {
            let perSlot = BatchedLayout(config: c, slots: 2).totalCount - one  // R = the chunk for both
            let perRow = (one - perSlot) / chunk
            floats = MemoryBudget.add(MemoryBudget.multiply(slots, perSlot),
                                      MemoryBudget.multiply(max(chunk, slots), perRow))
        } else {
            floats = MemoryBudget.multiply(slots, one)  // R = S: everything scales with the slots
        }
        let rows = max(chunk, slots)
        let threads = max(1, max(parallel.threads, ProcessInfoCores.count))
        return MemoryBudget.add(MemoryBudget.multiply(4, floats.map { max($0, 1) }),
                                MemoryBudget.multiply(8, rows), MemoryBudget.multiply(8, slots),
                                MemoryBudget.multiply(4, threads, MatmulScratch.floatsPerThread))
    }

    /// Bytes of key/value cache one sequence holds: 2 · H_kv · d floats per position of each layer's capacity.
    var cacheBytesPerSlot: Int { 2 * 4 * layout.slotStride }

    // MARK: - Views into the arenas

    private func param(_ t: ParameterTensor) -> Buffer? {
        weights.layout.has(t) ? weights.arena.base + weights.layout.offset(t) : nil
    }
    private func buffer(_ b: BatchedBuffer) -> Buffer { arena.base + layout.offset(b) }
    private func optional(_ b: BatchedBuffer) -> Buffer? { layout.has(b) ? buffer(b) : nil }

    /// Layer l's (H_kv,capacity,d) key and value caches of `slot`.
    private func caches(slot: Int, layer l: Int) -> (k: Buffer, v: Buffer) {
        let offset = slot * layout.slotStride + layout.layerOffsets[l]
        return (buffer(.kCache) + offset, buffer(.vCache) + offset)
    }

    /// The scratch activations for a block: one residual stream updated in place, one buffer per kind.
    private var scratch: BlockBuffers {
        let x = buffer(.residual), ln = buffer(.ln), mean = optional(.lnMean), rstd = buffer(.lnRstd)
        let proj = buffer(.proj), post = optional(.postNorm)
        return BlockBuffers(input: x, ln1: ln, ln1Mean: mean, ln1Rstd: rstd, qkv: buffer(.qkv),
                            qkRoped: optional(.qkRoped), qkvAttn: optional(.qkvAttn) ?? buffer(.qkv),
                            qkRstd: optional(.qkRstd), atty: buffer(.atty), attproj: proj, postAttn: post,
                            postAttnRstd: post == nil ? nil : rstd, residual2: x, ln2: ln, ln2Mean: mean,
                            ln2Rstd: rstd, fch: buffer(.fch), fchAct: buffer(.fchAct), fcproj: proj, postMLP: post,
                            postMLPRstd: post == nil ? nil : rstd, residual3: x)
    }

    /// Reads the logits (V entries) of row `row` of the last `decode`, or of the last `prefill` (row 0).
    func withLogits<R>(row: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        precondition(row >= 0 && row < slots, "logits row \(row) is not below \(slots)")
        let start = layout.offset(.logits) + row * config.vocabSize
        return arena.withBuffer(start..<start + config.vocabSize, body)
    }

    // MARK: - Prefill

    /// Runs `tokens` at positions t0..<t0+n of `slot`, whose cache must hold positions 0..<t0 (a prompt starts
    /// at 0; a later start appends to, or recomputes the end of, what the slot holds — but a model with
    /// sliding-window layers keeps only their window, so it can append or start again at 0, not rewind), and
    /// leaves the logits of the last one in row 0. Throws, touching nothing, if a token is not below V or t0+n
    /// passes maxT.
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
        }
        // In chunks of at most R positions, each appended to the cache the previous ones filled: every row's
        // arithmetic is the same as in one pass (the linear layers' rows are independent; attention reads the
        // earlier positions from the cache).
        let c = config, chunk = BatchedLayout.chunkRows(c)
        var done = 0
        while done < n {
            let m = min(chunk, n - done), start = t0 + done
            for i in 0..<m {
                tokens[i] = newTokens[newTokens.startIndex + done + i]
                positions[i] = Int32(start + i)
            }
            embed(rows: m)
            for l in 0..<c.numLayers {
                let cache = caches(slot: slot, layer: l), shape = blocks[l].attentionShape
                layer(l, rows: m, decoding: false) { atty, qkv in
                    backend.cachedAttention(out: atty, kCache: cache.k, vCache: cache.v, scores: buffer(.scores),
                                            qkv: qkv, t0: start, n: m, shape: shape, capacity: layout.capacities[l])
                }
            }
            done += m
            if done == n { head(lastRows: 1, of: m, decoding: false) }
        }
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
        positions[row] = Int32(position)
        rowSlots[row] = slot
    }

    /// One decode step over rows 0..<count (see `setRow`): each row's token joins its slot's cache and row i of
    /// the logits holds what comes after it. The linear layers run over all rows at once.
    func decode(rows count: Int) {
        precondition(count >= 1 && count <= slots, "a decode step runs 1...\(slots) rows, not \(count)")
        let c = config
        embed(rows: count)
        for l in 0..<c.numLayers {
            let shape = blocks[l].attentionShape, cache = caches(slot: 0, layer: l)
            layer(l, rows: count, decoding: true) { atty, qkv in
                backend.decodeAttention(out: atty, kCache: cache.k, vCache: cache.v, slotStride: layout.slotStride,
                                        scores: buffer(.scores), qkv: qkv, slots: rowSlots, positions: positions,
                                        rows: count, shape: shape, capacity: layout.capacities[l])
            }
        }
        head(lastRows: count, of: count, decoding: true)
    }

    // MARK: - Shared pieces

    /// The embeddings of rows 0..<n (tokens and positions set), plus the norm that follows them where the model
    /// has one, into the residual stream.
    private func embed(rows n: Int) {
        let c = config, C = c.channels, x = buffer(.residual)
        if let table = weights.quantized?.global[.wte] {
            backend.embed(out: x, tokens: tokens, positions: positions, wte: table, wpe: param(.wpe),
                          scale: c.embeddingScale, N: n, C: C)
        } else {
            backend.embed(out: x, tokens: tokens, positions: positions, wte: param(.wte)!, wpe: param(.wpe),
                          scale: c.embeddingScale, N: n, C: C)
        }
        if c.normAfterEmbedding {
            backend.norm(out: x, mean: nil, rstd: buffer(.lnRstd), inp: x, weight: nil, bias: nil, kind: c.norm,
                         eps: Float(c.normEps), N: n, C: C, groups: 1, stride: C)
        }
    }

    /// Transformer block l over `rows` rows of the residual stream; `attention(atty, qkvAttn)` fills atty.
    private func layer(_ l: Int, rows n: Int, decoding: Bool, attention: (Buffer, Buffer) -> Void) {
        blocks[l].forward(scratch, weights: layerTensors[l], N: n,
                          positions: positions, decoding: decoding, backend: backend, attention: attention)
    }

    /// The final norm and the LM head for the last `k` of the `n` rows of the residual stream, into logits rows
    /// 0..<k (softcapped where the model caps them).
    private func head(lastRows k: Int, of n: Int, decoding: Bool) {
        let c = config, C = c.channels, V = c.vocabSize, ln = buffer(.ln)
        backend.norm(out: ln, mean: optional(.lnMean), rstd: buffer(.lnRstd), inp: buffer(.residual) + (n - k) * C,
                     weight: param(.lnfw), bias: param(.lnfb), kind: c.norm, eps: Float(c.normEps), N: k, C: C,
                     groups: 1, stride: C)
        if let quantizedHead {
            backend.linear(out: buffer(.logits), inp: ln, weight: quantizedHead, bias: nil, N: k, C: C, OC: V,
                           decoding: decoding)
        } else {
            backend.linear(out: buffer(.logits), inp: ln, weight: param(c.tiedEmbeddings ? .wte : .lmHead)!,
                           bias: nil, N: k, C: C, OC: V, decoding: decoding)
        }
        if let cap = c.logitSoftcap { backend.softcap(buffer(.logits), cap: Float(cap), N: k, V: V, Vp: V) }
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
