// A model's chat template: the Jinja program shipped in `tokenizer_config.json` (or a GGUF's
// `tokenizer.chat_template`) that turns a conversation into the prompt text. Rendering matches transformers'
// `apply_chat_template(…, tokenize=False)` byte for byte: the same Jinja settings (`trim_blocks`,
// `lstrip_blocks`, `tojson` without HTML escaping, `raise_exception`, `strftime_now`), the same variables
// (`messages`, `tools`, `documents`, `add_generation_prompt`, `bos_token`, `eos_token`, extras), and the same
// clean-up of messages first (keys whose value is None dropped, reasoning copied under its three names).
// The interpreter lives in Chat/Jinja/; `builtin(_:)` offers real templates to fall back on.
import Foundation

public struct ChatTemplate: Sendable {
    /// Bounds that keep a hostile template from running forever or filling memory.
    public struct Limits: Sendable, Equatable {
        /// The most output, in UTF-8 bytes; also the largest string or list built along the way.
        public var maxOutputBytes = 32 << 20
        /// Statements run, expressions evaluated and loop iterations, plus one per 64 bytes or 4 items of bulk work.
        public var maxSteps = 10_000_000
        /// Macro calls inside macro calls.
        public var maxCallDepth = 50
        /// Blocks inside blocks and brackets inside brackets in the source.
        public var maxNesting = 64

        public init() {}
    }

    /// The template's Jinja source, as given.
    public let source: String
    public let limits: Limits
    private let program: [Node]

    /// Parses `source`; throws for invalid Jinja and for an unknown filter or test, as Jinja does when it compiles
    /// a template. Like Jinja, an unknown filter or test inside an `if` (or `x if c else y`), and a tag this
    /// interpreter does not run (`include`, `autoescape`, …), fail only if rendering reaches them.
    public init(source: String, limits: Limits = Limits()) throws(ChatTemplateError) {
        self.source = source
        self.limits = limits
        do {
            program = try Parser.parse(try Lexer.tokenize(source), maxDepth: limits.maxNesting)
        } catch {
            throw ChatTemplateError(error)
        }
    }

