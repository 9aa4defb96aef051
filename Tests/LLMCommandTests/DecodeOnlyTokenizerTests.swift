// llm.c's gpt2_tokenizer.bin holds each token's bytes for decoding, not the merges encoding needs: the commands that
// encode (`llm tokenizer encode|bench`, `llm prepare`, and the ones that run a model on prompts: sample, serve, eval,
// perplexity, chat) refuse it in one line that says what to use instead, and `llm tokenizer decode` reads it.
import ArgumentParser
import Foundation
import Testing
import LLM
@testable import llm

@Suite struct DecodeOnlyTokenizerTests {
    @Test func encodingCommandsRefuseGPT2TokenizerBin() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("llm-decode-only-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("gpt2_tokenizer.bin").path
        try Tokenizer.gpt2().writeLLMCDecoder(to: path)

        #expect(throws: TokenizerError.self) { try TokenizerOptions.parse(["--tokenizer", path]).load() }
        do {
            _ = try TokenizerOptions.parse(["--tokenizer", path]).load()
        } catch let error as TokenizerError {
            #expect(!error.description.contains("\n"))
            #expect(error.description.contains("decode-only"))
            #expect(error.description.contains("--tokenizer gpt2"))
        }
        // The commands that run a model: through the options of `llm sample`, and the library's loader that
        // `llm serve|eval|perplexity|chat` use.
        #expect(throws: TokenizerError.decodeOnly(path: path)) { try ModelTokenizerOptions.parse(["--tokenizer", path]).load() }
        #expect(throws: TokenizerError.decodeOnly(path: path)) { try LoadedModel.loadTokenizer(path) }
        let decoder = try DecodingTokenizerOptions.parse(["--tokenizer", path]).load()
        #expect(try decoder.decode([15496, 11, 995]) == Array("Hello, world".utf8))
        // The help of the commands that encode does not offer the file.
        #expect(!LLMCommand.helpMessage(for: TokenizerCommand.Encode.self).contains("gpt2_tokenizer.bin"))
        #expect(LLMCommand.helpMessage(for: TokenizerCommand.Decode.self).contains("gpt2_tokenizer.bin"))
    }
}
