// The server against scripted backends: the page, health and models, chat and text completions whole and
// streamed, stop sequences, every error case, a client hanging up mid-stream, and concurrent clients.
import Foundation
import Hummingbird
import HummingbirdTesting
import LLM
import Testing
@testable import LLMServer

@Suite struct PageAndInfoTests {
    @Test func servesTheChatPage() async throws {
        try await testApp(ScriptedBackend(replying: "")).test(.router) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            #expect(response.text.hasPrefix("<!doctype html>"))
            #expect(response.text.contains("/v1/chat/completions"))
        }
    }

    @Test func health() async throws {
        try await testApp(ScriptedBackend(replying: "")).test(.router) { client in
            let response = try await client.execute(uri: "/health", method: .get)
            #expect(response.status == .ok)
            let body = try response.object
            #expect(body["status"] as? String == "ok")
            #expect(body["model"] as? String == "tiny")
            #expect(body["active"] as? Int == 0)
            #expect(body["queued"] as? Int == 0)
        }
    }

    @Test func models() async throws {
        try await testApp(ScriptedBackend(replying: "")).test(.router) { client in
            let body = try await client.execute(uri: "/v1/models", method: .get).object
            #expect(body["object"] as? String == "list")
            let data = try #require(body["data"] as? [[String: Any]])
            #expect(data.count == 1)
            #expect(data[0]["id"] as? String == "tiny")
            #expect(data[0]["object"] as? String == "model")
            #expect(data[0]["created"] is Int)
            #expect(data[0]["owned_by"] is String)
        }
    }
}

@Suite struct ChatCompletionTests {
    @Test func wholeReply() async throws {
        let backend = ScriptedBackend(replying: "Hello there, friend.")
        try await testApp(backend).test(.router) { client in
            let response = try await client.post("/v1/chat/completions", json: """
                {"model": "whatever", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                 "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 7, "unknown_field": [1, {"x": null}],
                 "frequency_penalty": 0, "user": "someone"}
                """)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(response.headers[.connection] == "close")  // watching for a disconnect uses the connection up
            let body = try response.object
            #expect((body["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            #expect(body["object"] as? String == "chat.completion")
            #expect(body["created"] is Int)
            #expect(body["model"] as? String == "tiny")
            let choices = try #require(body["choices"] as? [[String: Any]])
            #expect(choices.count == 1)
            #expect(choices[0]["index"] as? Int == 0)
            #expect(choices[0]["finish_reason"] as? String == "stop")
            let message = try #require(choices[0]["message"] as? [String: String])
            #expect(message == ["role": "assistant", "content": "Hello there, friend."])
            let usage = try #require(body["usage"] as? [String: Int])
            let completionTokens = TinyModel.tokenizer.encode("Hello there, friend.").count
            let prompt = try TinyModel.served.chat!.renderForCompletion(Conversation(messages: [
                .init(role: .system, content: "Be brief."), .init(role: .user, content: "Hi")]))
            #expect(usage == ["prompt_tokens": prompt.count, "completion_tokens": completionTokens,
                              "total_tokens": prompt.count + completionTokens])

