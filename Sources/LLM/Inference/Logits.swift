// The logits a model gives a token sequence, position by position: for comparing with another implementation
// (reference/hf_logits.py runs the same tokens through transformers) and for looking inside a model.

extension ModelWeights {
    /// The logits (T, V) of a full forward pass over `tokens` (1 ≤ T ≤ maxT, each below V), the padded
    /// vocabulary left out.
    public func logits(for tokens: [Int32], parallel: ParallelFor = .allCores) throws(ModelError) -> [Float] {
        let T = tokens.count, V = config.vocabSize, Vp = config.paddedVocabSize
        guard T >= 1 else { throw .invalidConfig("no tokens to run") }
        guard T <= config.maxSeqLen else { throw .sequenceTooLong(seq: T, maxSeqLen: config.maxSeqLen) }
        let model = try Transformer(weights: self, batch: 1, seq: T, parallel: parallel)
        try model.forward(inputs: tokens)
        let padded = model.logits()
        var out = [Float]()
        out.reserveCapacity(T * V)
        for t in 0..<T { out += padded[t * Vp..<t * Vp + V] }
        return out
    }

    /// Writes `tokens` and their logits to a safetensors file: `inputs` int32 (T), `logits` f32 (T, V), the
    /// layout reference/hf_logits.py --compare reads.
    public func writeLogits(for tokens: [Int32], to path: String, parallel: ParallelFor = .allCores) throws {
        let logits = try logits(for: tokens, parallel: parallel)
        try SafeTensorsFile.write([.init(name: "inputs", shape: [tokens.count], ints: tokens),
                                   .init(name: "logits", shape: [tokens.count, config.vocabSize], values: logits)],
                                  to: path)
    }
}
