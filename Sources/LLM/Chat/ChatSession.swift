// Talking to a chat model: the conversation so far, the sampling settings, and one `reply` that renders the
// conversation (ChatFormat), generates on the inference engine until <|assistant_end|>, and streams the text
// as it comes. Also the terminal's input rules (commands, multi-line input), kept here so they can be tested.
// `llm chat` is a thin loop over these.

/// Why a chat session cannot start or cannot answer.
public enum ChatSessionError: Error, Equatable, CustomStringConvertible {
    /// The model's vocabulary has no rows for the chat special tokens: it was never fine-tuned for chat.
    case noChatTokens(vocabSize: Int, required: Int)
    /// The user's message alone leaves no room in the model's context.
    case messageTooLong(tokens: Int, maxSeqLen: Int)
    /// A real model (GGUF, Hugging Face folder) without a chat template: a base model, most likely.
    case noChatTemplate(path: String)

    public var description: String {
        switch self {
        case let .noChatTokens(vocabSize, required):
            "the model has no chat tokens (its vocabulary has \(vocabSize) entries, the chat format needs \(required)); fine-tune it with `llm sft` first"
        case let .noChatTemplate(path):
            "\(path) has no chat template (a base model?); continue text with `llm sample`, or give --chat-format with one of \(ChatTemplate.builtinNames.joined(separator: ", "))"
        case let .messageTooLong(tokens, maxSeqLen):
            "the message renders to \(tokens) tokens, which leaves no room in the model's context of \(maxSeqLen); shorten it"
        }
    }
}

/// What one `reply` produced.
public struct ChatReply: Sendable {
    /// The reply's text as streamed (what `onText` accepted; calculator calls inline as
    /// `<<expression=output>>`): the `content` of the conversation's last message.
    public var text: String
    /// The reply as the conversation now holds it: text, and calculator calls with their outputs.
    public var message: Conversation.Message
    /// Why it ended: `.stopToken` at <|assistant_end|> (or <|bos|>), else the budget, the context, or a stop.
    public var finish: EngineFinish
    /// Messages dropped from the front of the conversation to fit the model's context (0 mostly).
    public var forgottenMessages: Int
}

/// A conversation with a chat model through an `InferenceEngine`.
///
/// Each `reply` sends the whole conversation (nanochat's format, a system prompt merged into the first user
/// message) and continues it after <|assistant_start|>, stopping at <|assistant_end|> or <|bos|>. A format with
/// the calculator tool (nanochat's) has the model's calls answered by the engine. When the
/// conversation no longer leaves room for a reply (a quarter of the context, or `maxNewTokens` if less), the
/// oldest user–assistant exchanges are forgotten. Each reply samples with its own seed, drawn from `seed`, so
/// a session with a given seed replays exactly. Use from one thread at a time.
public final class ChatSession {
    public let engine: InferenceEngine
    public let format: any ChatFormat
    /// Sampling settings for the replies; `seed` and `stopTokens` are set per reply.
    public var parameters: GenerateParameters
    /// Merged into the first user message; nil or empty for none. Changing it applies from the next reply.
    public var system: String?
    /// The user and assistant messages so far, alternating, the user first.
    public private(set) var messages: [Conversation.Message] = []
    private var seeds: SplitMix64

    /// A session in nanochat's chat format. Throws `noChatTokens` if the engine's model cannot hold the
    /// tokenizer's chat tokens.
    public convenience init(engine: InferenceEngine, tokenizer: Tokenizer, parameters: GenerateParameters,
                            system: String? = nil, seed: UInt64) throws(ChatSessionError) {
        try self.init(engine: engine, format: ChatRenderer(tokenizer: tokenizer), parameters: parameters,
                      system: system, seed: seed)
    }

