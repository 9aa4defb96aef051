// One reply, from the backend's tokens to the text a client sees: decoded as it streams (never half a UTF-8
// character), cut before the first stop sequence, with the finish reason and token counts OpenAI reports.
import LLM

/// How a reply ended, in OpenAI's terms, and its token counts.
struct ReplyOutcome: Sendable {
    /// "stop": a stop token or stop sequence ended it; "length": max_tokens or the model's context did.
    var finishReason: String
    var promptTokens: Int
    var completionTokens: Int
}

/// The text of a reply as its tokens arrive. Text that might be the start of a stop sequence is held back
/// until the next tokens show whether it is one; a stop sequence ends the reply and is not part of it.
struct ReplyText {
    private var decoder: StreamingDecoder
    private let stopSequences: [String]
    /// Decoded text not handed out yet: a tail that could still grow into a stop sequence.
    private var held = ""

    init(tokenizer: Tokenizer, stopSequences: [String]) {
        decoder = StreamingDecoder(tokenizer: tokenizer)
        self.stopSequences = stopSequences
    }

    /// The text that can go out after `token` ("" while a character or a possible stop sequence is
    /// incomplete), and whether a stop sequence has ended the reply.
    mutating func push(_ token: Int32) -> (text: String, stopped: Bool) {
        // Every id the tokenizer cannot decode is a stop token (`ServedModel.stopTokens`), so this never fails.
        held += (try? decoder.push(token)) ?? ""
        if let cut = stopSequences.compactMap({ held.firstRange(of: $0)?.lowerBound }).min() {
            defer { held = "" }
            return (String(held[..<cut]), true)
        }
        let keep = stopSequences.map { stop in
            (1..<max(stop.count, 1)).last { held.hasSuffix(stop.prefix($0)) } ?? 0
        }.max() ?? 0
        defer { held = String(held.suffix(keep)) }
        return (String(held.dropLast(keep)), false)
    }

    /// What is left when generation ends without a stop sequence: held text, and any incomplete character
    /// as U+FFFD.
    mutating func finish() -> String {
        defer { held = "" }
        return held + decoder.finish()
    }
}

extension GenerationBackend {
    /// Runs `job`, handing each piece of text to `emit` as soon as it is known, and returns how the reply ended.
    /// Leaving early (a stop sequence, `emit` throwing because the client went away, the task cancelled)
    /// drops the stream, which cancels the generation in the backend. A backend failure is a 500 `APIError`.
    func reply(to job: GenerationJob, tokenizer: Tokenizer,
               emit: (String) async throws -> Void) async throws -> ReplyOutcome {
        var text = ReplyText(tokenizer: tokenizer, stopSequences: job.stopSequences)
        var tokens = 0
        var events = generate(prompt: job.prompt, parameters: job.parameters).makeAsyncIterator()
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
