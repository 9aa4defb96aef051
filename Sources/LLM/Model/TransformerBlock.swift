// One transformer block, forward and backward side by side, assembled from the config's parts:
//
//   x = x + [postAttnNorm] attproj(attention(qk-transform(qkv(norm1(x)))))
//   x = x + [postMLPNorm]  fcproj(activation(fc(norm2(x))))
//
// where the qk-transform is RoPE and an optional per-head QK-norm before or after it. The training model runs
// it over a whole batch, keeping every activation for the backward pass; the generator runs the same forward
// over a prefill's positions or a decode step's rows with scratch buffers, and its own attention against the
// key/value cache.

/// One layer's activations (or their gradients): where the block reads its input and writes each
/// intermediate, N rows each. Buffers a configuration does not use are nil; `qkvAttn` is `qkv` itself when the
/// model neither rotates nor normalises q and k. For generation the residual stream can be one buffer
/// (input, residual2 and residual3 the same: each add is in place).
struct BlockBuffers {
    var input: Buffer                      // (N,C) the residual stream entering the block
    var ln1: Buffer, ln1Mean: Buffer?, ln1Rstd: Buffer
    var qkv: Buffer                        // (N,QKV)
    var qkRoped: Buffer?                   // (N,QKV) when the QK-norm follows RoPE
    var qkvAttn: Buffer                    // (N,QKV) what attention reads
    var qkRstd: Buffer?                    // (N,H+H_kv)
    var atty: Buffer                       // (N,H·d)
    var attproj: Buffer                    // (N,C)
    var postAttn: Buffer?, postAttnRstd: Buffer?
    var residual2: Buffer
    var ln2: Buffer, ln2Mean: Buffer?, ln2Rstd: Buffer
    var fch: Buffer                        // (N,F or 2F)
    var fchAct: Buffer                     // (N,F)
    var fcproj: Buffer                     // (N,C)
    var postMLP: Buffer?, postMLPRstd: Buffer?
    var residual3: Buffer                  // (N,C) the block's output
}

/// Layer l of a model: the parts its config picks, and its RoPE table.
struct TransformerBlock {
    let config: ModelConfig
    let attentionShape: AttentionShape
    let rotary: RotaryTable?

    init(config: ModelConfig, layer: Int, rotary: RotaryTable?) {
        self.config = config
        attentionShape = config.attentionShape(layer: layer)
        self.rotary = rotary
    }

    private var eps: Float { Float(config.normEps) }
    /// Whether q and k go through a RoPE or a QK-norm (else attention reads the projection as it is).
    static func transformsQK(_ c: ModelConfig) -> Bool { c.usesRoPE || c.qkNorm != .none }

    // MARK: - Forward

    /// Runs the block over N rows at `positions`; `attention(atty, qkvAttn)` fills atty from the transformed
    /// q|k|v (full causal attention over a batch, or cached attention for generation).
    func forward(_ a: BlockBuffers, weights w: LayerTensors, N: Int, positions: UnsafePointer<Int32>, decoding: Bool,
                 backend: Backend, attention: (Buffer, Buffer) -> Void) {
        let c = config, C = c.channels, F = c.hiddenSize
        backend.norm(out: a.ln1, mean: a.ln1Mean, rstd: a.ln1Rstd, inp: a.input, weight: w.ln1w, bias: w.ln1b,
                     kind: c.norm, eps: eps, N: N, C: C, groups: 1, stride: C)
        linear(backend, out: a.qkv, inp: a.ln1, weight: w.qkvw!, quantized: w.qkvq, bias: w.qkvb, lora: w.lora,
               w.lora?.qkv, N: N, C: C, OC: c.qkvWidth, decoding: decoding)
        qkTransformForward(a, weights: w, N: N, positions: positions, backend: backend)
        attention(a.atty, a.qkvAttn)
        linear(backend, out: a.attproj, inp: a.atty, weight: w.attprojw!, quantized: w.attprojq, bias: w.attprojb,
               lora: w.lora, w.lora?.attproj, N: N, C: c.attentionWidth, OC: C, decoding: decoding)
        var branch = a.attproj
        if c.sandwichNorms {
            backend.norm(out: a.postAttn!, mean: nil, rstd: a.postAttnRstd!, inp: a.attproj, weight: w.postAttnNormw,
                         bias: nil, kind: c.norm, eps: eps, N: N, C: C, groups: 1, stride: C)
            branch = a.postAttn!
        }
        backend.residual(out: a.residual2, inp1: a.input, inp2: branch, N: N * C)

        backend.norm(out: a.ln2, mean: a.ln2Mean, rstd: a.ln2Rstd, inp: a.residual2, weight: w.ln2w, bias: w.ln2b,
                     kind: c.norm, eps: eps, N: N, C: C, groups: 1, stride: C)
        linear(backend, out: a.fch, inp: a.ln2, weight: w.fcw!, quantized: w.fcq, bias: w.fcb, lora: w.lora,
               w.lora?.fc, N: N, C: C, OC: c.fcWidth, decoding: decoding)
        backend.activation(out: a.fchAct, inp: a.fch, kind: c.activation, N: N, F: F)
        linear(backend, out: a.fcproj, inp: a.fchAct, weight: w.fcprojw!, quantized: w.fcprojq, bias: w.fcprojb,
               lora: w.lora, w.lora?.fcproj, N: N, C: F, OC: C, decoding: decoding)
        branch = a.fcproj
        if c.sandwichNorms {
            backend.norm(out: a.postMLP!, mean: nil, rstd: a.postMLPRstd!, inp: a.fcproj, weight: w.postMLPNormw,
                         bias: nil, kind: c.norm, eps: eps, N: N, C: C, groups: 1, stride: C)
            branch = a.postMLP!
        }
        backend.residual(out: a.residual3, inp1: a.residual2, inp2: branch, N: N * C)
    }

