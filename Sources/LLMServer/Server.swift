// `llm serve`'s HTTP server: the chat page at `/`, an OpenAI-compatible API under `/v1`, and `/health`.
// `buildRouter` is shared by the server and its tests; `buildApplication` adds the address. Handlers only
// decode, validate and await the backend's stream: model compute never runs on the event loops.
import Foundation
import Hummingbird
import LLM

/// Where the server listens and what it allows.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var limits: ServerLimits
    public var access: ServerAccess

    public init(host: String = "127.0.0.1", port: Int = 8000, limits: ServerLimits = ServerLimits(),
                access: ServerAccess = ServerAccess()) {
        self.host = host
        self.port = port
        self.limits = limits
        self.access = access
    }
}

/// The server, ready for `runService()` (which shuts down gracefully on SIGINT and SIGTERM). `onServerRunning`
/// is called once it listens, with its port (the one the system picked for port 0).
public func buildApplication(backend: some GenerationBackend, model: ServedModel,
                             configuration: ServerConfiguration,
                             onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }) -> some ApplicationProtocol {
    Application(router: buildRouter(backend: backend, model: model, limits: configuration.limits,
                                    access: configuration.access),
                server: .http1(idleTimeout: .seconds(Int64(configuration.limits.idleSeconds))),
                configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                     serverName: "llm"),
                onServerRunning: { await onServerRunning($0.localAddress?.port ?? configuration.port) })
}

/// Every route; errors anywhere, unknown routes included, come back in OpenAI's error shape.
public func buildRouter(backend: some GenerationBackend, model: ServedModel, limits: ServerLimits,
                        access: ServerAccess = ServerAccess()) -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: OpenAIErrorMiddleware())
    if let origin = access.corsOrigin {
        router.add(middleware: CORSMiddleware(allowOrigin: origin == "*" ? .all : .custom(origin),
                                              allowHeaders: [.accept, .authorization, .contentType],
                                              allowMethods: [.get, .post, .options], maxAge: .seconds(600)))
    }
    if let key = access.apiKey { router.add(middleware: APIKeyMiddleware(key: Array(key.utf8))) }
    let api = API(backend: backend, model: model)
    let page = chatPage()
    router.get("/") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: page))
    }
    router.get("/health") { _, _ in
        json(Health(model: model.name, active: backend.activeCount, queued: backend.queuedCount))
    }
    router.get("/v1/models") { _, _ in
        json(ModelList(data: [.init(id: model.name, created: unixTime())]))
    }
    router.post("/v1/chat/completions") { request, _ in
        var request = request
        let job = try await decodeBody(ChatCompletionRequest.self, from: &request, limits: limits).job(model: model, limits: limits)
        return job.stream ? api.streamChat(job, request: request) : try await api.chat(job, request: request)
    }
    router.post("/v1/completions") { request, _ in
        var request = request
        let job = try await decodeBody(CompletionRequest.self, from: &request, limits: limits).job(model: model, limits: limits)
        return job.stream ? api.streamCompletion(job, request: request) : try await api.completion(job, request: request)
    }
    return router
}

/// The completion endpoints' answers, whole or as server-sent events.
private struct API<Backend: GenerationBackend>: Sendable {
    let backend: Backend
    let model: ServedModel

    func chat(_ job: GenerationJob, request: Request) async throws -> Response {
        let (content, outcome) = try await wholeReply(job, request: request)
        return json(CompletionBody(id: responseID("chatcmpl"), object: "chat.completion", created: unixTime(), model: model.name,
                                   choices: [ChatChoice(content: content, finishReason: outcome.finishReason)],
                                   usage: Usage(outcome)), closing: true)
    }

    func completion(_ job: GenerationJob, request: Request) async throws -> Response {
        let (text, outcome) = try await wholeReply(job, request: request)
        return json(CompletionBody(id: responseID("cmpl"), object: "text_completion", created: unixTime(), model: model.name,
                                   choices: [TextChoice(text: text, finishReason: outcome.finishReason)],
                                   usage: Usage(outcome)), closing: true)
    }

    /// The reply's text and how it ended; cancelled if the client disconnects before it is done. Watching for
    /// the disconnect uses up the connection: the response must close it.
    private func wholeReply(_ job: GenerationJob, request: Request) async throws -> (String, ReplyOutcome) {
        try await request.body.consumeWithCancellationOnInboundClose { _ in
            var text = ""
            let outcome = try await backend.reply(to: job, tokenizer: model.tokenizer) { text += $0 }
            return (text, outcome)
        }
    }

    /// Chunks: the role, then each piece of content, then the finish reason, then (if asked) the usage.
    func streamChat(_ job: GenerationJob, request: Request) -> Response {
        let id = responseID("chatcmpl"), created = unixTime(), name = model.name
        @Sendable func chunk(_ choices: [ChatDelta], usage: Usage? = nil) -> ByteBuffer {
            event(jsonBuffer(CompletionBody(id: id, object: "chat.completion.chunk", created: created, model: name,
                                            choices: choices, usage: usage)))
        }
        return eventStream(job, request: request,
                           first: chunk([ChatDelta(role: "assistant", content: "")]),
                           piece: { chunk([ChatDelta(content: $0)]) },
                           last: { chunk([ChatDelta(finishReason: $0.finishReason)]) },
                           usage: { chunk([], usage: Usage($0)) })
    }

