// The tokenizer a GGUF file carries in its metadata (llama.cpp's keys), built the way transformers builds a
// Hugging Face tokenizer from the same file (`AutoTokenizer.from_pretrained(..., gguf_file=...)`), so that
// encodings match Hugging Face's:
//
//   tokenizer.ggml.model "gpt2"   byte-level BPE: tokens in GPT-2's byte alphabet, merges "a b", and
//                                 tokenizer.ggml.pre naming the split pattern
//   tokenizer.ggml.model "llama"  SentencePiece-style BPE with byte fallback: tokens with "▁" for spaces and
//                                 "<0x0A>" byte tokens. The file has no merges; they are derived from the
//                                 vocabulary as transformers' generate_merges does: every split of a token into two
//                                 tokens, best first by the token's score (for Gemma by its position, since Gemma's
//                                 scores do not follow its merge order), then the longer left part, longer right part
//
// Control tokens (token_type 3) are special tokens; user-defined ones (4) are added tokens matched in any text.
// Where the real model's tokenizer.json differs from transformers' builder, the real one is followed: "smollm"
// and "starcoder" split digits one by one (as llama.cpp does), Llama 3's pre-tokenizers take a piece that is a
// token whole (ignore_merges).

extension Tokenizer {
    /// The tokenizer in a GGUF file's metadata; `path` names the file in errors.
    public convenience init(gguf metadata: GGUFMetadata, path: String) throws {
        self.init(try GGUFTokenizerReader(metadata: metadata, path: path).parts())
    }
}

struct GGUFTokenizerReader {
    let metadata: GGUFMetadata
    let path: String

    /// tokenizer.ggml.pre of byte-level vocabularies → split rule.
    static let splitRules: [String: SplitRule] = [
        "default": .gpt2, "gpt-2": .gpt2, "gpt2": .gpt2,
        "smollm": .smollm, "starcoder": .smollm,
        "llama3": .llama3, "llama-v3": .llama3, "llama-bpe": .llama3, "falcon3": .llama3, "smaug-bpe": .llama3,
        "dbrx": .llama3,
        "qwen2": .qwen2, "deepseek-r1-qwen": .qwen2,
    ]

    private static let tokenTypeControl = 3, tokenTypeUserDefined = 4

    func fail(_ key: String, _ why: String) -> TokenizerError { .malformed(path: path, reason: "\(key): \(why)") }

    func parts() throws(TokenizerError) -> TokenizerParts {
        guard let model = metadata["tokenizer.ggml.model"] else {
            throw fail("tokenizer.ggml.model", "missing (the file carries no tokenizer)")
        }
        guard let modelName = model.string else { throw fail("tokenizer.ggml.model", "expected a string") }
        guard let tokens = metadata["tokenizer.ggml.tokens"]?.strings else {
            throw fail("tokenizer.ggml.tokens", "missing or not an array of strings")
        }
        guard (1...maxVocabularySize).contains(tokens.count) else {
            throw fail("tokenizer.ggml.tokens", "\(tokens.count) tokens (expected 1...\(maxVocabularySize))")
        }
        let types = try numbers("tokenizer.ggml.token_type", count: tokens.count, \.ints) ?? []
        var parts: TokenizerParts
        switch modelName {
        case "gpt2": parts = try byteLevel(tokens, types: types)
        case "llama": parts = try sentencePiece(tokens, types: types)
        default: throw TokenizerError.unsupported(path: path, feature: "tokenizer.ggml.model \(modelName) (supported: gpt2, llama)")
        }
        parts.bos = try tokenId("tokenizer.ggml.bos_token_id", count: tokens.count)
        for kind in ["eos", "eot", "eom"] {
            if let id = try tokenId("tokenizer.ggml.\(kind)_token_id", count: tokens.count) { parts.eos.append(id) }
        }
        parts.addBOS = try bool("tokenizer.ggml.add_bos_token") ?? (modelName == "llama")
        parts.addEOS = try bool("tokenizer.ggml.add_eos_token") ?? false
        return parts
    }

    // MARK: - Byte-level ("gpt2")

