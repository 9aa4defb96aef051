// The request bodies of /v1/chat/completions and /v1/completions: decoded leniently (unknown fields are
// ignored, null means absent) and checked strictly (a wrong type or a value out of range is a 400 naming the
// field), then turned into a `GenerationJob`, the one thing the handlers run.
import Foundation
import Hummingbird
import LLM

/// How much one request may ask of the server; `llm serve` sets each from an option.
public struct ServerLimits: Sendable {
    /// The largest request body, in bytes (413 above it).
    public var maxBodyBytes = 1 << 20
    /// The most messages in one chat request.
    public var maxMessages = 64
    /// The longest message content or completion prompt, in UTF-8 bytes.
    public var maxMessageBytes = 32_768
    /// The largest `max_tokens` a request may give; also what a request that gives none gets.
    public var maxTokens = 512
    /// The most stop sequences in `stop` (OpenAI's limit).
    public var maxStopSequences = 4
    /// The longest stop sequence, in UTF-8 bytes.
    public var maxStopSequenceBytes = 1024
    /// Seconds a request's body may take to arrive once its headers have (408 beyond).
    public var bodySeconds = 30
    /// Seconds a connection may sit without sending: between requests, or in the middle of a request's headers
    /// or body (then it is closed). A reply being generated or streamed is not idle.
    public var idleSeconds = 30

    public init() {}
}

/// A validated request: the prompt's tokens, how to sample, where to stop, and how to answer.
struct GenerationJob: Sendable {
    var prompt: [Int32]
    var parameters: GenerateParameters
    /// Text that ends the reply (not included in it).
    var stopSequences: [String]
    var stream: Bool
    /// With `stream`: send a last chunk with the token counts (`stream_options.include_usage`).
    var includeUsage: Bool
    /// The calculator, for a chat in a format that has it (nanochat's): the engine answers the model's calls,
    /// and the reply shows each call inline as `<<expression=output>>`.
    var tools: ToolCalls? = nil
}

/// The fields both endpoints take. `top_k` is an extension; `max_completion_tokens` is OpenAI's newer name
/// for `max_tokens`.
struct SamplingFields: Decodable {
    var maxTokens: Int?
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var seed: Int64?
    var stop: StopSequences?
    var stream: Bool?
    var includeUsage: Bool?
    var n: Int?