    /// Renders a conversation.
    /// - Parameters:
    ///   - messages: the messages, each an ordered object (`role`, `content`, and whatever else the template reads:
    ///     `tool_calls`, `reasoning_content`, …).
    ///   - addGenerationPrompt: end with the header that starts the assistant's reply.
    ///   - tools: JSON schemas of the tools the model may call (the template's `tools`, None when nil).
    ///   - extra: more variables (`date_string`, `enable_thinking`, `custom_tools`, `documents`, …); they replace
    ///     the others of the same name.
    ///   - now: the time `strftime_now` formats, as wall-clock time in `timeZone` (Python's `datetime.now()`).
    public func render(
        messages: [JinjaObject], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
        tools: [JinjaValue]? = nil, extra: [String: JinjaValue] = [:], now: Date = Date(), timeZone: TimeZone = .current
    ) throws(ChatTemplateError) -> String {
        guard !messages.isEmpty else { throw .emptyConversation }
        var context: [String: Value] = [
            "messages": .list(messages.map { .dict(Dict(Self.normalized($0))) }),
            "tools": tools.map { .list($0.map(Value.init)) } ?? .none,
            "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ]
        for (name, value) in extra { context[name] = Value(value) }
        return try render(context: context, now: now, timeZone: timeZone)
    }

    /// Renders with exactly these variables and nothing else: no messages clean-up, no `tools` or `documents`.
    public func render(
        variables: [String: JinjaValue], now: Date = Date(), timeZone: TimeZone = .current
    ) throws(ChatTemplateError) -> String {
        try render(context: variables.mapValues(Value.init), now: now, timeZone: timeZone)
    }

    private func render(context: [String: Value], now: Date, timeZone: TimeZone) throws(ChatTemplateError) -> String {
        let interpreter = Interpreter(limits: limits, now: now, timeZone: timeZone)
        do {
            return try interpreter.render(program, context: context)
        } catch {
            throw ChatTemplateError(error)
        }
    }

    /// Renders messages given as plain dictionaries. Swift dictionaries have no order, so each message's keys
    /// are put in a fixed one: `role`, `content`, then the rest sorted (only `tojson` or `items()` on a whole
    /// message can tell).
    public func render(
        messages: [[String: JinjaValue]], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
        tools: [JinjaValue]? = nil, extra: [String: JinjaValue] = [:], now: Date = Date(), timeZone: TimeZone = .current
    ) throws(ChatTemplateError) -> String {
        let ordered = messages.map { message in
            JinjaObject(message.sorted { a, b in Self.keyRank(a.key, b.key) })
        }
        return try render(
            messages: ordered, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken, eosToken: eosToken,
            tools: tools, extra: extra, now: now, timeZone: timeZone)
    }

    /// Renders `Conversation` messages (role and content).
    public func render(
        messages: [Conversation.Message], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
        tools: [JinjaValue]? = nil, extra: [String: JinjaValue] = [:], now: Date = Date(), timeZone: TimeZone = .current
    ) throws(ChatTemplateError) -> String {
        try render(
            messages: messages.map { ["role": .string($0.role.rawValue), "content": .string($0.content)] as JinjaObject },
            addGenerationPrompt: addGenerationPrompt, bosToken: bosToken, eosToken: eosToken, tools: tools, extra: extra,
            now: now, timeZone: timeZone)
    }

    /// Renders a `Conversation`.
    public func render(
        _ conversation: Conversation, addGenerationPrompt: Bool, bosToken: String, eosToken: String,
        tools: [JinjaValue]? = nil, extra: [String: JinjaValue] = [:], now: Date = Date(), timeZone: TimeZone = .current
    ) throws(ChatTemplateError) -> String {
        try render(
            messages: conversation.messages, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken,
            eosToken: eosToken, tools: tools, extra: extra, now: now, timeZone: timeZone)
    }

    private static func keyRank(_ a: String, _ b: String) -> Bool {
        let fixed = ["role", "content"]
        switch (fixed.firstIndex(of: a), fixed.firstIndex(of: b)) {
        case let (i?, j?): return i < j
        case (_?, nil): return true
        case (nil, _?): return false
        case (nil, nil): return a < b
        }
    }

    /// What transformers does to each message before rendering: drop keys whose value is None, and when the
    /// message has reasoning under `reasoning_content`, `thinking` or `reasoning`, make it
    /// `{"thinking": r, **message, "reasoning_content": r}` (templates read either name).
    static func normalized(_ message: JinjaObject) -> JinjaObject {
        let m = JinjaObject(message.entries.filter { $0.value != .none }.map { ($0.key, $0.value) })
        guard let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap({ m[$0] }).first else { return m }
        var aliased: JinjaObject = ["thinking": reasoning]
        for (k, v) in m.entries { aliased[k] = v }
        aliased["reasoning_content"] = reasoning
        return aliased
    }
}

/// Why a chat template could not be loaded or rendered; `description` is one line.
public enum ChatTemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The source is not valid Jinja.
    case syntax(String, line: Int)
    /// Valid Jinja that this interpreter does not implement (a filter, test, tag or function).
    case unsupported(String, line: Int)
    /// Rendering failed as it would in Python: an undefined value used, a type error, a division by zero…
    case runtime(String, line: Int)
    /// The template called `raise_exception(message)`, usually to reject a conversation it cannot format.
    case raised(String, line: Int)
    /// The template exceeded one of `ChatTemplate.Limits`.
    case limitExceeded(String, line: Int)
    /// There were no messages (transformers refuses these too).
    case emptyConversation
    /// `JinjaValue(json:)` could not parse its text.
    case invalidJSON(String)

    public var description: String {
        switch self {
        case let .syntax(message, line): "chat template syntax error: \(message) at line \(line)"
        case let .unsupported(message, line): "\(message) at line \(line)"
        case let .runtime(message, line): "chat template error: \(message) at line \(line)"
        case let .raised(message, line): "the chat template refused the conversation: \(message) (line \(line))"
        case let .limitExceeded(message, line): "chat template stopped: \(message) at line \(line)"
        case .emptyConversation: "cannot apply a chat template to an empty conversation"
        case let .invalidJSON(message): "invalid JSON: \(message)"
        }
    }

