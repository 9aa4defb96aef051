// Decodes tokens one at a time for streaming output without ever emitting half of a UTF-8 character:
// bytes of an incomplete character (a byte-level token's partial bytes, a SentencePiece byte-fallback token
// like "<0xE4>") wait for the next token. What the pushes return adds up to `decodeString` of all the ids,
// including the decoder's strip of leading spaces (Llama 2's).

public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    private var pending: [UInt8] = []
    /// How many copies of the decoder's strip content may still come off the start of the stream.
    private var stripLeft: Int

    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
        stripLeft = tokenizer.leadingStrip?.count ?? 0
    }

    /// The text this token completes ("" while a character is still incomplete). Bytes that can never
    /// form a character come out as U+FFFD.
    public mutating func push(_ id: Int32) throws(TokenizerError) -> String {
        try tokenizer.appendBytes(of: id, to: &pending)
        stripLeading(final: false)
        guard stripLeft == 0 else { return "" }
        let complete = completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left; an incomplete character becomes U+FFFD. The decoder starts afresh afterwards.
    public mutating func finish() -> String {
        stripLeading(final: true)
        defer {
            pending.removeAll()
            stripLeft = tokenizer.leadingStrip?.count ?? 0
        }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Takes the strip content off the start while it is there; stops stripping once other bytes come first.
    /// While the pending bytes could still be the start of the content, waits (unless `final`).
    private mutating func stripLeading(final: Bool) {
        guard stripLeft > 0, let content = tokenizer.leadingStrip?.content, !content.isEmpty else { return }
        while stripLeft > 0 {
            if pending.starts(with: content) {
                pending.removeFirst(content.count)
                stripLeft -= 1
            } else if !final && content.starts(with: pending) {
                return  // empty, or a prefix of the content: wait for more
            } else {
                stripLeft = 0
            }
        }
    }

    /// The length of the longest prefix that does not end inside a character that later bytes could
    /// still complete.
    private func completePrefixLength(_ b: [UInt8]) -> Int {
        var i = b.count - 1
        // Find the start of the last character: at most 3 continuation bytes back.
        while i >= 0 && i >= b.count - 4 && b[i] & 0xC0 == 0x80 { i -= 1 }
        guard i >= 0 && i >= b.count - 4 else { return b.count }
        let lead = b[i]
        let need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 1
        return b.count - i < need ? i : b.count
    }
}
