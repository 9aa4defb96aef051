// What the tokenizer.json and GGUF readers share: a vocabulary as token strings by id, looked up by the strings'
// UTF-8 (canonically equivalent strings stay apart), turned into a `MergeModel` and the parts of a `Tokenizer`.

/// The most ids a vocabulary may have (a model's vocabulary is at most 2^24).
let maxVocabularySize = 1 << 24

/// Token strings by id, with lookup by string. A string that several ids spell finds the last of them, as
/// Hugging Face's vocabulary maps do.
struct MergeVocabulary {
    /// Token strings by id; "" where no token has the id.
    let names: [String]
    private var index = ByteStringTable(capacity: 16)

    init(names: [String]) {
        self.names = names
        index = ByteStringTable(capacity: names.count)
        for (id, name) in names.enumerated() where !name.isEmpty { index.insert(Array(name.utf8), value: Int32(id)) }
    }

    func id(_ name: some Collection<UInt8>) -> Int32? { index.lookup(Array(name)) }
    func id(_ name: String) -> Int32? { index.lookup(Array(name.utf8)) }

    /// The merge table from merges given as pairs of token strings, rank = position. `fail(k, why)` makes the
    /// error for merge k.
    func mergeTable(_ merges: [(String, String)], fail: (Int, String) -> TokenizerError) throws(TokenizerError) -> PairTable {
        var table = PairTable(capacity: merges.count)
        for (k, (a, b)) in merges.enumerated() {
            guard let left = id(a) else { throw fail(k, "\(a.debugDescription) is not in the vocabulary") }
            guard let right = id(b) else { throw fail(k, "\(b.debugDescription) is not in the vocabulary") }
            guard let merged = id(Array(a.utf8) + Array(b.utf8)) else {
                throw fail(k, "\((a + b).debugDescription) is not in the vocabulary")
            }
            table.insert(left: left, right: right, rank: Int32(k), merged: merged)
        }
        return table
    }

    /// A byte-level model: tokens are GPT-2 byte-alphabet strings. A byte without a token becomes `unknown`, or
    /// nothing (as in Hugging Face's BPE).
    func byteLevelModel(merges: PairTable, unknown: Int32?, fuseUnknown: Bool, ignoreMerges: Bool) -> MergeModel {
        var byBytes = ByteStringTable(capacity: names.count)
        for (id, name) in names.enumerated() where !name.isEmpty {
            // A string outside the alphabet never appears in a byte-level piece; it only decodes.
            if let bytes = GPT2ByteAlphabet.bytes(of: name) { byBytes.insert(bytes, value: Int32(id)) }
        }
        let byteTokens = (0..<256).map { id(GPT2ByteAlphabet.string(of: [UInt8($0)])) ?? -1 }
        return MergeModel(vocab: byBytes, merges: merges, byteTokens: byteTokens, byteFallback: nil, unknown: unknown,
                          fuseUnknown: fuseUnknown, ignoreMerges: ignoreMerges)
    }

    /// A character-level (SentencePiece-style) model: tokens are UTF-8 strings ("▁" for spaces); characters not
    /// in the vocabulary become "<0xXX>" byte tokens with `byteFallback`, else `unknown`.
    func characterModel(merges: PairTable, byteFallback: Bool, unknown: Int32?, fuseUnknown: Bool,
                        ignoreMerges: Bool) -> MergeModel {
        var byString = ByteStringTable(capacity: names.count)
        for (id, name) in names.enumerated() where !name.isEmpty { byString.insert(Array(name.utf8), value: Int32(id)) }
        let fallback: [Int32?]? = byteFallback ? (0..<256).map { id(byteTokenName(UInt8($0))) } : nil
        return MergeModel(vocab: byString, merges: merges, byteTokens: nil, byteFallback: fallback, unknown: unknown,
                          fuseUnknown: fuseUnknown, ignoreMerges: ignoreMerges)
    }
}

/// SentencePiece's name for the token of one byte: "<0x0A>".
func byteTokenName(_ b: UInt8) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    return String(decoding: [0x3C, 0x30, 0x78, hex[Int(b >> 4)], hex[Int(b & 15)], 0x3E], as: UTF8.self)
}
