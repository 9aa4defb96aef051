// The tokenizer: text to token ids and back. One class for every kind the project reads:
//
//   tiktoken-style byte-level BPE   ranks over raw bytes (a token's id is its rank): GPT-2 (`Tokenizer.gpt2()`),
//                                   the project's own files (`BPETrainer`, `Tokenizer.load`)
//   Hugging Face BPE                merges as pairs of ids with priorities (`MergeModel`): byte-level (SmolLM2,
//                                   Llama 3, Qwen2) or SentencePiece-style with byte fallback (Gemma, Llama 2),
//                                   from a tokenizer.json (`loadHuggingFace`) or GGUF metadata (`init(gguf:path:)`)
//
// Encoding, as Hugging Face does it: added tokens are cut out of the text first; each stretch between them is
// normalized (Replace, Prepend, NFC), rewritten by the pre-tokenizer (Metaspace, ByteLevel's prefix space), split
// by the split pattern, and each piece is encoded by the model. Decoding concatenates each token's bytes (the
// decoder's per-token steps are applied once, at load) and then strips what the decoder strips from the start.
import Foundation

public final class Tokenizer: @unchecked Sendable {  // immutable after init
    /// The split pattern, if it is one of the project's (nil for Llama 3's, Qwen2's, SmolLM's, and SentencePiece-style
    /// tokenizers, which do not split; `kindDescription` names every kind).
    public var pattern: SplitPattern? { split.pattern }
    /// Special tokens by name, e.g. "<|endoftext|>" → 50256 (Hugging Face's special added tokens, GGUF's
    /// control tokens). Matched in text only when encoding with `allowSpecial`.
    public let specialTokens: [String: Int32]
    /// Ids are 0..<vocabSize.
    public let vocabSize: Int
    /// The beginning-of-sequence token, if the tokenizer names one.
    public let bos: Int32?
    /// Every end-of-sequence token (end of text, end of turn, …), the main one first.
    public let eos: [Int32]
    /// Whether a prompt's encoding starts with `bos` (tokenizer_config's or GGUF's add_bos_token, or the
    /// post-processor's template).
    public let addBOS: Bool
    /// Whether an encoding ends with `eos.first` (add_eos_token).
    public let addEOS: Bool

    let model: TokenModel
    let split: SplitRule
    let normalizer: [TextStep]
    let preTokenizerSteps: [TextStep]
    let added: AddedTokenMatcher            // matched in the input
    let addedNormalized: AddedTokenMatcher  // matched in the normalized text
    let leadingStrip: (content: [UInt8], count: Int)?
    private let decodeBytes: [UInt8]     // every token's bytes, back to back
    private let decodeOffsets: [Int]     // token id → its range in decodeBytes (vocabSize + 1 entries)
    let names: [String]?                 // token strings by id (nil: derived from the bytes, tiktoken-style)
    private let idsByName: ByteStringTable  // UTF-8 of a name → id (not [String: _]: String == is canonical equivalence)

    /// GPT-2's <|endoftext|>.
    public static let gpt2EndOfText: Int32 = 50256

    /// A tiktoken-style tokenizer from its mergeable tokens (index = id = merge rank) and special tokens (ids
    /// after them). Every single byte must be one of the tokens.
    public convenience init(tokens: [[UInt8]], pattern: SplitPattern, specialTokens: [String: Int32]) {
        var table = ByteStringTable(capacity: tokens.count)
        for (id, bytes) in tokens.enumerated() { table.insert(bytes, value: Int32(id)) }
        let vocabSize = max(tokens.count, (specialTokens.values.max().map { Int($0) + 1 }) ?? 0)
        var all = [[UInt8]](repeating: [], count: vocabSize)
        for (id, bytes) in tokens.enumerated() { all[id] = bytes }
        for (name, id) in specialTokens { all[Int(id)] = Array(name.utf8) }
        let added = specialTokens.map { AddedToken(content: Array($0.key.utf8), id: $0.value, special: true) }
        let endOfText = specialTokens["<|endoftext|>"]
        self.init(TokenizerParts(
            model: .ranks(table), split: SplitRule(pattern), added: added, tokenBytes: all, names: nil,
            bos: specialTokens["<|bos|>"] ?? endOfText, eos: endOfText.map { [$0] } ?? []))
    }

