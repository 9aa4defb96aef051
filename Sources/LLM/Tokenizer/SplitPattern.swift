// The pre-tokenizer: splits text into the pieces BPE then encodes one at a time, exactly as tiktoken's and
// Hugging Face's regexes do, with a hand-written scanner over UTF-8 (a general regex engine runs at 2–4 MB/s here).
//
// GPT-2:  's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
// GPT-4 (nanochat's, with \p{N}{1,2}):
//         '(?i:[sdmt]|ll|ve|re) | [^\r\n\p{L}\p{N}]?+\p{L}+ | \p{N}{1,2} | ?[^\s\p{L}\p{N}]++[\r\n]* |
//         \s*[\r\n] | \s+(?!\S) | \s+
// Llama 3: GPT-4's with \p{N}{1,3} (and `\s*[\r\n]+`, which matches the same); Qwen2: with \p{N} (one digit).
// SmolLM:  every digit its own piece first (HF's Digits(individual_digits)), then GPT-2's on the text between.
// Alternatives are tried in order at each position (leftmost-first), as the regex engines do.

/// The split pattern of the project's own tokenizers (`BPETrainer`, the llm-tokenizer file).
public enum SplitPattern: String, Sendable, Codable, CaseIterable {
    case gpt2
    case gpt4

    /// The regex this scanner implements (for documentation and exports).
    public var regex: String { SplitRule(self).regex }
}

/// How a tokenizer cuts text into pieces before BPE: the project's patterns, and those of other models'
/// tokenizers read from a tokenizer.json or GGUF file. SmolLM's is GPT-2's regex applied to the text between
/// digits, each digit a piece of its own; `whole` does not split (SentencePiece-style tokenizers).
enum SplitRule: String, Sendable, Equatable {
    case gpt2, gpt4, llama3, qwen2, smollm, whole

    init(_ pattern: SplitPattern) {
        switch pattern {
        case .gpt2: self = .gpt2
        case .gpt4: self = .gpt4
        }
    }

    /// The project's pattern this is, if it is one.
    var pattern: SplitPattern? { SplitPattern(rawValue: rawValue) }

    var regex: String {
        switch self {
        case .gpt2, .smollm: #"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .gpt4: #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#
        case .llama3: SplitRule.llama3Regex
        case .qwen2: SplitRule.qwen2Regex
        case .whole: #"(?s:.+)"#
        }
    }

    /// The rule a Hugging Face `Split` pre-tokenizer's regex is, if it is one this scanner implements.
    init?(huggingFaceRegex regex: String) {
        switch regex {
        case SplitRule.huggingFaceGPT2Regex, SplitRule.gpt2.regex: self = .gpt2
        case SplitRule.gpt4.regex: self = .gpt4
        case SplitRule.llama3Regex: self = .llama3
        case SplitRule.qwen2Regex: self = .qwen2
        default: return nil
        }
    }

    /// Whether the text is cut at all.
    var splits: Bool { self != .whole }

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// GPT-2's regex as Hugging Face's ByteLevel pre-tokenizer spells it.
    static let huggingFaceGPT2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
}

/// The character classes the patterns distinguish.
enum CharClass: UInt8 {
    case letter      // \p{L}
    case number      // \p{N}
    case whitespace  // \s (Unicode White_Space)
    case other       // everything else
}

/// Class of each ASCII byte, so ASCII text never touches the Unicode tables.
private let asciiClass: [CharClass] = (0..<128).map { b in
    let s = Unicode.Scalar(UInt8(b))
    if s.properties.isWhitespace { return .whitespace }
    if (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) { return .letter }
    if (0x30...0x39).contains(b) { return .number }
    return .other
}

@inline(__always)
func classify(_ scalar: UInt32) -> CharClass {
    if scalar < 128 { return asciiClass[Int(scalar)] }
    guard let s = Unicode.Scalar(scalar) else { return .other }
    let p = s.properties
    switch p.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
    case .decimalNumber, .letterNumber, .otherNumber: return .number
    default: return p.isWhitespace ? .whitespace : .other
    }
}

/// Scans UTF-8 bytes (assumed valid) into pieces.
struct SplitScanner {
    let text: UnsafeBufferPointer<UInt8>
    let rule: SplitRule

    init(text: UnsafeBufferPointer<UInt8>, rule: SplitRule) {
        self.text = text
        self.rule = rule
    }

    init(text: UnsafeBufferPointer<UInt8>, pattern: SplitPattern) { self.init(text: text, rule: SplitRule(pattern)) }

