// The BPE trainer against a naive Python trainer (reference/make_bpe_cases.py), and the tokenizer files.
import Foundation
import Testing
@testable import LLM

@Suite struct BPETrainerTests {
    static func trainingText() throws -> String {
        String(decoding: try Fixtures.bytes("tokenizer", "bpe-train.txt"), as: UTF8.self)
    }

    static func referenceTokens(_ pattern: SplitPattern) throws -> [[UInt8]] {
        let json = try JSONSerialization.jsonObject(with: Data(try Fixtures.bytes("tokenizer", "bpe-merges.json"))) as! [String: Any]
        let tokens = (json["tokens"] as! [String: Any])[pattern.rawValue] as! [[Int]]
        return tokens.map { $0.map(UInt8.init) }
    }

    @Test(arguments: SplitPattern.allCases)
    func mergesMatchTheNaiveReference(pattern: SplitPattern) throws {
        let reference = try Self.referenceTokens(pattern)
        let tok = try BPETrainer.train(texts: [try Self.trainingText()], vocabSize: 256 + reference.count,
                                       pattern: pattern, specialTokens: [])
        let learned = Array(tok.mergeableTokens.dropFirst(256))
        #expect(learned.count == reference.count)
        if let i = learned.indices.first(where: { $0 < reference.count && learned[$0] != reference[$0] }) {
            Issue.record("merge \(i): learned \(learned[i]), reference \(reference[i])")
        }
    }

    @Test func specialTokensFollowTheMergesAndRoundTrip() throws {
        let text = try Self.trainingText()
        let tok = try BPETrainer.train(texts: [text], vocabSize: 400, pattern: .gpt4,
                                       specialTokens: BPETrainer.chatSpecialTokens)
        #expect(tok.vocabSize == 400)
        #expect(tok.specialToken("<|bos|>") == 391 && tok.specialToken("<|output_end|>") == 399)
        #expect(tok.documentSeparator == 391)
        let chat = "<|user_start|>hello thou noble king<|user_end|>"
        #expect(tok.encode(chat, allowSpecial: true).first == tok.specialToken("<|user_start|>"))
        #expect(!tok.encode(chat).contains(tok.specialToken("<|user_start|>")!))
        let decoded = try tok.decodeString(tok.encode(text))
        #expect(decoded == text)
        #expect(tok.encode(text).count < text.utf8.count / 2, "trained merges should compress the training text")
    }

    @Test func savedTokenizersLoadIdentically() throws {
        let tok = try BPETrainer.train(texts: [try Self.trainingText()], vocabSize: 300, pattern: .gpt2,
                                       specialTokens: ["<|bos|>"])
        try withTemporaryDirectory { dir in
            try tok.save(to: dir + "/t.tok")
            let loaded = try Tokenizer.load(dir + "/t.tok")
            #expect(loaded.mergeableTokens == tok.mergeableTokens)
            #expect(loaded.specialTokens == tok.specialTokens && loaded.pattern == tok.pattern)
            try tok.exportTiktoken(to: dir + "/t.tiktoken")
            let lines = String(decoding: try readBytes(dir + "/t.tiktoken"), as: UTF8.self).split(separator: "\n")
            #expect(lines.count == 299)
            #expect(lines[65] == "QQ== 65")  // byte "A"
            let last = lines[298].split(separator: " ")
            let lastBytes = Data(base64Encoded: String(last[0])).map([UInt8].init)
            #expect(lastBytes == tok.mergeableTokens[298] && last[1] == "298")
        }
    }

    @Test func badTokenizerFilesAreRejected() throws {
        try withTemporaryDirectory { dir in
            for (contents, mentions) in [("hello\n", "not an llm tokenizer file"),
                                         ("llm-tokenizer 1\npattern gpt5\n", "pattern"),
                                         ("llm-tokenizer 1\npattern gpt2\ntokens 300\nAA==\n", "not base64")] {
                try writeBytes(Array(contents.utf8), dir + "/bad.tok")
                #expect { try Tokenizer.load(dir + "/bad.tok") } throws: { error in
                    "\(error)".hasPrefix(dir + "/bad.tok") && "\(error)".contains(mentions)
                }
            }
        }
    }

    @Test func tooSmallAVocabularyIsAnError() {
        #expect(throws: TokenizerError.self) {
            try BPETrainer.train(texts: ["abc"], vocabSize: 260, pattern: .gpt4, specialTokens: BPETrainer.chatSpecialTokens)
        }
    }

    /// llm.c's gpt2_tokenizer.bin: written from the bundled GPT-2 vocabulary and read back for decoding.
    @Test func llmcTokenizerBinRoundTrips() throws {
        let gpt2 = try Tokenizer.gpt2()
        try withTemporaryDirectory { dir in
            try gpt2.writeLLMCDecoder(to: dir + "/gpt2_tokenizer.bin")
            let bytes = try readBytes(dir + "/gpt2_tokenizer.bin")
            #expect(Array(bytes[0..<16]) == int32Bytes([20_240_328, 2, 50257, 50256]))
            let decoder = try Tokenizer.llmcDecoder(dir + "/gpt2_tokenizer.bin")
            let ids = gpt2.encode("Hello world, naïve café 🙂<|endoftext|>", allowSpecial: true)
            let (a, b) = (try decoder.decode(ids), try gpt2.decode(ids))
            #expect(a == b)
            try writeBytes(Array(bytes.dropLast(3)), dir + "/short.bin")
            #expect(throws: TokenizerError.self) { try Tokenizer.llmcDecoder(dir + "/short.bin") }
        }
    }
}
