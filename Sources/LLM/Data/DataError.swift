// Errors from token shards and the data loader: each is one line that names the file (or pattern) and
// says what is wrong, so `llm` can print it as is.

public enum DataError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case headerTooShort(path: String, bytes: Int)
    case badMagic(path: String, found: Int32)
    case unsupportedVersion(path: String, magic: Int32, version: Int32, expected: Int32)
    case negativeTokenCount(path: String, count: Int32)
    case sizeMismatch(path: String, bytes: Int, tokens: Int, expectedBytes: Int)
    case tokenOutOfRange(path: String, token: Int64, position: Int, vocabSize: Int64)
    case tooManyTokens(path: String, count: Int)
    case noMatch(pattern: String)
    /// `chunks`: the B×T micro-batches one step reads from a sample (ranks × accumulation steps).
    case shardTooSmall(path: String, tokens: Int, batch: Int, seq: Int, chunks: Int)
    case invalidArgument(String)
    case stateMismatch(String)
    case invalidUTF8(path: String, offset: Int)
    case emptyInput(path: String)
    case badJSONL(path: String, line: Int, reason: String)
    case existingShards(directory: String, name: String)
    case downloadFailed(url: String, reason: String)
    case noConversations(path: String)
    case noSupervisedTokens(path: String)
    case conversationTokenOutOfRange(path: String, conversation: Int, token: Int64, vocabSize: Int64)
    case unrenderableConversation(path: String, conversation: Int, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read: \(reason)"
        case let .writeFailed(path, reason): "\(path): cannot write: \(reason)"
        case let .headerTooShort(path, bytes):
            "\(path): \(bytes) bytes, too short for the \(TokenShard.headerBytes)-byte header"
        case let .badMagic(path, found):
            "\(path): bad magic number \(found) (expected \(TokenWidth.uint16.magic) or \(TokenWidth.uint32.magic))"
        case let .unsupportedVersion(path, magic, version, expected):
            "\(path): unsupported version \(version) for magic number \(magic) (expected \(expected))"
        case let .negativeTokenCount(path, count): "\(path): the header says \(count) tokens"
        case let .sizeMismatch(path, bytes, tokens, expectedBytes):
            "\(path): \(bytes) bytes but the header says \(tokens) tokens (\(expectedBytes) bytes)"
        case let .tokenOutOfRange(path, token, position, vocabSize):
            token < 0 ? "\(path): token \(token) at position \(position) is negative"
                : "\(path): token \(token) at position \(position) is not below the vocab size \(vocabSize)"
        case let .tooManyTokens(path, count):
            "\(path): \(count) tokens, but a shard holds at most \(Int32.max)"
        case let .noMatch(pattern): "\(pattern): no files match"
        case let .shardTooSmall(path, tokens, batch, seq, chunks):
            "\(path): \(tokens) tokens, but one batch of B=\(batch) x T=\(seq)"
                + (chunks > 1 ? " for each of \(chunks) micro-batches (ranks × accumulation steps)" : "")
                + " needs \(chunks * batch * seq + 1)"
        case let .invalidArgument(why): "invalid data loader argument: \(why)"
        case let .stateMismatch(why): "cannot restore the data loader: \(why)"
        case let .invalidUTF8(path, offset): "\(path): invalid UTF-8 at byte offset \(offset) (pass --lossy to replace it)"
        case let .emptyInput(path): "\(path): no text to tokenize"
        case let .badJSONL(path, line, reason): "\(path): line \(line): \(reason)"
        case let .unrenderableConversation(path, conversation, reason):
            "\(path): conversation \(conversation + 1): the chat template cannot render it: \(reason)"
        case let .existingShards(dir, name):
            "\(dir) already holds shards named \(name)_*.bin; choose another --name or --out, or pass --overwrite"
        case let .downloadFailed(url, reason): "cannot download \(url): \(reason); offline? pass --input PATH instead"
        case let .noConversations(path): "\(path): no conversations"
        case let .noSupervisedTokens(path): "\(path): no conversation has an assistant reply to learn from"
        case let .conversationTokenOutOfRange(path, conversation, token, vocabSize):
            "\(path): conversation \(conversation + 1) renders to token \(token), not below the model's vocab size \(vocabSize)"
        }
    }
}
