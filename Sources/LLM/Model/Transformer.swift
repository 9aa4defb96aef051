// The transformer for training: forward, backward and AdamW update over arenas allocated once, in the spirit of
// llm.c's train_gpt2.c, for every architecture the config describes (GPT-2 is one configuration of it).

/// AdamW hyperparameters, with GPT-2/llm.c-style defaults.
public struct AdamWConfig: Sendable, Equatable, Codable {
    public var learningRate: Double = 3e-4
    public var beta1: Double = 0.9
    public var beta2: Double = 0.95
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0.1
    /// Global gradient-norm clip; nil or ≤ 0 disables clipping.
    public var gradClip: Double? = 1.0

    public init(learningRate: Double = 3e-4, beta1: Double = 0.9, beta2: Double = 0.95, eps: Double = 1e-8,
                weightDecay: Double = 0.1, gradClip: Double? = 1.0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.gradClip = gradClip
    }
}

/// A model ready to train: weights, gradients, optimizer state and activations, each one allocation made here, up
/// front, for batches of up to `batchCapacity` sequences of up to `seqCapacity` tokens. `forward`, `backward`
/// and `update` allocate nothing. The layers run through `TransformerBlock` on a `Backend` (the CPU's).
/// The optimizer state is two arenas laid out like the gradients: AdamW's moments, and for a model made for Muon
/// the momentum buffers of its matrices in the first one's slots (their second-moment slots stay zero).
public final class Transformer {
    public let config: ModelConfig
    public let weights: ModelWeights
    public let batchCapacity: Int
    public let seqCapacity: Int
    /// How kernels split work across threads; change it freely between steps.
    public var parallel: ParallelFor {
        get { backend.parallel }
        set { backend.parallel = newValue }
    }
    /// When set, each operation's wall time is added to it (for `llm bench train --profile`).
    public var profile: OpProfile? {
        get { backend.profile }
        set { backend.profile = newValue }
    }

    let backend: CPUBackend
    let blocks: [TransformerBlock]
    /// Each layer's weights and their gradients as the blocks read them; with an adapter (LoRA), the base's
    /// weights plus the adapter's A and B, and the adapter's gradients alone.
    let layerWeights: [LayerTensors]
    let layerGrads: [LayerTensors]
    /// The embedding and LM head when the (frozen) base keeps them in a GGUF file's quantized blocks.
    let quantizedEmbedding: QuantizedMatrix?
    let quantizedHead: QuantizedLinear?
    /// The adapters' scratch: x·Aᵀ and its gradient, rank floats per row each.
    let loraScratch: FloatArena?
    let grads: FloatArena      // same layout as the weights, or as the adapter's arena when one trains
    let adamM: FloatArena      // AdamW first moment; Muon's momentum buffer for the matrices it steps
    let adamV: FloatArena      // AdamW second moment
    /// The trainable parameters whose moments this model keeps: all of them, or under ZeRO-1 this rank's part
    /// (adamM and adamV then hold only that range).
    public let optimizerShard: Range<Int>
    /// The optimizer `update` runs: AdamW's, or Muon's (`update(_:muon:learningRateScale:step:)`).
    public let optimizer: OptimizerKind
    /// Muon: the matrices it orthogonalises (each part of a fused tensor on its own) and the iteration's buffers.
    let muonMatrices: [MuonMatrix]
    let muonScratch: MuonScratch?
    let acts: FloatArena       // ActivationLayout for (batchCapacity, seqCapacity)
    let gradActs: FloatArena   // gradients of the activations (gradLayout)
    let actLayout: ActivationLayout
    /// The activations' gradients need two layers' slots, not L: layer l's backward reads its own slot and adds
    /// into the residual3 of the layer below, in the other slot, which is zeroed just before (see `backward`).
    let gradLayout: ActivationLayout
    let inputs: UnsafeMutablePointer<Int32>     // (B,T) of the last forward
    let targets: UnsafeMutablePointer<Int32>    // (B,T) of the last forward, if it had targets
    let positions: UnsafeMutablePointer<Int32>  // (B,T) each row's position in its sequence
    let normPartials: UnsafeMutablePointer<Double>  // one sum per 65,536 gradients, for gradientNorm

