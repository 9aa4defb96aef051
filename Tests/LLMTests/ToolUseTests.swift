// Tool use as nanochat does it: conversations with calculator parts (JSONL, validation, rendering and its
// loss mask), the generators forcing a call's output (checked on a scripted model whose greedy choice is a
// fixed successor of the token it reads), chat sessions showing and keeping calls, and the synthetic data.
import Foundation
import MallocCounter
import Testing
@testable import LLM

@Suite struct ToolUseTests {
    /// Bytes, a few merges of text without digits, then the nine chat tokens: 300 ids.
    static let tokenizer = try! BPETrainer.train(
        texts: ["hello there, how are you? hello world, the weather is fine, thank you for asking"],
        vocabSize: 300, pattern: .gpt4, specialTokens: BPETrainer.chatSpecialTokens)
    static let chat = ChatTokens(tokenizer: tokenizer)
    static let tools = ToolCalls(tokens: chat, tokenizer: tokenizer)

    /// The single token of `text`.
    static func id(_ text: String) -> Int32 {
        let ids = tokenizer.encode(text)
        precondition(ids.count == 1, "\(text) is \(ids.count) tokens")
        return ids[0]
    }

    /// A nanochat-shaped model whose greedy next token is `successors[t]` after token t: its blocks add nothing
    /// (every weight but the embedding and the head is zero), token t's embedding is a unit vector of its own,
    /// and the head's row for successors[t] points along it. Tokens without a successor give all-zero logits.
    static func scriptedModel(_ successors: [Int32: Int32]) -> ModelWeights {
        let config = try! ModelPreset.nanochat(depth: 1, vocabSize: chat.requiredVocabSize, maxSeqLen: 64)
        let weights = ModelWeights(config: config), C = config.channels
        var wte = [Float](repeating: 0, count: config.paddedVocabSize * C), head = wte
        for (channel, (t, next)) in successors.sorted(by: { $0.key < $1.key }).enumerated() {
            wte[Int(t) * C + channel] = 1
            head[Int(next) * C + channel] = 1
        }
        weights.setTensor(.wte, wte)
        weights.setTensor(.lmHead, head)
        return weights
    }

    /// The script of a call: the prompt's last token opens `expression`'s call, whose tokens follow each other;
    /// after <|python_end|> the model would say "9" and after <|output_start|> "7" (both overridden when the
    /// output is forced), and <|output_end|> leads to `after` tokens, then <|assistant_end|>.
    static func callScript(from first: Int32, expression: String, after: [Int32] = []) -> [Int32: Int32] {
        let chain = [first, chat.pythonStart] + tokenizer.encode(expression) + [chat.pythonEnd]
        var successors = [Int32: Int32]()
        for (a, b) in zip(chain, chain.dropFirst()) { successors[a] = b }
        successors[chat.pythonEnd] = id("9")
        successors[id("9")] = chat.assistantEnd
        successors[chat.outputStart] = id("7")
        let tail = [chat.outputEnd] + after + [chat.assistantEnd]
        for (a, b) in zip(tail, tail.dropFirst()) { successors[a] = b }
        return successors
    }

    static let prompt = [chat.bos, chat.userStart, id("1"), chat.userEnd, chat.assistantStart]
    static let greedy = GenerateParameters(maxNewTokens: 20, temperature: 0, stopTokens: [chat.assistantEnd, chat.bos])

    // MARK: - Generation

    /// After <|python_end|> the next tokens fed are exactly <|output_start|>, the result's tokens and
    /// <|output_end|>, not what the model would have sampled; the model then reads them (its next token is
    /// <|output_end|>'s successor).
    @Test func theGeneratorForcesTheCallsOutput() throws {
        let weights = Self.scriptedModel(Self.callScript(from: Self.chat.assistantStart, expression: "12*3", after: [Self.id("!")]))
        let generator = Generator(weights: weights, parallel: ParallelFor(threads: 1))
        let c = Self.chat
        let call = [c.pythonStart] + Self.tokenizer.encode("12*3") + [c.pythonEnd]

        let plain = try generator.generate(prompt: Self.prompt, parameters: Self.greedy) { _ in true }
        #expect(plain.tokens == call + [Self.id("9")], "without tools the model goes on after the call as scripted")

        var streamed = [Int32]()
        let result = try generator.generate(prompt: Self.prompt, parameters: Self.greedy, tools: Self.tools) {
            streamed.append($0)
            return true
        }
        let output = [c.outputStart] + Self.tokenizer.encode("36") + [c.outputEnd]
        #expect(result.tokens == call + output + [Self.id("!")])
        #expect(streamed == result.tokens && result.stopReason == .stopToken(c.assistantEnd))
    }

