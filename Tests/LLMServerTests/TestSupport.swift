// What the server tests share: a tiny chat-capable model, a scripted backend whose replies and timing the
// tests choose, a parser for server-sent events, and a raw socket for what an HTTP client would not do.
import Foundation
import Hummingbird
import HummingbirdTesting
import LLM
import Synchronization
import Testing
@testable import LLMServer

enum TinyModel {
    static let tokenizer = try! Tokenizer.gpt2()
    /// Two layers of 32 channels, with GPT-2's vocabulary plus rows for the chat tokens: gibberish, fast.
    static let config = try! ModelConfig.gpt2(maxSeqLen: 128, vocabSize: ChatTokens(tokenizer: tokenizer).requiredVocabSize,
                                        numLayers: 2, numHeads: 2, channels: 32)
    static let served = ServedModel(name: "tiny", tokenizer: tokenizer, config: config)
}

/// A backend that replies with tokens the test chose, one every `interval`: `reply` (computed from the
/// prompt), cut at `maxNewTokens`, or an endless repetition of it. It records what it was asked and counts
/// the generations still running, so tests can watch a disconnect cancel one.
final class ScriptedBackend: GenerationBackend {
    enum Script: Sendable {
        /// These tokens, then a stop token.
        case tokens([Int32])
        /// The prompt's text tokens (its chat tokens left out): each client gets its own message back.
        case echo
        /// These tokens over and over until cancelled.
        case endless([Int32])
        /// Fails before the first token.
        case failure
    }

    struct Call: Sendable {
        var prompt: [Int32]
        var parameters: GenerateParameters
    }

    let script: Script
    let interval: Duration
    private let state = Mutex<(active: Int, cancelled: Int, calls: [Call])>((0, 0, []))

    init(_ script: Script, interval: Duration = .zero) {
        self.script = script
        self.interval = interval
    }

    /// A backend that answers `text`.
    convenience init(replying text: String) { self.init(.tokens(TinyModel.tokenizer.encode(text))) }

    var activeCount: Int { state.withLock { $0.active } }
    var queuedCount: Int { 0 }
    /// Generations that ended because their stream was dropped.
    var cancelledCount: Int { state.withLock { $0.cancelled } }
    var calls: [Call] { state.withLock { $0.calls } }

    func generate(prompt: [Int32], parameters: GenerateParameters) -> AsyncThrowingStream<EngineEvent, any Error> {
        state.withLock {
            $0.calls.append(Call(prompt: prompt, parameters: parameters))
            $0.active += 1
        }
        let (stream, continuation) = AsyncThrowingStream<EngineEvent, any Error>.makeStream()
        let task = Task { [self] () async -> Void in
            defer { state.withLock { $0.active -= 1 } }
            let tokens: [Int32], endless: Bool
            switch script {
            case .tokens(let t): (tokens, endless) = (t, false)
            case .echo: (tokens, endless) = (prompt.filter { $0 < TinyModel.tokenizer.vocabSize - 1 }, false)
            case .endless(let t): (tokens, endless) = (t, true)
            case .failure:
                continuation.finish(throwing: ScriptedFailure())
                return
            }
            var sent = 0
            while endless || (sent < tokens.count && sent < parameters.maxNewTokens) {
                try? await Task.sleep(for: interval)
                if Task.isCancelled {
                    state.withLock { $0.cancelled += 1 }
                    return
                }
                continuation.yield(.token(tokens[sent % tokens.count]))
                sent += 1
            }
            let reason: GenerationResult.StopReason = sent == parameters.maxNewTokens ? .maxNewTokens : .stopToken(50256)
            continuation.yield(.finished(EngineFinish(stopReason: reason, promptTokens: prompt.count, completionTokens: sent,
                                                      timeToFirstToken: 0, seconds: 0)))
            continuation.finish()
        }
        continuation.onTermination = { @Sendable _ in task.cancel() }
        return stream
    }
}

struct ScriptedFailure: Error {}

/// The app for a backend, with the tiny model and `limits`.
func testApp(_ backend: some GenerationBackend, model: ServedModel = TinyModel.served,
             limits: ServerLimits = ServerLimits()) -> some ApplicationProtocol {
    buildApplication(backend: backend, model: model, configuration: ServerConfiguration(port: 0, limits: limits))
}

extension TestClientProtocol {
    /// POSTs `json` to `uri`.
    func post(_ uri: String, json: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as a JSON object.
    var object: [String: Any] {
        get throws { try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) }
    }

