// The CPU backend: each operation of the seam is one of the kernels in Kernels/, timed into the profile when
// there is one. It owns the matmul's per-thread packing buffers, allocated once with the model.

final class CPUBackend: Backend {
    var parallel: ParallelFor
    var profile: OpProfile?
    let scratch: MatmulScratch
    /// Activations quantized to 8 bits for the quantized linear layers, when the model has any (`maxRows` rows).
    let quantizedScratch: QuantizedActivations?

    /// `quantizedRows`/`quantizedCols`: the most rows and columns a decode step's quantized linear layer takes
    /// (0: the model has none).
    init(parallel: ParallelFor, quantizedRows: Int = 0, quantizedCols: Int = 0) {
        self.parallel = parallel
        scratch = MatmulScratch(threads: max(parallel.threads, ProcessInfoCores.count))
        quantizedScratch = quantizedRows > 0 ? QuantizedActivations(maxRows: quantizedRows, maxCols: quantizedCols) : nil
    }

    /// Rows up to which a quantized linear layer runs on 8-bit activations (quantizedMatmulForward), reading each
    /// weight row once for all of them; above it, the float GEMM dequantizing the weights as it packs them.
    static let quantizedDotRows = 8

    /// Bytes of the matmul scratch.
    var allocatedBytes: Int { 4 * scratch.threads * MatmulScratch.floatsPerThread }

    @inline(__always)
    private func timed(_ op: OpProfile.Op, _ body: () -> Void) {
        if let profile { profile.measure(op, body) } else { body() }
    }

    func embed(out: Buffer, tokens: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, wte: Buffer, wpe: Buffer?,
               scale: Float, N: Int, C: Int) {
        timed(.encoder) {
            encoderForward(out: out, inp: tokens, positions: positions, wte: wte, wpe: wpe, scale: scale, N: N, C: C,
                           parallel: parallel)
        }
    }

    func embedBackward(dwte: Buffer, dwpe: Buffer?, dout: Buffer, tokens: UnsafePointer<Int32>,
                       positions: UnsafePointer<Int32>, scale: Float, N: Int, C: Int) {
        timed(.encoderBack) {
            encoderBackward(dwte: dwte, dwpe: dwpe, dout: dout, inp: tokens, positions: positions, scale: scale, N: N,
                            C: C, parallel: parallel)
        }
    }

    func norm(out: Buffer, mean: Buffer?, rstd: Buffer, inp: Buffer, weight: Buffer?, bias: Buffer?,
              kind: NormKind, eps: Float, N: Int, C: Int, groups: Int, stride: Int) {
        timed(.norm) {
            if let rms = kind.rmsWeight {
                rmsNormForward(out: out, rstd: rstd, inp: inp, weight: weight, kind: rms, eps: eps, N: N, C: C,
                               groups: groups, stride: stride, parallel: parallel)
            } else {
                precondition(groups == 1 && stride == C, "LayerNorm runs on whole rows")
                layerNormForward(out: out, mean: mean!, rstd: rstd, inp: inp, weight: weight!, bias: bias!, N: N, C: C,
                                 eps: eps, parallel: parallel)
            }
        }
    }

