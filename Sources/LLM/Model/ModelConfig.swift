// The shape and parts of a decoder-only transformer: GPT-2, Llama, Qwen2, Gemma 3 and nanochat are all one of
// these. Each field picks a part (which norm, which MLP, learned or rotary positions, …); the model, its
// parameter and activation layouts and every file format read them, and nothing else names an architecture.

/// The family a configuration came from. It decides the file formats' tensor names and defaults; the model
/// itself reads only the config's other fields.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    case gpt2, llama, qwen2, gemma3, nanochat
}

/// The normalisation before attention and MLP (and at the end).
public enum NormKind: String, Sendable, Codable {
    case layerNorm          // GPT-2: (x − mean)/σ · w + b
    case rmsNorm            // Llama, Qwen2: x/rms · w
    case rmsNormOnePlus     // Gemma: x/rms · (1 + w)
    case rmsNormNoWeight    // nanochat: x/rms

    /// How the RMSNorm applies its weight (nil for LayerNorm).
    var rmsWeight: RMSNormWeight? {
        switch self {
        case .layerNorm: nil
        case .rmsNorm: .scale
        case .rmsNormOnePlus: .onePlus
        case .rmsNormNoWeight: RMSNormWeight.none
        }
    }

    /// Whether the norm has a weight vector, and whether it has a bias.
    var hasWeight: Bool { self != .rmsNormNoWeight }
    var hasBias: Bool { self == .layerNorm }
}

/// Where a per-head RMSNorm of the queries and keys sits, if the model has one.
public enum QKNormPlacement: String, Sendable, Codable {
    case none
    case beforeRoPE  // Gemma 3
    case afterRoPE   // nanochat
}

/// The hyperparameters that fix a model's shape and parts.
///
/// `paddedVocabSize` (Vp) rounds the vocabulary up to a multiple of 128 so the LM-head matmul runs on aligned
/// rows; rows `vocabSize..<paddedVocabSize` of the embedding (and of an untied head) are zero, get no
/// probability mass and no gradient.
public struct ModelConfig: Sendable, Equatable, Codable, CustomStringConvertible {
    public var architecture: Architecture = .gpt2
    public var maxSeqLen: Int        // maxT: the longest sequence
    public var vocabSize: Int        // V: the real vocabulary
    public var paddedVocabSize: Int  // Vp: V rounded up (rows of the token embedding)
    public var numLayers: Int        // L
    public var numHeads: Int         // H: query heads
    public var numKVHeads: Int       // H_kv: key/value heads (H for multi-head attention)
    public var headSize: Int         // d: values per head (C/H for GPT-2, free elsewhere)
    public var channels: Int         // C: the residual stream's width
    public var hiddenSize: Int       // F: the MLP's inner width (4C for GPT-2)

    public var norm: NormKind = .layerNorm
    public var normEps: Double = 1e-5
    public var activation: MLPActivation = .gelu
    /// GPT-2's learned position embedding (wpe); false for rotary models.
    public var learnedPositions = true
    /// RoPE's θ on full-attention layers; 0 without RoPE.
    public var ropeTheta: Double = 0
    /// RoPE's θ on sliding-window layers, where it differs (Gemma 3: 10 000 there, 1 000 000 on global layers).
    public var ropeLocalTheta: Double?
    /// The window of sliding-window layers (positions attended, itself included); 0 without any.
    public var slidingWindow = 0
    /// Which layers use the sliding window; empty when none do.
    public var slidingLayers: [Bool] = []
    public var qkNorm: QKNormPlacement = .none
    public var qkvBias = true        // biases on the q, k, v projections
    public var attnOutBias = true    // bias on the attention's output projection
    public var mlpBias = true        // biases on both MLP matmuls
    /// The LM head is the token embedding (GPT-2, Gemma, Qwen2's small models); false gives it its own matrix.
    public var tiedEmbeddings = true
    /// Final logits become c·tanh(logits/c); nil for none.
    public var logitSoftcap: Double?
    /// Embeddings are multiplied by √C (Gemma).
    public var scaleEmbeddings = false
    /// A norm right after the embedding (nanochat).
    public var normAfterEmbedding = false
    /// Norms on the attention's and the MLP's outputs before each residual add (Gemma's "sandwich").
    public var sandwichNorms = false
    /// Attention scores are scaled by 1/√(this); nil for 1/√d (Gemma 3: query_pre_attn_scalar).
    public var queryPreAttentionScalar: Double?