    /// Chunks: each piece of text, then an empty one with the finish reason, then (if asked) the usage.
    func streamCompletion(_ job: GenerationJob, request: Request) -> Response {
        let id = responseID("cmpl"), created = unixTime(), name = model.name
        @Sendable func chunk(_ choices: [TextChoice], usage: Usage? = nil) -> ByteBuffer {
            event(jsonBuffer(CompletionBody(id: id, object: "text_completion", created: created, model: name,
                                            choices: choices, usage: usage)))
        }
        return eventStream(job, request: request, first: nil,
                           piece: { chunk([TextChoice(text: $0)]) },
                           last: { chunk([TextChoice(text: "", finishReason: $0.finishReason)]) },
                           usage: { chunk([], usage: Usage($0)) })
    }

    /// A `text/event-stream` of `data: {json}` events ending with `data: [DONE]`. The generation is cancelled
    /// as soon as the client disconnects (its side of the connection closes, or a write fails); a backend
    /// failure after the headers went out is sent as one last event with the error.
    private func eventStream(_ job: GenerationJob, request: Request, first: ByteBuffer?,
                             piece: @escaping @Sendable (String) -> ByteBuffer,
                             last: @escaping @Sendable (ReplyOutcome) -> ByteBuffer,
                             usage: @escaping @Sendable (ReplyOutcome) -> ByteBuffer) -> Response {
        // Watching for the disconnect uses up the connection: the response closes it.
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"]
        return Response(status: .ok, headers: headers, body: .init { [backend, model] writer in
            try await request.body.consumeWithCancellationOnInboundClose { _ in
                if let first { try await writer.write(first) }
                do {
                    let outcome = try await backend.reply(to: job, tokenizer: model.tokenizer) { try await writer.write(piece($0)) }
                    try await writer.write(last(outcome))
                    if job.includeUsage { try await writer.write(usage(outcome)) }
                    try await writer.write(event(ByteBuffer(string: "[DONE]")))
                } catch let error as APIError {
                    try await writer.write(event(error.json))
                }
            }
            try await writer.finish(nil)
        })
    }
}

/// One server-sent event carrying `json`.
private func event(_ json: ByteBuffer) -> ByteBuffer {
    var frame = ByteBuffer(string: "data: ")
    frame.writeImmutableBuffer(json)
    frame.writeString("\n\n")
    return frame
}

/// A 200 with `value` as JSON; `closing` tells the client not to reuse the connection.
private func json(_ value: some Encodable, closing: Bool = false) -> Response {
    var headers: HTTPFields = [.contentType: "application/json"]
    if closing { headers[.connection] = "close" }
    return Response(status: .ok, headers: headers, body: .init(byteBuffer: jsonBuffer(value)))
}

/// The chat page (Resources/chat.html): one self-contained file, no network needed. Found without SwiftPM's
/// `Bundle.module`, which crashes when its folder is missing (a binary copied alone): from $LLM_RESOURCES, the
/// resource bundle beside the executable, or the source tree. Without it, a short page says what is missing and
/// the API still works.
func chatPage(candidates: [String] = ChatPage.candidates) -> ByteBuffer {
    if let path = ChatPage.find(in: candidates), let html = FileManager.default.contents(atPath: path) {
        return ByteBuffer(bytes: html)
    }
    return ByteBuffer(string: ChatPage.missing)
}

/// Where the chat page is looked for.
public enum ChatPage {
    static var candidates: [String] {
        var out = [String]()
        if let env = ProcessInfo.processInfo.environment["LLM_RESOURCES"] { out.append(env + "/chat.html") }
        let exeDir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        out.append(exeDir.appendingPathComponent("LLM_LLMServer.resources/chat.html").path)
        out.append(Bundle.main.bundleURL.appendingPathComponent("LLM_LLMServer.resources/chat.html").path)
        out.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/chat.html").path)
        return out
    }

    static func find(in candidates: [String]) -> String? {
        candidates.first { FileManager.default.isReadableFile(atPath: $0) }
    }

    /// nil when the page is found; else a one-line warning for the server's banner.
    public static var warning: String? {
        find(in: candidates) == nil
            ? "chat.html was not found beside the binary (LLM_LLMServer.resources/) or in $LLM_RESOURCES: / shows a notice; the API works"
            : nil
    }

    static let missing = """
        <!doctype html><meta charset="utf-8"><title>llm serve</title>
        <p>The chat page (chat.html) was not found beside the <code>llm</code> binary. Copy the
        <code>LLM_LLMServer.resources</code> folder next to it, or set <code>LLM_RESOURCES</code> to a folder holding
        chat.html. The OpenAI-compatible API under <code>/v1</code> works without it.</p>
        """
}
