// GPT-2's vocabulary files: `encoder.json` (token string → id) and `vocab.bpe` (the merges in rank order),
// both in the byte-to-unicode alphabet GPT-2 uses to keep tokens printable; and llm.c's
// `gpt2_tokenizer.bin` (magic 20240328, version 2), which holds each token's raw bytes for decoding.
import Foundation

extension Tokenizer {
    /// GPT-2's tokenizer from the vocabulary shipped with the package (works offline).
    public static func gpt2() throws -> Tokenizer {
        let dir = try PackageResources.folder("gpt2", containing: "encoder.json")
        return try gpt2(encoderJSON: dir + "/encoder.json", vocabBPE: dir + "/vocab.bpe")
    }

    /// GPT-2's tokenizer from its two files. Checks that the ids in encoder.json follow vocab.bpe's merge
    /// order (tiktoken checks the same), so a token's id is its merge rank.
    public static func gpt2(encoderJSON: String, vocabBPE: String) throws -> Tokenizer {
        let toByte = GPT2ByteAlphabet.unicodeToByte
        guard let data = FileManager.default.contents(atPath: encoderJSON) else {
            throw TokenizerError.unreadable(path: encoderJSON, reason: "no such file or not readable")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError.malformed(path: encoderJSON, reason: "not a JSON object")
        }
        var tokens = [[UInt8]?](repeating: nil, count: json.count)
        var special = [String: Int32]()
        for (key, value) in json {
            guard let id = (value as? NSNumber)?.intValue, id >= 0, id < json.count, tokens[id] == nil else {
                throw TokenizerError.malformed(path: encoderJSON, reason: "bad or duplicate id for \(key.debugDescription)")
            }
            if key == "<|endoftext|>" {
                special[key] = Int32(id)
                tokens[id] = []
                continue
            }
            var bytes = [UInt8]()
            for scalar in key.unicodeScalars {
                guard let b = toByte[scalar.value] else {
                    throw TokenizerError.malformed(path: encoderJSON, reason: "token \(key.debugDescription) uses a character outside GPT-2's byte alphabet")
                }
                bytes.append(b)
            }
            tokens[id] = bytes
        }
        guard let eot = special["<|endoftext|>"], Int(eot) == json.count - 1 else {
            throw TokenizerError.malformed(path: encoderJSON, reason: "<|endoftext|> must be the last id")
        }
        let mergeable = tokens.prefix(Int(eot)).map { $0! }
        try checkMergeOrder(mergeable, vocabBPE: vocabBPE)
        return Tokenizer(tokens: mergeable, pattern: .gpt2, specialTokens: special)
    }

