// `llm tokenizer bench` counts a file's tokens as a token shard holds it (and as reference/tiktoken_bench.py
// counts them): the document separator that starts the stream, then the file's tokens. Both its lines give that
// number (they once differed by one: the human line left the separator out). This checks the count it relies on:
// `llm prepare` of one text file writes exactly encode(text).count + 1 tokens, the separator first.
import Foundation
import Testing
@testable import LLM

@Suite struct TokenStreamCountTests {
    @Test func aPreparedFileHoldsItsTokensAndOneSeparator() throws {
        try withTemporaryDirectory { dir in
            let text = String(repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\n\n", count: 40)
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/one.txt"))
            let tok = try Tokenizer.gpt2()
            var job = DatasetPreparation(inputs: [dir + "/one.txt"], outputDirectory: dir + "/out", name: "one")
            job.threads = 2
            let result = try job.run(tokenizer: tok)
            let ids = tok.encode(text)
            #expect(result.documents == 1)
            #expect(result.valTokens + result.trainTokens == ids.count + 1)
            let val = try TokenShardReader(path: dir + "/out/one_val_000000.bin")
            #expect(try val.tokens(in: 0..<1) == [tok.documentSeparator!])
            #expect(tok.documentSeparator == Tokenizer.gpt2EndOfText)
            // Encoding the whole file at once (what the bench times) gives the same ids as the shard's.
            let whole = Array(text.utf8).withUnsafeBufferPointer { tok.encode(utf8: $0) }
            #expect(whole == ids)
        }
    }
}