    /// Shape of the last forward pass, and whether it had targets (so backward may run).
    public private(set) var lastBatch = 0
    public private(set) var lastSeq = 0
    private var haveTargets = false
    /// Mean loss of the last forward pass with targets, over its supervised positions (targets ≥ 0).
    public private(set) var meanLoss: Float = 0
    /// Positions of the last forward pass whose target was not ignored.
    public private(set) var supervised = 0

    public init(weights: ModelWeights, batch: Int, seq: Int, parallel: ParallelFor = .allCores,
                optimizer: OptimizerKind = .adamw, optimizerShard: Range<Int>? = nil) throws(ModelError) {
        let c = weights.config
        guard batch > 0, seq > 0 else { throw .invalidConfig("batch \(batch) and sequence \(seq) must be positive") }
        guard seq <= c.maxSeqLen else { throw .sequenceTooLong(seq: seq, maxSeqLen: c.maxSeqLen) }
        let adapter = weights.adapter
        guard adapter == nil || optimizer == .adamw else {
            throw .invalidConfig("Muon trains a whole model, not a LoRA adapter: train the adapter with --optimizer adamw")
        }
        guard weights.quantized == nil || adapter != nil else {
            throw .invalidConfig("these weights keep a GGUF file's quantized blocks, which stay frozen: train a LoRA adapter on them, or load them dequantized (GGUFModel.read(…, keepQuantized: false)) to train them")
        }
        // Everything below is allocated at once: refuse a shape the machine cannot hold before touching memory.
        // With an adapter only its parameters get gradients and moments.
        let n = adapter?.parameterCount ?? weights.layout.totalCount
        try MemoryBudget.checkTraining(config: c, batch: batch, seq: seq, parallel: parallel,
                                       parameters: weights.layout.totalCount, trainable: n)
        config = c
        self.weights = weights
        batchCapacity = batch
        seqCapacity = seq
        backend = CPUBackend(parallel: parallel)
        blocks = TransformerBlock.blocks(config: c)
        let gradients = FloatArena(count: n)
        grads = gradients
        let quantized = weights.quantized
        if let adapter {
            let rows = batch * seq, rank = adapter.config.rank
            let scratch = FloatArena(count: 2 * rows * rank)
            let lw = adapter.layers(base: adapter.arena.base, u: scratch.base, du: scratch.base + rows * rank)
            let lg = adapter.layers(base: gradients.base, u: nil, du: nil)
            loraScratch = scratch
            layerWeights = (0..<c.numLayers).map {
                LayerTensors(weights.arena.base, weights.layout, layer: $0, quantized: quantized, lora: lw[$0])
            }
            layerGrads = lg.map { LayerTensors(frozenWith: $0) }
        } else {
            loraScratch = nil
            layerWeights = (0..<c.numLayers).map { LayerTensors(weights.arena.base, weights.layout, layer: $0) }
            layerGrads = (0..<c.numLayers).map { LayerTensors(gradients.base, weights.layout, layer: $0) }
        }
        quantizedEmbedding = quantized?.global[.wte]
        quantizedHead = quantized?.global[c.tiedEmbeddings ? .wte : .lmHead].map {
            QuantizedLinear(parts: [$0.rows(0..<c.vocabSize)])  // the padded rows are not stored in a GGUF file
        }
        let shard = optimizerShard ?? 0..<n
        guard shard.lowerBound >= 0, shard.upperBound <= n, shard.count == n || (optimizer == .adamw && adapter == nil) else {
            throw .invalidConfig("an optimizer shard \(shard) of \(n) parameters (sharding is for AdamW on a whole model)")
        }
        self.optimizerShard = shard
        adamM = FloatArena(count: shard.count)
        adamV = FloatArena(count: shard.count)
        self.optimizer = optimizer
        muonMatrices = optimizer == .muon ? weights.layout.muonMatrices : []
        muonScratch = optimizer == .muon ? Self.muonScratchShape(muonMatrices).map(MuonScratch.init) : nil
        actLayout = ActivationLayout(config: c, batch: batch, seq: seq)
        gradLayout = ActivationLayout(config: c, batch: batch, seq: seq, gradients: true)
        acts = FloatArena(count: actLayout.totalCount)
        gradActs = FloatArena(count: gradLayout.totalCount)
        inputs = .allocate(capacity: batch * seq)
        targets = .allocate(capacity: batch * seq)
        positions = .allocate(capacity: batch * seq)
        inputs.initialize(repeating: 0, count: batch * seq)
        targets.initialize(repeating: 0, count: batch * seq)
        positions.initialize(repeating: 0, count: batch * seq)
        normPartials = .allocate(capacity: (n + sumBlock - 1) / sumBlock)
    }

