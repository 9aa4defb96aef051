// Chat sessions on a tiny model with a tokenizer trained with the chat tokens: replies are the Generator's
// tokens as streamed text, the chat tokens stop a reply, a stopped reply keeps what was shown, old exchanges
// give way to new ones, seeds replay a session; and the terminal's input rules.
import Foundation
import Testing
@testable import LLM

@Suite struct ChatSessionTests {
    /// 256 bytes, 35 merges, then the nine chat tokens: 300 ids, all of which the model's vocabulary holds.
    static let tokenizer = try! BPETrainer.train(
        texts: ["hello there, how are you? hello world, the weather is fine, thank you for asking"],
        vocabSize: 300, pattern: .gpt4, specialTokens: BPETrainer.chatSpecialTokens)
    static let chat = ChatTokens(tokenizer: tokenizer)

    /// A random model whose text tokens' embeddings are scaled up, so their logits spread over a few units
    /// while the chat tokens' stay near 0: its replies are text, as a fine-tuned model's would be.
    static func model(vocabSize: Int = 300, seed: UInt64 = 5) -> ModelWeights {
        let config = try! ModelConfig.gpt2(maxSeqLen: 64, vocabSize: vocabSize, numLayers: 2, numHeads: 2, channels: 32)
        let w = ModelWeights.randomGPT2(config: config, seed: seed), C = config.channels
        let firstChatToken = Int(chat.all.min()!)
        w.setTensor(.wte, w.tensor(.wte).enumerated().map { $0.offset / C < firstChatToken ? $0.element * 30 : $0.element })
        return w
    }

    /// A model that always answers `token`: the final LayerNorm outputs its bias, which only that token's
    /// embedding points along.
    static func modelAlwaysSaying(_ token: Int32) -> ModelWeights {
        let w = model(), C = w.config.channels
        w.setTensor(.lnfw, [Float](repeating: 0, count: C))
        w.setTensor(.lnfb, [Float](repeating: 1, count: C))
        var wte = w.tensor(.wte)
        for c in 0..<C { wte[Int(token) * C + c] = 10 }
        w.setTensor(.wte, wte)
        return w
    }

    static func session(_ parameters: GenerateParameters, weights: ModelWeights = model(), seed: UInt64 = 1) throws -> ChatSession {
        try ChatSession(engine: InferenceEngine(weights: weights, maxConcurrent: 1, threads: 1), tokenizer: tokenizer,
                        parameters: parameters, seed: seed)
    }

