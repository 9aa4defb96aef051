// GPT-2 tokenizer: parity with tiktoken on the committed cases (Fixtures/tokenizer/gpt2-cases.json, made by
// reference/make_tokenizer_cases.py), lossless round trips, streaming decode, bad ids, linear-time
// encoding of long runs, and the special token.
//
// Strings are compared as UTF-8 bytes or scalar arrays, never with `==` on String: Swift's String
// equality is canonical equivalence, so "e\u{301}" == "é" there, and the tokenizer must keep the bytes.
import Foundation
import Testing
@testable import LLM

/// One tiktoken case: `ids` with "<|endoftext|>" as plain text, `ids_special` with it as token 50256.
struct TokenizerCase: Decodable, Sendable {
    let name: String
    let text: String
    let ids: [Int32]
    let ids_special: [Int32]
}

enum TokenizerFixtures {
    static let gpt2: Result<Tokenizer, any Error> = Result { try Tokenizer.gpt2() }
    static let cases: Result<[TokenizerCase], any Error> = Result {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizer", "gpt2-cases.json")))
        return try JSONDecoder().decode([TokenizerCase].self, from: data)
    }

    /// The GPT-2 tokenizer from the package's bundled vocabulary, loaded once.
    static func tokenizer() throws -> Tokenizer { try gpt2.get() }

    /// Where two id arrays first differ, with a little context, for failure messages.
    static func firstDifference(_ expected: [Int32], _ actual: [Int32]) -> String? {
        guard expected != actual else { return nil }
        let i = zip(expected, actual).prefix { $0 == $1 }.count
        let lo = max(0, i - 3)
        let exp = expected[lo..<min(expected.count, i + 5)].map(String.init).joined(separator: ", ")
        let act = actual[lo..<min(actual.count, i + 5)].map(String.init).joined(separator: ", ")
        return "first difference at index \(i) (lengths \(expected.count) vs \(actual.count)); "
            + "from index \(lo): expected [\(exp)], got [\(act)]"
    }

    /// A short, escaped view of a text for messages.
    static func show(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let head = String(String.UnicodeScalarView(scalars.prefix(60)))
        return head.debugDescription + (scalars.count > 60 ? "… (\(scalars.count) scalars)" : "")
    }
}

/// Seeded random Unicode strings for the round-trip property: every plane, no surrogates.
struct RandomUnicode {
    var rng: SplitMix64
    // (weight, lower bound, upper bound) of code point ranges.
    static let ranges: [(Int, UInt32, UInt32)] = [
        (6, 0x20, 0x7E),          // printable ASCII
        (2, 0x00, 0x20),          // ASCII controls, tab, newline, space
        (2, 0x80, 0x24F),         // C1 controls, Latin-1, Latin Extended
        (2, 0x300, 0x36F),        // combining diacritics
        (2, 0x370, 0x52F),        // Greek, Cyrillic
        (1, 0x590, 0x6FF),        // Hebrew, Arabic
        (1, 0x900, 0xE7F),        // Indic scripts, Thai
        (1, 0x2000, 0x206F),      // general punctuation, spaces, format characters
        (1, 0x3000, 0x30FF),      // CJK punctuation, kana
        (2, 0x4E00, 0x9FFF),      // CJK ideographs
        (1, 0xAC00, 0xD7A3),      // Hangul
        (1, 0xE000, 0xFFFF),      // private use, fullwidth forms, specials
        (2, 0x1F000, 0x1FAFF),    // emoji
        (4, 0x0, 0x10FFFF),       // anything, every plane
    ]
    static let totalWeight = ranges.reduce(0) { $0 + $1.0 }

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func below(_ n: UInt64) -> UInt64 { rng.next() % n }

    mutating func scalar() -> Unicode.Scalar {
        while true {
            var pick = Int(below(UInt64(Self.totalWeight)))
            var range = Self.ranges[0]
            for r in Self.ranges {
                if pick < r.0 { range = r; break }
                pick -= r.0
            }
            let cp = range.1 + UInt32(below(UInt64(range.2 - range.1 + 1)))
            if let s = Unicode.Scalar(cp) { return s }  // nil only for surrogates
        }
    }

