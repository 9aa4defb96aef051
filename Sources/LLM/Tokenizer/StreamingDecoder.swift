// Decodes tokens one at a time for streaming output without ever emitting half of a UTF-8 character:
// bytes of an incomplete character wait for the next token.

public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// The text this token completes ("" while a character is still incomplete). Bytes that can never
    /// form a character come out as U+FFFD.
    public mutating func push(_ id: Int32) throws(TokenizerError) -> String {
        try tokenizer.appendBytes(of: id, to: &pending)
        let complete = completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left; an incomplete character becomes U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
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
