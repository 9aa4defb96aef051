// Errors a user can cause by handing the model a bad shape or bad tokens.

public enum ModelError: Error, Equatable, CustomStringConvertible {
    case invalidConfig(String)
    case tokenOutOfRange(what: String, index: Int, token: Int32, vocabSize: Int)
    case batchTooLarge(batch: Int, seq: Int, capacityBatch: Int, capacitySeq: Int)
    case sequenceTooLong(seq: Int, maxSeqLen: Int)
    case tokenCountMismatch(what: String, count: Int, expected: Int)
    case backwardWithoutTargets
    case nonFinite(String)
    /// `what` needs `bytes` (Int.max: more than an Int can count) but the machine has `available`.
    case tooLarge(what: String, bytes: Int, available: Int)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid model shape: \(why)"
        case let .tokenOutOfRange(what, index, token, vocabSize):
            "\(what) token \(token) at position \(index) is out of range for vocab size \(vocabSize)"
        case let .batchTooLarge(b, t, cb, ct):
            "batch \(b)x\(t) exceeds the activation memory allocated for \(cb)x\(ct)"
        case let .sequenceTooLong(t, maxT): "sequence length \(t) exceeds the model's maximum \(maxT)"
        case let .tokenCountMismatch(what, count, expected): "\(what) has \(count) tokens, expected \(expected)"
        case .backwardWithoutTargets: "backward needs a forward pass with targets first"
        case .nonFinite(let what): "non-finite \(what)"
        case let .tooLarge(what, bytes, available):
            "\(what) needs \(MemoryBudget.format(bytes)); this machine has \(MemoryBudget.format(available))"
        }
    }
}