    /// The `data:` payloads of a server-sent event stream, in order.
    var events: [String] {
        text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { frame in
            #expect(frame.hasPrefix("data: "), "not an SSE data frame: \(frame)")
            return String(frame.dropFirst("data: ".count))
        }
    }
}

/// `events` with the final `[DONE]` checked and dropped, each parsed as a JSON object.
func parseStream(_ response: TestResponse) throws -> [[String: Any]] {
    let events = response.events
    #expect(events.last == "[DONE]")
    return try events.dropLast().map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
}

/// The assistant's reply in a chat completion, whole or streamed.
func replyContent(_ response: TestResponse) throws -> String {
    if response.headers[.contentType] == "text/event-stream" {
        return try parseStream(response).compactMap { chunk in
            ((chunk["choices"] as? [[String: Any]])?.first?["delta"] as? [String: String])?["content"]
        }.joined()
    }
    let choice = try #require((try response.object["choices"] as? [[String: Any]])?.first)
    return try #require((choice["message"] as? [String: String])?["content"])
}

/// Checks `response` is an OpenAI error with `status`: {"error": {"message": String, "type": String,
/// "param": String or null, "code": String or null}}; returns the error object.
@discardableResult
func expectError(_ response: TestResponse, _ status: HTTPResponse.Status, param: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    #expect(response.status == status, "body: \(response.text)", sourceLocation: sourceLocation)
    #expect(response.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
    let error = try #require(try response.object["error"] as? [String: Any], sourceLocation: sourceLocation)
    #expect(Set(error.keys) == ["message", "type", "param", "code"], sourceLocation: sourceLocation)
    #expect((error["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    #expect(error["type"] is String, sourceLocation: sourceLocation)
    #expect(error["param"] is String || error["param"] is NSNull, sourceLocation: sourceLocation)
    #expect(error["code"] is String || error["code"] is NSNull, sourceLocation: sourceLocation)
    if let param { #expect(error["param"] as? String == param, sourceLocation: sourceLocation) }
    return error
}

/// A chat request body with one user message and extra fields (JSON text, comma-separated).
func chatBody(_ message: String = "Hello", _ extra: String = "") -> String {
    #"{"model": "tiny", "messages": [{"role": "user", "content": "\#(message)"}]\#(extra.isEmpty ? "" : ", " + extra)}"#
}

/// A plain TCP connection, for what the test client cannot do: hang up halfway through a response, half-close,
/// pipeline, speak HTTP/1.0 or send malformed requests.
final class RawConnection {
    private let fd: Int32

    init(port: Int) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo("localhost", String(port), &hints, &list) == 0, let list else { throw POSIXError(.EADDRNOTAVAIL) }
        defer { freeaddrinfo(list) }
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let a = entry {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 && connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                self.fd = fd
                return
            }
            if fd >= 0 { Glibc.close(fd) }
            entry = a.pointee.ai_next
        }
        throw POSIXError(.ECONNREFUSED)
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// Reads until `events` server-sent events have come (or the connection ends, or 10 s pass without a
    /// byte); returns all it read. The blocking reads run on a Dispatch thread, not the Swift concurrency pool,
    /// whose few threads the server needs.
    func read(events: Int) async -> String {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [fd] in
                var timeout = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                var received = ""
                var buffer = [UInt8](repeating: 0, count: 4096)
                while received.components(separatedBy: "data: ").count <= events {
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    guard n > 0 else { break }
                    received += String(decoding: buffer[..<n], as: UTF8.self)
                }
                continuation.resume(returning: received)
            }
        }
    }

    /// Reads until the server ends the connection; nil if it has not within `seconds` (the bytes so far are lost).
    func readToEnd(seconds: Int = 10) async -> String? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [fd] in
                var timeout = timeval(tv_sec: seconds, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                var received = [UInt8]()
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n == 0 || (n < 0 && errno == ECONNRESET) { break }
                    guard n > 0 else { return continuation.resume(returning: nil) }
                    received += buffer[..<n]
                }
                continuation.resume(returning: String(decoding: received, as: UTF8.self))
            }
        }
    }

    /// Ends the client's side of the connection (shutdown(SHUT_WR)): the server can still answer.
    func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    func close() { _ = Glibc.close(fd) }
}

/// Waits up to `seconds` for `condition` to hold, checking every 10 ms.
func eventually(within seconds: Double = 30, _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
