// Connections on a live server, over raw sockets (HTTP1ConnectionHandler): HTTP/1.0 ends after its response unless
// it asks for keep-alive, `Connection: close` ends it and drops what was pipelined behind it, pipelined requests are
// answered in order, a client that half-closes still gets its reply, and a malformed request head is a 400 in
// OpenAI's error shape. scripts/http_framing_check.py checks the same against `llm serve`.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import LLMServer

@Suite struct ConnectionTests {
    static let health = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"

    /// What a raw connection gets for `request` (sent, then the client's side shut if `halfClose`), up to the end of
    /// the connection; nil when the server keeps it open for 10 s.
    static func exchange(_ request: String, backend: ScriptedBackend = ScriptedBackend(replying: ""),
                         halfClose: Bool = false) async throws -> String? {
        try await testApp(backend).test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            defer { connection.close() }
            connection.send(request)
            if halfClose { connection.shutdownWrite() }
            return await connection.readToEnd()
        }
    }

    /// The status lines in `text`, in order (a response's starts right after the body before it).
    static func statusLines(_ text: String) -> [String] {
        text.components(separatedBy: "HTTP/1.").dropFirst().map { "HTTP/1." + $0.prefix { $0 != "\r\n" } }
    }

    @Test func http10EndsAfterItsResponse() async throws {
        let text = try #require(try await Self.exchange("GET /health HTTP/1.0\r\n\r\n"), "the connection stayed open")
        #expect(Self.statusLines(text) == ["HTTP/1.0 200 OK"])
        #expect(text.lowercased().contains("connection: close"))
    }

    @Test func http10KeepAliveIsHonoured() async throws {
        let keepAlive = "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        let text = try #require(try await Self.exchange(keepAlive + keepAlive + "GET /health HTTP/1.0\r\n\r\n"))
        #expect(Self.statusLines(text) == Array(repeating: "HTTP/1.0 200 OK", count: 3))
        #expect(text.lowercased().components(separatedBy: "connection: keep-alive").count == 3)
    }

    @Test func closeDropsWhatIsPipelinedBehindIt() async throws {
        let close = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        let text = try #require(try await Self.exchange(close + Self.health), "the connection stayed open")
        #expect(Self.statusLines(text) == ["HTTP/1.1 200 OK"])
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let models = "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"
        let close = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        let text = try #require(try await Self.exchange(Self.health + models + close))
        #expect(Self.statusLines(text).count == 3)
        let health = try #require(text.range(of: #""status":"ok""#)), list = try #require(text.range(of: #""object":"list""#))
        #expect(health.lowerBound < list.lowerBound)
    }

    /// A client that half-closes after its request is not one that hung up: its whole reply comes, generated to
    /// the end (a client that really hangs up still cancels it: ClientTests.disconnectCancelsAWholeReply).
    @Test func aHalfClosedClientGetsItsReply() async throws {
        let backend = ScriptedBackend(replying: "Hello there, friend.")
        let body = chatBody("Hi")
        let request = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let text = try #require(try await Self.exchange(request, backend: backend, halfClose: true), "the connection stayed open")
        #expect(Self.statusLines(text).last == "HTTP/1.1 200 OK")
        #expect(text.contains(#""content":"Hello there, friend.""#))
        #expect(backend.cancelledCount == 0)
    }

    @Test(arguments: ["Content-Length: abc\r\n", "Content-Length: 2\r\nContent-Length: 3\r\n"])
    func aMalformedHeadIsA400(header: String) async throws {
        let request = "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(header)\r\n{}"
        let text = try #require(try await Self.exchange(request), "the connection stayed open")
        #expect(Self.statusLines(text) == ["HTTP/1.1 400 Bad Request"])
        let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
        let error = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["error"] as? [String: Any])
        #expect(error["type"] as? String == "invalid_request_error")
        #expect((error["message"] as? String)?.hasPrefix("malformed HTTP request: ") == true)
    }
}