    /// Ids 0–255 must be single bytes and id 256 + k the k-th merge of vocab.bpe.
    private static func checkMergeOrder(_ tokens: [[UInt8]], vocabBPE: String) throws {
        guard let data = FileManager.default.contents(atPath: vocabBPE) else {
            throw TokenizerError.unreadable(path: vocabBPE, reason: "no such file or not readable")
        }
        let toByte = GPT2ByteAlphabet.unicodeToByte
        func bytes(_ s: Substring) throws -> [UInt8] {
            try s.unicodeScalars.map {
                guard let b = toByte[$0.value] else {
                    throw TokenizerError.malformed(path: vocabBPE, reason: "merge uses a character outside GPT-2's byte alphabet")
                }
                return b
            }
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        let merges = lines.filter { !$0.hasPrefix("#version") }
        guard tokens.count == 256 + merges.count, tokens.prefix(256).allSatisfy({ $0.count == 1 }) else {
            throw TokenizerError.malformed(path: vocabBPE, reason: "\(merges.count) merges for \(tokens.count) tokens in encoder.json")
        }
        for (k, line) in merges.enumerated() {
            let parts = line.split(separator: " ")
            guard parts.count == 2, try bytes(parts[0]) + bytes(parts[1]) == tokens[256 + k] else {
                throw TokenizerError.malformed(path: vocabBPE, reason: "merge \(k + 1) (\(line)) does not match id \(256 + k) in encoder.json")
            }
        }
    }

    /// Decoding-only tokenizer from llm.c's gpt2_tokenizer.bin: 256 × int32 header
    /// [20240328, 2, vocab_size, eot_token], then per token a length byte and that many raw bytes.
    /// Its tokens carry no merge order, so it cannot encode; use it to decode ids.
    public static func llmcDecoder(_ path: String) throws -> Tokenizer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.unreadable(path: path, reason: "no such file or not readable")
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 1024 else { throw TokenizerError.malformed(path: path, reason: "shorter than its 1024-byte header") }
        func int(_ i: Int) -> Int { Int(Int32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i * 4, as: Int32.self) })) }
        guard int(0) == 20_240_328 else { throw TokenizerError.malformed(path: path, reason: "bad magic number \(int(0)) (expected 20240328)") }
        guard int(1) == 2 else { throw TokenizerError.malformed(path: path, reason: "unsupported version \(int(1)) (supported: 2)") }
        let vocab = int(2), eot = int(3)
        guard vocab > 256, eot >= 0, eot < vocab else { throw TokenizerError.malformed(path: path, reason: "vocab size \(vocab), eot \(eot)") }
        var tokens = [[UInt8]](), at = 1024
        for id in 0..<vocab {
            guard at < bytes.count else { throw TokenizerError.malformed(path: path, reason: "truncated at token \(id) of \(vocab)") }
            let n = Int(bytes[at])
            guard n > 0, at + 1 + n <= bytes.count else { throw TokenizerError.malformed(path: path, reason: "bad length \(n) for token \(id)") }
            tokens.append(Array(bytes[at + 1..<at + 1 + n]))
            at += 1 + n
        }
        guard at == bytes.count else { throw TokenizerError.malformed(path: path, reason: "\(bytes.count - at) bytes after the last token") }
        let name = String(decoding: tokens[eot], as: UTF8.self)
        var mergeable = tokens
        mergeable.removeSubrange(eot...)  // the eot token is the last one in GPT-2's table
        // Encoding falls back to single bytes, so every byte needs a token (as in the project's tokenizer file).
        guard Set(mergeable.filter { $0.count == 1 }.map { $0[0] }).count == 256 else {
            throw TokenizerError.malformed(path: path, reason: "the tokens before eot \(eot) do not include all 256 single bytes")
        }
        return Tokenizer(tokens: mergeable, pattern: .gpt2, specialTokens: [name: Int32(eot)])
    }

    /// Writes llm.c's gpt2_tokenizer.bin (version 2) for this tokenizer, atomically.
    public func writeLLMCDecoder(to path: String) throws {
        guard let eot = documentSeparator else { throw TokenizerError.malformed(path: path, reason: "tokenizer has no end-of-text token") }
        var header = [Int32](repeating: 0, count: 256)
        header[0] = 20_240_328
        header[1] = 2
        header[2] = Int32(vocabSize)
        header[3] = eot
        var body = [UInt8]()
        for id in 0..<Int32(vocabSize) {
            let b = try bytes(of: id)
            guard !b.isEmpty, b.count < 256 else { throw TokenizerError.malformed(path: path, reason: "token \(id) has \(b.count) bytes") }
            body.append(UInt8(b.count))
            body += b
        }
        try writeFileAtomically(path) { out in
            try out.write(int32s: header)
            try out.write(body)
        }
    }
}

/// GPT-2's reversible map from bytes to printable characters (bytes that are printable Latin-1 map to
/// themselves; the rest to U+0100 onwards in order).
enum GPT2ByteAlphabet {
    static let byteToUnicode: [UInt32] = {
        var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var chars = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            chars.append(256 + n)
            n += 1
        }
        var table = [UInt32](repeating: 0, count: 256)
        for (b, c) in zip(printable, chars) { table[b] = UInt32(c) }
        return table
    }()

    static let unicodeToByte: [UInt32: UInt8] = {
        var map = [UInt32: UInt8]()
        for (b, c) in byteToUnicode.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// The bytes a token string in this alphabet stands for (nil if a character is outside it).
    static func bytes(of token: String) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            guard s.value < 0x144, let b = unicodeToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }

    /// The token string for raw bytes.
    static func string(of bytes: some Sequence<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(byteToUnicode[Int(b)])!) }
        return String(s)
    }
}
