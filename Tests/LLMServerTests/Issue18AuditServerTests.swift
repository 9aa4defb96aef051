// Issue 18's server cases that had no Swift test (scripts/http_framing_check.py checks some against a running
// `llm serve`, but only where CI has Python and the openai package): a chunked body with a bad chunk size is a 400,
// slowloris connections are closed by the idle timeout (idle, mid-headers, mid-body), a body that trickles in past
// its time limit gets a 408, and stop sequences at the length limit cost linear time.
import Foundation
import Hummingbird
import HummingbirdTesting
import LLM
import Testing
@testable import LLMServer

@Suite struct Issue18AuditServerTests {
    /// What a raw connection gets for `request` on a server with `limits` (sent in pieces `gap` apart, the last
    /// one left hanging), up to the end of the connection (nil when it stays open `wait` seconds), and how long
    /// after the last piece the connection ended.
    static func exchange(_ pieces: [String], gap: Duration = .zero, limits: ServerLimits,
                         wait: Int = 20) async throws -> (text: String?, after: Duration) {
        try await testApp(ScriptedBackend(replying: "Hi."), limits: limits).test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            defer { connection.close() }
            for (i, piece) in pieces.enumerated() {
                if i > 0 { try await Task.sleep(for: gap) }
                connection.send(piece)
            }
            let sent = ContinuousClock.now
            return (await connection.readToEnd(seconds: wait), ContinuousClock.now - sent)
        }
    }

    /// "A chunked body with a bad size gets 500, not 400."
    @Test func aBadChunkSizeIsA400() async throws {
        let request = "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
        let text = try #require(try await ConnectionTests.exchange(request), "the connection stayed open")
        #expect(ConnectionTests.statusLines(text) == ["HTTP/1.1 400 Bad Request"])
        let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
        let error = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["error"] as? [String: Any])
        #expect(error["type"] as? String == "invalid_request_error")
    }

    /// "No header, idle or body timeout (slowloris)": with a 1 s idle limit, a connection that sends nothing, one
    /// that stops halfway through its headers and one that stops halfway through its body are all closed.
    @Test(arguments: ["", "GET /health HTTP/1.1\r\nHost: local", "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
                          + "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\": "])
    func idleConnectionsAreClosed(start: String) async throws {
        var limits = ServerLimits()
        limits.idleSeconds = 1
        let (text, after) = try await Self.exchange([start], limits: limits)
        #expect(text != nil, "a connection idle after \(start.debugDescription) stayed open")
        #expect(after < .seconds(10), "closed after \(after)")
        if let text, !text.isEmpty { #expect(!text.contains("200 OK"), "\(text)") }
    }

    /// A body that keeps arriving a few bytes at a time (never idle) but takes longer than its limit gets a 408.
    @Test func aBodyThatTrickles408s() async throws {
        var limits = ServerLimits()
        limits.bodySeconds = 1
        limits.idleSeconds = 30
        let head = "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        let pieces = [head] + Array(repeating: " ", count: 12)
        let text = try #require(try await Self.exchange(pieces, gap: .milliseconds(250), limits: limits).text,
                                "the connection stayed open")
        #expect(ConnectionTests.statusLines(text).first == "HTTP/1.1 408 Request Timeout", "\(text)")
        #expect(text.contains("took more than 1 seconds"), "\(text)")
    }

    /// "A long stop string costs time quadratic in its length": four stop sequences at the 1,024-byte limit that
    /// the text matches all but the last byte of, over 20,000 bytes, take a constant amortized step per byte (a
    /// plain search from every position would take 20,000 × 1,024 × 4 byte comparisons, minutes in a debug build).
    @Test func stopSequencesAtTheLimitCostLinearTime() {
        let tokenizer = TinyModel.tokenizer, limit = ServerLimits().maxStopSequenceBytes
        let stops = ["b", "c", "d", "e"].map { String(repeating: "a", count: limit - 1) + $0 }
        let piece = tokenizer.encode("aaaaaaaa")
        #expect((try? tokenizer.decodeString(piece)) == "aaaaaaaa")
        var reply = ReplyText(tokenizer: tokenizer, stopSequences: stops)
        var sent = 0
        let start = ContinuousClock.now
        for _ in 0..<2_500 {
            for id in piece {
                let (text, stopped) = reply.push(id)
                #expect(!stopped)
                sent += text.utf8.count
            }
        }
        sent += reply.finish().utf8.count
        #expect(sent == 20_000)
        #expect(ContinuousClock.now - start < .seconds(20))
    }
}
