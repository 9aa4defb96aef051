// The project's tokenizer file, and tiktoken-style rank exports.
//
// Format (UTF-8 text, one item per line):
//   llm-tokenizer 1
//   pattern gpt2|gpt4
//   tokens N                  (mergeable tokens; ids 0..<N)
//   special <|bos|> 4087      (zero or more: name and id)
//   <base64 of token 0's bytes>
//   ... N lines in id order (a token's id is its merge rank)
// `.tiktoken` exports: "<base64 of token bytes> <rank>" per line, as tiktoken's load_tiktoken_bpe reads.
import Foundation

extension Tokenizer {
    /// Saves this tokenizer in the project's format, atomically. Only tiktoken-style tokenizers (`isRankBased`)
    /// fit it; a Hugging Face or GGUF tokenizer stays in its own files.
    public func save(to path: String) throws {
        guard isRankBased, let pattern else {
            throw TokenizerError.unsupported(path: path, feature: "saving a merges-based (Hugging Face or GGUF) tokenizer as an llm-tokenizer file")
        }
        let tokens = mergeableTokens
        var lines = ["llm-tokenizer 1", "pattern \(pattern.rawValue)", "tokens \(tokens.count)"]
        for (name, id) in specialTokens.sorted(by: { $0.value < $1.value }) { lines.append("special \(name) \(id)") }
        for t in tokens { lines.append(Data(t).base64EncodedString()) }
        let text = lines.joined(separator: "\n") + "\n"
        try writeFileAtomically(path) { try $0.write(Array(text.utf8)) }
    }

    /// The most mergeable tokens a tokenizer file may declare (a model's vocabulary is at most 2^24).
    static let maxTokens = 1 << 24

    /// Loads a tokenizer saved by `save(to:)`.
    public static func load(_ path: String) throws -> Tokenizer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.unreadable(path: path, reason: "no such file or not readable")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        func fail(_ line: Int, _ why: String) -> TokenizerError { .malformed(path: path, reason: "line \(line): \(why)") }
        guard lines.first == "llm-tokenizer 1" else { throw fail(1, "not an llm tokenizer file (expected \"llm-tokenizer 1\")") }
        guard lines.count > 2, lines[1].hasPrefix("pattern "), let pattern = SplitPattern(rawValue: String(lines[1].dropFirst(8))) else {
            throw fail(2, "expected \"pattern gpt2\" or \"pattern gpt4\"")
        }
        guard lines.count > 3, lines[2].hasPrefix("tokens "), let n = Int(lines[2].dropFirst(7)), n >= 256 else {
            throw fail(3, "expected \"tokens N\" with N ≥ 256")
        }
        // Never trust a count: no vocabulary is larger than a model's, and each token is a line of its own.
        guard n <= maxTokens else { throw fail(3, "tokens \(n) is more than the \(maxTokens) a vocabulary may hold") }
        var at = 3, specials = [String: Int32](), lineOfID = [Int32: Int]()
        while at < lines.count, lines[at].hasPrefix("special ") {
            let parts = lines[at].split(separator: " ")
            guard parts.count == 3, let id = Int32(parts[2]), id >= n else { throw fail(at + 1, "expected \"special NAME ID\" with ID ≥ \(n)") }
            let name = String(parts[1])
            guard specials[name] == nil else { throw fail(at + 1, "special token \(name) is listed twice") }
            if let other = lineOfID[id] { throw fail(at + 1, "special token id \(id) is already used on line \(other)") }
            specials[name] = id
            lineOfID[id] = at + 1
            at += 1
        }
        // The special tokens follow the mergeable ones: ids n..<n+k, so the vocabulary has no holes.
        if let (id, line) = lineOfID.filter({ Int($0.key) >= n + specials.count }).min(by: { $0.value < $1.value }) {
            throw fail(line, "special token id \(id) is outside the vocabulary (ids \(n)..<\(n + specials.count): \(n) tokens, then \(specials.count) special)")
        }
        var tokens = [[UInt8]]()
        tokens.reserveCapacity(min(n, lines.count - at))  // a file too short for n fails in the loop below
        for k in 0..<n {
            guard at + k < lines.count, let bytes = Data(base64Encoded: String(lines[at + k])), !bytes.isEmpty else {
                throw fail(at + k + 1, "token \(k) is not base64")
            }
            tokens.append([UInt8](bytes))
        }
        // BPE falls back to single bytes, so every byte needs a token (in any order: GPT-2's start with "!").
        guard Set(tokens.filter { $0.count == 1 }.map { $0[0] }).count == 256 else {
            throw fail(at + 1, "the tokens do not include all 256 single bytes")
        }
        return Tokenizer(tokens: tokens, pattern: pattern, specialTokens: specials)
    }

    /// Writes tiktoken-style ranks (mergeable tokens only; tiktoken takes special tokens separately).
    public func exportTiktoken(to path: String) throws {
        guard isRankBased else { throw TokenizerError.unsupported(path: path, feature: "exporting a merges-based tokenizer as tiktoken ranks") }
        let text = mergeableTokens.enumerated().map { "\(Data($0.element).base64EncodedString()) \($0.offset)" }
            .joined(separator: "\n") + "\n"
        try writeFileAtomically(path) { try $0.write(Array(text.utf8)) }
    }
}