    /// A GPT-2 of the given shape, padding the vocabulary to a multiple of 128 unless `paddedVocabSize` is given.
    public static func gpt2(maxSeqLen: Int, vocabSize: Int, numLayers: Int, numHeads: Int, channels: Int,
                            paddedVocabSize: Int? = nil) throws(ModelError) -> ModelConfig {
        guard numHeads > 0, channels > 0, channels % numHeads == 0 else {
            throw .invalidConfig("channels \(channels) is not divisible by heads \(numHeads)")
        }
        let config = ModelConfig(maxSeqLen: maxSeqLen, vocabSize: vocabSize,
                                 paddedVocabSize: paddedVocabSize ?? pad(vocabSize), numLayers: numLayers,
                                 numHeads: numHeads, numKVHeads: numHeads, headSize: channels / numHeads,
                                 channels: channels, hiddenSize: 4 * channels)
        try config.validate()
        return config
    }

    /// Every field given; `validate()` is the caller's to call.
    init(maxSeqLen: Int, vocabSize: Int, paddedVocabSize: Int, numLayers: Int, numHeads: Int, numKVHeads: Int,
         headSize: Int, channels: Int, hiddenSize: Int) {
        self.maxSeqLen = maxSeqLen
        self.vocabSize = vocabSize
        self.paddedVocabSize = paddedVocabSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headSize = headSize
        self.channels = channels
        self.hiddenSize = hiddenSize
    }

    /// V rounded up to the next multiple of 128.
    public static func pad(_ vocabSize: Int) -> Int { (vocabSize + 127) / 128 * 128 }

    /// Floats in one fused q|k|v row: (H + 2·H_kv)·d.
    public var qkvWidth: Int { (numHeads + 2 * numKVHeads) * headSize }
    /// Floats in one attention output row: H·d.
    public var attentionWidth: Int { numHeads * headSize }
    /// Rows of the MLP's first matrix: 2F for a gated MLP ([gate | up]), F otherwise.
    public var fcWidth: Int { activation.isGated ? 2 * hiddenSize : hiddenSize }
    /// Whether layer l attends through a sliding window.
    public func isSliding(_ l: Int) -> Bool { slidingWindow > 0 && l < slidingLayers.count && slidingLayers[l] }
    /// Whether any layer does.
    public var hasSlidingLayers: Bool { slidingWindow > 0 && slidingLayers.contains(true) }
    /// Layer l's attention shape.
    public func attentionShape(layer l: Int) -> AttentionShape {
        AttentionShape(heads: numHeads, kvHeads: numKVHeads, headSize: headSize,
                       window: isSliding(l) ? slidingWindow : 0,
                       scale: queryPreAttentionScalar.map { Float(1 / $0.squareRoot()) })
    }
    /// Layer l's RoPE θ (0 without RoPE).
    public func ropeTheta(layer l: Int) -> Double { isSliding(l) ? ropeLocalTheta ?? ropeTheta : ropeTheta }
    var usesRoPE: Bool { ropeTheta > 0 }

    /// The most layers a model may have (`validate`).
    static let maxLayers = 1024