    /// The largest matrix and the longest short side among `matrices`: what Muon's scratch is sized for.
    static func muonScratchShape(_ matrices: [MuonMatrix]) -> (maxElements: Int, maxShortSide: Int)? {
        matrices.isEmpty ? nil
            : (matrices.map(\.count).max()!, matrices.map { min($0.rows, $0.cols) }.max()!)
    }

    deinit {
        inputs.deallocate()
        targets.deallocate()
        positions.deallocate()
        normPartials.deallocate()
    }

    // MARK: - Views into the arenas

    private func param(_ t: ParameterTensor) -> Buffer? {
        weights.layout.has(t) ? weights.arena.base + weights.layout.offset(t) : nil
    }
    /// A tensor's gradient: nil when the model has no such tensor, or when the base is frozen (LoRA).
    private func grad(_ t: ParameterTensor) -> Buffer? {
        weights.adapter == nil && weights.layout.has(t) ? grads.base + weights.layout.offset(t) : nil
    }
    private func act(_ t: ActivationTensor) -> Buffer { acts.base + actLayout.offset(t) }
    private func dact(_ t: ActivationTensor) -> Buffer { gradActs.base + gradLayout.offset(t) }
    /// The LM head: its own matrix, or the token embedding when tied.
    private var head: ParameterTensor { config.tiedEmbeddings ? .wte : .lmHead }
    /// The residual stream entering the first block.
    private func firstResidual(_ arena: FloatArena, _ lay: ActivationLayout) -> Buffer {
        arena.base + lay.offset(config.normAfterEmbedding ? .embedNorm : .encoded)
    }

    /// Layer l's activations, or their gradients, for N rows.
    private func blockBuffers(gradients: Bool, layer l: Int) -> BlockBuffers {
        let arena = gradients ? gradActs : acts, lay = gradients ? gradLayout : actLayout
        func at(_ t: ActivationTensor) -> Buffer { arena.base + lay.offset(t, layer: l) }
        func opt(_ t: ActivationTensor) -> Buffer? { lay.has(t) ? at(t) : nil }
        return BlockBuffers(
            input: l == 0 ? firstResidual(arena, lay) : arena.base + lay.offset(.residual3, layer: l - 1),
            ln1: at(.ln1), ln1Mean: opt(.ln1Mean), ln1Rstd: at(.ln1Rstd), qkv: at(.qkv), qkRoped: opt(.qkRoped),
            qkvAttn: opt(.qkvAttn) ?? at(.qkv), qkRstd: opt(.qkRstd), atty: at(.atty), attproj: at(.attproj),
            postAttn: opt(.postAttn), postAttnRstd: opt(.postAttnRstd), residual2: at(.residual2), ln2: at(.ln2),
            ln2Mean: opt(.ln2Mean), ln2Rstd: at(.ln2Rstd), fch: at(.fch), fchAct: at(.fchAct), fcproj: at(.fcproj),
            postMLP: opt(.postMLP), postMLPRstd: opt(.postMLPRstd), residual3: at(.residual3))
    }

    /// Bytes this model holds: weights, gradients, both moments, activations and their gradients, matmul
    /// scratch, Muon's scratch and token buffers.
    public var allocatedBytes: Int {
        4 * (weights.arena.count + grads.count + adamM.count + adamV.count + acts.count + gradActs.count
             + (weights.adapter?.arena.count ?? 0) + (loraScratch?.count ?? 0))
            + backend.allocatedBytes + 12 * batchCapacity * seqCapacity
            + 8 * ((grads.count + sumBlock - 1) / sumBlock) + (muonScratch?.allocatedBytes ?? 0)
    }

