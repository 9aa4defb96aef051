// The command-line rules that live only in the executable (issue 18's crashes from absurd flags): each value is
// refused by the command's own validate() with a one-line message naming the flag, before any work or allocation.
// The library-level rules behind the other flags are in Tests/LLMTests/FlagValidationTests.swift; sizes that are
// legal but exceed the machine's memory (`--batch 10000000`) are refused by MemoryBudget before allocating
// (HostileFileTests).
import ArgumentParser
import Foundation
import LLM
import Testing
@testable import llm

@Suite struct FlagRuleTests {
    /// `arguments` parse, but validation refuses them with a one-line message that contains `message`.
    private func expectRefused(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try LLMCommand.parseAsRoot(arguments)
            Issue.record("\(arguments.joined(separator: " ")) was accepted", sourceLocation: sourceLocation)
        } catch {
            let text = LLMCommand.message(for: error)
            #expect(text.contains(message) && !text.contains("\n"), "\(arguments.joined(separator: " ")): \(text)",
                    sourceLocation: sourceLocation)
            #expect(LLMCommand.exitCode(for: error) != .success, sourceLocation: sourceLocation)
        }
    }

    @Test func tokenizerBenchRepeats() {
        expectRefused(["tokenizer", "bench", "--input", "x.txt", "--repeats", "0"], "--repeats 0 must be between 1 and")
        expectRefused(["tokenizer", "bench", "--input", "x.txt", "--repeats=-1"], "--repeats -1 must be between 1 and")
    }

    @Test func benchPromptAndNewTokens() {
        expectRefused(["bench", "generate", "--prompt", "0"], "--prompt 0 must be at least 1")
        expectRefused(["bench", "generate", "--prompt=-3"], "--prompt -3 must be at least 1")
        expectRefused(["bench", "generate", "--new=-1"], "--new -1 must be at least 0")
    }

    @Test func threadsAndConcurrency() {
        expectRefused(["sample", "--model", "m.bin", "--threads", "100000"], "--threads 100000 must be between 1 and 1024")
        expectRefused(["serve", "--model", "m.bin", "--threads", "100000"], "--threads 100000 must be between 1 and 1024")
        expectRefused(["serve", "--model", "m.bin", "--max-concurrent", "100000"], "--max-concurrent 100000 must be between 1 and 256")
    }

    @Test func sizesThatOverflow() {
        expectRefused(["train", "--input", "x.txt", "--batch", "4611686018427387904"], "--batch")
        expectRefused(["bench", "train", "--batch", "4611686018427387904"], "is more than 2^31 tokens")
        expectRefused(["chat-data", "--out", "x.jsonl", "--count", "9223372036854775807"], "--count")
    }
}

@Suite struct TokenIDInputTests {
    @Test func decodeReadsIntegerIDs() throws {
        #expect(try TokenizerCommand.parseTokenIDs(Data("[15496, 11, 995]".utf8)) == [15496, 11, 995])
        #expect(try TokenizerCommand.parseTokenIDs(Data(" [ ] ".utf8)) == [])
    }

    /// 1e30 used to become id 0; every id that is not an integer in 0...Int32.max is refused, naming the element.
    @Test(arguments: ["[1e30]", "[3.5]", "[-1]", "[true]", "[\"7\"]", "[2147483648]", "{\"a\": 1}", "[1,"])
    func decodeRefusesWhatIsNotAnID(_ input: String) {
        #expect(throws: TokenizerError.self) { try TokenizerCommand.parseTokenIDs(Data(input.utf8)) }
    }
}
