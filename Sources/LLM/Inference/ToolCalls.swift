// Tool use during generation, as nanochat's engine does it: when a chat model writes
// <|python_start|> expression <|python_end|>, the generator evaluates the expression with the `Calculator` and
// feeds <|output_start|> result <|output_end|> back to the model as if it had sampled those tokens (they are
// forced, not sampled), then sampling carries on. A call the calculator cannot answer gets no output, as in
// nanochat. The Generator and the InferenceEngine (per slot) run the same state machine (`ToolCallState`);
// `ReplyPartsDecoder` turns the tokens back into text and calls for whoever shows the reply.

/// The calculator tool of one chat format: its four tokens and the tokenizer that reads a call and writes
/// a result. `ChatFormat.toolCalls` gives one for nanochat's format; formats without the tokens give nil.
public struct ToolCalls: Sendable {
    public let pythonStart: Int32
    public let pythonEnd: Int32
    public let outputStart: Int32
    public let outputEnd: Int32
    public let tokenizer: Tokenizer
    /// Ids that are not text (the chat tokens, the tokenizer's special tokens): a call holding one gets no output.
    private let nonText: Set<Int32>

    /// The most tokens a call may hold (no token is shorter than a byte, and the calculator reads at most
    /// `Calculator.maxInputBytes`); a longer call gets no output.
    public static let maxCallTokens = Calculator.maxInputBytes

    public init(tokens: ChatTokens, tokenizer: Tokenizer) {
        pythonStart = tokens.pythonStart
        pythonEnd = tokens.pythonEnd
        outputStart = tokens.outputStart
        outputEnd = tokens.outputEnd
        self.tokenizer = tokenizer
        nonText = Set(tokens.all).union(tokenizer.specialTokens.values)
    }

    /// The four tool tokens.
    public var ids: [Int32] { [pythonStart, pythonEnd, outputStart, outputEnd] }

    /// The expression a call's tokens spell, nil if they are not all text.
    public func expression(_ call: ArraySlice<Int32>) -> String? {
        guard call.count <= Self.maxCallTokens, !call.contains(where: nonText.contains) else { return nil }
        return try? tokenizer.decodeString(Array(call))
    }

    /// What follows a call of `call` tokens: <|output_start|> result <|output_end|>, or nothing when the
    /// calculator gives no answer.
    public func output(forCall call: ArraySlice<Int32>) -> [Int32] {
        guard let expression = expression(call), let result = Calculator.output(for: expression) else { return [] }
        return [outputStart] + tokenizer.encode(result) + [outputEnd]
    }

    /// Throws unless every token the tool can force fits a model of `vocabSize` (the tool tokens, and the
    /// tokenizer's, which write the result).
    public func check(vocabSize: Int) throws(ModelError) {
        let largest = max(ids.max()!, Int32(clamping: tokenizer.vocabSize - 1))
        guard Int(largest) < vocabSize else {
            throw .tokenOutOfRange(what: "the calculator's tokens", index: 0, token: largest, vocabSize: vocabSize)
        }
    }
}

/// One sequence's place in the tool-use state machine (nanochat's `RowState`): inside a call or not, the
/// call's tokens so far, and the output tokens waiting to be fed. Its buffers are reserved in `init`, so an
/// ordinary token costs no allocation; completing a call allocates (decoding, evaluating, encoding).
struct ToolCallState {
    private var inCall = false
    private var call: [Int32]
    private var forced: [Int32]
    private var nextForced = 0

    init() {
        call = []
        call.reserveCapacity(ToolCalls.maxCallTokens + 1)
        forced = []
        forced.reserveCapacity(64)
    }

    /// The next token to feed without sampling (a call's output), or nil: sample.
    mutating func takeForced() -> Int32? {
        guard nextForced < forced.count else { return nil }
        defer { nextForced += 1 }
        return forced[nextForced]
    }

    /// `token` joined the sequence, sampled or forced. <|python_start|> opens a call; <|python_end|> closes it
    /// and queues its output.
    mutating func observe(_ token: Int32, tools: ToolCalls) {
        if token == tools.pythonStart {
            inCall = true
            call.removeAll(keepingCapacity: true)
        } else if token == tools.pythonEnd && inCall {
            inCall = false
            forced.removeAll(keepingCapacity: true)
            nextForced = 0
            if !call.isEmpty { forced.append(contentsOf: tools.output(forCall: call[...])) }
            call.removeAll(keepingCapacity: true)
        } else if inCall && call.count <= ToolCalls.maxCallTokens {
            call.append(token)  // one past the limit marks the call too long, without growing further
        }
    }
}

// MARK: - Showing a reply

