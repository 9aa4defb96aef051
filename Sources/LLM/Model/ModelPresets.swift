// Named shapes for training from scratch, one family at a time: GPT-2's dN (llm.c's), Llama-shaped models of the
// same sizes, and nanochat's depth-driven shape.

/// A family and a size, ready to become a config once the vocabulary and context are known.
public enum ModelPreset {
    /// llm.c's named shapes, `dN` for N layers: d12 is GPT-2 124M, d24 350M, d36 774M, d48 1558M.
    public static let gpt2Shapes: [String: (layers: Int, heads: Int, channels: Int)] = [
        "d6": (6, 6, 384), "d12": (12, 12, 768), "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600),
    ]

    /// The shape names, shortest first.
    public static var shapeNames: [String] {
        gpt2Shapes.keys.sorted { $0.count == $1.count ? $0 < $1 : $0.count < $1.count }
    }

    /// The config of `architecture` at size `name` (`dN`). gpt2 and llama take GPT-2's dN shapes; nanochat takes
    /// any dN and derives its width from N.
    public static func config(_ architecture: Architecture, _ name: String, vocabSize: Int = 50257,
                              maxSeqLen: Int = 1024) throws(ModelError) -> ModelConfig {
        if architecture == .nanochat {
            guard name.hasPrefix("d"), let depth = Int(name.dropFirst()), depth > 0 else {
                throw .invalidConfig("unknown nanochat preset \(name) (dN for depth N, e.g. d4, d12, d20)")
            }
            return try nanochat(depth: depth, vocabSize: vocabSize, maxSeqLen: maxSeqLen)
        }
        guard let p = gpt2Shapes[name] else {
            throw .invalidConfig("unknown preset \(name) (known: \(shapeNames.joined(separator: ", ")))")
        }
        switch architecture {
        case .gpt2:
            return try .gpt2(maxSeqLen: maxSeqLen, vocabSize: vocabSize, numLayers: p.layers, numHeads: p.heads,
                             channels: p.channels)
        case .llama:
            return try llama(layers: p.layers, heads: p.heads, channels: p.channels, vocabSize: vocabSize,
                             maxSeqLen: maxSeqLen)
        default:
            throw .invalidConfig("no presets for \(architecture.rawValue); train gpt2, llama or nanochat from scratch")
        }
    }

    /// A Llama of the given width, as Llama 3's small models build it: head size C/H, a third as many key/value
    /// heads as query heads (or as many, when H is not a multiple of 3), SwiGLU width 8C/3 rounded up to a
    /// multiple of 64, RMSNorm eps 1e-5, RoPE θ 500 000, no biases, the LM head tied to the embedding.
    public static func llama(layers: Int, heads: Int, channels: Int, kvHeads: Int? = nil, vocabSize: Int,
                             maxSeqLen: Int) throws(ModelError) -> ModelConfig {
        guard heads > 0, channels % heads == 0 else {
            throw .invalidConfig("channels \(channels) is not divisible by heads \(heads)")
        }
        let hidden = (8 * channels / 3 + 63) / 64 * 64
        var c = ModelConfig(maxSeqLen: maxSeqLen, vocabSize: vocabSize, paddedVocabSize: ModelConfig.pad(vocabSize),
                            numLayers: layers, numHeads: heads,
                            numKVHeads: kvHeads ?? (heads % 3 == 0 ? heads / 3 : heads),
                            headSize: channels / heads, channels: channels, hiddenSize: hidden)
        c.architecture = .llama
        c.norm = .rmsNorm
        c.activation = .swiGLU
        c.learnedPositions = false
        c.ropeTheta = 500_000
        (c.qkvBias, c.attnOutBias, c.mlpBias) = (false, false, false)
        try c.validate()
        return c
    }

    /// nanochat's model for depth N: width 64·N rounded up to a multiple of 128, heads of 128, as many key/value
    /// heads, ReLU² MLP of width 4C, QK-norm after RoPE, parameter-free RMSNorm (also right after the embedding),
    /// an untied head, logit softcap 15, no biases, RoPE θ 100 000.
    public static func nanochat(depth: Int, vocabSize: Int, maxSeqLen: Int) throws(ModelError) -> ModelConfig {
        let channels = (64 * depth + 127) / 128 * 128, heads = channels / 128
        var c = ModelConfig(maxSeqLen: maxSeqLen, vocabSize: vocabSize, paddedVocabSize: ModelConfig.pad(vocabSize),
                            numLayers: depth, numHeads: heads, numKVHeads: heads, headSize: 128, channels: channels,
                            hiddenSize: 4 * channels)
        c.architecture = .nanochat
        c.norm = .rmsNormNoWeight
        c.normEps = 1e-6
        c.activation = .reluSquared
        c.learnedPositions = false
        c.ropeTheta = 100_000
        c.qkNorm = .afterRoPE
        c.normAfterEmbedding = true
        c.tiedEmbeddings = false
        c.logitSoftcap = 15
        (c.qkvBias, c.attnOutBias, c.mlpBias) = (false, false, false)
        try c.validate()
        return c
    }
}
