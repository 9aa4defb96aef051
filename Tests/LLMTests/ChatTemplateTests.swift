import Foundation
import Testing
@testable import LLM

/// Real models' chat templates (Fixtures/chat-templates/*.jinja) rendered on committed conversations must match
/// transformers' `apply_chat_template` byte for byte (cases.json, from reference/make_chat_template_cases.py).
@Suite struct ChatTemplateTests {
    struct Case {
        let template: String
        let conversation: String
        let addGenerationPrompt: Bool
        let bosToken: String
        let eosToken: String
        let withTools: Bool
        let extra: [String: JinjaValue]
        /// The rendered text, or nil when transformers failed.
        let expected: String?
        /// raise_exception's message when the template refused the conversation.
        let raisedMessage: String?

        var label: String { "\(template) on \(conversation) (generation prompt \(addGenerationPrompt), tools \(withTools), extra \(extra.keys.sorted()))" }
    }

    struct Fixture {
        let now: Date
        let tools: [JinjaValue]
        let conversations: JinjaObject
        let cases: [Case]
    }

    static let utc = TimeZone(identifier: "UTC")!

    static func loadFixture() throws -> Fixture {
        let text = try String(contentsOfFile: Fixtures.path("chat-templates", "cases.json"), encoding: .utf8)
        guard case let .object(root) = try JinjaValue(json: text), case let .int(now)? = root["now_unix_utc"],
            case let .array(tools)? = root["tools"], case let .object(conversations)? = root["conversations"],
            case let .array(rawCases)? = root["cases"]
        else { throw ChatTemplateError.invalidJSON("unexpected cases.json layout") }
        let cases = try rawCases.map { raw -> Case in
            guard case let .object(c) = raw, case let .string(template)? = c["template"],
                case let .string(conversation)? = c["conversation"], case let .bool(agp)? = c["add_generation_prompt"],
                case let .string(bos)? = c["bos_token"], case let .string(eos)? = c["eos_token"],
                case let .bool(withTools)? = c["tools"], case let .object(extra)? = c["extra"]
            else { throw ChatTemplateError.invalidJSON("unexpected case layout") }
            var raised: String?
            if case let .object(error)? = c["error"], error["kind"] == "raised", case let .string(m)? = error["message"] { raised = m }
            var expected: String?
            if case let .string(e)? = c["expected"] { expected = e }
            return Case(
                template: template, conversation: conversation, addGenerationPrompt: agp, bosToken: bos, eosToken: eos,
                withTools: withTools, extra: Dictionary(uniqueKeysWithValues: extra.entries.map { ($0.key, $0.value) }),
                expected: expected, raisedMessage: raised)
        }
        return Fixture(now: Date(timeIntervalSince1970: TimeInterval(now)), tools: tools, conversations: conversations, cases: cases)
    }

    static func source(_ template: String) throws -> String {
        try String(contentsOfFile: Fixtures.path("chat-templates", template), encoding: .utf8)
    }

    static func messages(_ fixture: Fixture, _ name: String) -> [JinjaObject] {
        guard case let .array(items)? = fixture.conversations[name] else { return [] }
        return items.compactMap { if case let .object(o) = $0 { o } else { nil } }
    }

