// The response bodies, in OpenAI's shapes: a whole completion, and the chunks of a streamed one. Encoded
// with snake_case keys (`jsonBuffer`); `finish_reason` and `logprobs` are written as null rather than left
// out, as OpenAI's are.
import Foundation

struct Usage: Encodable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int

    init(_ outcome: ReplyOutcome) {
        promptTokens = outcome.promptTokens
        completionTokens = outcome.completionTokens
        totalTokens = outcome.promptTokens + outcome.completionTokens
    }
}

/// A completion or one chunk of a stream: `object` names which ("chat.completion", "chat.completion.chunk",
/// "text_completion"), `Choice` is the endpoint's.
struct CompletionBody<Choice: Encodable>: Encodable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [Choice]
    /// In a whole completion, and in a stream's last chunk when the client asked for it (no choices then).
    var usage: Usage?
}

/// A chat completion's one choice: the whole reply.
struct ChatChoice: Encodable {
    var content: String
    var finishReason: String

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: ChoiceKeys.self)
        try c.encode(0, forKey: .index)
        try c.encode(["role": "assistant", "content": content], forKey: .message)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encodeNil(forKey: .logprobs)
    }
}

/// A chat stream chunk's one choice: the role first, then pieces of content, then the finish reason alone.
struct ChatDelta: Encodable {
    var role: String?
    var content: String?
    var finishReason: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: ChoiceKeys.self)
        try c.encode(0, forKey: .index)
        var delta = [String: String]()
        delta["role"] = role
        delta["content"] = content
        try c.encode(delta, forKey: .delta)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encodeNil(forKey: .logprobs)
    }
}

/// A text completion's one choice, whole or a streamed piece (`finishReason` only on the last).
struct TextChoice: Encodable {
    var text: String
    var finishReason: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: ChoiceKeys.self)
        try c.encode(0, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encodeNil(forKey: .logprobs)
    }
}

private enum ChoiceKeys: String, CodingKey { case index, message, delta, text, finishReason = "finish_reason", logprobs }

/// `GET /v1/models`: the one model this server runs.
struct ModelList: Encodable {
    struct Model: Encodable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "llm"
    }
    var object = "list"
    var data: [Model]
}

/// `GET /health`: up, and how busy.
struct Health: Encodable {
    var status = "ok"
    var model: String
    var active: Int
    var queued: Int
}

/// An id like OpenAI's: a prefix ("chatcmpl", "cmpl") and 24 random hex digits.
func responseID(_ prefix: String) -> String {
    prefix + "-" + (0..<3).map { _ in
        let hex = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }.joined()
}

/// Seconds since 1970, as `created` gives them.
func unixTime() -> Int { Int(Date().timeIntervalSince1970) }
