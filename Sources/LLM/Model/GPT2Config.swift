// The shape of a GPT-2 model: the six numbers an llm.c checkpoint header carries.

/// The hyperparameters that fix a GPT-2 model's shape.
///
/// `paddedVocabSize` (Vp) rounds the vocabulary up to a multiple of 128 so the LM-head matmul runs on
/// aligned rows; rows `vocabSize..<paddedVocabSize` of the token embedding are zero, get no probability
/// mass and no gradient.
public struct GPT2Config: Sendable, Equatable, Codable, CustomStringConvertible {
    public var maxSeqLen: Int        // maxT: the longest sequence (rows of the position embedding)
    public var vocabSize: Int        // V: the real vocabulary
    public var paddedVocabSize: Int  // Vp: V rounded up (rows of the token embedding)
    public var numLayers: Int        // L
    public var numHeads: Int         // NH
    public var channels: Int         // C

    /// Creates a config, padding the vocabulary to a multiple of 128 unless `paddedVocabSize` is given.
    public init(maxSeqLen: Int, vocabSize: Int, numLayers: Int, numHeads: Int, channels: Int,
                paddedVocabSize: Int? = nil) throws(ModelError) {
        self.maxSeqLen = maxSeqLen
        self.vocabSize = vocabSize
        self.paddedVocabSize = paddedVocabSize ?? GPT2Config.pad(vocabSize)
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.channels = channels
        try validate()
    }

    /// llm.c's named shapes, `dN` for N layers: d12 is GPT-2 124M, d24 350M, d36 774M, d48 1558M.
    public static let presets: [String: (layers: Int, heads: Int, channels: Int)] = [
        "d6": (6, 6, 384), "d12": (12, 12, 768), "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600),
    ]

    /// A preset's shape with GPT-2's vocabulary (50257) and context (1024) unless given.
    public static func preset(_ name: String, vocabSize: Int = 50257, maxSeqLen: Int = 1024) throws(ModelError) -> GPT2Config {
        guard let p = presets[name] else {
            throw .invalidConfig("unknown preset \(name) (known: \(presets.keys.sorted { $0.count == $1.count ? $0 < $1 : $0.count < $1.count }.joined(separator: ", ")))")
        }
        return try GPT2Config(maxSeqLen: maxSeqLen, vocabSize: vocabSize, numLayers: p.layers, numHeads: p.heads,
                              channels: p.channels)
    }

    /// V rounded up to the next multiple of 128.
    public static func pad(_ vocabSize: Int) -> Int { (vocabSize + 127) / 128 * 128 }

    public var headSize: Int { channels / numHeads }

    /// Checks the shape is one the model can run; the message says which rule fails.
    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfig(why) }
        if maxSeqLen <= 0 || vocabSize <= 0 || numLayers <= 0 || numHeads <= 0 || channels <= 0 {
            throw fail("all sizes must be positive (\(self))")
        }
        if channels % numHeads != 0 {
            throw fail("channels \(channels) is not divisible by heads \(numHeads)")
        }
        if paddedVocabSize < vocabSize {
            throw fail("padded vocab \(paddedVocabSize) is smaller than vocab \(vocabSize)")
        }
        // Keep every tensor size comfortably inside Int32 indexing and memory sense.
        if maxSeqLen > 1 << 20 || vocabSize > 1 << 24 || paddedVocabSize > 1 << 24 || numLayers > 1024
            || channels > 1 << 16 {
            throw fail("sizes are implausibly large (\(self))")
        }
    }

    /// The number of parameters that matter (with the unpadded vocabulary), as GPT-2's papers count them.
    public var parameterCount: Int {
        ParameterLayout(config: self).totalCount - (paddedVocabSize - vocabSize) * channels
    }

    public var description: String {
        "maxT=\(maxSeqLen) V=\(vocabSize) Vp=\(paddedVocabSize) L=\(numLayers) NH=\(numHeads) C=\(channels)"
    }
}