    @Test func realTemplatesMatchTransformers() throws {
        let fixture = try Self.loadFixture()
        #expect(fixture.cases.count > 300)
        var templates = [String: ChatTemplate]()
        for c in fixture.cases {
            let template = try templates[c.template] ?? ChatTemplate(source: Self.source(c.template))
            templates[c.template] = template
            let render = {
                try template.render(
                    messages: Self.messages(fixture, c.conversation), addGenerationPrompt: c.addGenerationPrompt,
                    bosToken: c.bosToken, eosToken: c.eosToken, tools: c.withTools ? fixture.tools : nil, extra: c.extra,
                    now: fixture.now, timeZone: Self.utc)
            }
            if let expected = c.expected {
                #expect(try render() == expected, "\(c.label)")
            } else {
                do {
                    let output = try render()
                    Issue.record("\(c.label): expected an error, rendered \(output.debugDescription)")
                } catch let error as ChatTemplateError {
                    if let message = c.raisedMessage {
                        guard case let .raised(got, _) = error else {
                            Issue.record("\(c.label): expected raise_exception(\(message)), got \(error)")
                            continue
                        }
                        #expect(got == message, "\(c.label)")
                    }
                }
            }
        }
        // Every committed template is exercised, and most cases render (the rest are refusals on purpose).
        let files = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("chat-templates")).filter { $0.hasSuffix(".jinja") }
        #expect(Set(fixture.cases.map(\.template)) == Set(files))
        #expect(fixture.cases.filter { $0.expected != nil }.count > 250)
        #expect(fixture.cases.contains { $0.raisedMessage == "Conversation roles must alternate user/assistant/user/assistant/..." })
    }

    @Test func builtinsAreTheCommittedTemplates() throws {
        let files = ["chatml": "teknium-OpenHermes-2.5-Mistral-7B.jinja", "gemma": "google-gemma-3-it.jinja",
                     "llama3": "meta-llama-Meta-Llama-3-8B-Instruct.jinja", "mistral": "mistralai-Mistral-7B-Instruct-v0.2-v1.jinja"]
        #expect(Set(ChatTemplate.builtinNames) == Set(files.keys))
        for (name, file) in files {
            let builtin = try #require(ChatTemplate.builtin(name), "\(name)")
            #expect(builtin.source == (try Self.source(file)), "\(name)")
        }
        #expect(ChatTemplate.builtin("alpaca") == nil)
        let chatml = try #require(ChatTemplate.builtin("chatml"))
        let text = try chatml.render(
            messages: [Conversation.Message(role: .user, content: "Hi")], addGenerationPrompt: true, bosToken: "", eosToken: "")
        #expect(text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func conversationAndDictionaryOverloadsAgree() throws {
        let template = try ChatTemplate(source: try Self.source("google-gemma-3-it.jinja"))
        let conversation = Conversation(messages: [
            .init(role: .system, content: "Be brief."), .init(role: .user, content: "Hi"), .init(role: .assistant, content: "Yo"),
        ])
        let ordered: [JinjaObject] = conversation.messages.map { ["role": .string($0.role.rawValue), "content": .string($0.content)] }
        let a = try template.render(conversation, addGenerationPrompt: false, bosToken: "<bos>", eosToken: "<eos>")
        let b = try template.render(messages: ordered, addGenerationPrompt: false, bosToken: "<bos>", eosToken: "<eos>")
        let c = try template.render(
            messages: conversation.messages.map { ["content": .string($0.content), "role": .string($0.role.rawValue)] },
            addGenerationPrompt: false, bosToken: "<bos>", eosToken: "<eos>")
        #expect(a == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n")
        #expect(a == b && b == c)
        // Plain dictionaries get role, content, then the other keys sorted.
        let debug = try ChatTemplate(source: "{{ messages[0]|tojson }}")
        let keys = try debug.render(
            messages: [["zeta": 1, "content": "c", "alpha": true, "role": "user"]], addGenerationPrompt: false, bosToken: "", eosToken: "")
        #expect(keys == #"{"role": "user", "content": "c", "alpha": true, "zeta": 1}"#)
    }

    @Test func emptyConversationIsRefused() throws {
        let template = try #require(ChatTemplate.builtin("chatml"))
        #expect(throws: ChatTemplateError.emptyConversation) {
            try template.render(messages: [Conversation.Message](), addGenerationPrompt: true, bosToken: "", eosToken: "")
        }
    }

    @Test func messagesAreCleanedUpAsTransformersDoes() throws {
        let template = try ChatTemplate(source: "{{ messages|tojson }}")
        let text = try template.render(
            messages: [["role": "assistant", "content": nil, "reasoning": "r", "tool_calls": [["id": "x"]]]],
            addGenerationPrompt: false, bosToken: "", eosToken: "")
        #expect(text == #"[{"thinking": "r", "role": "assistant", "reasoning": "r", "tool_calls": [{"id": "x"}], "reasoning_content": "r"}]"#)
    }

    @Test func strftimeNowUsesTheGivenClockAndZone() throws {
        let template = try ChatTemplate(source: "{{ strftime_now('%d %b %Y %H:%M') }}")
        let instant = Date(timeIntervalSince1970: 1_721_995_200)  // 2024-07-26 12:00 UTC
        let render = { (zone: String) in
            try template.render(
                messages: [["role": "user", "content": "x"]], addGenerationPrompt: false, bosToken: "", eosToken: "",
                now: instant, timeZone: TimeZone(identifier: zone)!)
        }
        #expect(try render("UTC") == "26 Jul 2024 12:00")
        #expect(try render("Asia/Tokyo") == "26 Jul 2024 21:00")
        #expect(try render("America/Los_Angeles") == "26 Jul 2024 05:00")
    }

    @Test func raisedErrorsNameTheTemplatesMessage() throws {
        let template = try #require(ChatTemplate.builtin("gemma"))
        do {
            _ = try template.render(
                messages: [["role": "user", "content": "a"], ["role": "user", "content": "b"]], addGenerationPrompt: true,
                bosToken: "<bos>", eosToken: "<eos>")
            Issue.record("expected the template to refuse non-alternating roles")
        } catch {
            #expect(error == .raised("Conversation roles must alternate user/assistant/user/assistant/...", line: 19))
            #expect(!error.description.contains("\n"))
        }
    }
}