    mutating func string(maxLength: Int) -> String {
        var s = String.UnicodeScalarView()
        for _ in 0..<Int(below(UInt64(maxLength + 1))) { s.append(scalar()) }
        return String(s)
    }
}

@Suite("Tokenizer") struct TokenizerTests {
    // MARK: - (1) parity with tiktoken

    @Test func fixtureHasAllCategories() throws {
        let cases = try TokenizerFixtures.cases.get()
        #expect(cases.count >= 300)
        let categories = Set(cases.map { $0.name.split(separator: "/").first.map(String.init) ?? "" })
        for c in ["basic", "script", "digits", "emoji", "combining", "control", "whitespace", "contraction",
                  "punct", "long", "special", "shakespeare", "random"] {
            #expect(categories.contains(c), "no \(c) cases in gpt2-cases.json")
        }
    }

    @Test func encodeMatchesTiktoken() throws {
        let tok = try TokenizerFixtures.tokenizer()
        var failures = 0
        for c in try TokenizerFixtures.cases.get() {
            if let d = TokenizerFixtures.firstDifference(c.ids, tok.encode(c.text)) {
                failures += 1
                Issue.record("\(c.name): encode(text) != tiktoken: \(d); text \(TokenizerFixtures.show(c.text))")
            }
        }
        #expect(failures == 0, "\(failures) cases differ from tiktoken")
    }

    @Test func encodeWithSpecialMatchesTiktoken() throws {
        let tok = try TokenizerFixtures.tokenizer()
        var failures = 0
        for c in try TokenizerFixtures.cases.get() {
            if let d = TokenizerFixtures.firstDifference(c.ids_special, tok.encode(c.text, allowSpecial: true)) {
                failures += 1
                Issue.record("\(c.name): encode(text, allowSpecial: true) != tiktoken: \(d); text \(TokenizerFixtures.show(c.text))")
            }
        }
        #expect(failures == 0, "\(failures) cases differ from tiktoken")
    }

    // MARK: - (2) decoding the reference ids gives the text back

    @Test func decodeGivesTextBytes() throws {
        let tok = try TokenizerFixtures.tokenizer()
        for c in try TokenizerFixtures.cases.get() {
            let bytes = Array(c.text.utf8)
            let plain = try tok.decode(c.ids)
            #expect(plain == bytes, "\(c.name): decode(ids) is not the text's UTF-8 (\(plain.count) vs \(bytes.count) bytes)")
            let special = try tok.decode(c.ids_special)  // 50256 decodes to "<|endoftext|>"
            #expect(special == bytes, "\(c.name): decode(ids_special) is not the text's UTF-8")
            let text = try tok.decodeString(c.ids)
            #expect(Array(text.unicodeScalars) == Array(c.text.unicodeScalars), "\(c.name): decodeString(ids) differs")
        }
    }

    // MARK: - (3) round trip of random Unicode