            // The backend got the rendered conversation and the request's settings.
            let call = try #require(backend.calls.first)
            #expect(call.prompt == prompt)
            #expect(call.parameters.maxNewTokens == 50)
            #expect(call.parameters.temperature == 0.5)
            #expect(call.parameters.topP == 0.9)
            #expect(call.parameters.topK == 40)
            #expect(call.parameters.seed == 7)
            // Every chat token stops a reply but the calculator's four, whose call the engine answers.
            let chat = (TinyModel.served.chat as! ChatRenderer).tokens
            let tools = [chat.pythonStart, chat.pythonEnd, chat.outputStart, chat.outputEnd]
            #expect(call.parameters.stopTokens.isSuperset(of: chat.all.filter { !tools.contains($0) }))
            #expect(call.parameters.stopTokens.isDisjoint(with: tools))
            #expect(!call.parameters.stopTokens.contains(where: { $0 < 50256 }))
        }
    }

    @Test func lengthFinish() async throws {
        try await testApp(ScriptedBackend(replying: "one two three four five")).test(.router) { client in
            let body = try await client.post("/v1/chat/completions", json: chatBody("Hi", #""max_tokens": 2"#)).object
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "length")
            #expect((choice["message"] as? [String: String])?["content"] == "one two")
            #expect((body["usage"] as? [String: Int])?["completion_tokens"] == 2)
        }
    }

    @Test func streamedReply() async throws {
        try await testApp(ScriptedBackend(replying: "Hello there, friend. ünïcode ✓")).test(.router) { client in
            let response = try await client.post("/v1/chat/completions", json: chatBody("Hi", #""stream": true"#))
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/event-stream")
            #expect(response.headers[.connection] == "close")
            let chunks = try parseStream(response)
            #expect(chunks.count >= 3)
            let ids = Set(chunks.map { $0["id"] as? String })
            #expect(ids.count == 1 && ids.first??.hasPrefix("chatcmpl-") == true)
            var content = ""
            for (i, chunk) in chunks.enumerated() {
                #expect(chunk["object"] as? String == "chat.completion.chunk")
                #expect(chunk["model"] as? String == "tiny")
                #expect(chunk["created"] is Int)
                #expect(chunk["usage"] == nil)
                let choice = try #require((chunk["choices"] as? [[String: Any]])?.first)
                #expect(choice["index"] as? Int == 0)
                let delta = try #require(choice["delta"] as? [String: String])
                if i == 0 {
                    #expect(delta == ["role": "assistant", "content": ""])
                    #expect(choice["finish_reason"] is NSNull)
                } else if i == chunks.count - 1 {
                    #expect(delta.isEmpty)
                    #expect(choice["finish_reason"] as? String == "stop")
                } else {
                    #expect(delta.keys.sorted() == ["content"])
                    #expect(choice["finish_reason"] is NSNull)
                    content += delta["content"]!
                }
            }
            #expect(content == "Hello there, friend. ünïcode ✓")
        }
    }

    @Test func streamedUsage() async throws {
        try await testApp(ScriptedBackend(replying: "a b c")).test(.router) { client in
            let response = try await client.post("/v1/chat/completions",
                                                 json: chatBody("Hi", #""stream": true, "stream_options": {"include_usage": true}"#))
            let chunks = try parseStream(response)
            let last = try #require(chunks.last)
            #expect((last["choices"] as? [Any])?.isEmpty == true)
            let usage = try #require(last["usage"] as? [String: Int])
            #expect(usage["completion_tokens"] == 3)
            #expect(usage["total_tokens"] == usage["prompt_tokens"]! + 3)
            let finish = try #require((chunks[chunks.count - 2]["choices"] as? [[String: Any]])?.first)
            #expect(finish["finish_reason"] as? String == "stop")
        }
    }

    @Test(arguments: [false, true]) func stopSequences(stream: Bool) async throws {
        try await testApp(ScriptedBackend(replying: "Hello there, friend. More text.")).test(.router) { client in
            let extra = #""stop": ["zzz", "re, fr"], "stream": \#(stream), "stream_options": {"include_usage": true}"#
            let response = try await client.post("/v1/chat/completions", json: chatBody("Hi", extra))
            #expect(response.status == .ok)
            #expect(try replyContent(response) == "Hello the")
            let finishes = try (stream ? parseStream(response) : [response.object]).compactMap {
                ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String
            }
            #expect(finishes == ["stop"])
        }
    }

    @Test func oneStopString() async throws {
        try await testApp(ScriptedBackend(replying: "Hello there")).test(.router) { client in
            let response = try await client.post("/v1/chat/completions", json: chatBody("Hi", #""stop": "o t""#))
            #expect(try replyContent(response) == "Hell")
        }
    }

    @Test func contentParts() async throws {
        let backend = ScriptedBackend(.echo)
        try await testApp(backend).test(.router) { client in
            let response = try await client.post("/v1/chat/completions", json: """
                {"messages": [{"role": "developer", "content": "Sys"}, {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]}
                """)
            #expect(try replyContent(response) == "Sys\n\nHi there")
        }
    }
}

@Suite struct TextCompletionTests {
    @Test func wholeReply() async throws {
        let backend = ScriptedBackend(replying: " upon a time")
        try await testApp(backend).test(.router) { client in
            let response = try await client.post("/v1/completions", json: #"{"model": "tiny", "prompt": "Once", "max_tokens": 10, "seed": 3}"#)
            #expect(response.status == .ok)
            let body = try response.object
            #expect((body["id"] as? String)?.hasPrefix("cmpl-") == true)
            #expect(body["object"] as? String == "text_completion")
            #expect(body["model"] as? String == "tiny")
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect(choice["text"] as? String == " upon a time")
            #expect(choice["index"] as? Int == 0)
            #expect(choice["finish_reason"] as? String == "stop")
            #expect(choice["logprobs"] is NSNull)
            #expect((body["usage"] as? [String: Int])?["prompt_tokens"] == 1)
            #expect(backend.calls.first?.prompt == TinyModel.tokenizer.encode("Once"))
            #expect(backend.calls.first?.parameters.stopTokens.contains(50256) == true)
        }
    }

    @Test func emptyPromptStartsAtTheSeparator() async throws {
        let backend = ScriptedBackend(replying: "x")
        try await testApp(backend).test(.router) { client in
            let response = try await client.post("/v1/completions", json: #"{"prompt": ""}"#)
            #expect(response.status == .ok)
            #expect(backend.calls.first?.prompt == [50256])
        }
    }

    @Test func streamedReply() async throws {
        try await testApp(ScriptedBackend(replying: " upon a time")).test(.router) { client in
            let response = try await client.post("/v1/completions", json: #"{"prompt": "Once", "stream": true, "max_tokens": 2}"#)
            #expect(response.headers[.contentType] == "text/event-stream")
            let chunks = try parseStream(response)
            var text = ""
            for (i, chunk) in chunks.enumerated() {
                #expect(chunk["object"] as? String == "text_completion")
                let choice = try #require((chunk["choices"] as? [[String: Any]])?.first)
                text += choice["text"] as? String ?? ""
                if i == chunks.count - 1 {
                    #expect(choice["finish_reason"] as? String == "length")
                } else {
                    #expect(choice["finish_reason"] is NSNull)
                }
            }
            #expect(text == " upon a")
        }
    }
}

@Suite struct ErrorTests {
    static let limits = {
        var limits = ServerLimits()
        limits.maxBodyBytes = 2000
        limits.maxMessages = 3
        limits.maxMessageBytes = 100
        limits.maxTokens = 64
        return limits
    }()

    /// Each body posted to /v1/chat/completions, the status and the `param` it must get back.
    static let chatCases: [(body: String, status: HTTPResponse.Status, param: String?)] = [
        ("{not json", .badRequest, nil),
        ("", .badRequest, nil),
        ("[1, 2]", .badRequest, nil),
        (#"{"model": "tiny"}"#, .badRequest, "messages"),
        (#"{"messages": "hi"}"#, .badRequest, "messages"),
        (#"{"messages": []}"#, .badRequest, "messages"),
        (#"{"messages": [{"role": "user"}]}"#, .badRequest, "messages[0].content"),
        (#"{"messages": [{"role": "user", "content": 5}]}"#, .badRequest, "messages[0].content"),
        (#"{"messages": [{"content": "hi"}]}"#, .badRequest, "messages[0].role"),
        (#"{"messages": [{"role": "wizard", "content": "hi"}]}"#, .badRequest, "messages[0].role"),
        (#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, .badRequest, "messages[0].content"),
        (#"{"messages": [{"role": "assistant", "content": "hi"}]}"#, .badRequest, "messages"),
        (#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}"#, .badRequest, "messages"),
        (#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#, .badRequest, "messages"),
        (#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}"#,
         .badRequest, "messages"),
        (chatBody(String(repeating: "x", count: 101)), .badRequest, "messages[0].content"),
        (chatBody("hi", #""max_tokens": 65"#), .badRequest, "max_tokens"),
        (chatBody("hi", #""max_tokens": 0"#), .badRequest, "max_tokens"),
        (chatBody("hi", #""max_tokens": "ten""#), .badRequest, "max_tokens"),
        (chatBody("hi", #""max_tokens": 1.5"#), .badRequest, "max_tokens"),
        (chatBody("hi", #""temperature": "hot""#), .badRequest, "temperature"),
        (chatBody("hi", #""temperature": 3"#), .badRequest, "temperature"),
        (chatBody("hi", #""top_p": 0"#), .badRequest, "top_p"),
        (chatBody("hi", #""top_k": 0"#), .badRequest, "top_k"),
        (chatBody("hi", #""stream": "yes""#), .badRequest, "stream"),
        (chatBody("hi", #""stop": 5"#), .badRequest, "stop"),
        (chatBody("hi", #""stop": ["a", "b", "c", "d", "e"]"#), .badRequest, "stop"),
        (chatBody("hi", #""seed": "x""#), .badRequest, "seed"),
        (chatBody("hi", #""n": 2"#), .badRequest, "n"),
        (chatBody(String(repeating: "x", count: 2000)), .contentTooLarge, nil),
    ]

    @Test(arguments: chatCases.indices) func chatErrors(index: Int) async throws {
        let (body, status, param) = Self.chatCases[index]
        let backend = ScriptedBackend(replying: "never")
        try await testApp(backend, limits: Self.limits).test(.router) { client in
            try expectError(try await client.post("/v1/chat/completions", json: body), status, param: param)
            #expect(backend.calls.isEmpty)
        }
    }

    @Test func completionErrors() async throws {
        try await testApp(ScriptedBackend(replying: "never"), limits: Self.limits).test(.router) { client in
            try expectError(try await client.post("/v1/completions", json: #"{"prompt": 1}"#), .badRequest, param: "prompt")
            try expectError(try await client.post("/v1/completions", json: #"{}"#), .badRequest, param: "prompt")
            try expectError(try await client.post("/v1/completions", json: #"{"prompt": "\#(String(repeating: "y", count: 101))"}"#),
                            .badRequest, param: "prompt")
            try expectError(try await client.post("/v1/completions", json: #"{"prompt": "hi", "max_tokens": 100}"#),
                            .badRequest, param: "max_tokens")
        }
    }

    /// JSON is UTF-8: a body with other bytes is a 400 that says so and where, not a field of the wrong type.
    @Test func bodyThatIsNotUTF8() async throws {
        let backend = ScriptedBackend(replying: "never")
        try await testApp(backend).test(.router) { client in
            var body = ByteBuffer(string: #"{"messages": [{"role": "user", "content": "caf"#)
            let offset = body.readableBytes
            body.writeBytes([0xff, 0xfe])
            body.writeString(#""}]}"#)
            let response = try await client.execute(uri: "/v1/chat/completions", method: .post,
                                                    headers: [.contentType: "application/json"], body: body)
            let error = try expectError(response, .badRequest)
            #expect(error["message"] as? String == "the request body is not valid UTF-8 (byte offset \(offset))")
            #expect(backend.calls.isEmpty)
        }
    }

    @Test func tooMuchBody() async throws {
        try await testApp(ScriptedBackend(replying: "never"), limits: Self.limits).test(.live) { client in
            let response = try await client.post("/v1/completions", json: String(repeating: " ", count: 100_000))
            let error = try expectError(response, .contentTooLarge)
            #expect(error["type"] as? String == "invalid_request_error")
        }
    }

    @Test func promptLongerThanTheContext() async throws {
        let long = String(repeating: "word ", count: 200)  // 200 tokens; the context is 128
        var limits = ServerLimits()
        limits.maxMessageBytes = 10_000
        try await testApp(ScriptedBackend(replying: "never"), limits: limits).test(.router) { client in
            let error = try expectError(try await client.post("/v1/completions", json: #"{"prompt": "\#(long)"}"#), .badRequest)
            #expect(error["code"] as? String == "context_length_exceeded")
            try expectError(try await client.post("/v1/chat/completions", json: chatBody(long)), .badRequest)
        }
    }

    @Test func unknownRoutes() async throws {
        try await testApp(ScriptedBackend(replying: "never")).test(.router) { client in
            let error = try expectError(try await client.execute(uri: "/v1/nothing", method: .get), .notFound)
            #expect(error["type"] as? String == "not_found_error")
            try expectError(try await client.execute(uri: "/v1/chat/completions", method: .get), .notFound)
            try expectError(try await client.execute(uri: "/", method: .delete), .notFound)
        }
    }

    @Test func backendFailure() async throws {
        try await testApp(ScriptedBackend(.failure)).test(.router) { client in
            let error = try expectError(try await client.post("/v1/chat/completions", json: chatBody()), .internalServerError)
            #expect(error["type"] as? String == "server_error")

            // After the headers went out, the failure is the stream's last event.
            let events = try await client.post("/v1/chat/completions", json: chatBody("Hi", #""stream": true"#)).events
            let lastEvent = try #require(events.last)
            let last = try #require(JSONSerialization.jsonObject(with: Data(lastEvent.utf8)) as? [String: Any])
            #expect((last["error"] as? [String: Any])?["type"] as? String == "server_error")
        }
    }

    @Test func modelThatCannotChat() async throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 64, vocabSize: 50257, numLayers: 1, numHeads: 1, channels: 8)
        let model = ServedModel(name: "plain", tokenizer: TinyModel.tokenizer, config: config)
        #expect(model.chat == nil)
        try await testApp(ScriptedBackend(replying: "ok"), model: model).test(.router) { client in
            try expectError(try await client.post("/v1/chat/completions", json: chatBody()), .badRequest)
            let response = try await client.post("/v1/completions", json: #"{"prompt": "Hi"}"#)
            #expect(response.status == .ok)
        }
    }
}

@Suite struct ClientTests {
    /// A client that hangs up mid-stream cancels its generation, and the server goes on serving.
    @Test func disconnectCancelsGeneration() async throws {
        let backend = ScriptedBackend(.endless(TinyModel.tokenizer.encode(" and on")), interval: .milliseconds(5))
        try await testApp(backend).test(.live) { client in
            let port = try #require(client.port)
            let body = chatBody("Go on forever", #""stream": true"#)
            let connection = try RawConnection(port: port)
            connection.send("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let received = await connection.read(events: 3)
            #expect(received.hasPrefix("HTTP/1.1 200"))
            #expect(received.contains(#""content":" and""#))
            #expect(backend.activeCount == 1)
            connection.close()
            #expect(try await eventually { backend.activeCount == 0 })
            #expect(backend.cancelledCount == 1)

            let health = try await client.execute(uri: "/health", method: .get)
            #expect(try health.object["active"] as? Int == 0)
        }
    }

    /// A client that hangs up before its whole (unstreamed) reply is ready cancels it too.
    @Test func disconnectCancelsAWholeReply() async throws {
        let backend = ScriptedBackend(.endless(TinyModel.tokenizer.encode(" and on")), interval: .milliseconds(5))
        try await testApp(backend).test(.live) { client in
            let body = chatBody("Go on forever")
            let connection = try RawConnection(port: try #require(client.port))
            connection.send("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(try await eventually { backend.activeCount == 1 })
            connection.close()
            #expect(try await eventually { backend.activeCount == 0 })
            #expect(backend.cancelledCount == 1)
        }
    }

    /// Each of several simultaneous clients gets its own reply.
    @Test func concurrentClients() async throws {
        let backend = ScriptedBackend(.echo, interval: .milliseconds(1))
        try await testApp(backend).test(.router) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        let stream = i % 2 == 0
                        let response = try await client.post("/v1/chat/completions",
                                                             json: chatBody("client number \(i)", #""stream": \#(stream)"#))
                        #expect(response.status == .ok)
                        #expect(try replyContent(response) == "client number \(i)")
                    }
                }
                try await group.waitForAll()
            }
            #expect(backend.calls.count == 8)
            #expect(backend.activeCount == 0)
        }
    }
}

@Suite struct ReplyTextTests {
    /// Text arrives token by token; a stop sequence split across tokens is still found and never sent.
    @Test func holdsBackPossibleStops() throws {
        let tokenizer = TinyModel.tokenizer
        var reply = ReplyText(tokenizer: tokenizer, stopSequences: ["<END>", "stop here"])
        var sent = ""
        var stopped = false
        for id in tokenizer.encode("Some text <EN and more <END> hidden") {
            let (text, stop) = reply.push(id)
            sent += text
            #expect(!sent.contains("<END"))
            if stop {
                stopped = true
                break
            }
        }
        #expect(stopped)
        #expect(sent == "Some text <EN and more ")
    }

    @Test func flushesHeldTextAtTheEnd() {
        let tokenizer = TinyModel.tokenizer
        var reply = ReplyText(tokenizer: tokenizer, stopSequences: ["ends"])
        var sent = ""
        for id in tokenizer.encode("it end") { sent += reply.push(id).text }
        #expect(sent == "it ")
        #expect(sent + reply.finish() == "it end")
    }

    /// A calculator call goes out whole, inline as `<<expression=output>>`, once its output is in.
    @Test func showsCalculatorCallsInline() throws {
        let tokenizer = TinyModel.tokenizer, chat = ChatTokens(tokenizer: tokenizer)
        var reply = ReplyText(tokenizer: tokenizer, stopSequences: [], tools: ToolCalls(tokens: chat, tokenizer: tokenizer))
        let ids = tokenizer.encode("So ") + [chat.pythonStart] + tokenizer.encode("6*7") + [chat.pythonEnd, chat.outputStart]
            + tokenizer.encode("42") + [chat.outputEnd] + tokenizer.encode(" it is.")
        var pieces = [String]()
        for id in ids { pieces.append(reply.push(id).text) }
        #expect(pieces.joined() + reply.finish() == "So <<6*7=42>> it is.")
        #expect(pieces.contains("<<6*7=42>>"))
    }

    /// A character split across tokens comes out whole.
    @Test func neverSplitsACharacter() {
        let tokenizer = TinyModel.tokenizer
        var reply = ReplyText(tokenizer: tokenizer, stopSequences: [])
        let ids = tokenizer.encode("猫 ✓")
        #expect(ids.count > 2)
        var pieces = [String]()
        for id in ids { pieces.append(reply.push(id).text) }
        #expect(pieces.joined() == "猫 ✓")
        #expect(pieces.allSatisfy { !$0.unicodeScalars.contains("\u{FFFD}") })
    }
}

/// A binary copied without its resource folder still serves: the page is a notice, not a crash.
@Suite struct ChatPageTests {
    @Test func aMissingPageIsANoticeNotACrash() throws {
        let page = chatPage(candidates: ["/nonexistent/chat.html"])
        #expect(String(buffer: page).contains("LLM_RESOURCES"))
        let found = chatPage()
        #expect(String(buffer: found).contains("<html") || String(buffer: found).contains("<!doctype") || String(buffer: found).contains("<!DOCTYPE"))
        #expect(found.readableBytes > page.readableBytes)
    }
}