    /// A call the calculator cannot answer gets no output: the model's own next token follows, as in nanochat.
    @Test func aFailedCallGetsNoOutput() throws {
        let weights = Self.scriptedModel(Self.callScript(from: Self.chat.assistantStart, expression: "1/0"))
        let result = try Generator(weights: weights, parallel: ParallelFor(threads: 1))
            .generate(prompt: Self.prompt, parameters: Self.greedy, tools: Self.tools) { _ in true }
        let c = Self.chat
        #expect(result.tokens == [c.pythonStart] + Self.tokenizer.encode("1/0") + [c.pythonEnd, Self.id("9")])
    }

    /// The engine forces per slot: a request with tools and one without, decoding together, each get what
    /// the Generator gives them.
    @Test func theEngineForcesPerSlot() async throws {
        let weights = Self.scriptedModel(Self.callScript(from: Self.chat.assistantStart, expression: "7*6", after: [Self.id("!")]))
        let generator = Generator(weights: weights, parallel: ParallelFor(threads: 1))
        let withTools = try generator.generate(prompt: Self.prompt, parameters: Self.greedy, tools: Self.tools) { _ in true }
        let without = try generator.generate(prompt: Self.prompt, parameters: Self.greedy) { _ in true }
        #expect(withTools.tokens.contains(Self.chat.outputStart) && !without.tokens.contains(Self.chat.outputStart))

        let engine = InferenceEngine(weights: weights, maxConcurrent: 2, threads: 1)
        defer { engine.shutdown() }
        async let a = InferenceEngineTests.collect(engine.generate(prompt: Self.prompt, parameters: Self.greedy, tools: Self.tools))
        async let b = InferenceEngineTests.collect(engine.generate(prompt: Self.prompt, parameters: Self.greedy))
        let (ra, rb) = try await (a, b)
        #expect(ra.tokens == withTools.tokens && ra.finish?.stopReason == withTools.stopReason)
        #expect(rb.tokens == without.tokens && rb.finish?.stopReason == without.stopReason)
        #expect(ra.finish?.completionTokens == withTools.tokens.count)
    }

