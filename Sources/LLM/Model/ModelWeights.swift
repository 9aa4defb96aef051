// A model's parameters: its config plus all its tensors in one arena (for GPT-2, exactly as an llm.c checkpoint
// stores them), and each family's initialisation for training from scratch.

/// The parameters of one model, independent of any activations or optimizer state.
/// Formats read into and write from this; `Transformer` trains it and the generators run it.
public final class ModelWeights: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let arena: FloatArena
    /// The tensors kept in a GGUF file's quantized blocks, for generation only: their float slots in `arena` stay
    /// zero (and cost no memory). nil for ordinary float weights. Training, conversion and anything that reads
    /// tensors (`tensor(_:)`) need float weights: load those with `quantized: false`.
    public let quantized: QuantizedWeights?
    /// Low-rank adapters run on top of these weights (LoRAAdapter), or nil. Training weights with an adapter
    /// trains the adapter alone, the base frozen.
    public let adapter: LoRAAdapter?

    /// Zero-filled weights of the given shape.
    public init(config: ModelConfig, quantized: QuantizedWeights? = nil) {
        self.config = config
        self.layout = ParameterLayout(config: config)
        self.arena = FloatArena(count: layout.totalCount)
        self.quantized = quantized
        adapter = nil
    }

    /// `other`'s tensors (the same memory) with `adapter` attached.
    init(sharing other: ModelWeights, adapter: LoRAAdapter?) {
        (config, layout, arena, quantized) = (other.config, other.layout, other.arena, other.quantized)
        self.adapter = adapter
    }

    /// A copy of one tensor's values, flattened in its stored (out, in) order.
    public func tensor(_ t: ParameterTensor) -> [Float] { arena.array(layout.range(t)) }

    /// Writes values into one tensor; `values.count` must equal the tensor's element count.
    public func setTensor(_ t: ParameterTensor, _ values: [Float]) {
        precondition(values.count == layout.count(t), "\(t.name): \(values.count) values for \(layout.count(t))")
        arena.withMutableBuffer(layout.range(t)) { dst in _ = dst.update(fromContentsOf: values) }
    }

    /// An independent copy.
    public func copy() -> ModelWeights {
        let w = ModelWeights(config: config)
        arena.withBuffer { src in w.arena.withMutableBuffer { dst in _ = dst.update(fromContentsOf: src) } }
        return w
    }

    /// The initialisation of the config's family, seeded, for training from scratch (`random(config:seed:)`).
    public static func random(config: ModelConfig, seed: UInt64) -> ModelWeights {
        switch config.architecture {
        case .gpt2: randomGPT2(config: config, seed: seed)
        case .nanochat: randomNanochat(config: config, seed: seed)
        case .llama, .qwen2, .gemma3: randomNormal(config: config, seed: seed, std: 0.02)
        }
    }

    /// GPT-2's initialisation (seeded): N(0, 0.02) for wte, wpe and matmul weights, with the residual
    /// projections (attprojw, fcprojw) scaled by 1/√(2L); LayerNorm weights 1; biases 0; padded wte rows 0.
    public static func randomGPT2(config: ModelConfig, seed: UInt64) -> ModelWeights {
        let residualStd = 0.02 / (2.0 * Double(config.numLayers)).squareRoot()
        return initialised(config: config, seed: seed) { t, _, _ in
            (t == .attprojw || t == .fcprojw) ? residualStd : 0.02
        }
    }

    /// Hugging Face's initialisation for Llama, Qwen2 and Gemma 3 (`_init_weights`): every matrix and embedding
    /// N(0, std) with std the config's initializer_range (0.02), norm weights at their neutral value (1 for x·w, 0
    /// for Gemma's x·(1+w)), biases 0.
    public static func randomNormal(config: ModelConfig, seed: UInt64, std: Double) -> ModelWeights {
        initialised(config: config, seed: seed) { _, _, _ in std }
    }

    /// nanochat's initialisation (gpt.py, October 2025): embedding N(0, 1); each linear layer N(0, σ) with
    /// σ = 1/√fan_in · min(1, √(fan_out/fan_in)) (arXiv:2310.17813); the LM head and both residual projections
    /// (attention output, MLP down) zero.
    public static func randomNanochat(config: ModelConfig, seed: UInt64) -> ModelWeights {
        initialised(config: config, seed: seed) { t, fanOut, fanIn in
            switch t {
            case .wte: 1
            case .lmHead, .attprojw, .fcprojw: 0
            default: 1 / Double(fanIn).squareRoot() * min(1, (Double(fanOut) / Double(fanIn)).squareRoot())
            }
        }
    }

    /// Matrices and embeddings N(0, std(tensor, fan_out, fan_in)) from one seeded stream in arena order (a std of
    /// 0 leaves zeros); norm weights at their neutral value; biases zero; padded vocabulary rows zero.
    private static func initialised(config c: ModelConfig, seed: UInt64,
                                    std: (ParameterTensor, Int, Int) -> Double) -> ModelWeights {
        let w = ModelWeights(config: c)
        var rng = SplitMix64(seed: seed)
        for t in w.layout.present {
            let shape = w.layout.shape(t), range = w.layout.range(t)
            switch t {
            case .ln1w, .ln2w, .lnfw, .qNormw, .kNormw, .postAttnNormw, .postMLPNormw:
                if c.norm != .rmsNormOnePlus { w.arena.withMutableBuffer(range) { $0.update(repeating: 1) } }
            case .wte, .wpe, .lmHead, .qkvw, .attprojw, .fcw, .fcprojw:
                let (fanOut, fanIn) = (shape[shape.count - 2], shape[shape.count - 1])
                let sigma = std(t, t == .wte || t == .lmHead ? c.vocabSize : fanOut, fanIn)
                guard sigma > 0 else { continue }
                let n = (t == .wte || t == .lmHead) ? c.vocabSize * c.channels : range.count
                w.arena.withMutableBuffer(range) { buf in
                    for i in 0..<n { buf[i] = Float(rng.nextGaussian() * sigma) }
                }
            default:
                break  // biases stay zero
            }
        }
        return w
    }
}

