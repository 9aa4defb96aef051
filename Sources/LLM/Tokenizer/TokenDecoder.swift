// How token strings become bytes when decoding, as Hugging Face's decoders say: ByteLevel (GPT-2's byte
// alphabet back to bytes), Replace ("▁" → " "), ByteFallback ("<0x0A>" → one byte), Fuse (the tokens become
// one string), Strip (characters off the start of a token, or after Fuse of the whole text).

struct TokenDecoder: Sendable {
    enum Step: Sendable, Equatable {
        case byteLevel
        case replace(from: [UInt8], to: [UInt8])
        case byteFallback
        case strip(content: [UInt8], start: Int, stop: Int)
    }

    /// Applied to each token on its own, in order (everything before Fuse).
    var perToken: [Step] = []
    /// Strip after Fuse: up to `count` copies of `content` come off the start of the decoded text.
    var leadingStrip: (content: [UInt8], count: Int)?

    static let byteLevel = TokenDecoder(perToken: [.byteLevel])

    /// One token's bytes. A token that a step turns into raw bytes (ByteLevel, ByteFallback) is left alone
    /// by the string steps after it.
    func bytes(of token: String) -> [UInt8] {
        var text = Array(token.utf8)
        for step in perToken {
            switch step {
            case .byteLevel:
                return GPT2ByteAlphabet.bytes(of: token) ?? text
            case let .replace(from, to):
                text = replacingAll(from, with: to, in: text)
            case .byteFallback:
                if let b = fallbackByte(text) { return [b] }
            case let .strip(content, start, stop):
                text = strip(text, content, start: start, stop: stop)
            }
        }
        return text
    }

    /// The byte of a "<0xHH>" token (uppercase or lowercase hex digits, as Rust's from_str_radix reads them).
    private func fallbackByte(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E,
              let hi = hexValue(t[3]), let lo = hexValue(t[4]) else { return nil }
        return hi << 4 | lo
    }

    private func strip(_ text: [UInt8], _ content: [UInt8], start: Int, stop: Int) -> [UInt8] {
        guard !content.isEmpty else { return text }
        var lo = 0, hi = text.count
        for _ in 0..<start where text[lo..<hi].starts(with: content) { lo += content.count }
        for _ in 0..<stop where hi - lo >= content.count && text[hi - content.count..<hi].elementsEqual(content) {
            hi -= content.count
        }
        return Array(text[lo..<hi])
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: c - 0x30
    case 0x41...0x46: c - 0x41 + 10
    case 0x61...0x66: c - 0x61 + 10
    default: nil
    }
}
