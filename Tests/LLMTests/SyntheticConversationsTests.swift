// The synthetic chat data: reproducible, well-formed, correct arithmetic, and readable back as JSONL.
import Foundation
import Testing
@testable import LLM

@Suite struct SyntheticConversationsTests {
    @Test func sameSeedSameConversationsAndAllWellFormed() throws {
        let a = SyntheticConversations.generate(count: 300, seed: 5)
        #expect(a == SyntheticConversations.generate(count: 300, seed: 5))
        #expect(a != SyntheticConversations.generate(count: 300, seed: 6))
        for c in a { try c.validate() }
        #expect(a.contains { $0.messages.first?.role == .system })
        #expect(a.contains { $0.messages.count >= 6 })
    }

    @Test func arithmeticAnswersAreRight() throws {
        let pattern = /What is (\d+) (plus|minus|times) (\d+)\?/
        var checked = 0
        for c in SyntheticConversations.generate(count: 400, seed: 2) {
            // Calculator answers (parts) are checked in ToolUseTests; these are the plain-text ones.
            for (q, a) in zip(c.messages, c.messages.dropFirst()) where q.role == .user && a.isPlainText {
                guard let m = q.content.wholeMatch(of: pattern), let x = Int(m.1), let y = Int(m.3) else { continue }
                let result = m.2 == "plus" ? x + y : m.2 == "minus" ? x - y : x * y
                #expect(a.content == "\(x) \(m.2) \(y) is \(result).")
                checked += 1
            }
        }
        #expect(checked > 50)
    }

    @Test func jsonlRoundTripAndRendering() throws {
        let conversations = SyntheticConversations.generate(count: 50, seed: 9)
        try withTemporaryDirectory { dir in
            try Conversation.writeJSONL(conversations, to: dir + "/chat.jsonl")
            #expect(try Conversation.readJSONL(path: dir + "/chat.jsonl") == conversations)
        }
        let renderer = ChatRenderer(tokenizer: try Tokenizer.gpt2())
        let (ids, mask) = renderer.render(conversations[0])
        #expect(ids.count == mask.count && mask.contains(true) && ids.first == 50256)
    }
}
