// A GPT-2's parameters: its config plus all 16 tensors in one arena, as an llm.c checkpoint stores them.

/// The parameters of one model, independent of any activations or optimizer state.
/// Formats read into and write from this; `GPT2` trains and runs it.
public final class GPT2Weights: @unchecked Sendable {
    public let config: GPT2Config
    public let layout: ParameterLayout
    public let arena: FloatArena

    /// Zero-filled weights of the given shape.
    public init(config: GPT2Config) {
        self.config = config
        self.layout = ParameterLayout(config: config)
        self.arena = FloatArena(count: layout.totalCount)
    }

    /// A copy of one tensor's values, flattened in its stored (out, in) order.
    public func tensor(_ t: ParameterTensor) -> [Float] { arena.array(layout.range(t)) }

    /// Writes values into one tensor; `values.count` must equal the tensor's element count.
    public func setTensor(_ t: ParameterTensor, _ values: [Float]) {
        precondition(values.count == layout.count(t), "\(t.name): \(values.count) values for \(layout.count(t))")
        arena.withMutableBuffer(layout.range(t)) { dst in _ = dst.update(fromContentsOf: values) }
    }

    /// An independent copy.
    public func copy() -> GPT2Weights {
        let w = GPT2Weights(config: config)
        arena.withBuffer { src in w.arena.withMutableBuffer { dst in _ = dst.update(fromContentsOf: src) } }
        return w
    }

    /// GPT-2's initialisation (seeded): N(0, 0.02) for wte, wpe and matmul weights, with the residual
    /// projections (attprojw, fcprojw) scaled by 1/√(2L); LayerNorm weights 1; biases 0; padded wte rows 0.
    public static func randomGPT2(config: GPT2Config, seed: UInt64) -> GPT2Weights {
        let w = GPT2Weights(config: config)
        var rng = SplitMix64(seed: seed)
        let residualStd = 0.02 / (2.0 * Double(config.numLayers)).squareRoot()
        for t in ParameterTensor.allCases {
            let range = w.layout.range(t)
            switch t {
            case .ln1w, .ln2w, .lnfw:
                w.arena.withMutableBuffer(range) { $0.update(repeating: 1) }
            case .wte, .wpe, .qkvw, .fcw, .attprojw, .fcprojw:
                let std = (t == .attprojw || t == .fcprojw) ? residualStd : 0.02
                let n = t == .wte ? config.vocabSize * config.channels : range.count
                w.arena.withMutableBuffer(range) { buf in
                    for i in 0..<n { buf[i] = Float(rng.nextGaussian() * std) }
                }
            default:
                break  // biases stay zero
            }
        }
        return w
    }
}

extension GPT2Weights {
    /// A copy with the vocabulary grown to `newVocabSize` rows, for tokens the model has never seen (the chat
    /// tokens SFT adds after GPT-2's 50257). Old rows are kept; each new row of wte is the mean of the old rows
    /// plus N(0, 0.02) noise from `seed`. The mean makes a new token's logit an ordinary one at first (a zero row
    /// would give every new token logit 0, far above a trained model's typical logits); the noise makes the new
    /// tokens' input embeddings differ, so the model can tell `<|user_start|>` from `<|assistant_start|>`.
    /// Vp grows to the next multiple of 128 if the new rows do not fit in the padding. Returns self when
    /// `newVocabSize` is not above V.
    public func growingVocabulary(to newVocabSize: Int, seed: UInt64) throws(ModelError) -> GPT2Weights {
        let c = config, V = c.vocabSize, C = c.channels
        guard newVocabSize > V else { return self }
        let shape = try GPT2Config(maxSeqLen: c.maxSeqLen, vocabSize: newVocabSize, numLayers: c.numLayers,
                                   numHeads: c.numHeads, channels: C,
                                   paddedVocabSize: max(c.paddedVocabSize, GPT2Config.pad(newVocabSize)))
        let grown = GPT2Weights(config: shape)
        for t in ParameterTensor.allCases where t != .wte { grown.setTensor(t, tensor(t)) }
        var wte = tensor(.wte)
        wte.removeSubrange((V * C)...)
        var mean = [Double](repeating: 0, count: C)
        for v in 0..<V { for i in 0..<C { mean[i] += Double(wte[v * C + i]) } }
        var rng = SplitMix64(seed: seed)
        for _ in V..<newVocabSize {
            for i in 0..<C { wte.append(Float(mean[i] / Double(V) + rng.nextGaussian() * 0.02)) }
        }
        wte.append(contentsOf: repeatElement(0, count: (shape.paddedVocabSize - newVocabSize) * C))
        grown.setTensor(.wte, wte)
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
