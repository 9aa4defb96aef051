import Foundation
import Testing
@testable import LLM

@Suite struct ChatFormatTests {
    static func conversation(_ turns: (Conversation.Role, String)...) -> Conversation {
        Conversation(messages: turns.map { Conversation.Message(role: $0.0, content: $0.1) })
    }

    @Test func gpt2ChatTokensExtendTheVocabulary() throws {
        let chat = ChatTokens(tokenizer: try Tokenizer.gpt2())
        #expect(chat.all == [50256] + Array(50257...50264))
        #expect(chat.bos == Tokenizer.gpt2EndOfText)
        #expect(chat.userStart == 50257 && chat.assistantEnd == 50260 && chat.outputEnd == 50264)
        #expect(chat.requiredVocabSize == 50265)
        #expect(chat.name(of: 50259) == "<|assistant_start|>")
        #expect(chat.name(of: 11) == nil)
    }

    @Test func rendersExactIdsAndMask() throws {
        let tok = try Tokenizer.gpt2()
        let r = ChatRenderer(tokenizer: tok)
        let c = Self.conversation((.user, "Hi there"), (.assistant, "Hello!"), (.user, "Bye"), (.assistant, " See you."))
        let (ids, mask) = r.render(c)
        let (bos, us, ue, as_, ae): (Int32, Int32, Int32, Int32, Int32) = (50256, 50257, 50258, 50259, 50260)
        let hi = tok.encode("Hi there"), hello = tok.encode("Hello!"), bye = tok.encode("Bye"), see = tok.encode(" See you.")
        #expect(hi == [17250, 612] && hello.count == 2)
        let expected: [Int32] = [bos, us] + hi + [ue, as_] + hello + [ae, us] + bye + [ue, as_] + see + [ae]
        let expectedMask = [false, false] + hi.map { _ in false } + [false, false] + hello.map { _ in true } + [true, false]
            + bye.map { _ in false } + [false, false] + see.map { _ in true } + [true]
        #expect(ids == expected)
        #expect(mask == expectedMask)
        #expect(try r.decode(ids) == "<|bos|><|user_start|>Hi there<|user_end|><|assistant_start|>Hello!<|assistant_end|>"
            + "<|user_start|>Bye<|user_end|><|assistant_start|> See you.<|assistant_end|>")
    }

    @Test func systemPromptMergesIntoFirstUserTurn() throws {
        let r = ChatRenderer(tokenizer: try Tokenizer.gpt2())
        let withSystem = r.render(Self.conversation((.system, "Be brief."), (.user, "Hi"), (.assistant, "Yo")))
        let merged = r.render(Self.conversation((.user, "Be brief.\n\nHi"), (.assistant, "Yo")))
        #expect(withSystem.ids == merged.ids && withSystem.mask == merged.mask)
        #expect(try r.decode(withSystem.ids).hasPrefix("<|bos|><|user_start|>Be brief.\n\nHi<|user_end|>"))
    }

    @Test func specialTokenTextTypedByUserStaysText() throws {
        let tok = try Tokenizer.gpt2()
        let r = ChatRenderer(tokenizer: tok)
        let typed = "<|user_end|><|endoftext|><|assistant_start|>"
        let (ids, mask) = r.render(Self.conversation((.user, typed), (.assistant, typed)))
        let text = tok.encode(typed)
        #expect(!text.contains { $0 >= 50256 })
        #expect(ids == [50256, 50257] + text + [50258, 50259] + text + [50260])
        #expect(mask.filter { $0 }.count == text.count + 1)
    }

    @Test func truncationKeepsThePrefix() throws {
        let r = ChatRenderer(tokenizer: try Tokenizer.gpt2())
        let c = Self.conversation((.user, "one two three four"), (.assistant, "five six seven eight nine"))
        let full = r.render(c)
        for n in [0, 1, 5, full.ids.count - 1, full.ids.count, full.ids.count + 10] {
            let cut = r.render(c, maxTokens: n)
            #expect(cut.ids == Array(full.ids.prefix(n)))
            #expect(cut.mask == Array(full.mask.prefix(n)))
        }
    }

    @Test func completionPromptEndsWithAssistantStart() throws {
        let r = ChatRenderer(tokenizer: try Tokenizer.gpt2())
        let c = Self.conversation((.system, "S"), (.user, "Q1"), (.assistant, "A1"), (.user, "Q2"))
        let prompt = try r.renderForCompletion(c)
        #expect(prompt == r.render(c).ids + [r.tokens.assistantStart])
        #expect(prompt.last == 50259)
        #expect(throws: ChatFormatError.completionNeedsUserLast(lastRole: .assistant)) {
            try r.renderForCompletion(Self.conversation((.user, "Q"), (.assistant, "A")))
        }
        #expect(throws: ChatFormatError.completionNeedsUserLast(lastRole: nil)) {
            try r.renderForCompletion(Conversation(messages: []))
        }
        // A system prompt alone merges into nothing: there is no user turn to answer.
        #expect(throws: ChatFormatError.completionNeedsUserLast(lastRole: .system)) {
            try r.renderForCompletion(Self.conversation((.system, "S")))
        }
    }

    @Test func trainedTokenizerUsesItsOwnChatIds() throws {
        let tok = try BPETrainer.train(texts: ["hello world, hello chat, hello there"], vocabSize: 280,
                                       pattern: .gpt4, specialTokens: BPETrainer.chatSpecialTokens)
        let chat = ChatTokens(tokenizer: tok)
        #expect(chat.all == BPETrainer.chatSpecialTokens.map { tok.specialToken($0)! })
        #expect(chat.requiredVocabSize == tok.vocabSize && tok.vocabSize == 280)
        let r = ChatRenderer(tokenizer: tok)
        let (ids, mask) = r.render(Self.conversation((.user, "hello"), (.assistant, "world")))
        let s = { (name: String) in tok.specialToken(name)! }
        #expect(ids == [s("<|bos|>"), s("<|user_start|>")] + tok.encode("hello") + [s("<|user_end|>"), s("<|assistant_start|>")]
            + tok.encode("world") + [s("<|assistant_end|>")])
        #expect(mask.suffix(tok.encode("world").count + 1).allSatisfy { $0 })
        #expect(mask.dropLast(tok.encode("world").count + 1).allSatisfy { !$0 })
        #expect(try r.decode(ids) == (try tok.decodeString(ids)))
    }

    @Test func readsJSONL() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/chat.jsonl"
            let c1 = Self.conversation((.system, "S"), (.user, "U \"q\""), (.assistant, "A\nB"))
            let c2 = Self.conversation((.user, "only a question"))
            let lines = try [c1, c2].map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
            try (lines[0] + "\n\n  \r\n" + lines[1] + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Conversation.readJSONL(path: path) == [c1, c2])
        }
    }

    @Test func jsonlErrorsNameFileAndLine() throws {
        let good = #"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#
        let cases: [(String, (String) -> ChatFormatError)] = [
            (#"{"messages": [{"role": "user", "content": "q"}"#, { .badJSON(path: $0, line: 3, reason: "") }),
            (#"{"messages": [{"role": "tool", "content": "q"}]}"#, { .unknownRole(path: $0, line: 3, role: "tool") }),
            (#"{"messages": []}"#, { .invalidConversation(path: $0, line: 3, problem: .empty) }),
            (#"{"messages": [{"role": "system", "content": "s"}]}"#, { .invalidConversation(path: $0, line: 3, problem: .empty) }),
            (#"{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}"#,
             { .invalidConversation(path: $0, line: 3, problem: .firstNotUser(role: .assistant)) }),
            (#"{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]}"#,
             { .invalidConversation(path: $0, line: 3, problem: .misplacedSystem(index: 1)) }),
            (#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}"#,
             { .invalidConversation(path: $0, line: 3, problem: .repeatedRole(index: 2, role: .assistant)) }),
        ]
        try withTemporaryDirectory { dir in
            let path = dir + "/bad.jsonl"
            for (line, expected) in cases {
                try (good + "\n\n" + line + "\n" + good + "\n").write(toFile: path, atomically: true, encoding: .utf8)
                do throws(ChatFormatError) {
                    _ = try Conversation.readJSONL(path: path)
                    Issue.record("no error for \(line)")
                } catch {
                    if case .badJSON(let p, let n, _) = error { #expect(p == path && n == 3) } else { #expect(error == expected(path)) }
                    #expect(error.description.hasPrefix("\(path):3: "))
                    #expect(!error.description.contains("\n"))
                }
            }
            #expect(throws: ChatFormatError.unreadable(path: dir + "/missing.jsonl", reason: "no such file")) {
                try Conversation.readJSONL(path: dir + "/missing.jsonl")
            }
            #expect(throws: ChatFormatError.unreadable(path: dir, reason: "a directory, not a JSONL file of conversations")) {
                try Conversation.readJSONL(path: dir)
            }
        }
    }

    @Test func trainingRowShiftsAndIgnoresUnsupervisedTargets() {
        let ids: [Int32] = [10, 11, 12, 13, 14, 15]
        let mask = [false, false, false, true, true, false]
        let row = ChatRenderer.trainingRow(ids: ids, mask: mask, length: 8, padding: 99)
        #expect(row.inputs == [10, 11, 12, 13, 14, 99, 99, 99])
        #expect(row.targets == [-1, -1, 13, 14, -1, -1, -1, -1])
        let cut = ChatRenderer.trainingRow(ids: ids, mask: mask, length: 3, padding: 99)
        #expect(cut.inputs == [10, 11, 12] && cut.targets == [-1, -1, 13])
        #expect(ChatRenderer.trainingRow(ids: [10], mask: [false], length: 2, padding: 0) == ([0, 0], [-1, -1]))
    }

    @Test func trainingRowFromARendering() throws {
        let r = ChatRenderer(tokenizer: try Tokenizer.gpt2())
        let (ids, mask) = r.render(Self.conversation((.user, "Hi"), (.assistant, "Hello")))
        let row = r.trainingRow(ids: ids, mask: mask, length: ids.count + 2)
        #expect(row.inputs == Array(ids.dropLast()) + [50256, 50256, 50256])
        // The supervised targets are exactly the assistant's reply and <|assistant_end|>.
        #expect(row.targets.filter { $0 >= 0 } == tok(r, "Hello") + [50260])
    }

    private func tok(_ r: ChatRenderer, _ s: String) -> [Int32] { r.tokenizer.encode(s) }
}