    /// A session in the given chat format (a model's own template, say). Throws `noChatTokens` if the engine's
    /// model cannot hold the format's tokens.
    public init(engine: InferenceEngine, format: any ChatFormat, parameters: GenerateParameters, system: String? = nil,
                seed: UInt64) throws(ChatSessionError) {
        self.format = format
        let required = format.requiredVocabSize
        guard engine.config.vocabSize >= required else {
            throw .noChatTokens(vocabSize: engine.config.vocabSize, required: required)
        }
        self.engine = engine
        self.parameters = parameters
        self.system = system
        seeds = SplitMix64(seed: seed)
    }

    /// The conversation as it will be rendered: the system prompt, if any, then the messages.
    public var conversation: Conversation { conversation(messages) }

    private func conversation(_ messages: [Conversation.Message]) -> Conversation {
        let prefix = (system ?? "").isEmpty ? [] : [Conversation.Message(role: .system, content: system!)]
        return Conversation(messages: prefix + messages)
    }

    /// Forgets the messages; keeps the system prompt and the settings.
    public func clear() { messages.removeAll() }

    /// Adds `text` as the user's message and generates the assistant's reply, calling `onText` with each piece
    /// of text as it is decoded (never half a UTF-8 character; a calculator call, once answered, as
    /// `<<expression=output>>`; other chat tokens than the stops as their names). `onText` runs on the engine's thread; return false to stop the reply there, without that
    /// piece. The reply, whole or stopped, joins the conversation. Throws `messageTooLong` (leaving the
    /// conversation as it was) if the message does not fit the context even alone.
    public func reply(to text: String, onText: @escaping @Sendable (String) -> Bool) throws -> ChatReply {
        try replyPieces(to: text) { onText($0.inlineText) }
    }

    /// `reply(to:onText:)` with the reply in pieces: text, and each calculator call once its output is known
    /// (so a terminal can show calls apart from the text).
    public func replyPieces(to text: String, onPiece: @escaping @Sendable (ReplyPiece) -> Bool) throws -> ChatReply {
        var kept = messages + [Conversation.Message(role: .user, content: text)]
        let maxT = engine.config.maxSeqLen, reserve = min(parameters.maxNewTokens, maxT / 4)
        var prompt = try format.renderForCompletion(conversation(kept))  // the last message is the user's
        while prompt.count + reserve > maxT && kept.count > 1 {
            kept.removeFirst(2)  // the oldest exchange: a user message and the assistant's reply
            prompt = try format.renderForCompletion(conversation(kept))
        }
        guard prompt.count < maxT else { throw ChatSessionError.messageTooLong(tokens: prompt.count, maxSeqLen: maxT) }
        let forgotten = messages.count + 1 - kept.count
        messages = kept

        var p = parameters
        p.seed = seeds.next()
        p.stopTokens = Set(format.stopTokens)
        let stream = ReplyStream(format: format, onPiece: onPiece)
        let finish: EngineFinish
        do {
            finish = try engine.generate(prompt: prompt, parameters: p, tools: format.toolCalls) { stream.push($0) }
        } catch {
            messages.removeLast()
            throw error
        }
        let reply = stream.finish()
        messages.append(reply)
        return ChatReply(text: reply.content, message: reply, finish: finish, forgottenMessages: forgotten)
    }
}

/// Turns a reply's tokens into streamed pieces, on the engine's thread; the caller reads `finish()` after
/// the engine has returned.
private final class ReplyStream: @unchecked Sendable {
    let onPiece: @Sendable (ReplyPiece) -> Bool
    var decoder: ReplyPartsDecoder
    /// The pieces the consumer accepted.
    var accepted: [ReplyPiece] = []
    var stopped = false

    init(format: any ChatFormat, onPiece: @escaping @Sendable (ReplyPiece) -> Bool) {
        self.onPiece = onPiece
        decoder = ReplyPartsDecoder(format: format)
    }

    /// Decodes one token and offers the pieces it completes; false when the consumer stopped.
    func push(_ id: Int32) -> Bool {
        for piece in decoder.push(id) where !offer(piece) { return false }
        return true
    }

