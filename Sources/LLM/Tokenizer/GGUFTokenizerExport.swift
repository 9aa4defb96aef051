// Writing a tokenizer as GGUF metadata (llama.cpp's tokenizer.ggml.* keys) for a model export: the inverse of
// `Tokenizer(gguf:path:)`, so the file reads back to a tokenizer that encodes the same.
//
//   byte-level (tiktoken ranks or merges)  model "gpt2": tokens in GPT-2's byte alphabet, merges "a b" best first
//                                          (for tiktoken ranks, each token's two parts as tiktoken finds them: BPE
//                                          with only the ranks below the token's), pre named by the split pattern
//   SentencePiece-style                    model "llama": tokens with "▁", the merges (which transformers and this
//                                          reader use), and scores that order tokens as the merges do (llama.cpp
//                                          merges by score)
//
// Ids the model has beyond the tokenizer's are written as unused "[PAD<id>]" tokens, as llama.cpp's converter does.

extension Tokenizer {
    /// The tokenizer.ggml.* metadata for a model of `vocabularySize` ids (≥ `vocabSize`). Throws `unsupported`
    /// (naming `path`) for what a GGUF tokenizer cannot say: a split pattern llama.cpp has no name for, a prefix space
    /// on byte-level text.
    public func ggufMetadata(vocabularySize: Int, path: String) throws(TokenizerError) -> [(String, GGUFValue)] {
        guard vocabularySize >= vocabSize else {
            throw .malformed(path: path, reason: "a model of \(vocabularySize) ids cannot hold a tokenizer of \(vocabSize)")
        }
        let specialIds = Set(specialTokens.values)
        let userDefinedIds = added.nonSpecialIds.union(addedNormalized.nonSpecialIds)

        var tokens = [String](), merges = [String]()
        var scores: [Float]?
        let modelName: String
        var metadata = [(String, GGUFValue)]()
        switch model {
        case .ranks(let ranks):
            modelName = "gpt2"
            tokens = (0..<vocabSize).map { name(of: Int32($0)) ?? "" }
            merges = try rankMerges(ranks).map { (l, r) throws(TokenizerError) in try mergeLine(tokens[Int(l)], tokens[Int(r)], path) }
            metadata.append(("tokenizer.ggml.pre", .string(try preName(path))))
        case .merges(let m):
            tokens = (0..<vocabSize).map { names?[$0] ?? "" }
            var ordered = [(rank: Int32, left: Int32, right: Int32, merged: Int32)]()
            m.merges.forEach { l, r, rank, merged in ordered.append((rank, l, r, merged)) }
            ordered.sort { $0.rank < $1.rank }
            for e in ordered { merges.append(try mergeLine(tokens[Int(e.left)], tokens[Int(e.right)], path)) }
            if m.byteTokens != nil {
                modelName = "gpt2"
                metadata.append(("tokenizer.ggml.pre", .string(try preName(path))))
            } else {
                modelName = "llama"
                // A token's score: minus the best rank that makes it, so merging by score follows the merges.
                var best = [Float](repeating: 0, count: vocabularySize)
                for e in ordered.reversed() { best[Int(e.merged)] = -Float(e.rank) - 1 }
                scores = best
                if let unknown = m.unknown { metadata.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown)))) }
                let metaspace = Array("▁".utf8)
                let prefix = preTokenizerSteps.contains(.prefixUnlessPresent(metaspace, firstOnly: true))
                    || normalizer.contains(.prepend(metaspace))
                metadata.append(("tokenizer.ggml.add_space_prefix", .bool(prefix)))
            }
        }
        // Token types: 1 normal, 3 control, 4 user-defined, 5 unused, 6 byte.
        let types: [Int32] = tokens.indices.map { id in
            let t = tokens[id]
            if specialIds.contains(Int32(id)) { return 3 }
            if userDefinedIds.contains(Int32(id)) { return 4 }
            if modelName == "llama" && t.utf8.count == 6 && t.hasPrefix("<0x") && t.hasSuffix(">") { return 6 }
            return 1
        } + [Int32](repeating: 5, count: vocabularySize - vocabSize)
        for id in vocabSize..<vocabularySize { tokens.append("[PAD\(id)]") }

        var out: [(String, GGUFValue)] = [("tokenizer.ggml.model", .string(modelName))]
        out += metadata
        out.append(("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })))
        if let scores { out.append(("tokenizer.ggml.scores", .array(scores.map { .float32($0) }))) }
        out.append(("tokenizer.ggml.token_type", .array(types.map { .int32($0) })))
        out.append(("tokenizer.ggml.merges", .array(merges.map { .string($0) })))
        if let bos { out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let end = eos.first { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(end)))) }
        out.append(("tokenizer.ggml.add_bos_token", .bool(addBOS)))
        out.append(("tokenizer.ggml.add_eos_token", .bool(addEOS)))
        return out
    }

    /// llama.cpp's name for the split pattern of a byte-level tokenizer.
    private func preName(_ path: String) throws(TokenizerError) -> String {
        guard preTokenizerSteps.isEmpty else {
            throw .unsupported(path: path, feature: "a byte-level tokenizer with a prefix space in GGUF")
        }
        switch split {
        case .gpt2: return "gpt-2"
        case .llama3: return "llama-bpe"
        case .qwen2: return "qwen2"
        case .smollm: return "smollm"
        case .gpt4, .whole: throw .unsupported(path: path, feature: "the \(split.rawValue) split in GGUF (llama.cpp has no name for it)")
        }
    }

    private func mergeLine(_ left: String, _ right: String, _ path: String) throws(TokenizerError) -> String {
        guard !left.isEmpty, !right.isEmpty, !left.contains(" "), !right.contains(" ") else {
            throw .unsupported(path: path, feature: "a merge of \(left.debugDescription) and \(right.debugDescription) in GGUF's \"a b\" form")
        }
        return left + " " + right
    }

    /// tiktoken ranks as merges, best first: each token of two or more bytes split in two as BPE with only the
    /// lower ranks splits it (tokens BPE cannot make from two parts have no merge).
    private func rankMerges(_ ranks: ByteStringTable) -> [(Int32, Int32)] {
        var out = [(Int32, Int32)]()
        for id in 0..<ranks.count {
            let bytes = Array(ranks.key(at: id))
            guard bytes.count > 1 else { continue }
            var cuts = Array(0...bytes.count)  // part k is bytes[cuts[k]..<cuts[k + 1]]
            while cuts.count > 3 {
                var best = Int32(id), at = -1
                for k in 0..<cuts.count - 2 {
                    if let r = ranks.lookup(Array(bytes[cuts[k]..<cuts[k + 2]])), r < best { best = r; at = k }
                }
                if at < 0 { break }
                cuts.remove(at: at + 1)
            }
            guard cuts.count == 3, let l = ranks.lookup(Array(bytes[..<cuts[1]])), let r = ranks.lookup(Array(bytes[cuts[1]...])) else {
                continue
            }
            out.append((l, r))
        }
        return out
    }
}