    /// Checks the shape is one the model can run; the message says which rule fails.
    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfig(why) }
        if maxSeqLen <= 0 || vocabSize <= 0 || numLayers <= 0 || numHeads <= 0 || numKVHeads <= 0 || headSize <= 0
            || channels <= 0 || hiddenSize <= 0 {
            throw fail("all sizes must be positive (\(self))")
        }
        if numHeads % numKVHeads != 0 {
            throw fail("\(numHeads) query heads cannot share \(numKVHeads) key/value heads evenly")
        }
        if paddedVocabSize < vocabSize {
            throw fail("padded vocab \(paddedVocabSize) is smaller than vocab \(vocabSize)")
        }
        if usesRoPE && headSize % 2 != 0 { throw fail("RoPE needs an even head size, not \(headSize)") }
        if usesRoPE == learnedPositions {
            throw fail(usesRoPE ? "a model has either learned positions or RoPE, not both"
                                : "a model needs learned positions or RoPE (rope theta > 0)")
        }
        if !(normEps > 0 && normEps < 1) { throw fail("norm eps \(normEps) is not in (0, 1)") }
        if let cap = logitSoftcap, !(cap > 0 && cap.isFinite) { throw fail("logit softcap \(cap) is not positive") }
        if slidingWindow < 0 { throw fail("sliding window \(slidingWindow) is negative") }
        if slidingWindow > 0 && slidingLayers.count != numLayers {
            throw fail("\(slidingLayers.count) layer types for \(numLayers) layers")
        }
        if qkNorm != .none && norm == .layerNorm { throw fail("QK-norm needs an RMSNorm model") }
        if let s = queryPreAttentionScalar, !(s > 0 && s.isFinite) {
            throw fail("query_pre_attn_scalar \(s) is not positive")
        }
        // Keep every tensor size comfortably inside Int32 indexing and memory sense.
        if maxSeqLen > 1 << 20 || vocabSize > 1 << 24 || paddedVocabSize > 1 << 24 || numLayers > Self.maxLayers
            || channels > 1 << 16 || hiddenSize > 1 << 18 || numHeads * headSize > 1 << 16 {
            throw fail("sizes are implausibly large (\(self))")
        }
    }

    /// The number of parameters that matter (with the unpadded vocabulary), as papers count them.
    public var parameterCount: Int {
        ParameterLayout(config: self).totalCount - (paddedVocabSize - vocabSize) * channels * (tiedEmbeddings ? 1 : 2)
    }

    public var description: String {
        var s = "\(architecture.rawValue) maxT=\(maxSeqLen) V=\(vocabSize) Vp=\(paddedVocabSize) L=\(numLayers) "
            + "H=\(numHeads) C=\(channels)"
        if architecture != .gpt2 || numKVHeads != numHeads || headSize * numHeads != channels
            || hiddenSize != 4 * channels {
            s += " Hkv=\(numKVHeads) d=\(headSize) F=\(hiddenSize)"
        }
        return s
    }

    // MARK: - Codable (run directories written before the other architectures hold GPT-2's six numbers)

    enum CodingKeys: String, CodingKey {
        case architecture, maxSeqLen, vocabSize, paddedVocabSize, numLayers, numHeads, numKVHeads, headSize, channels
        case hiddenSize, norm, normEps, activation, learnedPositions, ropeTheta, ropeLocalTheta, slidingWindow
        case slidingLayers, qkNorm, qkvBias, attnOutBias, mlpBias, tiedEmbeddings, logitSoftcap, scaleEmbeddings
        case normAfterEmbedding, sandwichNorms, queryPreAttentionScalar
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxSeqLen = try c.decode(Int.self, forKey: .maxSeqLen)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        paddedVocabSize = try c.decode(Int.self, forKey: .paddedVocabSize)
        numLayers = try c.decode(Int.self, forKey: .numLayers)
        numHeads = try c.decode(Int.self, forKey: .numHeads)
        channels = try c.decode(Int.self, forKey: .channels)
        numKVHeads = try c.decodeIfPresent(Int.self, forKey: .numKVHeads) ?? numHeads
        headSize = try c.decodeIfPresent(Int.self, forKey: .headSize) ?? channels / max(numHeads, 1)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 4 * channels
        architecture = try c.decodeIfPresent(Architecture.self, forKey: .architecture) ?? .gpt2
        norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? .layerNorm
        normEps = try c.decodeIfPresent(Double.self, forKey: .normEps) ?? 1e-5
        activation = try c.decodeIfPresent(MLPActivation.self, forKey: .activation) ?? .gelu
        learnedPositions = try c.decodeIfPresent(Bool.self, forKey: .learnedPositions) ?? true
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 0
        ropeLocalTheta = try c.decodeIfPresent(Double.self, forKey: .ropeLocalTheta)
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow) ?? 0
        slidingLayers = try c.decodeIfPresent([Bool].self, forKey: .slidingLayers) ?? []
        qkNorm = try c.decodeIfPresent(QKNormPlacement.self, forKey: .qkNorm) ?? .none
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? true
        attnOutBias = try c.decodeIfPresent(Bool.self, forKey: .attnOutBias) ?? true
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? true
        tiedEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tiedEmbeddings) ?? true
        logitSoftcap = try c.decodeIfPresent(Double.self, forKey: .logitSoftcap)
        scaleEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .scaleEmbeddings) ?? false
        normAfterEmbedding = try c.decodeIfPresent(Bool.self, forKey: .normAfterEmbedding) ?? false
        sandwichNorms = try c.decodeIfPresent(Bool.self, forKey: .sandwichNorms) ?? false
        queryPreAttentionScalar = try c.decodeIfPresent(Double.self, forKey: .queryPreAttentionScalar)
    }
}