    /// What `allocatedBytes` will be for a model of `config` at (batch, seq), computed before anything is
    /// allocated and with every product overflow-checked: nil when it overflows an Int (or the config is
    /// invalid). The activations are linear in the batch and the sum of a T and a T² term, so they are
    /// derived from the layout's own counts at (1, 1) and (1, 2) and scaled up with checked arithmetic.
    public static func requiredBytes(config c: ModelConfig, batch: Int, seq: Int,
                                     parallel: ParallelFor = .allCores, optimizer: OptimizerKind = .adamw) -> Int? {
        guard let n = MemoryBudget.parameterCount(c) else { return nil }
        return requiredBytes(config: c, parameters: n, trainable: n, batch: batch, seq: seq, parallel: parallel,
                             optimizer: optimizer)
    }

    /// `requiredBytes` for a config whose parameter layout is already known to be computable (`n` floats), of
    /// which `trainable` get a gradient and two moments (all of them, or a LoRA adapter's).
    static func requiredBytes(config c: ModelConfig, parameters n: Int, trainable: Int, batch: Int, seq: Int,
                              parallel: ParallelFor, optimizer: OptimizerKind = .adamw) -> Int? {
        guard batch > 0, seq > 0 else { return nil }
        func floats(gradients: Bool) -> Int? {
            let t1 = ActivationLayout(config: c, batch: 1, seq: 1, gradients: gradients).totalCount   // x + y
            let t2 = ActivationLayout(config: c, batch: 1, seq: 2, gradients: gradients).totalCount   // 2x + 4y
            let y = (t2 - 2 * t1) / 2, x = t1 - y  // per-row floats, per-(row, key) floats
            return MemoryBudget.multiply(batch, MemoryBudget.add(MemoryBudget.multiply(seq, x),
                                                                 MemoryBudget.multiply(seq, seq, y)))
        }
        let acts = MemoryBudget.add(floats(gradients: false), floats(gradients: true))
        let threads = max(1, max(parallel.threads, ProcessInfoCores.count))
        // Muon's scratch: the parameter count fits an Int, so every matrix's does too (and its square side's).
        let muon = optimizer == .muon ? muonScratchShape(ParameterLayout(config: c).muonMatrices)
            .map { MuonScratch.bytes(maxElements: $0.maxElements, maxShortSide: $0.maxShortSide) } ?? 0 : 0
        return MemoryBudget.add(MemoryBudget.multiply(4, MemoryBudget.add(n, MemoryBudget.multiply(3, trainable),
                                                                         acts)),
                                MemoryBudget.multiply(4, threads, MatmulScratch.floatsPerThread),
                                MemoryBudget.multiply(12, batch, seq),
                                MemoryBudget.multiply(8, (trainable + sumBlock - 1) / sumBlock), muon)
    }

    /// The gradient of one parameter tensor from the last backward pass (a copy).
    public func gradient(_ t: ParameterTensor) -> [Float] {
        precondition(weights.adapter == nil, "the base is frozen: its tensors have no gradient (see adapterGradient)")
        return grads.array(weights.layout.range(t))
    }

    /// The gradient of an adapter's arena range (a part's A or B) from the last backward pass (a copy).
    public func adapterGradient(_ range: Range<Int>) -> [Float] {
        precondition(weights.adapter != nil, "no adapter trains")
        return grads.array(range)
    }

    /// Logits of the last forward pass, (B,T,Vp) with the padded columns included (a copy).
    public func logits() -> [Float] {
        let n = lastBatch * lastSeq * config.paddedVocabSize
        return acts.array(actLayout.offset(.logits)..<actLayout.offset(.logits) + n)
    }