    private func byteLevel(_ tokens: [String], types: [Int]) throws(TokenizerError) -> TokenizerParts {
        let pre = try string("tokenizer.ggml.pre") ?? "default"
        guard let split = GGUFTokenizerReader.splitRules[pre] else {
            throw TokenizerError.unsupported(path: path, feature: "tokenizer.ggml.pre \(pre) (supported: \(GGUFTokenizerReader.splitRules.keys.sorted().joined(separator: ", ")))")
        }
        // A token with a character outside the byte alphabet is spelled in it from its UTF-8, as transformers does.
        let alphabet = Set(GPT2ByteAlphabet.byteToUnicode)
        func inAlphabet(_ t: String) -> Bool { t.unicodeScalars.allSatisfy { alphabet.contains($0.value) } }
        let names = tokens.map { inAlphabet($0) ? $0 : GPT2ByteAlphabet.string(of: $0.utf8) }
        let vocabulary = MergeVocabulary(names: names)
        guard let mergeLines = metadata["tokenizer.ggml.merges"]?.strings else {
            throw fail("tokenizer.ggml.merges", "missing or not an array of strings")
        }
        var merges = [(String, String)]()
        merges.reserveCapacity(mergeLines.count)
        for (k, line) in mergeLines.enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw fail("tokenizer.ggml.merges[\(k)]", "\(line.debugDescription) is not two tokens separated by a space") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        let table = try vocabulary.mergeTable(merges) { k, why in fail("tokenizer.ggml.merges[\(k)]", why) }
        let model = vocabulary.byteLevelModel(merges: table, unknown: nil, fuseUnknown: false, ignoreMerges: split == .llama3)
        // Control tokens outside the alphabet are llama.cpp mislabels; transformers skips them, and so do we.
        let added = try addedTokens(tokens, types: types, vocabulary: vocabulary) { inAlphabet($0) }
        var namesWithAdded = names
        for t in added { namesWithAdded[Int(t.id)] = String(decoding: t.content, as: UTF8.self) }
        return TokenizerParts(model: .merges(model), split: split, added: added,
                              tokenBytes: namesWithAdded.map { TokenDecoder.byteLevel.bytes(of: $0) }, names: namesWithAdded)
    }

    // MARK: - SentencePiece-style ("llama")

    private func sentencePiece(_ tokens: [String], types: [Int]) throws(TokenizerError) -> TokenizerParts {
        let architecture = try string("general.architecture") ?? ""
        let gemma = ["gemma", "gemma2", "gemma3"].contains(architecture)
        // Gemma files store runs of spaces as spaces; its tokenizer spells them "▁▁…".
        let names = gemma ? tokens.map { t in
            t.unicodeScalars.contains(" ") && t.unicodeScalars.allSatisfy(\.properties.isWhitespace)
                ? String(repeating: "▁", count: t.unicodeScalars.count) : t
        } : tokens
        let vocabulary = MergeVocabulary(names: names)
        let table: PairTable
        if let lines = metadata["tokenizer.ggml.merges"] {
            guard let lines = lines.strings else { throw fail("tokenizer.ggml.merges", "expected an array of strings") }
            var merges = [(String, String)]()
            for (k, line) in lines.enumerated() {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("tokenizer.ggml.merges[\(k)]", "\(line.debugDescription) is not two tokens separated by a space") }
                merges.append((String(parts[0]), String(parts[1])))
            }
            table = try vocabulary.mergeTable(merges) { k, why in fail("tokenizer.ggml.merges[\(k)]", why) }
        } else if gemma {
            table = derivedMerges(vocabulary) { -Double($0) }
        } else {
            guard let scores = try numbers("tokenizer.ggml.scores", count: tokens.count, \.floats) else {
                throw fail("tokenizer.ggml.scores", "missing (a llama vocabulary without merges needs scores)")
            }
            guard scores.allSatisfy(\.isFinite) else { throw fail("tokenizer.ggml.scores", "not all finite") }
            table = derivedMerges(vocabulary) { Double(scores[$0]) }
        }
        let unknownId = try tokenId("tokenizer.ggml.unknown_token_id", count: tokens.count)
        // transformers' GemmaTokenizer has an unknown token; its LlamaTokenizer gives BPE none.
        let unknown = gemma ? vocabulary.id(unknownId.map { tokens[Int($0)] } ?? "<unk>") : nil
        let model = vocabulary.characterModel(merges: table, byteFallback: true, unknown: unknown, fuseUnknown: true,
                                              ignoreMerges: false)
        let added = try addedTokens(tokens, types: types, vocabulary: vocabulary) { _ in true }

