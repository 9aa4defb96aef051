// The server on the real InferenceEngine with a tiny random model: streamed and whole replies agree, several
// clients at once each get a reply, and a client that hangs up frees its slot in the engine.
import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LLM
import Testing
@testable import LLMServer

@Suite struct EngineServerTests {
    static let weights = ModelWeights.randomGPT2(config: TinyModel.config, seed: 1)

    @Test func streamedAndWholeRepliesAgree() async throws {
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 2, threads: 1)
        defer { engine.shutdown() }
        try await testApp(engine).test(.router) { client in
            let settings = #""max_tokens": 8, "temperature": 0.9, "seed": 42"#
            let whole = try await client.post("/v1/chat/completions", json: chatBody("Hi", settings))
            let streamed = try await client.post("/v1/chat/completions", json: chatBody("Hi", settings + #", "stream": true"#))
            #expect(whole.status == .ok && streamed.status == .ok)
            let text = try replyContent(whole)
            #expect(!text.isEmpty)
            #expect(try replyContent(streamed) == text)
            let usage = try #require(try whole.object["usage"] as? [String: Int])
            #expect((1...8).contains(usage["completion_tokens"]!))

            let completion = try await client.post("/v1/completions", json: #"{"prompt": "Once upon", "max_tokens": 3, "seed": 1}"#)
            let choice = try #require((try completion.object["choices"] as? [[String: Any]])?.first)
            #expect(choice["text"] is String)
        }
    }

    @Test func concurrentClientsEachGetAReply() async throws {
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 3, threads: 1)
        defer { engine.shutdown() }
        try await testApp(engine).test(.router) { client in
            try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        let response = try await client.post("/v1/chat/completions",
                                                             json: chatBody("client \(i)", #""max_tokens": 4, "seed": \#(i), "stream": \#(i % 2 == 0)"#))
                        #expect(response.status == .ok)
                        return try replyContent(response)
                    }
                }
                var replies = [String]()
                for try await reply in group { replies.append(reply) }
                #expect(replies.count == 8)
                #expect(Set(replies).count > 1)  // different seeds, different gibberish
            }
            #expect(engine.activeCount == 0 && engine.queuedCount == 0)
        }
    }

    /// The engine paced at 5 ms a step would take seconds over this reply; hanging up after the first piece
    /// frees the slot at once.
    @Test func disconnectFreesTheEngineSlot() async throws {
        let weights = ModelWeights.randomGPT2(config: try ModelConfig.gpt2(maxSeqLen: 1024, vocabSize: TinyModel.config.vocabSize,
                                                                    numLayers: 1, numHeads: 1, channels: 16), seed: 2)
        let engine = InferenceEngine(weights: weights, maxConcurrent: 2, threads: 1, beforeStep: { usleep(5000) })
        defer { engine.shutdown() }
        let model = ServedModel(name: "paced", tokenizer: TinyModel.tokenizer, config: weights.config)
        var limits = ServerLimits()
        limits.maxTokens = 1000
        try await testApp(engine, model: model, limits: limits).test(.live) { client in
            let body = chatBody("Talk", #""max_tokens": 1000, "stream": true"#)
            let connection = try RawConnection(port: try #require(client.port))
            connection.send("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let received = await connection.read(events: 3)
            #expect(received.hasPrefix("HTTP/1.1 200"))
            #expect(engine.activeCount == 1)
            let hungUp = ContinuousClock.now
            connection.close()
            #expect(try await eventually { engine.activeCount == 0 })
            #expect(ContinuousClock.now - hungUp < .seconds(2))

            let response = try await client.post("/v1/chat/completions", json: chatBody("Still there?", #""max_tokens": 3"#))
            #expect(response.status == .ok)
        }
    }
}