    init(_ parts: TokenizerParts) {
        model = parts.model
        split = parts.split
        normalizer = parts.normalizer
        preTokenizerSteps = parts.preTokenizerSteps
        added = AddedTokenMatcher(parts.added.filter { !$0.normalized })
        // A normalized added token is matched in normalized text, so its content is normalized too.
        addedNormalized = AddedTokenMatcher(parts.added.filter { $0.normalized }.map { token in
            var t = token
            t.content = token.content.withUnsafeBufferPointer { parts.normalizer.apply(to: $0, atStart: true) }
            return t
        })
        var specials = [String: Int32]()
        for t in parts.added where t.special { specials[String(decoding: t.content, as: UTF8.self)] = t.id }
        specialTokens = specials
        vocabSize = parts.tokenBytes.count
        var offsets = [0]
        offsets.reserveCapacity(vocabSize + 1)
        for t in parts.tokenBytes { offsets.append(offsets.last! + t.count) }
        decodeBytes = parts.tokenBytes.flatMap { $0 }
        decodeOffsets = offsets
        names = parts.names
        var byName = ByteStringTable(capacity: (parts.names?.count ?? 0) + parts.added.count)
        for (id, name) in (parts.names ?? []).enumerated() where !name.isEmpty { byName.insert(Array(name.utf8), value: Int32(id)) }
        for t in parts.added { byName.insert(t.content, value: t.id) }
        idsByName = byName
        bos = parts.bos
        var seen = Set<Int32>()
        eos = parts.eos.filter { seen.insert($0).inserted }
        addBOS = parts.addBOS && parts.bos != nil
        addEOS = parts.addEOS && !parts.eos.isEmpty
        leadingStrip = parts.leadingStrip
    }

    /// The id of a special token such as "<|endoftext|>" or "<|bos|>", if this tokenizer has it.
    public func specialToken(_ name: String) -> Int32? { specialTokens[name] }

    /// The token that separates documents: <|endoftext|> for GPT-2, <|bos|> for chat tokenizers, else BOS.
    public var documentSeparator: Int32? { specialTokens["<|endoftext|>"] ?? specialTokens["<|bos|>"] ?? bos }

    /// A token's string as its vocabulary spells it (GPT-2's byte alphabet for byte-level tokens, "▁" for
    /// spaces in SentencePiece ones, the name of an added token), or nil for an id outside the vocabulary.
    public func name(of id: Int32) -> String? {
        guard id >= 0 && Int(id) < vocabSize else { return nil }
        if let names { return names[Int(id)].isEmpty ? nil : names[Int(id)] }
        if case .ranks(let ranks) = model, Int(id) < ranks.count { return GPT2ByteAlphabet.string(of: ranks.key(at: Int(id))) }
        return specialTokens.first { $0.value == id }?.key
    }

    /// The id of a token string as `name(of:)` spells it.
    public func id(of name: String) -> Int32? {
        if let id = idsByName.lookup(Array(name.utf8)) { return id }
        guard names == nil, case .ranks(let ranks) = model, let bytes = GPT2ByteAlphabet.bytes(of: name) else { return nil }
        return ranks.lookup(bytes)
    }

    // MARK: - Encoding