    /// A linear layer from its float weight, or from its quantized blocks when the model keeps them, plus the
    /// output of the layer's low-rank adapters (`slices`, of the layer's `lora`), each on its rows.
    private func linear(_ backend: Backend, out: Buffer, inp: Buffer, weight: Buffer, quantized: QuantizedLinear?,
                        bias: Buffer?, lora: LayerLoRA?, _ slices: [LoRASlice]?, N: Int, C: Int, OC: Int,
                        decoding: Bool) {
        if let quantized {
            backend.linear(out: out, inp: inp, weight: quantized, bias: bias, N: N, C: C, OC: OC, decoding: decoding)
        } else {
            backend.linear(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC, decoding: decoding)
        }
        guard let lora, let slices else { return }
        for i in slices.indices {  // (by index: a for-in over the array allocates an iterator in debug builds)
            let s = slices[i]
            backend.loraForward(out: out + s.rowOffset, ldOut: OC, inp: inp, a: s.a, b: s.b, u: lora.u!,
                                scale: lora.scale, N: N, C: C, OC: s.outputs, rank: lora.rank)
        }
    }

    /// The backward pass of `linear`: the input's gradient through the base layer (and the weight's and bias's
    /// gradients where `gw` has them: nil for LoRA's frozen base), then each adapter's, into `dlora`'s gradients.
    private func linearBackward(_ backend: Backend, dinp: Buffer, dweight: Buffer?, dbias: Buffer?, dout: Buffer,
                                inp: Buffer, weight: Buffer, quantized: QuantizedLinear?, lora: LayerLoRA?,
                                _ slices: [LoRASlice]?, _ dslices: [LoRASlice]?, N: Int, C: Int, OC: Int) {
        if let quantized {
            precondition(dweight == nil && dbias == nil, "quantized weights are frozen: they have no gradient")
            backend.linearBackward(dinp: dinp, dout: dout, weight: quantized, N: N, C: C, OC: OC)
        } else {
            backend.linearBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight: weight,
                                   N: N, C: C, OC: OC)
        }
        guard let lora, let slices, let dslices else { return }
        for i in slices.indices {
            let s = slices[i], d = dslices[i]
            backend.loraBackward(dinp: dinp, da: d.a, db: d.b, dout: dout + s.rowOffset, ldDout: OC, inp: inp, a: s.a,
                                 b: s.b, u: lora.u!, du: lora.du!, scale: lora.scale, N: N, C: C, OC: s.outputs,
                                 rank: lora.rank)
        }
    }

    /// qkv → qkvAttn: the per-head QK-norm before RoPE (Gemma 3), RoPE, or RoPE then the QK-norm (nanochat).
    /// Each step works in place on qkvAttn; the backward pass reads the norm's input from qkv or qkRoped.
    private func qkTransformForward(_ a: BlockBuffers, weights w: LayerTensors, N: Int,
                                    positions: UnsafePointer<Int32>, backend: Backend) {
        let c = config, QKV = c.qkvWidth, heads = c.numHeads + c.numKVHeads
        guard Self.transformsQK(c) else { return }
        func rope(_ x: Buffer) {
            if let rotary {
                backend.rope(x, positions: positions, table: rotary, N: N, heads: heads, stride: QKV, inverse: false)
            }
        }
        switch c.qkNorm {
        case .none:
            backend.copy(a.qkvAttn, a.qkv, N: N, width: QKV, dstStride: QKV, srcStride: QKV)
            rope(a.qkvAttn)
        case .beforeRoPE:
            backend.copy(a.qkvAttn, a.qkv, N: N, width: QKV, dstStride: QKV, srcStride: QKV)
            qkNorm(a.qkvAttn, a, weights: w, N: N, backend: backend)
            rope(a.qkvAttn)
        case .afterRoPE:
            backend.copy(a.qkRoped!, a.qkv, N: N, width: QKV, dstStride: QKV, srcStride: QKV)
            rope(a.qkRoped!)
            backend.copy(a.qkvAttn, a.qkRoped!, N: N, width: QKV, dstStride: QKV, srcStride: QKV)
            qkNorm(a.qkvAttn, a, weights: w, N: N, backend: backend)
        }
    }

    /// RMSNorm of every query head (with q_norm's weight) and key head (k_norm's), in place in x.
    private func qkNorm(_ x: Buffer, _ a: BlockBuffers, weights w: LayerTensors, N: Int, backend: Backend) {
        let c = config, d = c.headSize, H = c.numHeads, QKV = c.qkvWidth
        backend.norm(out: x, mean: nil, rstd: a.qkRstd!, inp: x, weight: w.qNormw, bias: nil, kind: c.norm, eps: eps,
                     N: N, C: d, groups: H, stride: QKV)
        backend.norm(out: x + H * d, mean: nil, rstd: a.qkRstd! + N * H, inp: x + H * d, weight: w.kNormw, bias: nil,
                     kind: c.norm, eps: eps, N: N, C: d, groups: c.numKVHeads, stride: QKV)
    }

    // MARK: - Backward

    /// Backpropagates the gradient in `g.residual3` through the block, adding into `g.input` and the layer's
    /// weight gradients `gw`. `a` holds the forward's activations; `g` is laid out like them and zero on entry
    /// (but for residual3). `attentionBackward(dqkvAttn, datty)` adds attention's gradient into dqkvAttn.
    func backward(_ a: BlockBuffers, _ g: BlockBuffers, weights w: LayerTensors, gradients gw: LayerTensors, N: Int,
                  positions: UnsafePointer<Int32>, backend: Backend, attentionBackward: (Buffer, Buffer) -> Void) {
        let c = config, C = c.channels, F = c.hiddenSize
        // residual3 = residual2 + [postMLPNorm] fcproj(activation(fc(norm2(residual2)))).
        backend.residualBackward(dinp1: g.residual2, dinp2: c.sandwichNorms ? g.postMLP! : g.fcproj,
                                 dout: g.residual3, N: N * C)
        if c.sandwichNorms {
            backend.normBackward(dinp: g.fcproj, dweight: gw.postMLPNormw, dbias: nil, dout: g.postMLP!, inp: a.fcproj,
                                 weight: w.postMLPNormw, mean: nil, rstd: a.postMLPRstd!, kind: c.norm, N: N, C: C,
                                 groups: 1, stride: C)
        }
        linearBackward(backend, dinp: g.fchAct, dweight: gw.fcprojw, dbias: gw.fcprojb, dout: g.fcproj, inp: a.fchAct,
                       weight: w.fcprojw!, quantized: w.fcprojq, lora: w.lora, w.lora?.fcproj, gw.lora?.fcproj, N: N,
                       C: F, OC: C)
        backend.activationBackward(dinp: g.fch, inp: a.fch, dout: g.fchAct, kind: c.activation, N: N, F: F)
        linearBackward(backend, dinp: g.ln2, dweight: gw.fcw, dbias: gw.fcb, dout: g.fch, inp: a.ln2, weight: w.fcw!,
                       quantized: w.fcq, lora: w.lora, w.lora?.fc, gw.lora?.fc, N: N, C: C, OC: c.fcWidth)
        backend.normBackward(dinp: g.residual2, dweight: gw.ln2w, dbias: gw.ln2b, dout: g.ln2, inp: a.residual2,
                             weight: w.ln2w, mean: a.ln2Mean, rstd: a.ln2Rstd, kind: c.norm, N: N, C: C, groups: 1,
                             stride: C)
        // residual2 = input + [postAttnNorm] attproj(attention(qk-transform(qkv(norm1(input))))).
        backend.residualBackward(dinp1: g.input, dinp2: c.sandwichNorms ? g.postAttn! : g.attproj,
                                 dout: g.residual2, N: N * C)
        if c.sandwichNorms {
            backend.normBackward(dinp: g.attproj, dweight: gw.postAttnNormw, dbias: nil, dout: g.postAttn!,
                                 inp: a.attproj, weight: w.postAttnNormw, mean: nil, rstd: a.postAttnRstd!,
                                 kind: c.norm, N: N, C: C, groups: 1, stride: C)
        }
        linearBackward(backend, dinp: g.atty, dweight: gw.attprojw, dbias: gw.attprojb, dout: g.attproj, inp: a.atty,
                       weight: w.attprojw!, quantized: w.attprojq, lora: w.lora, w.lora?.attproj, gw.lora?.attproj,
                       N: N, C: c.attentionWidth, OC: C)
        attentionBackward(g.qkvAttn, g.atty)
        qkTransformBackward(a, g, weights: w, gradients: gw, N: N, positions: positions, backend: backend)
        linearBackward(backend, dinp: g.ln1, dweight: gw.qkvw, dbias: gw.qkvb, dout: g.qkv, inp: a.ln1,
                       weight: w.qkvw!, quantized: w.qkvq, lora: w.lora, w.lora?.qkv, gw.lora?.qkv, N: N, C: C,
                       OC: c.qkvWidth)
        backend.normBackward(dinp: g.input, dweight: gw.ln1w, dbias: gw.ln1b, dout: g.ln1, inp: a.input,
                             weight: w.ln1w, mean: a.ln1Mean, rstd: a.ln1Rstd, kind: c.norm, N: N, C: C, groups: 1,
                             stride: C)
    }

    /// g.qkvAttn → g.qkv, the transform's steps in reverse: RoPE's inverse rotation in place, the QK-norm's
    /// backward into g.qkv (zero on entry) with the value heads copied across unchanged.
    private func qkTransformBackward(_ a: BlockBuffers, _ g: BlockBuffers, weights w: LayerTensors,
                                     gradients gw: LayerTensors, N: Int, positions: UnsafePointer<Int32>,
                                     backend: Backend) {
        let c = config, QKV = c.qkvWidth, d = c.headSize, H = c.numHeads, heads = H + c.numKVHeads
        guard Self.transformsQK(c) else { return }
        func unrotate(_ x: Buffer) {
            if let rotary {
                backend.rope(x, positions: positions, table: rotary, N: N, heads: heads, stride: QKV, inverse: true)
            }
        }
        /// The QK-norm's backward from dout (rows of stride QKV) into g.qkv's q and k heads, input `x`.
        func qkNormBackward(dout: Buffer, x: Buffer) {
            backend.normBackward(dinp: g.qkv, dweight: gw.qNormw, dbias: nil, dout: dout, inp: x, weight: w.qNormw,
                                 mean: nil, rstd: a.qkRstd!, kind: c.norm, N: N, C: d, groups: H, stride: QKV)
            backend.normBackward(dinp: g.qkv + H * d, dweight: gw.kNormw, dbias: nil, dout: dout + H * d, inp: x + H * d,
                                 weight: w.kNormw, mean: nil, rstd: a.qkRstd! + N * H, kind: c.norm, N: N, C: d,
                                 groups: c.numKVHeads, stride: QKV)
            // The value heads pass through untouched.
            backend.copy(g.qkv + heads * d, dout + heads * d, N: N, width: c.numKVHeads * d, dstStride: QKV,
                         srcStride: QKV)
        }
        switch c.qkNorm {
        case .none:
            unrotate(g.qkvAttn)
            backend.copy(g.qkv, g.qkvAttn, N: N, width: QKV, dstStride: QKV, srcStride: QKV)
        case .beforeRoPE:
            unrotate(g.qkvAttn)
            qkNormBackward(dout: g.qkvAttn, x: a.qkv)
        case .afterRoPE:
            qkNormBackward(dout: g.qkvAttn, x: a.qkRoped!)
            unrotate(g.qkv)
        }
    }
}