    private func offer(_ piece: ReplyPiece) -> Bool {
        guard !stopped else { return false }
        guard onPiece(piece) else {
            stopped = true
            return false
        }
        accepted.append(piece)
        return true
    }

    /// The whole reply, once the last token is in: what is left (an incomplete character as U+FFFD, a call
    /// cut short) is offered, then the accepted pieces become the assistant's message.
    func finish() -> Conversation.Message {
        for piece in decoder.finish() where !offer(piece) { break }
        return Conversation.Message(assistantPieces: accepted)
    }
}

// MARK: - Terminal input

/// What the user typed: a message, or a command (a single line starting with "/").
public enum ChatInput: Equatable, Sendable {
    case message(String)
    case clear
    case temperature(Float)
    /// nil: no top-k filter.
    case topK(Int?)
    case topP(Float)
    /// nil: no system prompt.
    case system(String?)
    case help
    case quit
    /// A command that is unknown or has a bad argument; the string says what is wrong.
    case invalid(String)

    /// The commands and what they do, for /help.
    public static let helpText = """
        /clear            forget the conversation (the system prompt stays)
        /temperature X    sampling temperature, 0 for always the most likely token
        /topk K           sample among the K most likely tokens (0 for all)
        /topp P           then keep the fewest tokens whose probability reaches P (1 for all)
        /system TEXT      set the system prompt (/system alone removes it)
        /help             this list
        /quit             exit (or Ctrl-D)
        A line ending in \\ continues on the next line; a line with just \"\"\" starts or ends a block.
        """

    /// Reads one complete input. A single line starting with "/" is a command; anything else, multi-line input
    /// included, is a message.
    public static func parse(_ input: String) -> ChatInput {
        guard input.hasPrefix("/"), !input.contains("\n") else { return .message(input) }
        let parts = input.dropFirst().split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let name = parts.first.map(String.init) ?? ""
        let argument = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        switch name {
        case "clear": return .clear
        case "help", "?": return .help
        case "quit", "exit", "q": return .quit
        case "system": return .system(argument.isEmpty ? nil : argument)
        case "temperature", "temp":
            guard let t = Float(argument), t.isFinite, t >= 0 else { return .invalid("/temperature needs a number ≥ 0") }
            return .temperature(t)
        case "topk":
            guard let k = Int(argument), k >= 0 else { return .invalid("/topk needs a whole number ≥ 0 (0 for all)") }
            return .topK(k == 0 ? nil : k)
        case "topp":
            guard let p = Float(argument), p > 0, p <= 1 else { return .invalid("/topp needs a number in (0, 1]") }
            return .topP(p)
        default: return .invalid("unknown command /\(name); /help lists the commands")
        }
    }
}

/// Gathers typed lines into complete inputs: a line ending in a backslash continues on the next line, and a
/// line holding just `"""` starts a block that runs, newlines kept, until the next such line.
public struct ChatLineAssembler: Sendable {
    private var lines: [String] = []
    private var inBlock = false

    public init() {}

    /// Whether lines so far await more (the prompt shows a continuation marker).
    public var isContinuing: Bool { inBlock || !lines.isEmpty }

    /// Adds a typed line (without its newline); returns the input it completes, or nil if more is needed.
    public mutating func add(_ line: String) -> String? {
        let fence = line.trimmingCharacters(in: .whitespaces) == "\"\"\""
        if inBlock {
            if fence { return complete() }
            lines.append(line)
            return nil
        }
        if fence {
            inBlock = true
            return nil
        }
        if line.hasSuffix("\\") {
            lines.append(String(line.dropLast()))
            return nil
        }
        lines.append(line)
        return complete()
    }

    /// At the end of input: whatever was pending, as if completed (nil if nothing was).
    public mutating func finish() -> String? { isContinuing ? complete() : nil }

    /// Drops what was pending (Ctrl-C at the prompt).
    public mutating func reset() {
        lines.removeAll()
        inBlock = false
    }

    private mutating func complete() -> String {
        defer { reset() }
        return lines.joined(separator: "\n")
    }
}