    /// The loss at each position (b·T + t) of the last forward pass with targets.
    public func withPositionLosses<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        precondition(haveTargets, "the last forward pass had no targets")
        let start = actLayout.offset(.losses)
        return acts.withBuffer(start..<start + lastBatch * lastSeq, body)
    }

    // MARK: - Forward

    /// Runs the model on `inputs` (B·T token ids, row-major (B,T)); with `targets`, also the mean
    /// cross-entropy loss, which it returns. A target of -1 is ignored (SFT's loss mask): the mean is over the
    /// other positions, and backward gives the ignored ones no gradient. Allocates nothing.
    @discardableResult
    public func forward(inputs inp: [Int32], targets tgt: [Int32]? = nil, batch B: Int? = nil,
                        seq T: Int? = nil) throws(ModelError) -> Float? {
        let B = B ?? batchCapacity, T = T ?? seqCapacity
        guard B > 0, T > 0, B <= batchCapacity, T <= seqCapacity else {
            throw .batchTooLarge(batch: B, seq: T, capacityBatch: batchCapacity, capacitySeq: seqCapacity)
        }
        let BT = B * T, V = config.vocabSize
        try copyTokens(inp, into: inputs, count: BT, vocab: V, what: "input")
        if let tgt { try copyTokens(tgt, into: targets, count: BT, vocab: V, what: "target", allowIgnored: true) }
        for i in 0..<BT { positions[i] = Int32(i % T) }
        lastBatch = B
        lastSeq = T
        haveTargets = tgt != nil
        runForward(B: B, T: T)
        return haveTargets ? meanLoss : nil
    }

    private func copyTokens(_ src: [Int32], into dst: UnsafeMutablePointer<Int32>, count: Int, vocab: Int,
                            what: String, allowIgnored: Bool = false) throws(ModelError) {
        guard src.count == count else { throw .tokenCountMismatch(what: what, count: src.count, expected: count) }
        for i in 0..<count {
            let tok = src[i]
            guard (tok >= 0 || (allowIgnored && tok == -1)) && Int(tok) < vocab else {
                throw .tokenOutOfRange(what: what, index: i, token: tok, vocabSize: vocab)
            }
            dst[i] = tok
        }
    }

    private func runForward(B: Int, T: Int) {
        let c = config, L = c.numLayers, C = c.channels, V = c.vocabSize, Vp = c.paddedVocabSize
        let N = B * T, eps = Float(c.normEps)
        if let quantizedEmbedding {
            backend.embed(out: act(.encoded), tokens: inputs, positions: positions, wte: quantizedEmbedding,
                          wpe: param(.wpe), scale: c.embeddingScale, N: N, C: C)
        } else {
            backend.embed(out: act(.encoded), tokens: inputs, positions: positions, wte: param(.wte)!,
                          wpe: param(.wpe), scale: c.embeddingScale, N: N, C: C)
        }
        if c.normAfterEmbedding {
            backend.norm(out: act(.embedNorm), mean: nil, rstd: act(.embedRstd), inp: act(.encoded), weight: nil,
                         bias: nil, kind: c.norm, eps: eps, N: N, C: C, groups: 1, stride: C)
        }
        for l in 0..<L {
            let a = blockBuffers(gradients: false, layer: l)
            let preatt = acts.base + actLayout.offset(.preatt, layer: l), att = acts.base + actLayout.offset(.att, layer: l)
            let block = blocks[l]
            block.forward(a, weights: layerWeights[l], N: N, positions: positions, decoding: false,
                          backend: backend) { atty, qkvAttn in
                backend.attention(out: atty, preatt: preatt, att: att, inp: qkvAttn, B: B, T: T,
                                  shape: block.attentionShape)
            }
        }
        let last = acts.base + actLayout.offset(.residual3, layer: L - 1)
        backend.norm(out: act(.lnf), mean: actLayout.has(.lnfMean) ? act(.lnfMean) : nil, rstd: act(.lnfRstd),
                     inp: last, weight: param(.lnfw), bias: param(.lnfb), kind: c.norm, eps: eps, N: N, C: C,
                     groups: 1, stride: C)
        if let quantizedHead {
            backend.linear(out: act(.logits), inp: act(.lnf), weight: quantizedHead, bias: nil, N: N, C: C, OC: Vp,
                           decoding: false)
        } else {
            backend.linear(out: act(.logits), inp: act(.lnf), weight: param(head)!, bias: nil, N: N, C: C, OC: Vp,
                           decoding: false)
        }
        if let cap = c.logitSoftcap { backend.softcap(act(.logits), cap: Float(cap), N: N, V: V, Vp: Vp) }
        // Without targets the logits are the result (as an inference forward pass wants); with them, the
        // probabilities and the loss, which backward needs.
        if haveTargets {
            backend.softmaxCrossEntropy(probs: act(.probs), losses: act(.losses), logits: act(.logits),
                                        targets: targets, N: N, V: V, Vp: Vp)
            var sum = 0.0
            supervised = 0
            for i in 0..<N where targets[i] >= 0 {
                sum += Double(act(.losses)[i])
                supervised += 1
            }
            meanLoss = supervised > 0 ? Float(sum / Double(supervised)) : 0
        }
    }

    // MARK: - Backward

    /// Zeroes the parameter gradients (call before the first micro-batch of a step).
    public func zeroGradients() { profile.measureIfSet(.zeroGrad) { grads.zero() } }

    /// Backpropagates `lossScale` × the mean loss of the last forward pass, adding into the parameter
    /// gradients, so micro-batches accumulate: with lossScale = 1/k over k micro-batches the gradients are
    /// those of the mean loss over all of them. Allocates nothing.
    public func backward(lossScale: Float = 1) throws(ModelError) {
        // The loss is the mean over the supervised positions; ignored ones (target -1) get no gradient.
        let weight = lossScale / Float(max(supervised, 1))
        try backward { i in weight }
    }

    /// Backpropagates Σ weights[i] · loss[i] over the B·T positions of the last forward pass (those whose target
    /// is ignored get nothing), adding into the parameter gradients: a policy-gradient step weighs each sampled
    /// token's loss by its advantage. Allocates nothing.
    public func backward(positionWeights weights: [Float]) throws(ModelError) {
        precondition(weights.count == lastBatch * lastSeq, "one weight per position of the last forward pass")
        try backward { i in weights[i] }
    }

    /// The backward pass with `dloss(i)` as the gradient of position i's loss (for a supervised position).
    private func backward(dloss: (Int) -> Float) throws(ModelError) {
        guard haveTargets else { throw .backwardWithoutTargets }
        let c = config, L = c.numLayers, C = c.channels, V = c.vocabSize, Vp = c.paddedVocabSize
        let B = lastBatch, T = lastSeq, N = B * T
        gradActs.zero()
        let dlosses = dact(.losses)
        for i in 0..<N { dlosses[i] = targets[i] >= 0 ? dloss(i) : 0 }
        backend.softmaxCrossEntropyBackward(dlogits: dact(.logits), dlosses: dlosses, probs: act(.probs),
                                            targets: targets, N: N, V: V, Vp: Vp)
        if let cap = c.logitSoftcap {
            backend.softcapBackward(dact(.logits), capped: act(.logits), cap: Float(cap), N: N, V: V, Vp: Vp)
        }
        if let quantizedHead {
            backend.linearBackward(dinp: dact(.lnf), dout: dact(.logits), weight: quantizedHead, N: N, C: C, OC: Vp)
        } else {
            backend.linearBackward(dinp: dact(.lnf), dweight: grad(head), dbias: nil, dout: dact(.logits),
                                   inp: act(.lnf), weight: param(head)!, N: N, C: C, OC: Vp)
        }
        let last = acts.base + actLayout.offset(.residual3, layer: L - 1)
        let dlast = gradActs.base + gradLayout.offset(.residual3, layer: L - 1)
        backend.normBackward(dinp: dlast, dweight: grad(.lnfw), dbias: grad(.lnfb), dout: dact(.lnf), inp: last,
                             weight: param(.lnfw), mean: actLayout.has(.lnfMean) ? act(.lnfMean) : nil,
                             rstd: act(.lnfRstd), kind: c.norm, N: N, C: C, groups: 1, stride: C)
        for i in 0..<L {  // (a plain range: a reversed one allocates in debug builds)
            let l = L - 1 - i
            // The slot layer l's backward adds its input's gradient into (as layer l-1's residual3) last held layer
            // l+1's gradients: zero it. Layer l's own slot was zeroed this way before layer l+1 ran.
            if l > 0 && L > 2 { zeroGradientSlot(layer: l - 1) }
            let a = blockBuffers(gradients: false, layer: l), g = blockBuffers(gradients: true, layer: l)
            let att = acts.base + actLayout.offset(.att, layer: l)
            let datt = gradActs.base + gradLayout.offset(.att, layer: l)
            let dpreatt = gradActs.base + gradLayout.offset(.preatt, layer: l)
            let block = blocks[l]
            block.backward(a, g, weights: layerWeights[l], gradients: layerGrads[l], N: N, positions: positions,
                           backend: backend) { dqkvAttn, datty in
                backend.attentionBackward(dinp: dqkvAttn, dpreatt: dpreatt, datt: datt, dout: datty, inp: a.qkvAttn,
                                          att: att, B: B, T: T, shape: block.attentionShape)
            }
        }
        guard weights.adapter == nil else { return }  // a frozen embedding: nothing more to compute
        if c.normAfterEmbedding {
            backend.normBackward(dinp: dact(.encoded), dweight: nil, dbias: nil, dout: dact(.embedNorm),
                                 inp: act(.encoded), weight: nil, mean: nil, rstd: act(.embedRstd), kind: c.norm, N: N,
                                 C: C, groups: 1, stride: C)
        }
        backend.embedBackward(dwte: grad(.wte)!, dwpe: grad(.wpe), dout: dact(.encoded), tokens: inputs,
                              positions: positions, scale: c.embeddingScale, N: N, C: C)
    }

    /// Zeroes every per-layer tensor's slot for layer `l` in the activation gradients.
    private func zeroGradientSlot(layer l: Int) {
        let lay = gradLayout
        for t in 0..<lay.counts.count where lay.counts[t] > 0 {  // by index: iterating allCases allocates
            guard let tensor = ActivationTensor(rawValue: t), tensor.isPerLayer else { continue }
            (gradActs.base + lay.offset(tensor, layer: l)).update(repeating: 0, count: lay.slotCount(tensor))
        }
    }

    // MARK: - Update

    /// The global L2 norm of all parameter gradients (accumulated in Double).
    public func gradientNorm() -> Double {
        var sum = 0.0
        profile.measureIfSet(.gradNorm) {
            sumOfSquaresByBlock(grads.base, count: grads.count, partials: normPartials, parallel: parallel)
            for b in 0..<(grads.count + sumBlock - 1) / sumBlock { sum += normPartials[b] }
        }
        return sum.squareRoot()
    }

    /// One AdamW step (`step` counts from 1) with global gradient-norm clipping as
    /// torch.nn.utils.clip_grad_norm_ does it (scale = clip / (norm + 1e-6) when below 1).
    /// Weight decay applies only to tensors with two or more dimensions. Returns the gradient norm before
    /// clipping; throws without touching the weights if it is not finite. Allocates nothing.
    @discardableResult
    public func update(_ opt: AdamWConfig, step: Int) throws(ModelError) -> Double {
        precondition(step >= 1, "AdamW steps count from 1")
        precondition(optimizer == .adamw, "this model was made for Muon: update(_:muon:learningRateScale:step:)")
        let (norm, scale) = try clippedGradientNorm(opt.gradClip)
        if let adapter = weights.adapter {  // every A and B is a matrix: all decay
            profile.measureIfSet(.adamW) {
                adamWUpdate(params: adapter.arena.base, grads: grads.base, m: adamM.base, v: adamV.base, n: grads.count,
                            gradScale: scale, lr: opt.learningRate, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps,
                            weightDecay: opt.weightDecay, step: step, parallel: parallel)
            }
            return norm
        }
        let layout = weights.layout
        for t in 0..<layout.counts.count where layout.counts[t] > 0 {  // by index: iterating allCases allocates
            let off = layout.offsets[t]
            profile.measureIfSet(.adamW) {
                adamWUpdate(params: weights.arena.base + off, grads: grads.base + off, m: adamM.base + off,
                            v: adamV.base + off, n: layout.counts[t], gradScale: scale, lr: opt.learningRate,
                            beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps,
                            weightDecay: layout.decays[t] ? opt.weightDecay : 0, step: step, parallel: parallel)
            }
        }
        return norm
    }

    /// The gradient norm, and the factor clipping scales the gradients by: clip / (norm + 1e-6) when below 1,
    /// as torch.nn.utils.clip_grad_norm_. Throws if the norm is not finite.
    private func clippedGradientNorm(_ clip: Double?) throws(ModelError) -> (norm: Double, scale: Float) {
        let norm = gradientNorm()
        guard norm.isFinite else { throw .nonFinite("gradient norm (\(norm))") }
        guard let clip, clip > 0 else { return (norm, 1) }
        return (norm, Float(min(1, clip / (norm + 1e-6))))
    }

    /// One step of nanochat's optimizer (`step` counts from 1; see `MuonConfig` for the groups): after global
    /// gradient-norm clipping as in `update(_:step:)`, Muon for every block matrix, each part of the fused q|k|v
    /// and gate|up on its own, at `muon.matrixLR · learningRateScale` with momentum `muon.momentum(atStep: step -
    /// 1)`; AdamW with `adamW`'s betas, eps and weight decay (2-D tensors only) for the embeddings and the head at
    /// nanochat's rates times `learningRateScale`, and for the 1-D tensors at `adamW.learningRate` (already
    /// scheduled). Returns the gradient norm before clipping; throws without touching the weights if it is not
    /// finite. Needs a model made with `optimizer: .muon`. Allocates nothing.
    @discardableResult
    public func update(_ adamW: AdamWConfig, muon: MuonConfig, learningRateScale: Double,
                       step: Int) throws(ModelError) -> Double {
        precondition(step >= 1, "optimizer steps count from 1")
        guard let muonScratch else { preconditionFailure("this model was made for AdamW: Transformer(…, optimizer: .muon)") }
        let (norm, scale) = try clippedGradientNorm(adamW.gradClip)
        let layout = weights.layout, embeddingScale = MuonConfig.embeddingScale(channels: config.channels)
        for t in 0..<layout.counts.count where layout.counts[t] > 0 {  // by index: iterating allCases allocates
            let lr: Double
            switch MuonGroup(ParameterTensor(rawValue: t)!, tiedEmbeddings: config.tiedEmbeddings) {
            case .matrix: continue
            case .embedding: lr = muon.embeddingLR * embeddingScale * learningRateScale
            case .head: lr = muon.unembeddingLR * embeddingScale * learningRateScale
            case .scalar: lr = adamW.learningRate
            }
            let off = layout.offsets[t]
            profile.measureIfSet(.adamW) {
                adamWUpdate(params: weights.arena.base + off, grads: grads.base + off, m: adamM.base + off,
                            v: adamV.base + off, n: layout.counts[t], gradScale: scale, lr: lr, beta1: adamW.beta1,
                            beta2: adamW.beta2, eps: adamW.eps, weightDecay: layout.decays[t] ? adamW.weightDecay : 0,
                            step: step, parallel: parallel)
            }
        }
        let lr = muon.matrixLR * learningRateScale, momentum = muon.momentum(atStep: step - 1)
        for i in 0..<muonMatrices.count {
            let matrix = muonMatrices[i], off = matrix.offset
            muonUpdate(params: weights.arena.base + off, grads: grads.base + off, momentumBuffer: adamM.base + off,
                       rows: matrix.rows, cols: matrix.cols, gradScale: scale, lr: lr, momentum: momentum,
                       steps: muon.newtonSchulzSteps, scratch: muonScratch, gemm: backend.scratch, parallel: parallel)
        }
        return norm
    }
}

extension TransformerBlock {
    /// The blocks of a model, sharing one RoPE table per distinct θ.
    static func blocks(config c: ModelConfig) -> [TransformerBlock] {
        var tables = [Double: RotaryTable]()
        return (0..<c.numLayers).map { l in
            let theta = c.ropeTheta(layer: l)
            var table: RotaryTable?
            if c.usesRoPE {
                table = tables[theta] ?? RotaryTable(theta: theta, headSize: c.headSize, maxSeqLen: c.maxSeqLen)
                tables[theta] = table
            }
            return TransformerBlock(config: c, layer: l, rotary: table)
        }
    }
}

extension ModelConfig {
    /// What the token embedding is multiplied by: √C where the model scales it (Gemma), else 1.
    var embeddingScale: Float { scaleEmbeddings ? Float(Double(channels).squareRoot()) : 1 }
}

extension Optional where Wrapped == OpProfile {
    /// Times `body` into the profile when there is one.
    @inline(__always)
    func measureIfSet(_ op: OpProfile.Op, _ body: () -> Void) {
        if let profile = self { profile.measure(op, body) } else { body() }
    }
}