    @Test func aModelWithoutTheChatTokensIsRefused() throws {
        #expect(Self.chat.requiredVocabSize == 300)
        let engine = InferenceEngine(weights: Self.model(vocabSize: 299), maxConcurrent: 1, threads: 1)
        #expect(throws: ChatSessionError.noChatTokens(vocabSize: 299, required: 300)) {
            try ChatSession(engine: engine, tokenizer: Self.tokenizer, parameters: GenerateParameters(), seed: 0)
        }
        #expect(ChatSessionError.noChatTokens(vocabSize: 299, required: 300).description.contains("llm sft"))
    }

    /// Two turns, greedy: each reply is what the Generator makes of the rendered conversation, streamed as
    /// the text ChatRenderer decodes from those tokens, and joins the conversation.
    @Test func repliesAreTheGeneratorsTokensAsStreamedText() throws {
        let parameters = GenerateParameters(maxNewTokens: 12, temperature: 0)
        let weights = Self.model()
        let session = try Self.session(parameters, weights: weights)
        let renderer = session.format as! ChatRenderer
        for (turn, message) in ["hello there", "how is the weather?"].enumerated() {
            let before = session.conversation
            let pieces = Pieces()
            let reply = try session.reply(to: message) { pieces.append($0) }

            let prompt = try renderer.renderForCompletion(Conversation(messages: before.messages + [.init(role: .user, content: message)]))
            var expected = parameters
            expected.stopTokens = [Self.chat.assistantEnd, Self.chat.bos]
            let result = try Generator(weights: weights, parallel: ParallelFor(threads: 1))
                .generate(prompt: prompt, parameters: expected) { _ in true }
            #expect(!reply.text.isEmpty)
            #expect(reply.text == (try renderer.decode(result.tokens)), "turn \(turn)")
            #expect(pieces.joined == reply.text)
            #expect(reply.finish.stopReason == result.stopReason && reply.finish.completionTokens == result.tokens.count)
            #expect(reply.finish.promptTokens == prompt.count && reply.forgottenMessages == 0)
            #expect(session.messages.count == 2 * (turn + 1))
            #expect(session.messages.suffix(2) == [.init(role: .user, content: message), .init(role: .assistant, content: reply.text)])
        }
    }

    @Test(arguments: [ChatSessionTests.chat.assistantEnd, ChatSessionTests.chat.bos])
    func theChatStopTokensEndAReply(stop: Int32) throws {
        let session = try Self.session(GenerateParameters(maxNewTokens: 10), weights: Self.modelAlwaysSaying(stop))
        let reply = try session.reply(to: "hello") { _ in true }
        #expect(reply.text.isEmpty && reply.finish.stopReason == .stopToken(stop))
        #expect(session.messages == [.init(role: .user, content: "hello"), .init(role: .assistant, content: "")])
    }

    /// Other chat tokens are shown by name.
    @Test func otherChatTokensAppearByName() throws {
        let session = try Self.session(GenerateParameters(maxNewTokens: 3), weights: Self.modelAlwaysSaying(Self.chat.userStart))
        let reply = try session.reply(to: "hello") { _ in true }
        #expect(reply.text == "<|user_start|><|user_start|><|user_start|>")
        #expect(reply.finish.stopReason == .maxNewTokens)
    }

    @Test func aStoppedReplyKeepsWhatWasShown() throws {
        let session = try Self.session(GenerateParameters(maxNewTokens: 10), weights: Self.modelAlwaysSaying(Self.chat.userStart))
        let pieces = Pieces()
        let reply = try session.reply(to: "hello") { pieces.append($0) && pieces.count < 3 }
        #expect(reply.finish.stopReason == .cancelled)
        #expect(reply.text == "<|user_start|><|user_start|>", "the refused third piece is not kept")
        #expect(session.messages.last == .init(role: .assistant, content: reply.text))
    }

    /// maxT 64 and replies of up to 8 tokens: old exchanges are forgotten so each prompt leaves 8 positions;
    /// a message that cannot fit even alone is refused and the conversation stays as it was.
    @Test func oldExchangesGiveWayAndTooLongMessagesAreRefused() throws {
        let session = try Self.session(GenerateParameters(maxNewTokens: 8, temperature: 0))
        session.system = "be brief"
        var forgotten = 0
        for i in 0..<6 {
            let reply = try session.reply(to: "hello there, how are you? \(i)") { _ in true }
            forgotten += reply.forgottenMessages
            #expect(reply.finish.promptTokens + 8 <= 64)
            #expect(session.messages.first?.role == .user && session.messages.last?.role == .assistant)
            #expect(session.messages.last?.content == reply.text)
        }
        #expect(forgotten > 0 && forgotten % 2 == 0)
        #expect(session.messages.count == 12 - forgotten)
        #expect(session.conversation.messages.first == Conversation.Message(role: .system, content: "be brief"))

        let kept = session.messages
        let long = String(repeating: "the weather is fine ", count: 20)
        #expect(throws: ChatSessionError.self) { try session.reply(to: long) { _ in true } }
        #expect(session.messages == kept)
        session.clear()
        #expect(session.messages.isEmpty && session.system == "be brief")
    }

    @Test func aSeedReplaysTheSession() throws {
        let parameters = GenerateParameters(maxNewTokens: 10, temperature: 2)
        func replies(seed: UInt64) throws -> [String] {
            let session = try Self.session(parameters, seed: seed)
            return try ["hello", "how are you?", "thank you"].map { try session.reply(to: $0) { _ in true }.text }
        }
        let first = try replies(seed: 3)
        #expect(try replies(seed: 3) == first)
        #expect(try replies(seed: 4) != first)
    }

    // MARK: - Terminal input

    @Test func commandsAndMessages() {
        #expect(ChatInput.parse("hello") == .message("hello"))
        #expect(ChatInput.parse("/clear") == .clear)
        #expect(ChatInput.parse("/temperature 0.8") == .temperature(0.8))
        #expect(ChatInput.parse("/temperature -1") == .invalid("/temperature needs a number ≥ 0"))
        #expect(ChatInput.parse("/topk 40") == .topK(40))
        #expect(ChatInput.parse("/topk 0") == .topK(nil))
        #expect(ChatInput.parse("/topp 0.9") == .topP(0.9))
        #expect(ChatInput.parse("/system You are terse.") == .system("You are terse."))
        #expect(ChatInput.parse("/system") == .system(nil))
        #expect(ChatInput.parse("/help") == .help)
        #expect(ChatInput.parse("/quit") == .quit)
        guard case .invalid = ChatInput.parse("/frobnicate") else { Issue.record("an unknown command"); return }
        #expect(ChatInput.parse("/not a command\nsecond line") == .message("/not a command\nsecond line"))
    }

    @Test func multiLineInput() {
        var a = ChatLineAssembler()
        #expect(a.add("one line") == "one line")
        #expect(a.add("first \\") == nil && a.isContinuing)
        #expect(a.add("second") == "first \nsecond" && !a.isContinuing)
        #expect(a.add("\"\"\"") == nil && a.isContinuing)
        #expect(a.add("def f():") == nil)
        #expect(a.add("    return 1 \\") == nil)
        #expect(a.add("") == nil)
        #expect(a.add(" \"\"\" ") == "def f():\n    return 1 \\\n")
        #expect(a.finish() == nil)
        #expect(a.add("\"\"\"") == nil && a.add("unfinished") == nil)
        #expect(a.finish() == "unfinished")
        #expect(a.add("dropped \\") == nil)
        a.reset()
        #expect(!a.isContinuing && a.add("fresh") == "fresh")
    }
}

/// Text pieces a callback on the engine thread records.
private final class Pieces: @unchecked Sendable {
    private let lock = NSLock()
    private var pieces: [String] = []
    func append(_ s: String) -> Bool {
        lock.withLock { pieces.append(s) }
        return true
    }
    var count: Int { lock.withLock { pieces.count } }
    var joined: String { lock.withLock { pieces.joined() } }
}
