// Added tokens (Hugging Face's `added_tokens`, GGUF's control and user-defined tokens) are found in the text
// before anything else, as Hugging Face's AddedVocabulary does: leftmost-longest, each match becoming its id
// and the text between matches going on to normalization and pre-tokenization. Special tokens are matched only
// when the caller allows them (otherwise their text is ordinary text); the others always are.

/// One added token and Hugging Face's flags for it.
struct AddedToken: Sendable {
    var content: [UInt8]
    let id: Int32
    var special = false
    /// Matches only where no word character (\w) touches it on either side.
    var singleWord = false
    /// Takes the whitespace before it (lstrip) or after it (rstrip) into the match.
    var lstrip = false, rstrip = false
    /// Matched in the normalized text (its content normalized too) rather than in the input.
    var normalized = false
}

/// Finds added tokens in text: a table from content to token, and for each first byte the lengths its tokens
/// have, longest first, so a position costs one array read when no token starts with its byte.
struct AddedTokenMatcher {
    private var tokens: [AddedToken] = []
    private var table = ByteStringTable(capacity: 16)
    private var lengths = [[Int]](repeating: [], count: 256)
    private var startsToken = [Bool](repeating: false, count: 256)
    /// Which first two bytes a token of two or more bytes has (a bit per pair): most positions where a token's
    /// first byte occurs ("\n" in Gemma's, with tokens "\n" to 31 newlines) then need no table lookup.
    private var startsLongToken = [UInt64](repeating: 0, count: 1024)
    private(set) var hasNonSpecial = false

    init(_ added: [AddedToken]) {
        for t in added where !t.content.isEmpty {
            if let old = table.lookup(t.content) {
                tokens[Int(old)] = t
            } else {
                table.insert(t.content, value: Int32(tokens.count))
                tokens.append(t)
            }
        }
        for t in tokens {
            if !t.special { hasNonSpecial = true }
            let first = Int(t.content[0])
            if !lengths[first].contains(t.content.count) { lengths[first].append(t.content.count) }
            startsToken[first] = true
            if t.content.count > 1 {
                let pair = first << 8 | Int(t.content[1])
                startsLongToken[pair >> 6] |= 1 << UInt64(pair & 63)
            }
        }
        for b in 0..<256 { lengths[b].sort(by: >) }
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// The ids of the tokens that are not special.
    var nonSpecialIds: Set<Int32> { Set(tokens.filter { !$0.special }.map(\.id)) }

    /// Whether `split` can find anything when special tokens are (not) allowed.
    func canMatch(allowSpecial: Bool) -> Bool { allowSpecial ? !tokens.isEmpty : hasNonSpecial }

    /// Splits `text` at the added tokens in it, in order: `piece(start, end)` for each non-empty stretch of
    /// other text, `token(id)` for each match. A special token's match is skipped, text and all, when
    /// `allowSpecial` is false, so nothing inside it matches either (as Hugging Face's encode_special_tokens).
    func split(_ text: UnsafeBufferPointer<UInt8>, allowSpecial: Bool,
               piece: (Int, Int) -> Void, token: (Int32) -> Void) {
        var i = 0, pieceStart = 0
        let base = text.baseAddress
        while i < text.count {
            // Skip to the next byte that starts a token.
            i = startsToken.withUnsafeBufferPointer { starts in
                var k = i
                while k < text.count && !starts[Int(text[k])] { k += 1 }
                return k
            }
            guard i < text.count else { break }
            var found: AddedToken?
            var longest = 1
            if i + 1 < text.count {
                let pair = Int(text[i]) << 8 | Int(text[i + 1])
                if startsLongToken[pair >> 6] & (1 << UInt64(pair & 63)) != 0 { longest = text.count - i }
            }
            for length in lengths[Int(text[i])] where length <= longest {
                if let k = table.lookup(base! + i, length) { found = tokens[Int(k)]; break }
            }
            guard let t = found else { i += 1; continue }
            var start = i, end = i + t.content.count
            if t.special && !allowSpecial { i = end; continue }
            if t.singleWord && (endsWithWordCharacter(text, before: start) || startsWithWordCharacter(text, at: end)) {
                i = end
                continue
            }
            if t.lstrip { start = max(whitespaceStart(text, before: start), pieceStart) }
            if t.rstrip { end = whitespaceEnd(text, from: end) }
            if start > pieceStart { piece(pieceStart, start) }
            token(t.id)
            pieceStart = end
            i = end
        }
        if text.count > pieceStart { piece(pieceStart, text.count) }
    }
}

// MARK: - Character tests at byte offsets (Rust regex's Unicode \s and \w, as Hugging Face uses)

/// The scalar that starts at byte i (valid UTF-8).
func scalarAt(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> Unicode.Scalar {
    let n = min(utf8Length(lead: text[i]), text.count - i)
    var decoder = UTF8()
    var it = UnsafeBufferPointer(rebasing: text[i..<i + n]).makeIterator()
    if case .scalarValue(let s) = decoder.decode(&it) { return s }
    return "\u{FFFD}"
}

/// The start of the scalar that ends just before byte i.
func previousScalarStart(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
    var j = i - 1
    while j > 0 && text[j] & 0xC0 == 0x80 && i - j < 4 { j -= 1 }
    return j
}

func isWordCharacter(_ s: Unicode.Scalar) -> Bool {
    let p = s.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

private func endsWithWordCharacter(_ text: UnsafeBufferPointer<UInt8>, before i: Int) -> Bool {
    i > 0 && isWordCharacter(scalarAt(text, previousScalarStart(text, i)))
}

private func startsWithWordCharacter(_ text: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
    i < text.count && isWordCharacter(scalarAt(text, i))
}

/// The start of the whitespace run that ends at byte i (i if none).
private func whitespaceStart(_ text: UnsafeBufferPointer<UInt8>, before i: Int) -> Int {
    var j = i
    while j > 0 {
        let k = previousScalarStart(text, j)
        guard scalarAt(text, k).properties.isWhitespace else { break }
        j = k
    }
    return j
}

/// The end of the whitespace run that starts at byte i (i if none).
private func whitespaceEnd(_ text: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
    var j = i
    while j < text.count {
        let s = scalarAt(text, j)
        guard s.properties.isWhitespace else { break }
        j += utf8Length(lead: text[j])
    }
    return j
}