    /// Token ids for `text`. Special-token names in the text are ordinary text unless `allowSpecial`; other added
    /// tokens (Hugging Face's non-special ones, GGUF's user-defined ones) are always matched.
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        var text = text
        return text.withUTF8 { encode(utf8: $0, allowSpecial: allowSpecial) }
    }

    /// Token ids for `text`, with BOS first if `addBOS` and EOS last if `addEOS` when `addSpecialTokens` (what
    /// Hugging Face's `encode(text, add_special_tokens=True)` gives).
    public func encode(_ text: String, allowSpecial: Bool = false, addSpecialTokens: Bool) -> [Int32] {
        var ids = encode(text, allowSpecial: allowSpecial)
        guard addSpecialTokens else { return ids }
        if addBOS, let bos { ids.insert(bos, at: 0) }
        if addEOS, let end = eos.first { ids.append(end) }
        return ids
    }

    /// Token ids for valid UTF-8 bytes (validate first; see `validateUTF8`).
    public func encode(utf8 text: UnsafeBufferPointer<UInt8>, allowSpecial: Bool = false) -> [Int32] {
        var out = [Int32]()
        out.reserveCapacity(text.count / 3)
        var cache = PieceCache()
        guard added.canMatch(allowSpecial: allowSpecial) else {
            encodeText(text, atStart: true, allowSpecial: allowSpecial, cache: &cache, into: &out)
            return out
        }
        added.split(text, allowSpecial: allowSpecial, piece: { start, end in
            encodeText(UnsafeBufferPointer(rebasing: text[start..<end]), atStart: start == 0, allowSpecial: allowSpecial,
                       cache: &cache, into: &out)
        }, token: { out.append($0) })
        return out
    }

    /// Encodes a large text on several threads. The text is cut only where a piece boundary is certain, so
    /// the result equals `encode(utf8:)`: at a lone newline between printable ASCII and an ASCII letter
    /// ("x\nW"). The newline is then its own piece (or ends a punctuation piece) whether or not the text
    /// ends after it; a longer whitespace run would not be ("\n\n" at the end of text is one piece). Tokenizers
    /// where that is not certain (a normalizer, a prefix, no split pattern, added tokens that are always
    /// matched) encode on one thread.
    public func encodeParallel(utf8 text: UnsafeBufferPointer<UInt8>, threads: Int) -> [Int32] {
        let chunks = max(1, min(threads, text.count / (1 << 16)))
        let cuttable = split.splits && normalizer.isEmpty && preTokenizerSteps.isEmpty && !added.hasNonSpecial
            && !addedNormalized.hasNonSpecial
        if chunks == 1 || !cuttable { return encode(utf8: text) }
        var cuts = [0]
        for k in 1..<chunks {
            var c = max(text.count * k / chunks, cuts.last!)
            while c < text.count && !(c > 1 && text[c - 1] == 0x0A && text[c - 2] > 0x20 && text[c - 2] < 0x7F
                                      && isASCIILetter(text[c])) { c += 1 }
            cuts.append(c)
        }
        cuts.append(text.count)
        var results = [[Int32]](repeating: [], count: chunks)
        results.withUnsafeMutableBufferPointer { results in
            let out = results.baseAddress!
            ParallelFor(threads: chunks)(chunks) { range in
                for k in range {
                    (out + k).pointee = self.encode(utf8: UnsafeBufferPointer(rebasing: text[cuts[k]..<cuts[k + 1]]))
                }
            }
        }
        return results.flatMap { $0 }
    }

    /// One stretch of text between added tokens: normalize, match normalized added tokens, pre-tokenize, encode.
    private func encodeText(_ text: UnsafeBufferPointer<UInt8>, atStart: Bool, allowSpecial: Bool,
                            cache: inout PieceCache, into out: inout [Int32]) {
        guard !text.isEmpty else { return }
        guard !normalizer.isEmpty || addedNormalized.canMatch(allowSpecial: allowSpecial) else {
            preTokenizeAndEncode(text, atStart: atStart, cache: &cache, into: &out)
            return
        }
        let normalized = normalizer.apply(to: text, atStart: atStart)
        normalized.withUnsafeBufferPointer { normalized in
            guard addedNormalized.canMatch(allowSpecial: allowSpecial) else {
                preTokenizeAndEncode(normalized, atStart: atStart, cache: &cache, into: &out)
                return
            }
            addedNormalized.split(normalized, allowSpecial: allowSpecial, piece: { start, end in
                preTokenizeAndEncode(UnsafeBufferPointer(rebasing: normalized[start..<end]), atStart: atStart && start == 0,
                                     cache: &cache, into: &out)
            }, token: { out.append($0) })
        }
    }

    private func preTokenizeAndEncode(_ text: UnsafeBufferPointer<UInt8>, atStart: Bool, cache: inout PieceCache,
                                      into out: inout [Int32]) {
        guard !text.isEmpty else { return }
        if preTokenizerSteps.isEmpty {
            splitAndEncode(text, cache: &cache, into: &out)
        } else {
            let rewritten = preTokenizerSteps.apply(to: text, atStart: atStart)
            rewritten.withUnsafeBufferPointer { splitAndEncode($0, cache: &cache, into: &out) }
        }
    }

    private func splitAndEncode(_ text: UnsafeBufferPointer<UInt8>, cache: inout PieceCache, into out: inout [Int32]) {
        guard !text.isEmpty else { return }
        let scanner = SplitScanner(text: text, rule: split)
        switch model {
        case .ranks(let ranks):
            scanner.forEachPiece { start, end in
                let piece = UnsafeBufferPointer(rebasing: text[start..<end])
                if let r = ranks.lookup(piece.baseAddress!, piece.count) {
                    out.append(r)
                } else {
                    cache.encode(piece, into: &out) { bytePairEncode($0, ranks: ranks, into: &$1) }
                }
            }
        case .merges(let merges):
            scanner.forEachPiece { start, end in
                cache.encode(UnsafeBufferPointer(rebasing: text[start..<end]), into: &out) { merges.encode($0, into: &$1) }
            }
        }
    }

    // MARK: - Decoding

    /// The bytes of `ids` concatenated (special tokens as their names), less what the decoder strips from the
    /// start (Llama 2's leading space).
    public func decode(_ ids: [Int32]) throws(TokenizerError) -> [UInt8] {
        var out = [UInt8]()
        for id in ids { try appendBytes(of: id, to: &out) }
        if let (content, count) = leadingStrip {
            var start = 0
            for _ in 0..<count where out[start...].starts(with: content) { start += content.count }
            out.removeFirst(start)
        }
        return out
    }

    /// The text of `ids`, with invalid UTF-8 (a token sequence cut mid-character) replaced by U+FFFD.
    public func decodeString(_ ids: [Int32]) throws(TokenizerError) -> String {
        String(decoding: try decode(ids), as: UTF8.self)
    }

    /// Appends one token's bytes.
    public func appendBytes(of id: Int32, to out: inout [UInt8]) throws(TokenizerError) {
        guard id >= 0 && Int(id) < vocabSize else { throw .invalidToken(id: id, vocabSize: vocabSize) }
        out.append(contentsOf: decodeBytes[decodeOffsets[Int(id)]..<decodeOffsets[Int(id) + 1]])
    }

    /// One token's bytes.
    public func bytes(of id: Int32) throws(TokenizerError) -> [UInt8] {
        var out = [UInt8]()
        try appendBytes(of: id, to: &out)
        return out
    }

    /// The number of text bytes of each token id (0 for special tokens, which stand for no text): what bits per
    /// byte divides by.
    public func textByteCounts() -> [Int] {
        let special = Set(specialTokens.values)
        return (0..<vocabSize).map { id in
            special.contains(Int32(id)) ? 0 : decodeOffsets[id + 1] - decodeOffsets[id]
        }
    }

    /// The mergeable tokens' bytes in id order (what formats write). For a Hugging Face or GGUF tokenizer, every
    /// token that is not special, in id order.
    public var mergeableTokens: [[UInt8]] {
        if case .ranks(let ranks) = model { return (0..<ranks.count).map { Array(ranks.key(at: $0)) } }
        let special = Set(specialTokens.values)
        return (0..<Int32(vocabSize)).filter { !special.contains($0) }.map { (try? bytes(of: $0)) ?? [] }
    }

    /// Whether the project's tokenizer file can hold this tokenizer (tiktoken-style ranks only).
    public var isRankBased: Bool { if case .ranks = model { true } else { false } }

    /// What kind of tokenizer this is, in a few words: "byte-level BPE (ranks, gpt2 split)",
    /// "byte-level BPE (merges, llama3 split)", "SentencePiece-style BPE (merges, byte fallback)".
    public var kindDescription: String {
        switch model {
        case .ranks: return "byte-level BPE (ranks, \(split.rawValue) split)"
        case .merges(let m) where m.byteTokens != nil: return "byte-level BPE (merges, \(split.rawValue) split)"
        case .merges(let m): return "SentencePiece-style BPE (merges" + (m.byteFallback != nil ? ", byte fallback)" : ")")
        }
    }
}

