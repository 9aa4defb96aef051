// GPT-2: forward, backward and AdamW update over arenas allocated once, in the spirit of llm.c's train_gpt2.c.

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

/// A GPT-2 ready to train: weights, gradients, AdamW moments and activations, each one allocation made
/// here, up front, for batches of up to `batchCapacity` sequences of up to `seqCapacity` tokens.
/// `forward`, `backward` and `update` allocate nothing.
public final class GPT2 {
    public let config: GPT2Config
    public let weights: GPT2Weights
    public let batchCapacity: Int
    public let seqCapacity: Int
    /// How kernels split work across threads; change it freely between steps.
    public var parallel: ParallelFor

    let grads: FloatArena      // same layout as the weights
    let adamM: FloatArena      // AdamW first moment
    let adamV: FloatArena      // AdamW second moment
    let acts: FloatArena       // ActivationLayout for (batchCapacity, seqCapacity)
    let scratch: MatmulScratch // per-thread packing buffers for the forward matmuls
    let gradActs: FloatArena   // gradients of the activations, same layout
    let actLayout: ActivationLayout
    let inputs: UnsafeMutablePointer<Int32>   // (B,T) of the last forward
    let targets: UnsafeMutablePointer<Int32>  // (B,T) of the last forward, if it had targets
    let normPartials: UnsafeMutablePointer<Double>  // one sum per 65,536 gradients, for gradientNorm

    /// Shape of the last forward pass, and whether it had targets (so backward may run).
    public private(set) var lastBatch = 0
    public private(set) var lastSeq = 0
    private var haveTargets = false
    /// Mean loss of the last forward pass with targets, over its supervised positions (targets ≥ 0).
    public private(set) var meanLoss: Float = 0
    /// Positions of the last forward pass whose target was not ignored.
    public private(set) var supervised = 0

    public init(weights: GPT2Weights, batch: Int, seq: Int, parallel: ParallelFor = .allCores) throws(ModelError) {
        let c = weights.config
        guard batch > 0, seq > 0 else { throw .invalidConfig("batch \(batch) and sequence \(seq) must be positive") }
        guard seq <= c.maxSeqLen else { throw .sequenceTooLong(seq: seq, maxSeqLen: c.maxSeqLen) }
        config = c
        self.weights = weights
        batchCapacity = batch
        seqCapacity = seq
        self.parallel = parallel
        let n = weights.layout.totalCount
        grads = FloatArena(count: n)
        adamM = FloatArena(count: n)
        adamV = FloatArena(count: n)
        actLayout = ActivationLayout(config: c, batch: batch, seq: seq)
        acts = FloatArena(count: actLayout.totalCount)
        scratch = MatmulScratch(threads: max(parallel.threads, ProcessInfoCores.count))
        gradActs = FloatArena(count: actLayout.totalCount)
        inputs = .allocate(capacity: batch * seq)
        targets = .allocate(capacity: batch * seq)
        inputs.initialize(repeating: 0, count: batch * seq)
        targets.initialize(repeating: 0, count: batch * seq)
        normPartials = .allocate(capacity: (n + sumBlock - 1) / sumBlock)
    }

    deinit {
        inputs.deallocate()
        targets.deallocate()
        normPartials.deallocate()
    }

    /// When set, each kernel's wall time is added to it (for `llm bench train --profile`).
    public var profile: OpProfile?

    @inline(__always)
    private func timed(_ op: OpProfile.Op, _ body: () -> Void) {
        if let profile { profile.measure(op, body) } else { body() }
    }

    // MARK: - Views into the arenas

    private func param(_ t: ParameterTensor) -> FloatPointer { weights.arena.base + weights.layout.offset(t) }
    private func grad(_ t: ParameterTensor) -> FloatPointer { grads.base + weights.layout.offset(t) }
    private func act(_ t: ActivationTensor) -> FloatPointer { acts.base + actLayout.offset(t) }
    private func dact(_ t: ActivationTensor) -> FloatPointer { gradActs.base + actLayout.offset(t) }

    /// Bytes this model holds: weights, gradients, both moments, activations and their gradients, matmul
    /// scratch and token buffers.
    public var allocatedBytes: Int {
        4 * (weights.arena.count + grads.count + adamM.count + adamV.count + acts.count + gradActs.count)
            + 4 * scratch.threads * MatmulScratch.floatsPerThread + 8 * batchCapacity * seqCapacity
            + 8 * ((weights.layout.totalCount + sumBlock - 1) / sumBlock)
    }

