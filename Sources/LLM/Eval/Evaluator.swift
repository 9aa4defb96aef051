// Scoring evaluation tasks on a model, on the generation path (`Generator`), so a GGUF model kept in its
// quantized blocks is measured on the kernels it answers with. A continuation's tokens are scored one decode
// step at a time after a prefill of what comes before them; consecutive prompts that share a prefix (the options
// of a question, the few-shot examples) reuse the cached positions instead of recomputing them.
import Foundation

/// How one example went.
public struct ExampleScore: Sendable, Equatable, Codable {
    /// The example's index in its task, from 0.
    public var index: Int
    public var correct: Bool
    /// The option chosen (multiple choice, schema, chat_choice).
    public var predicted: Int?
    /// The mean loss (nats per token) of each option's scored tokens, or of the continuation (language modelling).
    public var losses: [Double]?
    /// The reply (chat_answer) and the answer read from it.
    public var reply: String?
    public var answer: String?
}

/// How one task went.
public struct TaskScore: Sendable, Equatable, Codable {
    public var task: String
    public var kind: EvalTask.Kind
    public var examples: Int
    public var correct: Int
    public var accuracy: Double
    public var baseline: Double
    /// (accuracy − baseline) / (1 − baseline): 0 at chance, 1 when every example is right.
    public var centered: Double
    public var seconds: Double
    public var details: [ExampleScore]

    /// The centred accuracy as CORE defines it.
    public static func centered(accuracy: Double, baseline: Double) -> Double { (accuracy - baseline) / (1 - baseline) }
}

/// Bits per byte of a text: the mean negative log-likelihood of its tokens, in bits, per byte of their text.
public struct BitsPerByte: Sendable, Equatable, Codable {
    public var bitsPerByte: Double
    public var tokens: Int
    public var bytes: Int
    public var seconds: Double
}

/// Scores tasks on one model.
public final class Evaluator {
    public let model: LoadedModel
    let generator: Generator
    /// The token a raw-text prompt starts with: the tokenizer's BOS when it adds one, else the document
    /// separator models trained here begin documents with (<|bos|>, <|endoftext|>), else none.
    public let firstToken: Int32?
    /// The positions in the generator's cache (non-sliding models), and the prefix whose last logits `saved` holds.
    private var cached = [Int32]()
    private var savedPrefix: [Int32]?
    private var saved = [Float]()

    public init(model: LoadedModel, parallel: ParallelFor = .allCores) {
        self.model = model
        generator = Generator(weights: model.weights, parallel: parallel)
        let t = model.tokenizer
        firstToken = t.addBOS ? t.bos : t.documentSeparator
    }