    func normBackward(dinp: Buffer, dweight: Buffer?, dbias: Buffer?, dout: Buffer, inp: Buffer, weight: Buffer?,
                      mean: Buffer?, rstd: Buffer, kind: NormKind, N: Int, C: Int, groups: Int, stride: Int) {
        timed(.normBack) {
            if let rms = kind.rmsWeight {
                rmsNormBackward(dinp: dinp, dweight: dweight, dout: dout, inp: inp, weight: weight, rstd: rstd,
                                kind: rms, N: N, C: C, groups: groups, stride: stride, parallel: parallel)
            } else {
                layerNormBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight: weight!,
                                  mean: mean!, rstd: rstd, N: N, C: C, parallel: parallel)
            }
        }
    }

    /// A prefill lets threads split the rows when there are enough of them, else the output channels; a decode
    /// step always runs `matmulForwardDecode`, which reads each weight row once for all its rows (matmulForward
    /// would repack every weight matrix each step for a handful of rows). Every kernel computes each output row
    /// independently of the other rows.
    func linear(out: Buffer, inp: Buffer, weight: Buffer, bias: Buffer?, N: Int, C: Int, OC: Int, decoding: Bool) {
        timed(.matmul) {
            if decoding {
                matmulForwardDecode(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC,
                                    parallel: parallel)
            } else if N >= parallel.threads {
                matmulForward(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC, parallel: parallel,
                              scratch: scratch)
            } else {
                matmulForwardByOutputs(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC,
                                       parallel: parallel)
            }
        }
    }

    /// Each part of the weight writes its rows' columns of every output row. A decode step (or a prompt of at most
    /// `quantizedDotRows` rows) multiplies the blocks with 8-bit activations; a longer prompt runs the float
    /// GEMM, dequantizing each block of weights once while packing it for all the rows.
    func linear(out: Buffer, inp: Buffer, weight: QuantizedLinear, bias: Buffer?, N: Int, C: Int, OC: Int,
                decoding: Bool) {
        timed(.matmul) {
            precondition(weight.rows <= OC, "quantized parts of \(weight.rows) rows for \(OC) outputs")
            if let quantizedScratch, N <= Self.quantizedDotRows {
                weight.parts.withUnsafeBufferPointer { parts in
                    quantizedMatmulForward(out: out, ldOut: OC, inp: inp, parts: parts, bias: bias, N: N,
                                           parallel: parallel, scratch: quantizedScratch)
                }
                return
            }
            var row = 0
            for part in weight.parts {
                precondition(part.cols == C, "a quantized weight of \(part.cols) columns for \(C) inputs")
                matmulForward(out: out + row, ldOut: OC, inp: inp, weight: part, bias: bias.map { UnsafePointer($0 + row) },
                              N: N, parallel: parallel, scratch: scratch)
                row += part.rows
            }
        }
    }

    func embed(out: Buffer, tokens: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, wte: QuantizedMatrix,
               wpe: Buffer?, scale: Float, N: Int, C: Int) {
        timed(.encoder) {
            encoderForward(out: out, inp: tokens, positions: positions, wte: wte, wpe: wpe, scale: scale, N: N, C: C,
                           parallel: parallel)
        }
    }

    func linearBackward(dinp: Buffer, dweight: Buffer?, dbias: Buffer?, dout: Buffer, inp: Buffer, weight: Buffer,
                        N: Int, C: Int, OC: Int) {
        timed(.matmulBack) {
            matmulBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight: weight, N: N, C: C,
                           OC: OC, parallel: parallel, scratch: scratch)
        }
    }

    func linearBackward(dinp: Buffer, dout: Buffer, weight: QuantizedLinear, N: Int, C: Int, OC: Int) {
        timed(.matmulBack) {
            var row = 0
            for part in weight.parts {
                precondition(part.cols == C, "a quantized weight of \(part.cols) columns for \(C) inputs")
                matmulBackwardInput(dinp: dinp, dout: dout + row, ldDout: OC, weight: part, N: N, parallel: parallel,
                                    scratch: scratch)
                row += part.rows
            }
        }
    }

    func loraForward(out: Buffer, ldOut: Int, inp: Buffer, a: Buffer, b: Buffer, u: Buffer, scale: Float, N: Int,
                     C: Int, OC: Int, rank: Int) {
        timed(.lora) {
            LLM.loraForward(out: out, ldOut: ldOut, inp: inp, a: a, b: b, u: u, scale: scale, N: N, C: C, OC: OC,
                            rank: rank, parallel: parallel, scratch: scratch)
        }
    }

    func loraBackward(dinp: Buffer, da: Buffer, db: Buffer, dout: Buffer, ldDout: Int, inp: Buffer, a: Buffer,
                      b: Buffer, u: Buffer, du: Buffer, scale: Float, N: Int, C: Int, OC: Int, rank: Int) {
        timed(.loraBack) {
            LLM.loraBackward(dinp: dinp, da: da, db: db, dout: dout, ldDout: ldDout, inp: inp, a: a, b: b, u: u, du: du,
                             scale: scale, N: N, C: C, OC: OC, rank: rank, parallel: parallel, scratch: scratch)
        }
    }

    func rope(_ x: Buffer, positions: UnsafePointer<Int32>, table: RotaryTable, N: Int, heads: Int, stride: Int,
              inverse: Bool) {
        timed(inverse ? .ropeBack : .rope) {
            rotaryForward(x, positions: positions, table: table, N: N, heads: heads, stride: stride, inverse: inverse,
                          parallel: parallel)
        }
    }

    func attention(out: Buffer, preatt: Buffer, att: Buffer, inp: Buffer, B: Int, T: Int, shape: AttentionShape) {
        timed(.attention) {
            attentionForward(out: out, preatt: preatt, att: att, inp: inp, B: B, T: T, shape: shape, parallel: parallel)
        }
    }

    func attentionBackward(dinp: Buffer, dpreatt: Buffer, datt: Buffer, dout: Buffer, inp: Buffer, att: Buffer,
                           B: Int, T: Int, shape: AttentionShape) {
        timed(.attentionBack) {
            LLM.attentionBackward(dinp: dinp, dpreatt: dpreatt, datt: datt, dout: dout, inp: inp, att: att, B: B, T: T,
                                  shape: shape, parallel: parallel)
        }
    }

    func cachedAttention(out: Buffer, kCache: Buffer, vCache: Buffer, scores: Buffer, qkv: Buffer, t0: Int, n: Int,
                         shape: AttentionShape, capacity: Int) {
        timed(.attention) {
            attentionCachedForward(out: out, kCache: kCache, vCache: vCache, scores: scores, qkv: qkv, t0: t0, n: n,
                                   shape: shape, capacity: capacity, parallel: parallel)
        }
    }

    /// With enough rows, threads take whole rows; else they split each row's heads. Either way a head's arithmetic
    /// is attentionCachedForward's, so a row's result does not depend on the others or on the split.
    func decodeAttention(out: Buffer, kCache: Buffer, vCache: Buffer, slotStride: Int, scores: Buffer, qkv: Buffer,
                         slots: UnsafePointer<Int>, positions: UnsafePointer<Int32>, rows: Int, shape: AttentionShape,
                         capacity: Int) {
        timed(.attention) {
            let split = rows >= parallel.threads
            let perRow = split ? ParallelFor(threads: 1) : parallel
            (split ? parallel : ParallelFor(threads: 1))(rows) { range in
                for i in range {
                    let cache = slots[i] * slotStride
                    attentionCachedForward(out: out + i * shape.outWidth, kCache: kCache + cache,
                                           vCache: vCache + cache, scores: scores + i * shape.heads * capacity,
                                           qkv: qkv + i * shape.qkvWidth, t0: Int(positions[i]), n: 1, shape: shape,
                                           capacity: capacity, parallel: perRow)
                }
            }
        }
    }

    func activation(out: Buffer, inp: Buffer, kind: MLPActivation, N: Int, F: Int) {
        timed(.activation) {
            switch kind {
            case .gelu: geluForward(out: out, inp: inp, N: N * F, parallel: parallel)
            case .reluSquared: reluSquaredForward(out: out, inp: inp, N: N * F, parallel: parallel)
            case .swiGLU, .geGLU: gatedForward(out: out, inp: inp, activation: kind, N: N, F: F, parallel: parallel)
            }
        }
    }

    func activationBackward(dinp: Buffer, inp: Buffer, dout: Buffer, kind: MLPActivation, N: Int, F: Int) {
        timed(.activationBack) {
            switch kind {
            case .gelu: geluBackward(dinp: dinp, inp: inp, dout: dout, N: N * F, parallel: parallel)
            case .reluSquared: reluSquaredBackward(dinp: dinp, inp: inp, dout: dout, N: N * F, parallel: parallel)
            case .swiGLU, .geGLU:
                gatedBackward(dinp: dinp, inp: inp, dout: dout, activation: kind, N: N, F: F, parallel: parallel)
            }
        }
    }

    func copy(_ dst: Buffer, _ src: Buffer, N: Int, width: Int, dstStride: Int, srcStride: Int) {
        timed(.residual) {
            if width == dstStride && width == srcStride {
                dst.update(from: src, count: N * width)
            } else {
                parallel(N) { rows in
                    for n in rows { (dst + n * dstStride).update(from: src + n * srcStride, count: width) }
                }
            }
        }
    }

    func residual(out: Buffer, inp1: Buffer, inp2: Buffer, N: Int) {
        timed(.residual) { residualForward(out: out, inp1: inp1, inp2: inp2, N: N, parallel: parallel) }
    }

    func residualBackward(dinp1: Buffer, dinp2: Buffer, dout: Buffer, N: Int) {
        timed(.residualBack) { LLM.residualBackward(dinp1: dinp1, dinp2: dinp2, dout: dout, N: N, parallel: parallel) }
    }

    func softcap(_ logits: Buffer, cap: Float, N: Int, V: Int, Vp: Int) {
        timed(.softmaxLoss) { softcapForward(logits, cap: cap, N: N, V: V, Vp: Vp, parallel: parallel) }
    }

    func softcapBackward(_ dlogits: Buffer, capped: Buffer, cap: Float, N: Int, V: Int, Vp: Int) {
        timed(.softmaxLossBack) {
            LLM.softcapBackward(dlogits, capped: capped, cap: cap, N: N, V: V, Vp: Vp, parallel: parallel)
        }
    }

    func softmaxCrossEntropy(probs: Buffer, losses: Buffer, logits: Buffer, targets: UnsafePointer<Int32>, N: Int,
                             V: Int, Vp: Int) {
        timed(.softmaxLoss) {
            softmaxForward(probs: probs, logits: logits, N: N, V: V, Vp: Vp, parallel: parallel)
            crossEntropyForward(losses: losses, probs: probs, targets: targets, N: N, Vp: Vp)
        }
    }

    func softmaxCrossEntropyBackward(dlogits: Buffer, dlosses: Buffer, probs: Buffer, targets: UnsafePointer<Int32>,
                                     N: Int, V: Int, Vp: Int) {
        timed(.softmaxLossBack) {
            crossEntropySoftmaxBackward(dlogits: dlogits, dlosses: dlosses, probs: probs, targets: targets, N: N, V: V,
                                        Vp: Vp, parallel: parallel)
        }
    }
}
