// Errors from loading tokenizers and from decoding ids; each message is one line naming the file or id.

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case resourceNotFound(name: String, searched: [String])
    case invalidToken(id: Int32, vocabSize: Int)
    case invalidUTF8(path: String, offset: Int)
    /// A valid file asking for something this tokenizer does not implement, e.g. "pre_tokenizer Whitespace".
    case unsupported(path: String, feature: String)

    /// llm.c's gpt2_tokenizer.bin given where text must be encoded: it holds each token's bytes, not the merges.
    public static func decodeOnly(path: String) -> TokenizerError {
        .unsupported(path: path, feature: "encoding with llm.c's gpt2_tokenizer.bin, which is decode-only (each token's bytes, no merges); to encode, use --tokenizer gpt2 (GPT-2's, bundled) or a tokenizer file, tokenizer.json or GGUF model")
    }

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read: \(reason)"
        case let .malformed(path, reason): "\(path): malformed: \(reason)"
        case let .resourceNotFound(name, searched):
            "\(name) not found (looked in \(searched.joined(separator: ", "))); set LLM_RESOURCES to the folder holding it"
        case let .invalidToken(id, vocabSize): "token id \(id) is out of range for vocab size \(vocabSize)"
        case let .invalidUTF8(path, offset): "\(path): invalid UTF-8 at byte offset \(offset)"
        case let .unsupported(path, feature): "\(path): unsupported: \(feature)"
        }
    }
}