    /// The gradient of one parameter tensor from the last backward pass (a copy).
    public func gradient(_ t: ParameterTensor) -> [Float] { grads.array(weights.layout.range(t)) }

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
        let c = config, L = c.numLayers, C = c.channels, NH = c.numHeads, V = c.vocabSize, Vp = c.paddedVocabSize
        let BT = B * T, p = parallel
        timed(.encoder) {
            encoderForward(out: act(.encoded), inp: inputs, wte: param(.wte), wpe: param(.wpe), B: B, T: T, C: C,
                           parallel: p)
        }
        for l in 0..<L {
            let residual = l == 0 ? act(.encoded) : act(.residual3) + (l - 1) * BT * C
            // This layer's weights.
            let w = LayerTensors(weights.arena.base, weights.layout, layer: l)
            // This layer's activations.
            let ln1 = act(.ln1) + l * BT * C, ln1Mean = act(.ln1Mean) + l * BT, ln1Rstd = act(.ln1Rstd) + l * BT
            let qkv = act(.qkv) + l * BT * 3 * C, atty = act(.atty) + l * BT * C
            let preatt = act(.preatt) + l * B * NH * T * T, att = act(.att) + l * B * NH * T * T
            let attproj = act(.attproj) + l * BT * C, residual2 = act(.residual2) + l * BT * C
            let ln2 = act(.ln2) + l * BT * C, ln2Mean = act(.ln2Mean) + l * BT, ln2Rstd = act(.ln2Rstd) + l * BT
            let fch = act(.fch) + l * BT * 4 * C, fchGelu = act(.fchGelu) + l * BT * 4 * C
            let fcproj = act(.fcproj) + l * BT * C, residual3 = act(.residual3) + l * BT * C

            timed(.layerNorm) {
                layerNormForward(out: ln1, mean: ln1Mean, rstd: ln1Rstd, inp: residual, weight: w.ln1w, bias: w.ln1b,
                                 N: BT, C: C, parallel: p)
            }
            timed(.matmul) {
                matmulForward(out: qkv, inp: ln1, weight: w.qkvw, bias: w.qkvb, N: BT, C: C, OC: 3 * C, parallel: p,
                              scratch: scratch)
            }
            timed(.attention) {
                attentionForward(out: atty, preatt: preatt, att: att, inp: qkv, B: B, T: T, C: C, NH: NH, parallel: p)
            }
            timed(.matmul) {
                matmulForward(out: attproj, inp: atty, weight: w.attprojw, bias: w.attprojb, N: BT, C: C, OC: C,
                              parallel: p, scratch: scratch)
            }
            timed(.residual) { residualForward(out: residual2, inp1: residual, inp2: attproj, N: BT * C, parallel: p) }
            timed(.layerNorm) {
                layerNormForward(out: ln2, mean: ln2Mean, rstd: ln2Rstd, inp: residual2, weight: w.ln2w, bias: w.ln2b,
                                 N: BT, C: C, parallel: p)
            }
            timed(.matmul) {
                matmulForward(out: fch, inp: ln2, weight: w.fcw, bias: w.fcb, N: BT, C: C, OC: 4 * C, parallel: p,
                              scratch: scratch)
            }
            timed(.gelu) { geluForward(out: fchGelu, inp: fch, N: BT * 4 * C, parallel: p) }
            timed(.matmul) {
                matmulForward(out: fcproj, inp: fchGelu, weight: w.fcprojw, bias: w.fcprojb, N: BT, C: 4 * C, OC: C,
                              parallel: p, scratch: scratch)
            }
            timed(.residual) { residualForward(out: residual3, inp1: residual2, inp2: fcproj, N: BT * C, parallel: p) }
        }
        let residual = act(.residual3) + (L - 1) * BT * C
        timed(.layerNorm) {
            layerNormForward(out: act(.lnf), mean: act(.lnfMean), rstd: act(.lnfRstd), inp: residual,
                             weight: param(.lnfw), bias: param(.lnfb), N: BT, C: C, parallel: p)
        }
        // The LM head shares the token embedding: logits = lnf · wteᵀ over all Vp rows.
        timed(.matmul) {
            matmulForward(out: act(.logits), inp: act(.lnf), weight: param(.wte), bias: nil, N: BT, C: C, OC: Vp,
                          parallel: p, scratch: scratch)
        }
        // Without targets the logits are the result (as an inference forward pass wants); with them, the
        // probabilities and the loss, which backward needs.
        if haveTargets {
            timed(.softmaxLoss) {
                softmaxForward(probs: act(.probs), logits: act(.logits), N: BT, V: V, Vp: Vp, parallel: p)
            }
            timed(.softmaxLoss) {
                crossEntropyForward(losses: act(.losses), probs: act(.probs), targets: targets, N: BT, Vp: Vp)
            }
            var sum = 0.0
            supervised = 0
            for i in 0..<BT where targets[i] >= 0 {
                sum += Double(act(.losses)[i])
                supervised += 1
            }
            meanLoss = supervised > 0 ? Float(sum / Double(supervised)) : 0
        }
    }

    // MARK: - Backward

    /// Zeroes the parameter gradients (call before the first micro-batch of a step).
    public func zeroGradients() { timed(.zeroGrad) { grads.zero() } }

    /// Backpropagates `lossScale` × the mean loss of the last forward pass, adding into the parameter
    /// gradients, so micro-batches accumulate: with lossScale = 1/k over k micro-batches the gradients are
    /// those of the mean loss over all of them. Allocates nothing.
    public func backward(lossScale: Float = 1) throws(ModelError) {
        guard haveTargets else { throw .backwardWithoutTargets }
        let c = config, L = c.numLayers, C = c.channels, NH = c.numHeads, V = c.vocabSize, Vp = c.paddedVocabSize
        let B = lastBatch, T = lastSeq, BT = B * T, p = parallel
        gradActs.zero()
        // The loss is the mean over the supervised positions; ignored ones (target -1) get no gradient.
        let dlosses = dact(.losses)
        for i in 0..<BT { dlosses[i] = targets[i] >= 0 ? lossScale / Float(supervised) : 0 }
        timed(.softmaxLossBack) {
            crossEntropySoftmaxBackward(dlogits: dact(.logits), dlosses: dlosses, probs: act(.probs), targets: targets,
                                        N: BT, V: V, Vp: Vp, parallel: p)
        }
        timed(.matmulBack) {
            matmulBackward(dinp: dact(.lnf), dweight: grad(.wte), dbias: nil, dout: dact(.logits), inp: act(.lnf),
                           weight: param(.wte), N: BT, C: C, OC: Vp, parallel: p, scratch: scratch)
        }
        let lastResidual = act(.residual3) + (L - 1) * BT * C
        let dlastResidual = dact(.residual3) + (L - 1) * BT * C
        timed(.layerNormBack) {
            layerNormBackward(dinp: dlastResidual, dweight: grad(.lnfw), dbias: grad(.lnfb), dout: dact(.lnf),
                              inp: lastResidual, weight: param(.lnfw), mean: act(.lnfMean), rstd: act(.lnfRstd),
                              N: BT, C: C, parallel: p)
        }
        for i in 0..<L {  // (a plain range: a reversed one allocates in debug builds)
            let l = L - 1 - i
            let residual = l == 0 ? act(.encoded) : act(.residual3) + (l - 1) * BT * C
            let dresidual = l == 0 ? dact(.encoded) : dact(.residual3) + (l - 1) * BT * C
            // This layer's weights and their gradients.
            let w = LayerTensors(weights.arena.base, weights.layout, layer: l)
            let g = LayerTensors(grads.base, weights.layout, layer: l)
            // This layer's activations and their gradients.
            let ln1 = act(.ln1) + l * BT * C, ln1Mean = act(.ln1Mean) + l * BT, ln1Rstd = act(.ln1Rstd) + l * BT
            let qkv = act(.qkv) + l * BT * 3 * C, atty = act(.atty) + l * BT * C
            let att = act(.att) + l * B * NH * T * T, residual2 = act(.residual2) + l * BT * C
            let ln2 = act(.ln2) + l * BT * C, ln2Mean = act(.ln2Mean) + l * BT, ln2Rstd = act(.ln2Rstd) + l * BT
            let fch = act(.fch) + l * BT * 4 * C, fchGelu = act(.fchGelu) + l * BT * 4 * C
            let dln1 = dact(.ln1) + l * BT * C, dqkv = dact(.qkv) + l * BT * 3 * C
            let datty = dact(.atty) + l * BT * C
            let dpreatt = dact(.preatt) + l * B * NH * T * T, datt = dact(.att) + l * B * NH * T * T
            let dattproj = dact(.attproj) + l * BT * C, dresidual2 = dact(.residual2) + l * BT * C
            let dln2 = dact(.ln2) + l * BT * C, dfch = dact(.fch) + l * BT * 4 * C
            let dfchGelu = dact(.fchGelu) + l * BT * 4 * C, dfcproj = dact(.fcproj) + l * BT * C
            let dresidual3 = dact(.residual3) + l * BT * C

            // The forward in reverse: residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))).
            timed(.residualBack) {
                residualBackward(dinp1: dresidual2, dinp2: dfcproj, dout: dresidual3, N: BT * C, parallel: p)
            }
            timed(.matmulBack) {
                matmulBackward(dinp: dfchGelu, dweight: g.fcprojw, dbias: g.fcprojb, dout: dfcproj, inp: fchGelu,
                               weight: w.fcprojw, N: BT, C: 4 * C, OC: C, parallel: p, scratch: scratch)
            }
            timed(.geluBack) { geluBackward(dinp: dfch, inp: fch, dout: dfchGelu, N: BT * 4 * C, parallel: p) }
            timed(.matmulBack) {
                matmulBackward(dinp: dln2, dweight: g.fcw, dbias: g.fcb, dout: dfch, inp: ln2, weight: w.fcw, N: BT,
                               C: C, OC: 4 * C, parallel: p, scratch: scratch)
            }
            timed(.layerNormBack) {
                layerNormBackward(dinp: dresidual2, dweight: g.ln2w, dbias: g.ln2b, dout: dln2, inp: residual2,
                                  weight: w.ln2w, mean: ln2Mean, rstd: ln2Rstd, N: BT, C: C, parallel: p)
            }
            // residual2 = residual + attproj(attention(qkv(ln1(residual)))).
            timed(.residualBack) {
                residualBackward(dinp1: dresidual, dinp2: dattproj, dout: dresidual2, N: BT * C, parallel: p)
            }
            timed(.matmulBack) {
                matmulBackward(dinp: datty, dweight: g.attprojw, dbias: g.attprojb, dout: dattproj, inp: atty,
                               weight: w.attprojw, N: BT, C: C, OC: C, parallel: p, scratch: scratch)
            }
            timed(.attentionBack) {
                attentionBackward(dinp: dqkv, dpreatt: dpreatt, datt: datt, dout: datty, inp: qkv, att: att, B: B, T: T,
                                  C: C, NH: NH, parallel: p)
            }
            timed(.matmulBack) {
                matmulBackward(dinp: dln1, dweight: g.qkvw, dbias: g.qkvb, dout: dqkv, inp: ln1, weight: w.qkvw, N: BT,
                               C: C,
                               OC: 3 * C, parallel: p, scratch: scratch)
            }
            timed(.layerNormBack) {
                layerNormBackward(dinp: dresidual, dweight: g.ln1w, dbias: g.ln1b, dout: dln1, inp: residual,
                                  weight: w.ln1w, mean: ln1Mean, rstd: ln1Rstd, N: BT, C: C, parallel: p)
            }
        }
        timed(.encoderBack) {
            encoderBackward(dwte: grad(.wte), dwpe: grad(.wpe), dout: dact(.encoded), inp: inputs, B: B, T: T, C: C,
                            parallel: p)
        }
    }

    // MARK: - Update

    /// The global L2 norm of all parameter gradients (accumulated in Double).
    public func gradientNorm() -> Double {
        var sum = 0.0
        timed(.gradNorm) {
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
        let norm = gradientNorm()
        guard norm.isFinite else { throw .nonFinite("gradient norm (\(norm))") }
        var scale: Float = 1
        if let clip = opt.gradClip, clip > 0 {
            scale = Float(min(1, clip / (norm + 1e-6)))
        }
        let layout = weights.layout
        for t in 0..<layout.counts.count {  // by index: iterating allCases allocates
            let off = layout.offsets[t]
            timed(.adamW) {
                adamWUpdate(params: weights.arena.base + off, grads: grads.base + off, m: adamM.base + off,
                            v: adamV.base + off, n: layout.counts[t], gradScale: scale, lr: opt.learningRate,
                            beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps,
                            weightDecay: layout.decays[t] ? opt.weightDecay : 0, step: step, parallel: parallel)
            }
        }
        return norm
    }
}
