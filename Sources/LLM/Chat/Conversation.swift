// Conversations for chat fine-tuning: a list of messages (an optional system prompt, then user and assistant
// turns that alternate, the user first), read from JSONL files with one `{"messages": [...]}` per line.
// An assistant's message may be a list of parts, as nanochat's are: text, a calculator call and the call's
// output (see `Part`). How a conversation becomes tokens is ChatFormat.swift's job, and only its job.
import Foundation

public struct Conversation: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable, Equatable, CaseIterable {
        case system, user, assistant
    }

    /// One piece of a message: text, or (assistant messages only) a calculator call or its output. In JSONL,
    /// `{"type": "text" | "python" | "python_output", "text": …}`, nanochat's shape.
    public struct Part: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable, Equatable, CaseIterable {
            case text
            /// A calculator call (the expression, without its tokens): `<|python_start|> text <|python_end|>`.
            case python
            /// What the calculator answered: `<|output_start|> text <|output_end|>`, never supervised (at
            /// inference the engine writes it).
            case pythonOutput = "python_output"
        }
        public var kind: Kind
        public var text: String

        public init(_ kind: Kind, _ text: String) {
            self.kind = kind
            self.text = text
        }
        public static func text(_ text: String) -> Part { Part(.text, text) }
        public static func python(_ expression: String) -> Part { Part(.python, expression) }
        public static func pythonOutput(_ output: String) -> Part { Part(.pythonOutput, output) }

        private enum CodingKeys: String, CodingKey { case kind = "type", text }
    }

    public struct Message: Codable, Sendable, Equatable {
        public var role: Role
        /// The message's pieces in order; a plain message is one text part.
        public var parts: [Part]

        public init(role: Role, content: String) {
            self.role = role
            parts = [.text(content)]
        }

        public init(role: Role, parts: [Part]) {
            self.role = role
            self.parts = parts
        }

        /// Whether the message is only text (one part or several), with no calculator call or output.
        public var isPlainText: Bool { parts.allSatisfy { $0.kind == .text } }

        /// The message as one string: text parts as they are, each calculator call and its output inline as
        /// GSM8K writes them, `<<expression=output>>` (`<<expression>>` for a call with no output). Chat
        /// templates of real models, which have no calculator tokens, see this; so do OpenAI clients. Setting it
        /// makes the message one text part.
        public var content: String {
            get {
                if parts.count == 1, parts[0].kind == .text { return parts[0].text }
                var out = "", i = 0
                while i < parts.count {
                    let p = parts[i]
                    switch p.kind {
                    case .text: out += p.text
                    case .python:
                        if i + 1 < parts.count, parts[i + 1].kind == .pythonOutput {
                            out += "<<\(p.text)=\(parts[i + 1].text)>>"
                            i += 1
                        } else {
                            out += "<<\(p.text)>>"
                        }
                    case .pythonOutput: out += "<<=\(p.text)>>"
                    }
                    i += 1
                }
                return out
            }
            set { parts = [.text(newValue)] }
        }

        /// A message from text that writes calculator calls inline as `content` does (GSM8K's
        /// `<<expression=output>>`, or `<<expression>>`): each such call becomes a python part and its output a
        /// python_output part, the rest text. A `<<…>>` with a newline, another `<<`, or no expression before
        /// its last `=` stays text. What a client sends back of a reply it was given reads as the reply was.
        public init(role: Role, inlineCalls text: String) {
            var parts = [Part](), rest = Substring(text), pending = ""
            while let open = rest.range(of: "<<") {
                pending += rest[..<open.lowerBound]
                let after = rest[open.upperBound...]
                guard let close = after.range(of: ">>") else {
                    pending += rest[open.lowerBound...]
                    rest = ""
                    break
                }
                let inner = after[..<close.lowerBound]
                let split = inner.lastIndex(of: "=")
                let expression = split.map { inner[..<$0] } ?? inner
                if inner.contains("\n") || inner.contains("<<") || expression.isEmpty {
                    pending += "<<"
                    rest = after
                    continue
                }
                if !pending.isEmpty { parts.append(.text(pending)) }
                pending = ""
                parts.append(.python(String(expression)))
                if let split { parts.append(.pythonOutput(String(inner[inner.index(after: split)...]))) }
                rest = after[close.upperBound...]
            }
            pending += rest
            if !pending.isEmpty || parts.isEmpty { parts.append(.text(pending)) }
            self.init(role: role, parts: parts)
        }

        /// `{"role": …, "content": …}`: content a string when the message is one text part, else a list of parts.
        private enum CodingKeys: String, CodingKey { case role, content }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(Role.self, forKey: .role)
            parts = try Self.decodeContent(c, forKey: .content)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(role, forKey: .role)
            if parts.count == 1, parts[0].kind == .text {
                try c.encode(parts[0].text, forKey: .content)
            } else {
                try c.encode(parts, forKey: .content)
            }
        }

        /// A content field: a string (one text part) or a list of parts.
        static func decodeContent<K: CodingKey>(_ c: KeyedDecodingContainer<K>, forKey key: K) throws -> [Part] {
            if let text = try? c.decode(String.self, forKey: key) { return [.text(text)] }
            return try c.decode([Part].self, forKey: key)
        }
    }

    /// What is wrong with a conversation's shape (see `validate()`).
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// No user or assistant message (none at all, or only a system prompt).
        case empty
        /// The first message after the optional system prompt is not from the user.
        case firstNotUser(role: Role)
        /// A system message anywhere but first (`index` counts from 0).
        case misplacedSystem(index: Int)
        /// Message `index` has the same role as the one before it.
        case repeatedRole(index: Int, role: Role)
        /// Message `index` holds a calculator call or output but is not the assistant's.
        case toolPartOutsideAssistant(index: Int, role: Role)

        public var description: String {
            switch self {
            case .empty: "no user or assistant messages"
            case let .firstNotUser(role): "the first message after the system prompt must be from the user, not the \(role.rawValue)"
            case let .misplacedSystem(index): "message \(index) is a system message; only the first message may be one"
            case let .repeatedRole(index, role): "messages \(index - 1) and \(index) are both from the \(role.rawValue); turns must alternate"
            case let .toolPartOutsideAssistant(index, role):
                "message \(index) is from the \(role.rawValue) but holds a python or python_output part; only the assistant's may"
            }
        }
    }

    public var messages: [Message]

    public init(messages: [Message]) { self.messages = messages }

    /// Checks the shape that chat training expects: an optional system message first, then turns that
    /// alternate user, assistant, user, … starting with the user; calculator parts only in the assistant's
    /// messages. Contents may be anything, empty included.
    public func validate() throws(Problem) {
        for (i, m) in messages.enumerated() where m.role != .assistant && !m.isPlainText {
            throw .toolPartOutsideAssistant(index: i, role: m.role)
        }
        var rest = messages[...]
        if rest.first?.role == .system { rest = rest.dropFirst() }
        guard let first = rest.first else { throw .empty }
        guard first.role == .user else {
            if first.role == .system { throw .misplacedSystem(index: rest.startIndex) }
            throw .firstNotUser(role: first.role)
        }
        for i in rest.indices.dropFirst() {
            if messages[i].role == .system { throw .misplacedSystem(index: i) }
            if messages[i].role == messages[i - 1].role { throw .repeatedRole(index: i, role: messages[i].role) }
        }
    }

    /// The conversations in a JSONL file, one `{"messages": [{"role": …, "content": …}, …]}` object per line
    /// (other keys are ignored; blank lines are skipped). A content is a string or, as nanochat writes tool
    /// use, a list of `{"type": "text" | "python" | "python_output", "text": …}` parts. Every conversation is
    /// validated. Errors name the file and the 1-based line.
    public static func readJSONL(path: String) throws(ChatFormatError) -> [Conversation] {
        let data: Data
        var directory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &directory) else {
            throw .unreadable(path: path, reason: "no such file")
        }
        guard !directory.boolValue else {
            throw .unreadable(path: path, reason: "a directory, not a JSONL file of conversations")
        }
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path: path, reason: "\((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        var out = [Conversation]()
        try forEachJSONLine(in: data) { (line, lineNumber) throws(ChatFormatError) in
            out.append(try parse(jsonLine: line, path: path, line: lineNumber))
        }
        return out
    }

    /// One JSONL line as a validated conversation; `path` and `line` only label errors.
    static func parse(jsonLine: Data, path: String, line: Int) throws(ChatFormatError) -> Conversation {
        let raw: RawConversation
        do { raw = try JSONDecoder().decode(RawConversation.self, from: jsonLine) } catch {
            throw .badJSON(path: path, line: line, reason: describe(error))
        }
        var messages = [Message]()
        for m in raw.messages {
            guard let role = Role(rawValue: m.role) else { throw .unknownRole(path: path, line: line, role: m.role) }
            messages.append(Message(role: role, parts: m.parts))
        }
        let conversation = Conversation(messages: messages)
        do { try conversation.validate() } catch {
            throw .invalidConversation(path: path, line: line, problem: error)
        }
        return conversation
    }
}

