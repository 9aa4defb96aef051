// A byte-level BPE tokenizer in tiktoken's model: ranks over raw bytes (a token's id is its rank), a split
// pattern that cuts text into pieces first, and named special tokens after the merges. GPT-2's tokenizer is
// one (`Tokenizer.gpt2()`); `BPETrainer` makes others.
import Foundation

public final class Tokenizer: @unchecked Sendable {  // immutable after init
    public let pattern: SplitPattern
    /// Special tokens by name, e.g. "<|endoftext|>" → 50256.
    public let specialTokens: [String: Int32]
    /// Ids 0..<vocabSize: the mergeable tokens, then the special tokens.
    public let vocabSize: Int

    let ranks: ByteStringTable           // mergeable token bytes → id
    private let decodeBytes: [UInt8]     // every token's bytes, back to back
    private let decodeOffsets: [Int]     // token id → its range in decodeBytes (vocabSize + 1 entries)
    private let specialsBySize: [(bytes: [UInt8], id: Int32)]  // longest first, for matching in text

    /// GPT-2's <|endoftext|>.
    public static let gpt2EndOfText: Int32 = 50256

    /// A tokenizer from its mergeable tokens (index = id) and special tokens (ids after them).
    /// Every single byte must be one of the tokens.
    public init(tokens: [[UInt8]], pattern: SplitPattern, specialTokens: [String: Int32]) {
        var table = ByteStringTable(capacity: tokens.count)
        for (id, bytes) in tokens.enumerated() { table.insert(bytes, value: Int32(id)) }
        ranks = table
        self.pattern = pattern
        self.specialTokens = specialTokens
        vocabSize = max(tokens.count, (specialTokens.values.max().map { Int($0) + 1 }) ?? 0)
        var all = [[UInt8]](repeating: [], count: vocabSize)
        for (id, bytes) in tokens.enumerated() { all[id] = bytes }
        for (name, id) in specialTokens { all[Int(id)] = Array(name.utf8) }
        var offsets = [0]
        for t in all { offsets.append(offsets.last! + t.count) }
        decodeBytes = all.flatMap { $0 }
        decodeOffsets = offsets
        specialsBySize = specialTokens.map { (Array($0.key.utf8), $0.value) }.sorted { $0.bytes.count > $1.bytes.count }
    }

    /// The id of a special token such as "<|endoftext|>" or "<|bos|>", if this tokenizer has it.
    public func specialToken(_ name: String) -> Int32? { specialTokens[name] }

    /// The token that separates documents: <|endoftext|> for GPT-2, <|bos|> for chat tokenizers.
    public var documentSeparator: Int32? { specialTokens["<|endoftext|>"] ?? specialTokens["<|bos|>"] }

    // MARK: - Encoding

    /// Token ids for `text`. Special-token names in the text are ordinary text unless `allowSpecial`.
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        var text = text
        return text.withUTF8 { encode(utf8: $0, allowSpecial: allowSpecial) }
    }

    /// Token ids for valid UTF-8 bytes (validate first; see `validateUTF8`).
    public func encode(utf8 text: UnsafeBufferPointer<UInt8>, allowSpecial: Bool = false) -> [Int32] {
        var out = [Int32]()
        out.reserveCapacity(text.count / 3)
        var cache = PieceCache()
        guard allowSpecial, !specialsBySize.isEmpty else {
            encodeOrdinary(text, cache: &cache, into: &out)
            return out
        }
        var start = 0, i = 0
        while i < text.count {
            if text[i] == 0x3C, let (length, id) = special(at: i, in: text) {  // '<'
                encodeOrdinary(UnsafeBufferPointer(rebasing: text[start..<i]), cache: &cache, into: &out)
                out.append(id)
                i += length
                start = i
            } else {
                i += 1
            }
        }
        encodeOrdinary(UnsafeBufferPointer(rebasing: text[start..<text.count]), cache: &cache, into: &out)
        return out
    }

    /// Encodes a large text on several threads. The text is cut only where a piece boundary is certain, so
    /// the result equals `encode(utf8:)`: at a lone newline between printable ASCII and an ASCII letter
    /// ("x\nW"). The newline is then its own piece (or ends a punctuation piece) whether or not the text
    /// ends after it; a longer whitespace run would not be ("\n\n" at the end of text is one piece).
    public func encodeParallel(utf8 text: UnsafeBufferPointer<UInt8>, threads: Int) -> [Int32] {
        let chunks = max(1, min(threads, text.count / (1 << 16)))
        if chunks == 1 { return encode(utf8: text) }
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

    private func special(at i: Int, in text: UnsafeBufferPointer<UInt8>) -> (Int, Int32)? {
        for s in specialsBySize where s.bytes.count <= text.count - i {
            if s.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, text.baseAddress! + i, $0.count) == 0 }) {
                return (s.bytes.count, s.id)
            }
        }
        return nil
    }

    private func encodeOrdinary(_ text: UnsafeBufferPointer<UInt8>, cache: inout PieceCache, into out: inout [Int32]) {
        guard !text.isEmpty else { return }
        SplitScanner(text: text, pattern: pattern).forEachPiece { start, end in
            let piece = UnsafeBufferPointer(rebasing: text[start..<end])
            if let r = ranks.lookup(piece.baseAddress!, piece.count) {
                out.append(r)
            } else {
                cache.encode(piece, ranks: ranks, into: &out)
            }
        }
    }

    // MARK: - Decoding

    /// The bytes of `ids` concatenated (special tokens as their names).
    public func decode(_ ids: [Int32]) throws(TokenizerError) -> [UInt8] {
        var out = [UInt8]()
        for id in ids { try appendBytes(of: id, to: &out) }
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

    /// The mergeable tokens' bytes in id order (what formats write).
    public var mergeableTokens: [[UInt8]] { (0..<ranks.count).map { Array(ranks.key(at: $0)) } }
}

@inline(__always) private func isASCIILetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }

/// Remembers the tokens of pieces already encoded in one call: words repeat, merges are the costly part.
struct PieceCache {
    private var table = ByteStringTable(capacity: 4096)
    private var starts: [Int32] = []
    private var tokens: [Int32] = []
    private static let maxEntries = 1 << 18

    mutating func encode(_ piece: UnsafeBufferPointer<UInt8>, ranks: ByteStringTable, into out: inout [Int32]) {
        let p = piece.baseAddress!, n = piece.count
        if let e = table.lookup(p, n) {
            let s = Int(starts[Int(e)]), end = Int(e) + 1 < starts.count ? Int(starts[Int(e) + 1]) : tokens.count
            out.append(contentsOf: tokens[s..<end])
            return
        }
        let before = out.count
        bytePairEncode(piece, ranks: ranks, into: &out)
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
