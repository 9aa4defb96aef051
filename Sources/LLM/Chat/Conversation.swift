// Conversations for chat fine-tuning: a list of messages (an optional system prompt, then user and assistant
// turns that alternate, the user first), read from JSONL files with one `{"messages": [...]}` per line.
// How a conversation becomes tokens is ChatFormat.swift's job, and only its job.
import Foundation

public struct Conversation: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable, Equatable, CaseIterable {
        case system, user, assistant
    }

    public struct Message: Codable, Sendable, Equatable {
        public var role: Role
        public var content: String
        public init(role: Role, content: String) {
            self.role = role
            self.content = content
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

        public var description: String {
            switch self {
            case .empty: "no user or assistant messages"
            case let .firstNotUser(role): "the first message after the system prompt must be from the user, not the \(role.rawValue)"
            case let .misplacedSystem(index): "message \(index) is a system message; only the first message may be one"
            case let .repeatedRole(index, role): "messages \(index - 1) and \(index) are both from the \(role.rawValue); turns must alternate"
            }
        }
    }

    public var messages: [Message]

    public init(messages: [Message]) { self.messages = messages }

    /// Checks the shape that chat training expects: an optional system message first, then turns that
    /// alternate user, assistant, user, … starting with the user. Contents may be anything, empty included.
    public func validate() throws(Problem) {
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
    /// (other keys are ignored; blank lines are skipped). Every conversation is validated. Errors name the
    /// file and the 1-based line.
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
        var lineNumber = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            lineNumber += 1
            let line = data[start..<end]
            start = end < data.endIndex ? end + 1 : end
            guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
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
            messages.append(Message(role: role, content: m.content))
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
    struct Message: Decodable { var role: String; var content: String }
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
