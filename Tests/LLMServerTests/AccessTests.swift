// Access rules: `--api-key` guards /v1 with OpenAI's 401 (the page and /health stay open), and CORS headers appear
// only with `--cors-origin`, on preflights and on refusals alike.
import Foundation
import Hummingbird
import HummingbirdTesting
import LLM
import Testing
@testable import LLMServer

@Suite struct AccessTests {
    func app(_ access: ServerAccess) -> some ApplicationProtocol {
        buildApplication(backend: ScriptedBackend(replying: "Hi."), model: TinyModel.served,
                         configuration: ServerConfiguration(port: 0, access: access))
    }

    @Test func theAPIKeyGuardsV1Only() async throws {
        try await app(ServerAccess(apiKey: "s3cret")).test(.router) { client in
            for headers: HTTPFields in [[:], [.authorization: "Bearer wrong"], [.authorization: "s3cret"],
                                        [.authorization: "Bearer s3cret2"], [.authorization: "Bearer s3cre"]] {
                let response = try await client.execute(uri: "/v1/models", method: .get, headers: headers)
                #expect(response.status == .unauthorized, "\(headers)")
                let error = try #require(try response.object["error"] as? [String: Any])
                #expect(error["code"] as? String == "invalid_api_key")
                #expect(error["type"] as? String == "invalid_request_error")
            }
            let refused = try await client.post("/v1/chat/completions", json: #"{"messages": [{"role": "user", "content": "Hi"}]}"#)
            #expect(refused.status == .unauthorized)
            let ok = try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer s3cret"])
            #expect(ok.status == .ok)
            let chat = try await client.execute(uri: "/v1/chat/completions", method: .post,
                                                headers: [.authorization: "Bearer s3cret", .contentType: "application/json"],
                                                body: ByteBuffer(string: #"{"messages": [{"role": "user", "content": "Hi"}]}"#))
            #expect(chat.status == .ok)
            let health = try await client.execute(uri: "/health", method: .get)
            let page = try await client.execute(uri: "/", method: .get)
            #expect(health.status == .ok && page.status == .ok)
        }
    }

    @Test func withoutAKeyTheAPIIsOpen() async throws {
        try await app(ServerAccess()).test(.router) { client in
            let response = try await client.execute(uri: "/v1/models", method: .get)
            #expect(response.status == .ok)
        }
    }

    @Test func noCORSHeadersUnlessAnOriginIsGiven() async throws {
        try await app(ServerAccess()).test(.router) { client in
            let response = try await client.execute(uri: "/v1/models", method: .get,
                                                    headers: [.origin: "https://elsewhere.example"])
            #expect(response.headers[.accessControlAllowOrigin] == nil)
        }
        try await app(ServerAccess(apiKey: "k", corsOrigin: "https://app.example")).test(.router) { client in
            let preflight = try await client.execute(
                uri: "/v1/chat/completions", method: .options,
                headers: [.origin: "https://app.example", .accessControlRequestMethod: "POST",
                          .accessControlRequestHeaders: "authorization, content-type"])
            #expect(preflight.status == .noContent || preflight.status == .ok)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://app.example")
            #expect(preflight.headers[.accessControlAllowHeaders]?.lowercased().contains("authorization") == true)
            // A refusal is readable by the page too (it carries the CORS header).
            let refused = try await client.execute(uri: "/v1/models", method: .get, headers: [.origin: "https://app.example"])
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[.accessControlAllowOrigin] == "https://app.example")
        }
    }

    @Test func keysCompareWhole() {
        let key = Array("abc".utf8)
        #expect(APIKeyMiddleware<BasicRequestContext>.equal(Array("abc".utf8), key))
        for other in ["", "ab", "abd", "abcd", "xbc", "ABC"] {
            #expect(!APIKeyMiddleware<BasicRequestContext>.equal(Array(other.utf8), key), "\(other)")
        }
    }

    @Test func warnsOnlyWhenOpenBeyondLoopback() {
        #expect(ServerAccess().warning(host: "127.0.0.1") == nil)
        #expect(ServerAccess().warning(host: "localhost") == nil)
        #expect(ServerAccess().warning(host: "0.0.0.0") != nil)
        #expect(ServerAccess(apiKey: "k").warning(host: "0.0.0.0") == nil)
    }
}