    init(_ failure: TemplateFailure) {
        let line = failure.line ?? 1
        switch failure.kind {
        case .syntax: self = .syntax(failure.message, line: line)
        case .unsupported: self = .unsupported(failure.message, line: line)
        case .runtime: self = .runtime(failure.message, line: line)
        case .raised: self = .raised(failure.message, line: line)
        case .limit: self = .limitExceeded(failure.message, line: line)
        }
    }
}

// MARK: - Built-in templates

extension ChatTemplate {
    /// The names `builtin(_:)` accepts.
    public static let builtinNames = ["chatml", "gemma", "llama3", "mistral"]

    /// A real model's template to use when a model's own template needs something this interpreter lacks
    /// (`--chat-format chatml`): ChatML as in teknium/OpenHermes-2.5-Mistral-7B, Gemma 3 (google/gemma-3-*-it),
    /// Llama 3 (meta-llama/Meta-Llama-3-8B-Instruct) and Mistral's v1 template with an optional system prompt
    /// (mistralai/Mistral-7B-Instruct-v0.2). nil for any other name. Tests/LLMTests/Fixtures/chat-templates/
    /// holds the same sources, and the tests check them against transformers.
    public static func builtin(_ name: String) -> ChatTemplate? {
        let source: String
        switch name {
        case "chatml": source = chatMLSource
        case "gemma": source = gemmaSource
        case "llama3": source = llama3Source
        case "mistral": source = mistralSource
        default: return nil
        }
        return try? ChatTemplate(source: source)
    }

    static let chatMLSource = #"""
        {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
        """#

    static let llama3Source = #"""
        {% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
        """#

    // Google writes the newlines inside this template's string literals as real line breaks.
    static let gemmaSource = #"""
        {{ bos_token }}
        {%- if messages[0]['role'] == 'system' -%}
            {%- if messages[0]['content'] is string -%}
                {%- set first_user_prefix = messages[0]['content'] + '

        ' -%}
            {%- else -%}
                {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

        ' -%}
            {%- endif -%}
            {%- set loop_messages = messages[1:] -%}
        {%- else -%}
            {%- set first_user_prefix = "" -%}
            {%- set loop_messages = messages -%}
        {%- endif -%}
        {%- for message in loop_messages -%}
            {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
                {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
            {%- endif -%}
            {%- if (message['role'] == 'assistant') -%}
                {%- set role = "model" -%}
            {%- else -%}
                {%- set role = message['role'] -%}
            {%- endif -%}
            {{ '<start_of_turn>' + role + '
        ' + (first_user_prefix if loop.first else "") }}
            {%- if message['content'] is string -%}
                {{ message['content'] | trim }}
            {%- elif message['content'] is iterable -%}
                {%- for item in message['content'] -%}
                    {%- if item['type'] == 'image' -%}
                        {{ '<start_of_image>' }}
                    {%- elif item['type'] == 'text' -%}
                        {{ item['text'] | trim }}
                    {%- endif -%}
                {%- endfor -%}
            {%- else -%}
                {{ raise_exception("Invalid content type") }}
            {%- endif -%}
            {{ '<end_of_turn>
        ' }}
        {%- endfor -%}
        {%- if add_generation_prompt -%}
            {{'<start_of_turn>model
        '}}
        {%- endif -%}

        """#

    static let mistralSource = #"""
        {%- if messages[0]['role'] == 'system' %}
            {%- set system_message = messages[0]['content'] %}
            {%- set loop_messages = messages[1:] %}
        {%- else %}
            {%- set loop_messages = messages %}
        {%- endif %}

        {{- bos_token }}
        {%- for message in loop_messages %}
            {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
                {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
            {%- endif %}
            {%- if message['role'] == 'user' %}
                {%- if loop.first and system_message is defined %}
                    {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
                {%- else %}
                    {{- ' [INST] ' + message['content'] + ' [/INST]' }}
                {%- endif %}
            {%- elif message['role'] == 'assistant' %}
                {{- ' ' + message['content'] + eos_token}}
            {%- else %}
                {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
            {%- endif %}
        {%- endfor %}

        """#
}
