// One batch with PyTorch's logits, loss and every parameter gradient, for parity checks, in either of the two
// fixture formats: llm.c's debug state (GPT-2: 256 × int32 header [20240327, 2, B, T], x int32[B·T],
// y int32[B·T], logits fp32[B·T·V], loss fp32, then the gradients in the checkpoint's tensor order, wte padded
// to Vp rows), or the generic one for any architecture (state.safetensors: `inputs`, `targets`, `logits`,
// `loss`, and `grad.<HF name>` for every parameter).

public struct DebugState {
    public static let magic: Int32 = 20_240_327

    public let batch: Int
    public let seq: Int
    public let inputs: [Int32]
    public let targets: [Int32]
    public let logits: [Float]   // (B,T,V), unpadded
    public let loss: Float
    public let gradients: ModelWeights  // gradients laid out like the weights

    /// Reads a state for a model of shape `config`; tokens are checked against its vocabulary.
    public static func read(_ path: String, config: ModelConfig) throws -> DebugState {
        var file = try FileReader(path: path)
        guard file.size >= 1024 else { throw FormatError.truncated(path: path, expectedBytes: 1024, actualBytes: file.size) }
        let header = try file.readInt32s(256)
        guard header[0] == magic else { throw FormatError.badMagic(path: path, found: header[0], expected: magic) }
        guard header[1] == 2 else { throw FormatError.unsupportedVersion(path: path, version: header[1], supported: [2]) }
        let B = Int(header[2]), T = Int(header[3])
        guard B > 0, T > 0, B <= 1 << 16 else {
            throw FormatError.inconsistentHeader(path: path, reason: "batch \(B) x sequence \(T) must be positive")
        }
        guard T <= config.maxSeqLen else {
            throw FormatError.mismatch(path: path, reason: "sequence length \(T) exceeds the model's maximum \(config.maxSeqLen)")
        }
        let BT = B * T, V = config.vocabSize
        let paramCount = ParameterLayout(config: config).totalCount
        let expected = 1024 + 8 * BT + 4 * BT * V + 4 + 4 * paramCount
        if file.size < expected { throw FormatError.truncated(path: path, expectedBytes: expected, actualBytes: file.size) }
        if file.size > expected {
            throw FormatError.trailingBytes(path: path, expectedBytes: expected, actualBytes: file.size)
        }
        let x = try file.readInt32s(BT), y = try file.readInt32s(BT)
        for (what, tokens, lowest) in [("input", x, Int32(0)), ("target", y, Int32(-1))] {  // target -1: ignored
            if let i = tokens.firstIndex(where: { $0 < lowest || Int($0) >= V }) {
                throw FormatError.mismatch(path: path, reason: "\(what) token \(tokens[i]) at position \(i) is out of range for vocab size \(V)")
            }
        }
        var logits = [Float](repeating: 0, count: BT * V)
        try logits.withUnsafeMutableBufferPointer { try file.readFloats(into: $0.baseAddress!, count: BT * V) }
        var loss: Float = 0
        try withUnsafeMutablePointer(to: &loss) { try file.readFloats(into: $0, count: 1) }
        let grads = ModelWeights(config: config)
        try file.readFloats(into: grads.arena.base, count: paramCount)
        return DebugState(batch: B, seq: T, inputs: x, targets: y, logits: logits, loss: loss, gradients: grads)
    }

    /// Reads a generic fixture's state.safetensors for a model of shape `config`.
    public static func readSafetensors(_ path: String, config: ModelConfig) throws -> DebugState {
        let file = try SafeTensorsFile.read(path)
        let inputs = try file.int32s("inputs"), targets = try file.int32s("targets")
        guard let shape = file.entries["inputs"]?.shape, shape.count == 2, shape[0] > 0, shape[1] > 0,
              file.entries["targets"]?.shape == shape else {
            throw FormatError.malformed(path: path, reason: "inputs and targets must both be (B,T)")
        }
        let (B, T, V) = (shape[0], shape[1], config.vocabSize)
        guard T <= config.maxSeqLen else {
            throw FormatError.mismatch(path: path, reason: "sequence length \(T) exceeds the model's maximum \(config.maxSeqLen)")
        }
        for (what, tokens, lowest) in [("input", inputs, Int32(0)), ("target", targets, Int32(-1))] {
            if let i = tokens.firstIndex(where: { $0 < lowest || Int($0) >= V }) {
                throw FormatError.mismatch(path: path, reason: "\(what) token \(tokens[i]) at position \(i) is out of range for vocab size \(V)")
            }
        }
        guard file.entries["logits"]?.shape == [B, T, V], file.entries["loss"]?.shape == [1] else {
            throw FormatError.malformed(path: path, reason: "logits must be (\(B),\(T),\(V)) and loss (1)")
        }
        let gradients = ModelWeights(config: config)
        try HuggingFaceFolder.fill(gradients, from: file, prefix: "grad.")
        return DebugState(batch: B, seq: T, inputs: inputs, targets: targets, logits: try file.floats("logits"),
                          loss: try file.floats("loss")[0], gradients: gradients)
    }
}