        let space: [UInt8] = [0x20], metaspace = Array("▁".utf8)
        let decoder = TokenDecoder(perToken: [.replace(from: metaspace, to: space), .byteFallback])
        var parts = TokenizerParts(model: .merges(model), split: .whole, added: added, tokenBytes: [], names: nil)
        let addPrefix = try bool("tokenizer.ggml.add_space_prefix") ?? true
        if gemma {
            parts.normalizer = [.replace(from: space, to: metaspace)]
        } else if architecture == "phi3" {
            parts.normalizer = [.prepend(metaspace), .replace(from: space, to: metaspace)]
        } else {
            parts.preTokenizerSteps = [.replace(from: space, to: metaspace)]
            if addPrefix { parts.preTokenizerSteps.append(.prefixUnlessPresent(metaspace, firstOnly: true)) }
        }
        if !gemma && addPrefix { parts.leadingStrip = (space, 1) }  // Llama's decoder: Strip(" ", 1, 0)
        var namesWithAdded = names
        for t in added { namesWithAdded[Int(t.id)] = String(decoding: t.content, as: UTF8.self) }
        parts.names = namesWithAdded
        parts.tokenBytes = namesWithAdded.map { decoder.bytes(of: $0) }
        return parts
    }

    /// transformers' generate_merges: for each distinct token (first occurrence order), every split into two
    /// tokens, ordered by the ids of the parts; then all of them best first by the token's score (`score(id)` of
    /// the token's last id), the longer left part, the longer right part, and that order (a stable sort).
    private func derivedMerges(_ vocabulary: MergeVocabulary, score: (Int) -> Double) -> PairTable {
        struct Candidate {
            let score: Double, leftLength: Int32, rightLength: Int32, order: Int32
            let left: Int32, right: Int32, merged: Int32
        }
        var candidates = [Candidate]()
        candidates.reserveCapacity(vocabulary.names.count * 2)
        var seen = ByteStringTable(capacity: vocabulary.names.count)
        for name in vocabulary.names {
            let bytes = Array(name.utf8)
            guard bytes.count > 1, seen.lookup(bytes) == nil else { continue }
            seen.insert(bytes, value: 0)
            let merged = vocabulary.id(bytes)!
            let tokenScore = score(Int(merged))
            var local = [(left: Int32, right: Int32, leftLength: Int32, rightLength: Int32)]()
            let scalarCount = Int32(name.unicodeScalars.count)
            var cut = 0, leftLength: Int32 = 0
            for s in name.unicodeScalars.dropLast() {
                cut += UTF8.width(s)
                leftLength += 1
                if let l = vocabulary.id(bytes[..<cut]), let r = vocabulary.id(bytes[cut...]) {
                    local.append((l, r, leftLength, scalarCount - leftLength))
                }
            }
            local.sort { ($0.left, $0.right) < ($1.left, $1.right) }
            for m in local {
                candidates.append(Candidate(score: tokenScore, leftLength: m.leftLength, rightLength: m.rightLength,
                                            order: Int32(candidates.count), left: m.left, right: m.right, merged: merged))
            }
        }
        candidates.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.leftLength != b.leftLength { return a.leftLength > b.leftLength }
            if a.rightLength != b.rightLength { return a.rightLength > b.rightLength }
            return a.order < b.order
        }
        var table = PairTable(capacity: candidates.count)
        for (rank, c) in candidates.enumerated() {
            table.insert(left: c.left, right: c.right, rank: Int32(rank), merged: c.merged)
        }
        return table
    }

    // MARK: - Added tokens and metadata values

    /// Special added tokens: the control tokens `keepControl` accepts and the tokens the BOS, EOS, unknown and
    /// padding ids name (transformers makes those special too); then user-defined tokens that the vocabulary
    /// spells as the file does, as plain added tokens. Each takes the vocabulary's id for its string.
    private func addedTokens(_ tokens: [String], types: [Int], vocabulary: MergeVocabulary,
                             keepControl: (String) -> Bool) throws(TokenizerError) -> [AddedToken] {
        var out = [AddedToken]()
        var special = [Int]()
        for (i, type) in types.enumerated() where type == GGUFTokenizerReader.tokenTypeControl && keepControl(tokens[i]) {
            special.append(i)
        }
        for kind in ["bos", "eos", "unknown", "padding"] {
            if let id = try tokenId("tokenizer.ggml.\(kind)_token_id", count: tokens.count), !special.contains(Int(id)) {
                special.append(Int(id))
            }
        }
        for i in special {
            if let id = vocabulary.id(tokens[i]) { out.append(AddedToken(content: Array(tokens[i].utf8), id: id, special: true)) }
        }
        for (i, type) in types.enumerated() where type == GGUFTokenizerReader.tokenTypeUserDefined {
            if let id = vocabulary.id(tokens[i]) { out.append(AddedToken(content: Array(tokens[i].utf8), id: id)) }
        }
        return out
    }

    private func string(_ key: String) throws(TokenizerError) -> String? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.string else { throw fail(key, "expected a string") }
        return s
    }

    private func bool(_ key: String) throws(TokenizerError) -> Bool? {
        guard let v = metadata[key] else { return nil }
        guard let b = v.bool else { throw fail(key, "expected a boolean") }
        return b
    }

    /// A token id that must be in the vocabulary.
    private func tokenId(_ key: String, count: Int) throws(TokenizerError) -> Int32? {
        guard let v = metadata[key] else { return nil }
        guard let id = v.int, (0..<count).contains(id) else { throw fail(key, "expected a token id below \(count)") }
        return Int32(id)
    }

    /// An array of numbers with one per token.
    private func numbers<T>(_ key: String, count: Int, _ get: KeyPath<GGUFValue, [T]?>) throws(TokenizerError) -> [T]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v[keyPath: get] else { throw fail(key, "expected an array of numbers") }
        guard a.count == count else { throw fail(key, "\(a.count) values for \(count) tokens") }
        return a
    }
}