    /// The scalar starting at byte i and its length in bytes.
    @inline(__always)
    func scalar(at i: Int) -> (UInt32, Int) {
        let b0 = UInt32(text[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F), 2) }
        if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | UInt32(text[i + 1] & 0x3F) << 6 | UInt32(text[i + 2] & 0x3F), 3) }
        return ((b0 & 0x07) << 18 | UInt32(text[i + 1] & 0x3F) << 12 | UInt32(text[i + 2] & 0x3F) << 6
                | UInt32(text[i + 3] & 0x3F), 4)
    }

    @inline(__always)
    func classAt(_ i: Int) -> CharClass {
        let b = text[i]
        return b < 0x80 ? asciiClass[Int(b)] : classify(scalar(at: i).0)
    }

    /// The end of a run of characters of class `c` starting at i (i itself if none).
    @inline(__always)
    func runEnd(from i: Int, _ c: CharClass) -> Int {
        var j = i
        while j < text.count {
            let b = text[j]
            if b < 0x80 {
                if asciiClass[Int(b)] != c { break }
                j += 1
            } else {
                let (s, n) = scalar(at: j)
                if classify(s) != c { break }
                j += n
            }
        }
        return j
    }

    /// Calls `body(start, end)` for each piece, in order.
    func forEachPiece(_ body: (Int, Int) -> Void) {
        switch rule {
        case .gpt2: forEach(body) { nextGPT2($0) }
        case .gpt4: forEach(body) { nextGPT4($0, maxDigits: 2) }
        case .llama3: forEach(body) { nextGPT4($0, maxDigits: 3) }
        case .qwen2: forEach(body) { nextGPT4($0, maxDigits: 1) }
        case .smollm: forEachSmolLMPiece(body)
        case .whole: if !text.isEmpty { body(0, text.count) }
        }
    }

    @inline(__always)
    private func forEach(_ body: (Int, Int) -> Void, next: (Int) -> Int) {
        var i = 0
        while i < text.count {
            let end = next(i)
            body(i, end)
            i = end
        }
    }

    /// SmolLM's: each digit (\p{N}) is a piece; GPT-2's pattern splits the text between digits, each stretch
    /// scanned on its own (so its end is the end of text for `\s+(?!\S)`).
    private func forEachSmolLMPiece(_ body: (Int, Int) -> Void) {
        var start = 0, i = 0
        while i <= text.count {
            var n = 0
            if i < text.count {
                let b = text[i]
                if b < 0x80 {
                    if b < 0x30 || b > 0x39 { i += 1; continue }
                    n = 1
                } else {
                    let (s, len) = scalar(at: i)
                    if classify(s) != .number { i += len; continue }
                    n = len
                }
            }
            if i > start {
                let stretch = SplitScanner(text: UnsafeBufferPointer(rebasing: text[start..<i]), rule: .gpt2)
                stretch.forEachPiece { body(start + $0, start + $1) }
            }
            if n == 0 { break }
            body(i, i + n)
            i += n
            start = i
        }
    }

    /// Length of a contraction at i ('s 't 're 've 'm 'll 'd), or 0; case-insensitive for GPT-4.
    @inline(__always)
    func contraction(at i: Int, ignoreCase: Bool) -> Int {
        guard text[i] == 0x27, i + 1 < text.count else { return 0 }  // '
        func lower(_ b: UInt8) -> UInt8 { ignoreCase && b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
        let a = lower(text[i + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return 2 }  // s t m d
        guard i + 2 < text.count else { return 0 }
        let b = lower(text[i + 2])
        if (a == 0x6C && b == 0x6C) || (a == 0x76 && b == 0x65) || (a == 0x72 && b == 0x65) { return 3 }  // ll ve re
        return 0
    }

    /// Whitespace at i: `\s+(?!\S)` (the run, less its last character if a non-space follows and the
    /// run is longer than one), else `\s+` (the whole run). i must be whitespace.
    @inline(__always)
    func whitespacePiece(_ i: Int) -> Int {
        let end = runEnd(from: i, .whitespace)
        if end == text.count { return end }
        // Back off the last whitespace character so the next piece can take it as its leading space.
        var last = end - 1
        while text[last] & 0xC0 == 0x80 { last -= 1 }
        return last > i ? last : end
    }

    func nextGPT2(_ i: Int) -> Int {
        let c = contraction(at: i, ignoreCase: false)
        if c > 0 { return i + c }
        var j = i
        let (s0, n0) = scalar(at: i)
        if s0 == 0x20 && i + 1 < text.count { j = i + 1 }  // optional leading space for the next three
        let cls = j < text.count ? classAt(j) : .whitespace
        if j > i || s0 != 0x20 {
            switch cls {
            case .letter: return runEnd(from: j, .letter)
            case .number: return runEnd(from: j, .number)
            case .other: return runEnd(from: j, .other)
            case .whitespace: break
            }
        }
        _ = n0
        return whitespacePiece(i)
    }

    /// GPT-4's pattern at i, with at most `maxDigits` digits to a number piece (Llama 3: 3, Qwen2: 1).
    func nextGPT4(_ i: Int, maxDigits: Int) -> Int {
        let c = contraction(at: i, ignoreCase: true)
        if c > 0 { return i + c }
        let (s0, n0) = scalar(at: i)
        let c0 = s0 < 128 ? asciiClass[Int(s0)] : classify(s0)
        // [^\r\n\p{L}\p{N}]?+\p{L}+
        if c0 == .letter { return runEnd(from: i, .letter) }
        if c0 != .number && s0 != 0x0D && s0 != 0x0A {
            let j = i + n0
            if j < text.count && classAt(j) == .letter { return runEnd(from: j, .letter) }
        }
        // \p{N}{1,maxDigits}
        if c0 == .number {
            var j = i + n0, digits = 1
            while digits < maxDigits && j < text.count {
                let (s1, n1) = scalar(at: j)
                if classify(s1) != .number { break }
                j += n1
                digits += 1
            }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]++[\r\n]*'
        var j = i
        if s0 == 0x20 && i + 1 < text.count && classAt(i + 1) == .other { j = i + 1 }
        if classAt(j) == .other {
            var end = runEnd(from: j, .other)
            while end < text.count && (text[end] == 0x0D || text[end] == 0x0A) { end += 1 }
            return end
        }
        // \s*[\r\n]: through the last \r or \n of the whitespace run.
        let wsEnd = runEnd(from: i, .whitespace)
        var k = wsEnd - 1
        while k >= i {
            if text[k] == 0x0D || text[k] == 0x0A { return k + 1 }
            k -= 1
        }
        return whitespacePiece(i)
    }
}