    @Test func randomUnicodeRoundTrips() throws {
        let tok = try TokenizerFixtures.tokenizer()
        var gen = RandomUnicode(seed: 0x70C0_2024)
        for i in 0..<300 {
            let s = gen.string(maxLength: 40)
            let ids = tok.encode(s)
            #expect(ids.allSatisfy { $0 >= 0 && $0 < Tokenizer.gpt2EndOfText }, "string \(i): ids outside the mergeable range")
            let back = try tok.decodeString(ids)
            #expect(Array(back.unicodeScalars) == Array(s.unicodeScalars),
                    "string \(i) \(TokenizerFixtures.show(s)) came back as \(TokenizerFixtures.show(back))")
            #expect(try tok.decode(ids) == Array(s.utf8), "string \(i): bytes differ")
            #expect(tok.encode(s, allowSpecial: true) == ids, "string \(i): allowSpecial changed a text without <|endoftext|>")
        }
    }

    // MARK: - (4) streaming decode

    /// For a text whose tokens cut characters in half: each push returns exactly the characters its
    /// token completes (so "" while a character is incomplete), never U+FFFD, and the pieces add up.
    @Test(arguments: [
        "Hi 🙂 你好, 世界! 👨‍👩‍👧 naïve 🇯🇵 ok",
        "🙂🙂🙂 中文文本 한국어 ኢትዮጵያ 👍🏽 1️⃣ e\u{301}",
        "日本語のテキスト、カタカナ。🎉🎉",
        "",
    ])
    func streamingNeverSplitsACharacter(text: String) throws {
        let tok = try TokenizerFixtures.tokenizer()
        let ids = tok.encode(text)
        var decoder = StreamingDecoder(tokenizer: tok)
        var streamed = [UInt8]()
        var sawEmptyPush = false
        var bytesSoFar = [UInt8]()
        for (k, id) in ids.enumerated() {
            let piece = try decoder.push(id)
            #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "token \(k) (\(id)) produced U+FFFD")
            streamed += Array(piece.utf8)
            try tok.appendBytes(of: id, to: &bytesSoFar)
            // Everything up to the last complete character must be out, and nothing after it.
            #expect(streamed == Array(bytesSoFar.prefix(completeCharactersPrefix(bytesSoFar))),
                    "after token \(k) (\(id)): streamed \(streamed.count) bytes")
            if piece.isEmpty { sawEmptyPush = true }
        }
        let rest = decoder.finish()
        #expect(rest.isEmpty, "finish() left \(rest.debugDescription)")
        #expect(streamed == Array(text.utf8))
        if text.unicodeScalars.contains(where: { $0.value >= 0x1F000 }) {
            #expect(sawEmptyPush, "no token split a character; the test is not testing that case")
        }
    }

    @Test func streamingFinishFlushesIncompleteBytesAsReplacement() throws {
        let tok = try TokenizerFixtures.tokenizer()
        let ids = tok.encode("🙂")  // tiktoken: [8582, 25081] = F0 9F | 99 82
        #expect(ids == [8582, 25081])
        var decoder = StreamingDecoder(tokenizer: tok)
        #expect(try decoder.push(ids[0]) == "")
        #expect(decoder.finish() == "\u{FFFD}")
        // After finish the decoder starts afresh.
        #expect(try decoder.push(ids[0]) == "")
        #expect(try decoder.push(ids[1]) == "🙂")
        #expect(decoder.finish() == "")
        // A continuation byte with nothing before it can never complete: it comes out at once.
        var lone = StreamingDecoder(tokenizer: tok)
        let out = try lone.push(ids[1]) + lone.finish()
        #expect(out.unicodeScalars.allSatisfy { $0 == "\u{FFFD}" } && !out.isEmpty)
    }

    // MARK: - (5) out-of-range ids

    @Test func decodeRejectsOutOfRangeIds() throws {
        let tok = try TokenizerFixtures.tokenizer()
        #expect(tok.vocabSize == 50257)
        #expect(try tok.decode([50256]) == Array("<|endoftext|>".utf8))
        for bad: Int32 in [50257, 60000, Int32.max, -1, Int32.min] {
            #expect(throws: TokenizerError.self) { try tok.decode([15496, bad]) }
            #expect(throws: TokenizerError.self) { try tok.decodeString([bad]) }
            var decoder = StreamingDecoder(tokenizer: tok)
            #expect(throws: TokenizerError.self) { try decoder.push(bad) }
        }
        #expect(throws: TokenizerError.invalidToken(id: 50257, vocabSize: 50257)) { try tok.decode([50257]) }
    }

    @Test func loadingMissingFilesThrows() {
        #expect(throws: TokenizerError.self) {
            try Tokenizer.gpt2(encoderJSON: "/nonexistent/encoder.json", vocabBPE: "/nonexistent/vocab.bpe")
        }
    }

    // MARK: - (6) linear time on long runs

    /// A long run of one character is one piece for the split pattern, so a quadratic merge loop shows here.
    /// Debug builds are slow, so this uses 100 KB runs and a generous 5 s bound; the claim that a 1 MB run
    /// encodes in well under a second is for the release binary (`swift build -c release`).
    /// tiktoken: 100 000 × "a" is 25 000 × "aaaa" (24794), 100 000 spaces are 100 000 × " " (220; GPT-2 has
    /// no multi-space tokens), 100 000 × "!" is 12 500 × "!!!!!!!!" (34635).
    @Test(arguments: [("a", Int32(24794), 25_000), (" ", Int32(220), 100_000), ("!", Int32(34635), 12_500)])
    func longRunsEncodeQuickly(unit: String, token: Int32, count: Int) throws {
        let tok = try TokenizerFixtures.tokenizer()
        let text = String(repeating: unit, count: 100_000)
        let clock = ContinuousClock()
        var ids = [Int32]()
        let elapsed = clock.measure { ids = tok.encode(text) }
        #expect(elapsed < .seconds(5), "100 KB of \(unit.debugDescription) took \(elapsed)")
        #expect(ids == [Int32](repeating: token, count: count), "100 KB of \(unit.debugDescription): \(ids.count) tokens")
    }

    // MARK: - (7) the special token

    @Test func endOfTextIsPlainTextUnlessAllowed() throws {
        let tok = try TokenizerFixtures.tokenizer()
        #expect(Tokenizer.gpt2EndOfText == 50256)
        #expect(tok.specialToken("<|endoftext|>") == 50256)
        let plain: [Int32] = [27, 91, 437, 1659, 5239, 91, 29]  // "<", "|", "end", "of", "text", "|", ">"
        #expect(tok.encode("<|endoftext|>") == plain)
        #expect(tok.encode("<|endoftext|>", allowSpecial: false) == plain)
        #expect(tok.encode("<|endoftext|>", allowSpecial: true) == [50256])
        #expect(tok.encode("a<|endoftext|>b") == [64] + plain + [65])
        #expect(tok.encode("a<|endoftext|>b", allowSpecial: true) == [64, 50256, 65])
        #expect(!tok.encode("x<|endoftext|>y<|endoftext|>").contains(50256))
        #expect(tok.encode("<|endoftext|", allowSpecial: true) == tok.encode("<|endoftext|"))
        #expect(tok.encode("Hello world") == [15496, 995])
    }

    // MARK: - multi-threaded encoding agrees with encode

    /// `encodeParallel` cuts the text into chunks; the result must not depend on where. The second text
    /// is paragraphs separated by blank lines, as in tinyshakespeare: "\n\nHello" is "\n", "\n", "Hello"
    /// (a whitespace run before a word leaves its last character alone), so cutting between "\n\n" and
    /// "Hello" and encoding "…\n\n" on its own (one token, 628) would differ.
    @Test(arguments: ["fixture-texts", "paragraphs"])
    func parallelEncodingMatchesSerial(kind: String) throws {
        let tok = try TokenizerFixtures.tokenizer()
        var text = kind == "paragraphs"
            ? String(repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\n\n", count: 8_000)
            : try TokenizerFixtures.cases.get().map(\.text).joined(separator: "\n")
        while text.utf8.count < 600_000 { text += "\n" + text }
        let serial = tok.encode(text)
        for threads in [2, 4, 7] {
            let parallel = text.withUTF8 { tok.encodeParallel(utf8: $0, threads: threads) }
            if let d = TokenizerFixtures.firstDifference(serial, parallel) {
                Issue.record("\(kind), \(threads) threads: encodeParallel != encode: \(d)")
            }
        }
    }
}

/// The length of the longest prefix of `bytes` that does not end inside a UTF-8 character that more
/// bytes could still complete (the text is valid UTF-8 cut at a token boundary).
private func completeCharactersPrefix(_ bytes: [UInt8]) -> Int {
    var start = bytes.count
    while start > 0 && bytes[start - 1] & 0xC0 == 0x80 && bytes.count - start < 3 { start -= 1 }
    guard start > 0 else { return bytes.count }
    let lead = bytes[start - 1]
    let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
    return bytes.count - (start - 1) < need ? start - 1 : bytes.count
}
