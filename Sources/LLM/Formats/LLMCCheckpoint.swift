// llm.c's model checkpoint (GPT-2 only): 256 × int32 header [20240326, version, maxT, V, L, NH, C, Vp], then the 16
// parameter tensors in ParameterLayout order, fp32 (version 3) or bf16 (version 5).

public enum LLMCCheckpoint {
    public static let magic: Int32 = 20_240_326
    static let headerInts = 256

    /// Reads a version 3 (fp32) or version 5 (bf16, widened to fp32) checkpoint.
    public static func read(_ path: String) throws -> ModelWeights {
        var file = try FileReader(path: path)
        guard file.size >= headerInts * 4 else {
            throw FormatError.truncated(path: path, expectedBytes: headerInts * 4, actualBytes: file.size)
        }
        let header = try file.readInt32s(headerInts)
        guard header[0] == magic else { throw FormatError.badMagic(path: path, found: header[0], expected: magic) }
        let version = header[1]
        guard version == 3 || version == 5 else {
            throw FormatError.unsupportedVersion(path: path, version: version, supported: [3, 5])
        }
        let config: ModelConfig
        do {
            config = try ModelConfig.gpt2(maxSeqLen: Int(header[2]), vocabSize: Int(header[3]), numLayers: Int(header[4]),
                                    numHeads: Int(header[5]), channels: Int(header[6]),
                                    paddedVocabSize: Int(header[7]))
        } catch {
            throw FormatError.inconsistentHeader(path: path, reason: "\(error)")
        }
        let count = ParameterLayout(config: config).totalCount
        let bytesPer = version == 3 ? 4 : 2
        let expected = headerInts * 4 + count * bytesPer
        // Check the size before allocating, so a corrupt header cannot ask for absurd memory.
        if file.size < expected { throw FormatError.truncated(path: path, expectedBytes: expected, actualBytes: file.size) }
        if file.size > expected {
            throw FormatError.trailingBytes(path: path, expectedBytes: expected, actualBytes: file.size)
        }
        try MemoryBudget.checkWeights(config: config, what: "\(path): the model")
        let weights = ModelWeights(config: config)
        if version == 3 {
            try file.readFloats(into: weights.arena.base, count: count, expectedTotal: expected)
        } else {
            // Read bf16 into the upper half of the fp32 arena, then widen in place from the front.
            let raw = UnsafeMutableRawPointer(weights.arena.base)
            try file.read(into: raw + count * 2, count: count * 2, expectedTotal: expected)
            let src = (raw + count * 2).assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { weights.arena.base[i] = floatFromBFloat16(UInt16(littleEndian: src[i])) }
        }
        try rejectNonFinite(weights, path: path)
        return weights
    }

    /// Throws `FormatError.nonFinite` naming the tensor (and layer) of the first NaN or infinity in the weights.
    static func rejectNonFinite(_ weights: ModelWeights, path: String) throws {
        let layout = weights.layout
        let bad = weights.arena.withBuffer { $0.firstIndex { !$0.isFinite } }
        guard let i = bad else { return }
        let t = layout.present.last { layout.offset($0) <= i } ?? .wte
        var name = t.name, index = i - layout.offset(t)
        if t.isPerLayer {
            let perLayer = layout.count(t) / weights.config.numLayers
            name += " (layer \(index / perLayer))"
            index %= perLayer
        }
        throw FormatError.nonFinite(path: path, name: name, index: index, value: weights.arena[i])
    }

    /// Writes a version 3 (fp32) checkpoint atomically.
    public static func write(_ weights: ModelWeights, to path: String) throws {
        let c = weights.config
        guard c.architecture == .gpt2 else {
            throw FormatError.mismatch(path: path, reason: "llm.c's .bin format holds GPT-2 only; write a \(c.architecture.rawValue) model as a Hugging Face folder (a path not ending in .bin)")
        }
        var header = [Int32](repeating: 0, count: headerInts)
        header[0] = magic
        header[1] = 3
        header[2] = Int32(c.maxSeqLen)
        header[3] = Int32(c.vocabSize)
        header[4] = Int32(c.numLayers)
        header[5] = Int32(c.numHeads)
        header[6] = Int32(c.channels)
        header[7] = Int32(c.paddedVocabSize)
        try writeFileAtomically(path) { out in
            try out.write(int32s: header)
            try weights.arena.withBuffer { try out.write(floats: $0) }
        }
    }
}