    /// `stop`: one string or an array of them.
    struct StopSequences: Decodable {
        var values: [String]
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let one = try? c.decode(String.self) {
                values = [one]
            } else if let many = try? c.decode([String].self) {
                values = many
            } else {
                throw DecodingError.typeMismatch([String].self, .init(codingPath: c.codingPath, debugDescription: "stop"))
            }
        }
    }

    private struct StreamOptions: Decodable {
        var includeUsage: Bool?
        private enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    private enum CodingKeys: String, CodingKey {
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", temperature, topP = "top_p"
        case topK = "top_k", seed, stop, stream, streamOptions = "stream_options", n
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxTokens = try c.decodeIntegerIfPresent(Int.self, forKey: .maxTokens)
            ?? c.decodeIntegerIfPresent(Int.self, forKey: .maxCompletionTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try c.decodeIntegerIfPresent(Int.self, forKey: .topK)
        seed = try c.decodeIntegerIfPresent(Int64.self, forKey: .seed)
        stop = try c.decodeIfPresent(StopSequences.self, forKey: .stop)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        includeUsage = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage
        n = try c.decodeIntegerIfPresent(Int.self, forKey: .n)
    }

    /// The job for `prompt`, with every sampling field checked against `limits`.
    func job(prompt: [Int32], model: ServedModel, limits: ServerLimits) throws(APIError) -> GenerationJob {
        if let n, n != 1 { throw .invalid("only n=1 is supported", param: "n") }
        let maxTokens = maxTokens ?? limits.maxTokens
        guard maxTokens >= 1 else { throw .invalid("max_tokens must be at least 1", param: "max_tokens") }
        guard maxTokens <= limits.maxTokens else {
            throw .invalid("max_tokens \(maxTokens) is above this server's limit of \(limits.maxTokens)", param: "max_tokens")
        }
        let temperature = temperature ?? 1
        guard temperature.isFinite, (0...2).contains(temperature) else {
            throw .invalid("temperature must be between 0 and 2", param: "temperature")
        }
        let topP = topP ?? 1
        guard topP > 0 && topP <= 1 else { throw .invalid("top_p must be in (0, 1]", param: "top_p") }
        if let topK, topK < 1 { throw .invalid("top_k must be at least 1", param: "top_k") }
        let stops = (stop?.values ?? []).filter { !$0.isEmpty }
        guard stops.count <= limits.maxStopSequences else {
            throw .invalid("at most \(limits.maxStopSequences) stop sequences", param: "stop")
        }
        if stops.contains(where: { $0.utf8.count > limits.maxStopSequenceBytes }) {
            throw .invalid("a stop sequence may be at most \(limits.maxStopSequenceBytes) bytes long", param: "stop")
        }
        guard prompt.count < model.contextLength else {
            throw .invalid("the prompt is \(prompt.count) tokens; the model's context is \(model.contextLength), and the reply needs at least one",
                           code: "context_length_exceeded")
        }
        let parameters = GenerateParameters(
            maxNewTokens: maxTokens, temperature: Float(temperature), topK: topK, topP: Float(topP),
            seed: seed.map { UInt64(bitPattern: $0) } ?? .random(in: 0...UInt64.max), stopTokens: model.stopTokens)
        let stream = stream ?? false
        return GenerationJob(prompt: prompt, parameters: parameters, stopSequences: stops, stream: stream,
                             includeUsage: stream && includeUsage == true)
    }
}

/// `POST /v1/chat/completions`.
struct ChatCompletionRequest: Decodable {
    struct Message: Decodable {
        var role: String
        var content: String

        /// Text parts (`[{"type": "text", "text": …}]`), as newer clients send, are joined.
        private struct Part: Decodable { var type: String; var text: String? }
        private enum CodingKeys: String, CodingKey { case role, content }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            if let text = try? c.decode(String.self, forKey: .content) {
                content = text
            } else if let parts = try? c.decode([Part].self, forKey: .content) {
                guard parts.allSatisfy({ $0.type == "text" && $0.text != nil }) else {
                    throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "only text parts are supported")
                }
                content = parts.map { $0.text! }.joined()
            } else {
                throw DecodingError.typeMismatch(String.self, .init(codingPath: c.codingPath + [CodingKeys.content], debugDescription: "content"))
            }
        }
    }

    var messages: [Message]
    var sampling: SamplingFields

    private enum CodingKeys: String, CodingKey { case messages }

    init(from decoder: any Decoder) throws {
        messages = try decoder.container(keyedBy: CodingKeys.self).decode([Message].self, forKey: .messages)
        sampling = try SamplingFields(from: decoder)
    }

    /// The conversation rendered in the model's chat format, up to `<|assistant_start|>`.
    func job(model: ServedModel, limits: ServerLimits) throws(APIError) -> GenerationJob {
        guard let chat = model.chat else {
            throw .invalid("model \(model.name) cannot chat: its vocabulary has no rows for the chat tokens; use /v1/completions")
        }
        guard !messages.isEmpty else { throw .invalid("messages must not be empty", param: "messages") }
        guard messages.count <= limits.maxMessages else {
            throw .invalid("\(messages.count) messages; this server takes at most \(limits.maxMessages)", param: "messages")
        }
        // Calls a reply showed inline come back as calls, so the model reads its own tool tokens again.
        let tools = chat.toolCalls
        var conversation = Conversation(messages: [])
        for (i, m) in messages.enumerated() {
            // "developer" is OpenAI's newer name for the system role.
            guard let role = m.role == "developer" ? .system : Conversation.Role(rawValue: m.role) else {
                throw .invalid("unknown role \"\(m.role)\" (expected system, user or assistant)", param: "messages[\(i)].role")
            }
            guard m.content.utf8.count <= limits.maxMessageBytes else {
                throw .invalid("message \(i) is \(m.content.utf8.count) bytes; this server takes at most \(limits.maxMessageBytes)",
                               param: "messages[\(i)].content")
            }
            conversation.messages.append(role == .assistant && tools != nil ? .init(role: role, inlineCalls: m.content)
                                                                                : .init(role: role, content: m.content))
        }
        do { try conversation.validate() } catch { throw .invalid("\(error)", param: "messages") }
        let prompt: [Int32]
        do { prompt = try chat.renderForCompletion(conversation) } catch { throw .invalid("\(error)", param: "messages") }
        var job = try sampling.job(prompt: prompt, model: model, limits: limits)
        if let tools {
            job.tools = tools
            job.parameters.stopTokens.subtract(tools.ids)
        }
        return job
    }
}

/// `POST /v1/completions`: continue a plain text prompt.
struct CompletionRequest: Decodable {
    var prompt: String
    var sampling: SamplingFields