    /// Scores the first `limit` examples of `task` (all by default); `progress(done, correct)` after each.
    public func evaluate(_ task: EvalTask, limit: Int? = nil,
                         progress: (Int, Int) -> Void = { _, _ in }) throws -> TaskScore {
        let count = min(task.examples.count, limit ?? .max)
        let start = DispatchTime.now().uptimeNanoseconds
        var details = [ExampleScore]()
        var correct = 0
        if task.kind.isChat, model.chatFormat == nil {
            throw EvalError.unsupported(task: task.name, reason: "a chat task needs a chat model (a template or nanochat's format)")
        }
        for i in 0..<count {
            let score: ExampleScore
            switch task.kind {
            case .multipleChoice, .schema, .languageModeling: score = try scoreText(task, index: i)
            case .chatChoice: score = try scoreChatChoice(task, index: i)
            case .chatAnswer: score = try scoreChatAnswer(task, index: i)
            }
            if score.correct { correct += 1 }
            details.append(score)
            progress(i + 1, correct)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        // The baseline over the examples scored, when a limit leaves some out.
        var baseline = task.baseline
        if count < task.examples.count, task.kind != .languageModeling, task.kind != .chatAnswer {
            baseline = task.examples[0..<count].reduce(0.0) { $0 + 1 / Double($1.optionCount) } / Double(count)
        }
        let accuracy = Double(correct) / Double(count)
        return TaskScore(task: task.name, kind: task.kind, examples: count, correct: correct, accuracy: accuracy,
                         baseline: baseline, centered: TaskScore.centered(accuracy: accuracy, baseline: baseline),
                         seconds: seconds, details: details)
    }

    // MARK: - CORE: raw text

    private func scoreText(_ task: EvalTask, index i: Int) throws -> ExampleScore {
        let shots = EvalPrompts.fewshotIndices(for: i, count: task.examples.count, k: task.fewshot).map { task.examples[$0] }
        let example = task.examples[i]
        let texts = EvalPrompts.texts(for: example, shots: shots, task: task)
        let spans = EvalPrompts.sequences(texts: texts, kind: task.kind, tokenizer: model.tokenizer, first: firstToken,
                                          maxLength: generator.config.maxSeqLen)
        var losses = [Double](), greedy = [Bool]()
        for span in spans {
            let (loss, allGreedy) = try score(span.tokens, from: span.start, to: span.end)
            losses.append(loss)
            greedy.append(allGreedy)
        }
        if task.kind == .languageModeling {
            return ExampleScore(index: i, correct: greedy[0], losses: losses)
        }
        // The first option with the lowest mean loss (as Python's list.index(min(…)) picks it).
        var best = 0
        for k in losses.indices where losses[k] < losses[best] { best = k }
        return ExampleScore(index: i, correct: best == example.gold, predicted: best, losses: losses)
    }

    /// The mean negative log-likelihood of tokens[start..<end] given the tokens before each, and whether the
    /// greedy choice (the first largest logit) is the token at every one of those positions.
    func score(_ tokens: [Int32], from start: Int, to end: Int) throws -> (meanLoss: Double, greedy: Bool) {
        precondition(start >= 1 && start < end && end <= tokens.count)
        let prefix = Array(tokens[0..<start])
        if savedPrefix != prefix {
            try prefill(prefix)
            saved = generator.logits()
            savedPrefix = prefix
        }
        var nll = 0.0, allGreedy = true
        saved.withUnsafeBufferPointer { logits in
            nll -= Perplexity.logSoftmax(logits, at: Int(tokens[start]))
            allGreedy = argmax(logits) == tokens[start]
        }
        if end - start > 1 {
            // Continue from the cached prefix (after the scored tokens of an earlier option, `at:` drops those).
            cached.removeSubrange(start...)
            for j in start..<(end - 1) {
                try generator.forward(tokens[j...j], at: j)
                cached.append(tokens[j])
                generator.withLogits { logits in
                    nll -= Perplexity.logSoftmax(logits, at: Int(tokens[j + 1]))
                    if argmax(logits) != tokens[j + 1] { allGreedy = false }
                }
            }
        }
        return (nll / Double(end - start), allGreedy)
    }

    /// Runs `prefix` so that the logits are those of its last token, reusing the cached positions it shares with
    /// what ran before (a model with sliding-window layers starts again at 0: its cache keeps only a window).
    private func prefill(_ prefix: [Int32]) throws {
        var shared = 0
        if !generator.config.hasSlidingLayers {
            let n = min(cached.count, prefix.count - 1)
            while shared < n && cached[shared] == prefix[shared] { shared += 1 }
        }
        cached.removeSubrange(shared...)
        try generator.forward(prefix[shared...], at: shared)
        cached += prefix[shared...]
    }

    // MARK: - ChatCORE: through the chat format

    /// The chat template's prompt for one user message. One longer than the context (a reply needs room for at
    /// least one token) loses tokens from the front, as raw-text prompts do.
    private func chatPrompt(_ question: String, task: EvalTask) throws -> [Int32] {
        let conversation = Conversation(messages: [.init(role: .user, content: question)])
        let prompt = try model.chatFormat!.renderForCompletion(conversation)
        let limit = generator.config.maxSeqLen - (task.kind == .chatAnswer ? 1 : 0)
        return prompt.count <= limit ? prompt : Array(prompt.suffix(limit))
    }

    private func scoreChatChoice(_ task: EvalTask, index i: Int) throws -> ExampleScore {
        let example = task.examples[i]
        let choices = example.choices!
        let letters = EvalPrompts.letters(choices.count)
        var letterIDs = [Int32]()
        for letter in letters {
            let ids = model.tokenizer.encode(letter)
            guard ids.count == 1 else {
                throw EvalError.unsupported(task: task.name, reason: "the letter \(letter) is \(ids.count) tokens for this tokenizer; chat_choice needs one")
            }
            letterIDs.append(ids[0])
        }
        let prompt = try chatPrompt(EvalPrompts.chatQuestion(example.question!, choices: choices), task: task)
        try prefill(prompt)
        savedPrefix = nil
        let predicted = generator.withLogits { logits in
            var best = 0
            for k in letterIDs.indices where logits[Int(letterIDs[k])] > logits[Int(letterIDs[best])] { best = k }
            return best
        }
        return ExampleScore(index: i, correct: predicted == example.gold, predicted: predicted)
    }

    private func scoreChatAnswer(_ task: EvalTask, index i: Int) throws -> ExampleScore {
        let example = task.examples[i]
        let format = model.chatFormat!
        let prompt = try chatPrompt(example.question!, task: task)
        let room = generator.config.maxSeqLen - prompt.count
        var parameters = GenerateParameters(maxNewTokens: min(task.maxTokens, room), temperature: 0)
        parameters.stopTokens = Set(format.stopTokens + model.endTokens)
        // A model trained here with tool use gets its calculator, as in `llm chat`.
        let result = try generator.generate(prompt: prompt, parameters: parameters, tools: format.toolCalls) { _ in true }
        cached = []
        savedPrefix = nil
        let reply = try format.decode(result.tokens)
        let found = EvalPrompts.extractAnswer(reply)
        let correct = found.map { EvalPrompts.answersMatch($0, example.answer!) } ?? false
        return ExampleScore(index: i, correct: correct, reply: reply, answer: found)
    }

    // MARK: - Bits per byte

    /// Bits per byte of `text`: its tokens (the first-document token before them) in windows of `context`
    /// tokens, each from an empty cache; every token of a window but its first is scored, special tokens (no
    /// bytes) left out. At most `maxTokens` tokens are read.
    public func bitsPerByte(text: [UInt8], context: Int, maxTokens: Int? = nil) throws -> BitsPerByte {
        let tokenizer = model.tokenizer
        let contextLength = min(context, generator.config.maxSeqLen)
        precondition(contextLength >= 2, "a context of at least 2 tokens")
        var tokens = text.withUnsafeBufferPointer { tokenizer.encode(utf8: $0) }
        if let first = firstToken { tokens.insert(first, at: 0) }
        if let maxTokens, tokens.count > maxTokens { tokens.removeLast(tokens.count - maxTokens) }
        guard tokens.count >= 2 else { throw EvalError.unsupported(task: "bits per byte", reason: "the text has fewer than 2 tokens") }
        let start = DispatchTime.now().uptimeNanoseconds
        var nats = 0.0, bytes = 0, scored = 0
        let byteCounts = tokenizer.textByteCounts()
        func byteCount(_ id: Int32) -> Int { Int(id) < byteCounts.count ? byteCounts[Int(id)] : 0 }
        cached = []
        savedPrefix = nil
        var w = 0
        while w + 1 < tokens.count {
            let end = min(w + contextLength, tokens.count)
            for j in w..<(end - 1) {
                try generator.forward(tokens[j...j], at: j - w)
                let target = tokens[j + 1], n = byteCount(target)
                if n > 0 {
                    nats -= generator.withLogits { Perplexity.logSoftmax($0, at: Int(target)) }
                    bytes += n
                    scored += 1
                }
            }
            w = end - 1  // the next window starts at this one's last token, so every token after the first is scored
        }
        guard bytes > 0 else { throw EvalError.unsupported(task: "bits per byte", reason: "the text has no scored bytes") }
        return BitsPerByte(bitsPerByte: nats / Double(bytes) / M_LN2, tokens: scored, bytes: bytes,
                           seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