    @Test func toolTokensMustFitTheModel() throws {
        let small = try ModelConfig.gpt2(maxSeqLen: 16, vocabSize: 299, numLayers: 1, numHeads: 1, channels: 8)
        let weights = ModelWeights.randomGPT2(config: small, seed: 1)
        #expect(throws: ModelError.self) {
            try Generator(weights: weights, parallel: ParallelFor(threads: 1))
                .generate(prompt: [1], parameters: Self.greedy, tools: Self.tools) { _ in true }
        }
        let engine = InferenceEngine(weights: weights, maxConcurrent: 1, threads: 1)
        defer { engine.shutdown() }
        #expect(throws: ModelError.self) { try engine.generate(prompt: [1], parameters: Self.greedy, tools: Self.tools) { _ in true } }
    }

    /// With tools on, a reply that makes no call costs no allocation per token (the call buffers are reserved
    /// before the loop). A first run warms up what the runtime allocates once per process (run alone,
    /// InferenceTests' allocation test sees 3 such allocations in whichever case runs first).
    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"))
    func toolsCostNoAllocationWithoutACall() throws {
        let a = Self.id("a"), b = Self.id("b")
        let generator = Generator(weights: Self.scriptedModel([Self.chat.assistantStart: a, a: b, b: a]),
                                  parallel: ParallelFor(threads: 1))
        var calls = 0, allocations = -1
        let parameters = GenerateParameters(maxNewTokens: 12, temperature: 0)
        // A first run outside the count, for what the runtime sets up once per process.
        _ = try generator.generate(prompt: Self.prompt, parameters: parameters, tools: Self.tools) { _ in true }
        let result = try generator.generate(prompt: Self.prompt, parameters: parameters, tools: Self.tools) { _ in
            calls += 1
            if calls == 1 { malloc_counter_arm() }
            if calls == parameters.maxNewTokens { allocations = malloc_counter_disarm() }
            return true
        }
        #expect(result.tokens.prefix(4) == [a, b, a, b])
        #expect(allocations == 0, "\(parameters.maxNewTokens - 1) decode steps made \(allocations) heap allocations")
    }

    // MARK: - Chat sessions

    /// A session streams the call as one piece once its output is in, keeps it as parts, and renders it back
    /// with the tool's tokens on the next turn.
    @Test func aChatSessionShowsAndKeepsCalls() throws {
        let weights = Self.scriptedModel(Self.callScript(from: Self.chat.assistantStart, expression: "2+5", after: [Self.id("!")]))
        let engine = InferenceEngine(weights: weights, maxConcurrent: 1, threads: 1)
        defer { engine.shutdown() }
        let session = try ChatSession(engine: engine, tokenizer: Self.tokenizer,
                                      parameters: GenerateParameters(maxNewTokens: 20, temperature: 0), seed: 1)
        let pieces = PieceLog()
        let reply = try session.replyPieces(to: "1") { pieces.append($0) }
        #expect(pieces.all == [.call(expression: "2+5", output: "7"), .text("!")])
        #expect(reply.text == "<<2+5=7>>!" && reply.message.parts == [.python("2+5"), .pythonOutput("7"), .text("!")])
        #expect(session.messages.last == reply.message)

        let renderer = ChatRenderer(tokenizer: Self.tokenizer)
        let ids = renderer.render(session.conversation).ids
        let c = Self.chat
        let expected = [c.assistantStart, c.pythonStart] + Self.tokenizer.encode("2+5")
            + [c.pythonEnd, c.outputStart] + Self.tokenizer.encode("7") + [c.outputEnd, Self.id("!"), c.assistantEnd]
        #expect(Array(ids.suffix(expected.count)) == expected)

        let text = try session.reply(to: "1") { _ in true }
        #expect(text.text == "<<2+5=7>>!")
    }

    @Test func theReplyDecoderHandlesCallsWithoutOutputAndCutShort() {
        let c = Self.chat, t = Self.tokenizer
        var decoder = ReplyPartsDecoder(format: ChatRenderer(tokenizer: t))
        var pieces = [ReplyPiece]()
        for id in t.encode("hi ") + [c.pythonStart] + t.encode("1/0") + [c.pythonEnd] + t.encode("no") + [c.userStart, c.pythonStart] + t.encode("3*") {
            pieces += decoder.push(id)
        }
        pieces += decoder.finish()
        #expect(Conversation.Message(assistantPieces: pieces).parts
                == [.text("hi "), .python("1/0"), .text("no<|user_start|>"), .python("3*")])
        #expect(pieces.map(\.inlineText).joined() == "hi <<1/0>>no<|user_start|><<3*>>")

        var plain = ReplyPartsDecoder(tokenizer: t, tools: nil, specialName: c.name(of:))
        let text = (t.encode("a") + [c.pythonStart]).flatMap { plain.push($0) } + plain.finish()
        #expect(text == [.text("a"), .text("<|python_start|>")], "without tools the tool tokens are names")
    }

    // MARK: - Conversations with parts

    @Test func renderingSupervisesTheCallButNotItsOutput() {
        let t = Self.tokenizer, c = Self.chat
        let conversation = Conversation(messages: [
            .init(role: .user, content: "q"),
            .init(role: .assistant, parts: [.text("x"), .python("1+2"), .pythonOutput("3"), .text("y")]),
        ])
        let (ids, mask) = ChatRenderer(tokenizer: t).render(conversation)
        let call = [c.pythonStart] + t.encode("1+2") + [c.pythonEnd], output = [c.outputStart] + t.encode("3") + [c.outputEnd]
        let assistant = [c.assistantStart] + t.encode("x") + call + output + t.encode("y") + [c.assistantEnd]
        #expect(ids == [c.bos, c.userStart] + t.encode("q") + [c.userEnd] + assistant)
        let expectedMask = [Bool](repeating: false, count: 3 + t.encode("q").count) + [false]
            + [Bool](repeating: true, count: t.encode("x").count + call.count)
            + [Bool](repeating: false, count: output.count) + [Bool](repeating: true, count: t.encode("y").count + 1)
        #expect(mask == expectedMask)
        // A plain string renders as one text part did before.
        let plain = Conversation(messages: [.init(role: .user, content: "q"), .init(role: .assistant, content: "xy")])
        let parts = Conversation(messages: [.init(role: .user, content: "q"), .init(role: .assistant, parts: [.text("xy")])])
        #expect(ChatRenderer(tokenizer: t).render(plain) == ChatRenderer(tokenizer: t).render(parts))
    }

    @Test func jsonlTakesNanochatsPartsAndPlainStrings() throws {
        let line = #"{"messages": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": [{"type": "text", "text": "Sure: "}, {"type": "python", "text": "2+3"}, {"type": "python_output", "text": "5"}, {"type": "text", "text": " So 5."}]}]}"#
        try withTemporaryDirectory { dir in
            let path = dir + "/c.jsonl"
            try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: path))
            let read = try Conversation.readJSONL(path: path)
            let expected = Conversation(messages: [
                .init(role: .user, content: "What is 2+3?"),
                .init(role: .assistant, parts: [.text("Sure: "), .python("2+3"), .pythonOutput("5"), .text(" So 5.")]),
            ])
            #expect(read == [expected])
            #expect(read[0].messages[1].content == "Sure: <<2+3=5>> So 5.")
            try Conversation.writeJSONL(read + [Conversation(messages: [.init(role: .user, content: "a"), .init(role: .assistant, content: "b")])],
                                        to: dir + "/out.jsonl")
            let written = try String(contentsOfFile: dir + "/out.jsonl", encoding: .utf8)
            #expect(written.contains(#"{"text":"2+3","type":"python"}"#))
            #expect(written.contains(#"{"content":"b","role":"assistant"}"#), "a plain message stays a string")
            #expect(try Conversation.readJSONL(path: dir + "/out.jsonl").first == expected)

            let bad: [(String, (String) -> Bool)] = [
                (#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "code", "text": "x"}]}]}"#,
                 { $0.contains("content[0].type") }),
                (#"{"messages": [{"role": "user", "content": [{"type": "python", "text": "1"}]}, {"role": "assistant", "content": "a"}]}"#,
                 { $0.contains("message 0 is from the user") }),
                (#"{"messages": [{"role": "user", "content": 3}]}"#, { $0.contains("bad JSON") }),
            ]
            for (text, check) in bad {
                try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: path))
                do {
                    _ = try Conversation.readJSONL(path: path)
                    Issue.record("accepted \(text)")
                } catch {
                    #expect(check("\(error)"), "\(error)")
                }
            }
        }
    }

    @Test func inlineCallsReadBackAsParts() {
        let parts: [Conversation.Part] = [.text("Let me see: "), .python("12/60"), .pythonOutput("0.2"), .text(" and "), .python("5*5"), .text(".")]
        let message = Conversation.Message(role: .assistant, parts: parts)
        #expect(message.content == "Let me see: <<12/60=0.2>> and <<5*5>>.")
        #expect(Conversation.Message(role: .assistant, inlineCalls: message.content) == message)
        for text in ["a << b", "x <<>> y", "<<=3>>", "a <<1\n=2>> b", "cout << x;", "", "<<1<<2=3>>"] {
            let m = Conversation.Message(role: .assistant, inlineCalls: text)
            #expect(m.content == text, "\(text.debugDescription) -> \(m.parts)")
        }
        #expect(Conversation.Message(role: .assistant, inlineCalls: "<<1<<2=3>>").parts.contains(.python("2")))
    }

    // MARK: - Data

    @Test func syntheticToolTurnsCarryTheCalculatorsOutput() throws {
        var calls = 0
        for c in SyntheticConversations.generate(count: 300, seed: 4) {
            try c.validate()
            for m in c.messages where !m.isPlainText {
                let python = try #require(m.parts.first { $0.kind == .python })
                let output = try #require(m.parts.first { $0.kind == .pythonOutput })
                #expect(Calculator.output(for: python.text) == output.text)
                #expect(m.parts.last?.text.hasPrefix(" The answer is ") == true)
                calls += 1
            }
        }
        #expect(calls > 50)
    }

    @Test func arithmeticProblemsAreSeededAndCheckable() throws {
        let problems = ArithmeticProblems.generate(count: 200, seed: 3)
        #expect(problems == ArithmeticProblems.generate(count: 200, seed: 3))
        #expect(problems != ArithmeticProblems.generate(count: 200, seed: 4))
        #expect(Set(problems.map(\.question)).count > 150)
        for p in problems {
            #expect(Calculator.evaluate(p.expression) == .success(p.answer))
            #expect(p.isCorrect("So the answer is \(p.answerText)."), "\(p)")
            #expect(!p.isCorrect("The answer is \(p.answerText)1."))
            #expect(!p.answerText.hasSuffix(".0"))
        }
        let big = ArithmeticProblem(question: "", expression: "1000*1234", answer: .int(1_234_000))
        #expect(big.isCorrect("It is 1,234,000.") && !big.isCorrect("no idea") && !big.isCorrect("1,234,000 or 5"))
    }
}

/// Pieces a callback on the engine thread records.
private final class PieceLog: @unchecked Sendable {
    private let lock = NSLock()
    private var pieces: [ReplyPiece] = []
    func append(_ p: ReplyPiece) -> Bool { lock.withLock { pieces.append(p) }; return true }
    var all: [ReplyPiece] { lock.withLock { pieces } }
}
