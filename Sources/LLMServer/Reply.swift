// One reply, from the backend's tokens to the text a client sees: decoded as it streams (never half a UTF-8
// character), calculator calls written inline as `<<expression=output>>` once their output is in, cut before
// the first stop sequence, with the finish reason and token counts OpenAI reports.
import LLM

/// How a reply ended, in OpenAI's terms, and its token counts.
struct ReplyOutcome: Sendable {
    /// "stop": a stop token or stop sequence ended it; "length": max_tokens or the model's context did.
    var finishReason: String
    var promptTokens: Int
    var completionTokens: Int
}

/// The text of a reply as its tokens arrive. Text that might be the start of a stop sequence is held back
/// until the next tokens show whether it is one; a stop sequence ends the reply and is not part of it (the first
/// one to be complete, when several overlap). Matching runs over the text's UTF-8 bytes with one
/// Knuth–Morris–Pratt automaton per stop sequence: each byte costs a constant amortized step per sequence, so a
/// reply's matching is linear in its length whatever the stop sequences are (the number and length of which
/// `ServerLimits` bounds as well).
struct ReplyText {
    private var decoder: ReplyPartsDecoder
    private var matchers: [StopMatcher]
    /// Decoded bytes not handed out yet: a tail that could still grow into a stop sequence.
    private var held = [UInt8]()

    /// `tools`: the job's calculator, whose tokens become inline calls. Every other id the tokenizer cannot
    /// decode is a stop token (`ServedModel.stopTokens`), so none reaches the decoder.
    init(tokenizer: Tokenizer, stopSequences: [String], tools: ToolCalls? = nil) {
        decoder = ReplyPartsDecoder(tokenizer: tokenizer, tools: tools)
        matchers = stopSequences.filter { !$0.isEmpty }.map(StopMatcher.init)
    }

    /// The text that can go out after `token` ("" while a character, a call or a possible stop sequence is
    /// incomplete), and whether a stop sequence has ended the reply.
    mutating func push(_ token: Int32) -> (text: String, stopped: Bool) {
        let piece = decoder.push(token).map(\.inlineText).joined()
        for byte in piece.utf8 {
            held.append(byte)
            var cut: Int?
            for i in matchers.indices where matchers[i].feed(byte) {
                cut = min(cut ?? .max, held.count - matchers[i].pattern.count)
            }
            if let cut {
                defer { held = [] }
                return (String(decoding: held[..<cut], as: UTF8.self), true)
            }
        }
        // Hold back the longest partial match: it starts at a character boundary, since every stop sequence does.
        let keep = matchers.reduce(0) { max($0, $1.matched) }
        defer { held.removeFirst(held.count - keep) }
        return (String(decoding: held[..<(held.count - keep)], as: UTF8.self), false)
    }

    /// What is left when generation ends without a stop sequence: held text, and any incomplete character
    /// as U+FFFD.
    mutating func finish() -> String {
        defer { held = [] }
        return String(decoding: held, as: UTF8.self) + decoder.finish().map(\.inlineText).joined()
    }
}

/// Knuth–Morris–Pratt over bytes: how much of `pattern` the bytes fed so far end with.
struct StopMatcher {
    let pattern: [UInt8]
    /// failure[k]: the longest proper prefix of pattern[..<k+1] that is also its suffix.
    private let failure: [Int]
    /// Bytes of the pattern the text currently ends with.
    private(set) var matched = 0

    init(_ stop: String) {
        pattern = Array(stop.utf8)
        var failure = [Int](repeating: 0, count: pattern.count), k = 0
        for i in pattern.indices.dropFirst() {
            while k > 0 && pattern[i] != pattern[k] { k = failure[k - 1] }
            if pattern[i] == pattern[k] { k += 1 }
            failure[i] = k
        }
        self.failure = failure
    }

    /// Feeds one byte; true when the text now ends with the whole pattern (which then starts matching afresh).
    mutating func feed(_ byte: UInt8) -> Bool {
        while matched > 0 && pattern[matched] != byte { matched = failure[matched - 1] }
        if pattern[matched] == byte { matched += 1 }
        guard matched == pattern.count else { return false }
        matched = failure[matched - 1]
        return true
    }
}

extension GenerationBackend {
    /// Runs `job`, handing each piece of text to `emit` as soon as it is known, and returns how the reply ended.
    /// Leaving early (a stop sequence, `emit` throwing because the client went away, the task cancelled)
    /// drops the stream, which cancels the generation in the backend. A backend failure is a 500 `APIError`.
    func reply(to job: GenerationJob, tokenizer: Tokenizer,
               emit: (String) async throws -> Void) async throws -> ReplyOutcome {
        var text = ReplyText(tokenizer: tokenizer, stopSequences: job.stopSequences, tools: job.tools)
        var tokens = 0
        var events = generate(prompt: job.prompt, parameters: job.parameters, tools: job.tools).makeAsyncIterator()
        while true {
            let event: EngineEvent?
            do { event = try await events.next() } catch {
                throw APIError(status: .internalServerError, message: "generation failed: \(error)")
            }
            switch event {
            case .token(let id):
                tokens += 1
                let (piece, stopped) = text.push(id)
                if !piece.isEmpty { try await emit(piece) }
                if stopped { return ReplyOutcome(finishReason: "stop", promptTokens: job.prompt.count, completionTokens: tokens) }
            case .finished(let finish):
                let rest = text.finish()
                if !rest.isEmpty { try await emit(rest) }
                let reason = switch finish.stopReason {
                case .maxNewTokens, .contextFull: "length"
                case .stopToken, .cancelled: "stop"
                }
                return ReplyOutcome(finishReason: reason, promptTokens: finish.promptTokens, completionTokens: finish.completionTokens)
            case nil:
                // The stream ends without `.finished` only when this task was cancelled.
                try Task.checkCancellation()
                throw APIError(status: .internalServerError, message: "generation ended without finishing")
            }
        }
    }
}