/// Roles as plain strings, so that an unknown role gets its own error rather than a decoding error.
private struct RawConversation: Decodable {
    struct Message: Decodable {
        var role: String
        var parts: [Conversation.Part]
        private enum CodingKeys: String, CodingKey { case role, content }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            parts = try Conversation.Message.decodeContent(c, forKey: .content)
        }
    }
    var messages: [Message]
}

/// A one-line account of a JSON decoding error.
private func describe(_ error: Error) -> String {
    func at(_ path: [CodingKey]) -> String {
        guard !path.isEmpty else { return "" }
        return " at " + path.enumerated().map { i, key in
            key.intValue.map { "[\($0)]" } ?? (i == 0 ? "" : ".") + key.stringValue
        }.joined()
    }
    guard let e = error as? DecodingError else { return "\(error)" }
    switch e {
    case let .keyNotFound(key, ctx): return "missing \"\(key.stringValue)\"\(at(ctx.codingPath))"
    case let .typeMismatch(type, ctx): return "expected \(type)\(at(ctx.codingPath))"
    case let .valueNotFound(type, ctx): return "expected \(type), found null\(at(ctx.codingPath))"
    case let .dataCorrupted(ctx):
        let underlying = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
        return (underlying ?? ctx.debugDescription) + at(ctx.codingPath)
    @unknown default: return "\(e)"
    }
}

public enum ChatFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case badJSON(path: String, line: Int, reason: String)
    case unknownRole(path: String, line: Int, role: String)
    case invalidConversation(path: String, line: Int, problem: Conversation.Problem)
    /// `renderForCompletion` needs a conversation whose last message is from the user (nil: no messages).
    case completionNeedsUserLast(lastRole: Conversation.Role?)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read: \(reason)"
        case let .badJSON(path, line, reason): "\(path):\(line): bad JSON: \(reason)"
        case let .unknownRole(path, line, role): "\(path):\(line): unknown role \"\(role)\" (expected system, user or assistant)"
        case let .invalidConversation(path, line, problem): "\(path):\(line): \(problem)"
        case let .completionNeedsUserLast(role):
            "a completion needs a conversation that ends with a user message, not \(role.map { "the \($0.rawValue)" } ?? "no messages")"
        }
    }
}