    private enum CodingKeys: String, CodingKey { case prompt }

    init(from decoder: any Decoder) throws {
        prompt = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .prompt)
        sampling = try SamplingFields(from: decoder)
    }

    /// The prompt's tokens; an empty prompt starts from the document separator, as `llm sample` does.
    func job(model: ServedModel, limits: ServerLimits) throws(APIError) -> GenerationJob {
        guard prompt.utf8.count <= limits.maxMessageBytes else {
            throw .invalid("the prompt is \(prompt.utf8.count) bytes; this server takes at most \(limits.maxMessageBytes)", param: "prompt")
        }
        var ids = model.tokenizer.encode(prompt)
        if ids.isEmpty {
            guard let start = model.tokenizer.documentSeparator else {
                throw .invalid("the tokenizer has no document separator to start from; give a prompt", param: "prompt")
            }
            ids = [start]
        }
        return try sampling.job(prompt: ids, model: model, limits: limits)
    }
}

extension KeyedDecodingContainer {
    /// An integer field, nil when absent or null. Anything else, a fraction included, is a type mismatch that
    /// names the field (Foundation reports a fraction as invalid JSON, with no field).
    fileprivate func decodeIntegerIfPresent<T: FixedWidthInteger & Decodable>(_: T.Type, forKey key: Key) throws -> T? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        guard let value = try? decode(T.self, forKey: key) else {
            throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath + [key], debugDescription: "not an integer"))
        }
        return value
    }
}

/// Reads the body (at most `limits.maxBodyBytes`) and decodes it as `T`; every failure is an `APIError`.
func decodeBody<T: Decodable>(_: T.Type, from request: inout Request, limits: ServerLimits) async throws -> T {
    let body: ByteBuffer
    do { body = try await collectBody(of: request, limits: limits) } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
        throw APIError(status: .contentTooLarge, message: "the request body is larger than this server's limit of \(limits.maxBodyBytes) bytes")
    }
    request.body = .init(buffer: body)  // as Request.collectBody leaves it, for the handlers that read it again
    return try decodeJSON(T.self, from: Data(body.readableBytesView))
}

/// Decodes a body's bytes as `T`; bytes that are not UTF-8, or a decoding failure, are an `APIError` saying where.
func decodeJSON<T: Decodable>(_: T.Type, from data: Data) throws -> T {
    // JSON is UTF-8; Foundation would report a string with other bytes as a value of the wrong type.
    if let offset = firstInvalidUTF8Offset(data) {
        throw APIError.invalid("the request body is not valid UTF-8 (byte offset \(offset))")
    }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let error as DecodingError {
        throw describe(error)
    }
}

/// The whole body, within `limits.bodySeconds` from the end of the headers: a client that sends its body a
/// byte at a time (holding a connection and a handler) gets a 408 instead of keeping them.
private func collectBody(of request: Request, limits: ServerLimits) async throws -> ByteBuffer {
    let body = request.body, maxBytes = limits.maxBodyBytes, seconds = limits.bodySeconds
    return try await withThrowingTaskGroup(of: ByteBuffer.self) { group in
        group.addTask { try await body.collect(upTo: maxBytes) }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw APIError(status: .requestTimeout, message: "the request body took more than \(seconds) seconds to arrive")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A decoding error as a 400 naming the field ("messages[0].content").
private func describe(_ error: DecodingError) -> APIError {
    func field(_ path: [any CodingKey]) -> String? {
        guard !path.isEmpty else { return nil }
        return path.enumerated().map { i, key in
            key.intValue.map { "[\($0)]" } ?? (i == 0 ? "" : ".") + key.stringValue
        }.joined()
    }
    func name(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        case is [String].Type: "a string or an array of strings"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
    switch error {
    case let .keyNotFound(key, ctx):
        let param = field(ctx.codingPath + [key])
        return .invalid("missing required field \(param ?? key.stringValue)", param: param)
    case let .typeMismatch(type, ctx), let .valueNotFound(type, ctx):
        let param = field(ctx.codingPath)
        return .invalid("\(param ?? "the body") must be \(name(type))", param: param)
    case let .dataCorrupted(ctx):
        if let param = field(ctx.codingPath) { return .invalid("\(param): \(ctx.debugDescription)", param: param) }
        let detail = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
        return .invalid("malformed JSON: \(detail ?? ctx.debugDescription)")
    @unknown default:
        return .invalid("\(error)")
    }
}