extension ModelWeights {
    /// A copy with the vocabulary grown to `newVocabSize` rows, for tokens the model has never seen (the chat
    /// tokens SFT adds after GPT-2's 50257). Old rows are kept; each new row of wte is the mean of the old rows
    /// plus N(0, 0.02) noise from `seed`. The mean makes a new token's logit an ordinary one at first (a zero row
    /// would give every new token logit 0, far above a trained model's typical logits); the noise makes the new
    /// tokens' input embeddings differ, so the model can tell `<|user_start|>` from `<|assistant_start|>`.
    /// Vp grows to the next multiple of 128 if the new rows do not fit in the padding. Returns self when
    /// `newVocabSize` is not above V.
    public func growingVocabulary(to newVocabSize: Int, seed: UInt64) throws(ModelError) -> ModelWeights {
        let c = config, V = c.vocabSize, C = c.channels
        guard newVocabSize > V else { return self }
        var shape = c
        shape.vocabSize = newVocabSize
        shape.paddedVocabSize = max(c.paddedVocabSize, ModelConfig.pad(newVocabSize))
        try shape.validate()
        let grown = ModelWeights(config: shape)
        for t in layout.present where t != .wte && t != .lmHead { grown.setTensor(t, tensor(t)) }
        var rng = SplitMix64(seed: seed)
        for t in [ParameterTensor.wte, .lmHead] where layout.has(t) {
            var rows = tensor(t)
            rows.removeSubrange((V * C)...)
            var mean = [Double](repeating: 0, count: C)
            for v in 0..<V { for i in 0..<C { mean[i] += Double(rows[v * C + i]) } }
            for _ in V..<newVocabSize {
                for i in 0..<C { rows.append(Float(mean[i] / Double(V) + rng.nextGaussian() * 0.02)) }
            }
            rows.append(contentsOf: repeatElement(0, count: (shape.paddedVocabSize - newVocabSize) * C))
            grown.setTensor(t, rows)
        }
        return grown
    }
}

/// A small, fast, seedable generator (SplitMix64) with a Box–Muller normal sampler.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUniform(), Double.leastNonzeroMagnitude), u2 = nextUniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