/// How a tokenizer turns one pre-tokenized piece into ids.
enum TokenModel {
    /// tiktoken: ranks over raw bytes; merge the adjacent parts whose concatenation has the lowest rank.
    case ranks(ByteStringTable)
    /// Hugging Face: merges are pairs of ids with a priority.
    case merges(MergeModel)
}

/// Everything a tokenizer is made of; the loaders fill it in.
struct TokenizerParts {
    var model: TokenModel
    var split: SplitRule
    var normalizer: [TextStep] = []
    var preTokenizerSteps: [TextStep] = []
    var added: [AddedToken] = []
    /// Each id's decoded bytes; its count is the vocabulary size.
    var tokenBytes: [[UInt8]]
    /// Each id's string, "" where no token has the id (nil for tiktoken-style tokenizers, whose strings are
    /// their bytes' GPT-2 spelling).
    var names: [String]?
    var bos: Int32?
    var eos: [Int32] = []
    var addBOS = false
    var addEOS = false
    var leadingStrip: (content: [UInt8], count: Int)?
}

@inline(__always) private func isASCIILetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }

/// Remembers the tokens of pieces already encoded in one call: words repeat, merges are the costly part.
struct PieceCache {
    private var table = ByteStringTable(capacity: 4096)
    private var starts: [Int32] = []
    private var tokens: [Int32] = []
    private static let maxEntries = 1 << 18

    /// Appends the tokens of `piece`, from the cache or else from `encodePiece`.
    mutating func encode(_ piece: UnsafeBufferPointer<UInt8>, into out: inout [Int32],
                         _ encodePiece: (UnsafeBufferPointer<UInt8>, inout [Int32]) -> Void) {
        let p = piece.baseAddress!, n = piece.count
        if let e = table.lookup(p, n) {
            let s = Int(starts[Int(e)]), end = Int(e) + 1 < starts.count ? Int(starts[Int(e) + 1]) : tokens.count
            out.append(contentsOf: tokens[s..<end])
            return
        }
        let before = out.count
        encodePiece(piece, &out)
        guard n <= 256 else { return }  // long runs are rare; don't fill the cache with them
        if table.count >= PieceCache.maxEntries {
            table.removeAll()
            starts.removeAll(keepingCapacity: true)
            tokens.removeAll(keepingCapacity: true)
        }
        table.insert(p, n, value: Int32(starts.count))
        starts.append(Int32(tokens.count))
        tokens.append(contentsOf: out[before...])
    }
}