/// A piece of an assistant's reply as it streams: text, or a calculator call with what it answered.
public enum ReplyPiece: Equatable, Sendable {
    case text(String)
    /// `output` is nil when the calculator gave none.
    case call(expression: String, output: String?)

    /// The piece as plain text: a call written inline as GSM8K does, `<<expression=output>>` (or
    /// `<<expression>>`), the same as `Conversation.Message.content` writes it.
    public var inlineText: String {
        switch self {
        case .text(let s): s
        case let .call(expression, output?): "<<\(expression)=\(output)>>"
        case let .call(expression, nil): "<<\(expression)>>"
        }
    }
}

/// Turns an assistant's reply tokens, as they arrive, into `ReplyPiece`s: text (never half a UTF-8
/// character), and each call once its output (or the absence of one) is known. Chat tokens other than the
/// tool's appear as their names, as text. Without `tools`, every token is text or a name.
public struct ReplyPartsDecoder {
    private enum State {
        case text
        case call([Int32])
        /// The call is closed; its output may follow.
        case closed(String)
        case output(String, [Int32])
    }

    public let tools: ToolCalls?
    private let specialName: (Int32) -> String?
    private var decoder: StreamingDecoder
    private var state = State.text

    /// `specialName`: the text shown for a non-text token (the chat format's names), nil for text.
    public init(tokenizer: Tokenizer, tools: ToolCalls?, specialName: @escaping (Int32) -> String? = { _ in nil }) {
        self.tools = tools
        self.specialName = specialName
        decoder = StreamingDecoder(tokenizer: tokenizer)
    }

    /// For a reply in `format`, with its tool if it has one.
    public init(format: any ChatFormat) {
        self.init(tokenizer: format.tokenizer, tools: format.toolCalls, specialName: format.specialName(of:))
    }

    /// The pieces `id` completes (often none or one).
    public mutating func push(_ id: Int32) -> [ReplyPiece] {
        guard let tools else { return text(id) }
        switch state {
        case .text:
            if id == tools.pythonStart {
                state = .call([])
                return flush()
            }
            return text(id)
        case .call(var tokens):
            if id == tools.pythonEnd {
                state = .closed(callText(tokens))
            } else {
                tokens.append(id)
                state = .call(tokens)
            }
            return []
        case .closed(let expression):
            if id == tools.outputStart {
                state = .output(expression, [])
                return []
            }
            state = .text
            return [.call(expression: expression, output: nil)] + push(id)
        case .output(let expression, var tokens):
            if id == tools.outputEnd {
                state = .text
                return [.call(expression: expression, output: callText(tokens))]
            }
            tokens.append(id)
            state = .output(expression, tokens)
            return []
        }
    }

    /// What is left at the end of the reply: text held back, or a call cut short.
    public mutating func finish() -> [ReplyPiece] {
        defer { state = .text }
        switch state {
        case .text: return flush()
        case .call(let tokens): return [.call(expression: callText(tokens), output: nil)]
        case .closed(let expression): return [.call(expression: expression, output: nil)]
        case let .output(expression, tokens): return [.call(expression: expression, output: callText(tokens))]
        }
    }

    private mutating func text(_ id: Int32) -> [ReplyPiece] {
        let piece: String
        if let name = specialName(id) {
            piece = decoder.finish() + name
        } else if let s = try? decoder.push(id) {
            piece = s
        } else {
            piece = decoder.finish() + "\u{FFFD}"  // an id past the tokenizer's (an untrained padded row)
        }
        return piece.isEmpty ? [] : [.text(piece)]
    }

    private mutating func flush() -> [ReplyPiece] {
        let rest = decoder.finish()
        return rest.isEmpty ? [] : [.text(rest)]
    }

    /// A call's or an output's text; non-text tokens show as their names.
    private func callText(_ tokens: [Int32]) -> String {
        var bytes = [UInt8]()
        for id in tokens {
            if let name = specialName(id) { bytes += name.utf8 } else if (try? tools?.tokenizer.appendBytes(of: id, to: &bytes)) == nil {
                bytes += "\u{FFFD}".utf8
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Conversation.Message {
    /// An assistant message from reply pieces: text parts merged, each call a python part and, when it has
    /// one, a python_output part.
    public init(assistantPieces pieces: [ReplyPiece]) {
        var parts = [Conversation.Part]()
        for piece in pieces {
            switch piece {
            case .text(let s):
                if let last = parts.last, last.kind == .text { parts[parts.count - 1].text += s } else { parts.append(.text(s)) }
            case let .call(expression, output):
                parts.append(.python(expression))
                if let output { parts.append(.pythonOutput(output)) }
            }
        }
        self.init(role: .assistant, parts: parts.isEmpty ? [.text("")] : parts)
    }
}
