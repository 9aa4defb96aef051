// Evaluation tasks: one JSONL file per task, a header line naming the task and how to score it, then one example
// per line. The shapes follow nanochat's CORE tasks (multiple choice, schema, language modelling, after the DCLM
// paper) and its ChatCORE tasks (categorical and generative), so public sets convert line for line
// (reference/convert_tasks.py; tasks/README.md documents the format).
//
//   {"task": "capitals", "kind": "multiple_choice", "fewshot": 3, "delimiter": " Answer: "}
//   {"query": "The capital of France is", "choices": ["Paris", "Rome", "Madrid"], "gold": 0}
//
// Kinds and their example keys:
//   multiple_choice    query, choices, gold     the choice with the lowest mean loss of its tokens
//   schema             context_options, continuation, gold
//                                               the context under which the continuation has the lowest mean loss
//   language_modeling  context, continuation    right if the greedy prediction of every continuation token is it
//   chat_choice        question, choices, gold  through the chat template; the letter with the highest logit
//   chat_answer        question, answer         through the chat template; greedy reply, its answer (after
//                                               "####", else its last number) equal to `answer`
import Foundation

/// One evaluation task: its settings and examples, validated.
public struct EvalTask: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case multipleChoice = "multiple_choice"
        case schema
        case languageModeling = "language_modeling"
        case chatChoice = "chat_choice"
        case chatAnswer = "chat_answer"

        /// Scored through the model's chat template (ChatCORE) rather than as raw text (CORE).
        public var isChat: Bool { self == .chatChoice || self == .chatAnswer }
    }

    /// One example. Which fields are set depends on the task's kind (see the file's header comment).
    public struct Example: Sendable, Equatable, Codable {
        public var query: String?
        public var choices: [String]?
        public var gold: Int?
        public var contextOptions: [String]?
        public var context: String?
        public var continuation: String?
        public var question: String?
        public var answer: String?

        enum CodingKeys: String, CodingKey {
            case query, choices, gold, context, continuation, question, answer
            case contextOptions = "context_options"
        }

        public init(query: String? = nil, choices: [String]? = nil, gold: Int? = nil, contextOptions: [String]? = nil,
                    context: String? = nil, continuation: String? = nil, question: String? = nil,
                    answer: String? = nil) {
            self.query = query
            self.choices = choices
            self.gold = gold
            self.contextOptions = contextOptions
            self.context = context
            self.continuation = continuation
            self.question = question
            self.answer = answer
        }

        /// How many options a random guess picks among (1 for the kinds without options).
        var optionCount: Int { choices?.count ?? contextOptions?.count ?? 1 }
    }

    /// The header line.
    public struct Header: Sendable, Equatable, Codable {
        public var task: String
        public var kind: Kind
        /// Solved examples put before each question (drawn from the task's other examples).
        public var fewshot: Int?
        /// What joins a query or context to its continuation (CORE's `continuation_delimiter`).
        public var delimiter: String?
        /// The accuracy of guessing, in [0, 1); by default the mean of 1/options (0 for the open kinds).
        public var baseline: Double?
        /// The most tokens a chat_answer reply may have.
        public var maxTokens: Int?

        enum CodingKeys: String, CodingKey {
            case task, kind, fewshot, delimiter, baseline
            case maxTokens = "max_tokens"
        }

        public init(task: String, kind: Kind, fewshot: Int? = nil, delimiter: String? = nil, baseline: Double? = nil,
                    maxTokens: Int? = nil) {
            self.task = task
            self.kind = kind
            self.fewshot = fewshot
            self.delimiter = delimiter
            self.baseline = baseline
            self.maxTokens = maxTokens
        }
    }

    public var name: String
    public var kind: Kind
    public var fewshot: Int
    public var delimiter: String
    /// The accuracy of a random guess, in [0, 1).
    public var baseline: Double
    public var maxTokens: Int
    public var examples: [Example]

    /// The most examples, options per example and bytes per text a task file may hold: far beyond any real set,
    /// small enough that a hostile file cannot make the evaluator allocate without bound.
    public static let maxExamples = 1_000_000
    public static let maxOptions = 26
    public static let maxFewshot = 64

    public init(header: Header, examples: [Example]) throws(EvalError) {
        name = header.task
        kind = header.kind
        fewshot = header.fewshot ?? 0
        delimiter = header.delimiter ?? " "
        maxTokens = header.maxTokens ?? 256
        self.examples = examples
        baseline = 0
        try validate(header: header)
    }

    private mutating func validate(header: Header) throws(EvalError) {
        func bad(_ reason: String) -> EvalError { .invalidTask(task: name, reason: reason) }
        guard !name.isEmpty, name.count <= 100 else { throw bad("the task's name must have 1 to 100 characters") }
        guard !examples.isEmpty else { throw bad("no examples") }
        guard examples.count <= Self.maxExamples else { throw bad("more than \(Self.maxExamples) examples") }
        guard (0...Self.maxFewshot).contains(fewshot) else { throw bad("fewshot \(fewshot) is not in 0...\(Self.maxFewshot)") }
        guard fewshot == 0 || fewshot < examples.count else {
            throw bad("fewshot \(fewshot) needs more than \(fewshot) examples; the task has \(examples.count)")
        }
        guard !kind.isChat || fewshot == 0 else { throw bad("chat tasks take no few-shot examples") }
        guard (1...4096).contains(maxTokens) else { throw bad("max_tokens \(maxTokens) is not in 1...4096") }
        for (i, e) in examples.enumerated() {
            if let reason = Self.problem(with: e, kind: kind) { throw .invalidExample(task: name, index: i + 1, reason: reason) }
        }
        if let b = header.baseline {
            guard b.isFinite, (0..<1).contains(b) else { throw bad("baseline \(b) is not in [0, 1)") }
            baseline = b
        } else if kind == .languageModeling || kind == .chatAnswer {
            baseline = 0
        } else {
            baseline = examples.reduce(0.0) { $0 + 1 / Double($1.optionCount) } / Double(examples.count)
        }
    }

    /// What is wrong with an example of this kind, or nil.
    static func problem(with e: Example, kind: Kind) -> String? {
        func options(_ list: [String]?, _ key: String) -> String? {
            guard let list else { return "no \"\(key)\"" }
            guard (2...maxOptions).contains(list.count) else { return "\"\(key)\" needs 2 to \(maxOptions) entries, not \(list.count)" }
            guard let gold = e.gold else { return "no \"gold\"" }
            guard list.indices.contains(gold) else { return "\"gold\" \(gold) is not an index of \"\(key)\" (0..<\(list.count))" }
            return nil
        }
        switch kind {
        case .multipleChoice:
            guard e.query != nil else { return "no \"query\"" }
            return options(e.choices, "choices")
        case .schema:
            guard e.continuation != nil else { return "no \"continuation\"" }
            return options(e.contextOptions, "context_options")
        case .languageModeling:
            guard e.context != nil else { return "no \"context\"" }
            guard let c = e.continuation, !c.isEmpty else { return "no \"continuation\" (or an empty one)" }
            return nil
        case .chatChoice:
            guard e.question != nil else { return "no \"question\"" }
            return options(e.choices, "choices")
        case .chatAnswer:
            guard e.question != nil else { return "no \"question\"" }
            guard let a = e.answer, !a.isEmpty else { return "no \"answer\" (or an empty one)" }
            return nil
        }
    }

    /// The largest task file read (256 MiB).
    public static let maxFileBytes = 256 << 20

    /// Reads a task file: the header on the first non-blank line, an example on each further one. Errors name
    /// the file and the 1-based line.
    public static func read(path: String) throws(EvalError) -> EvalTask {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadable(path: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw .unreadable(path: path, reason: "a directory, not a task file") }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size <= maxFileBytes else {
            throw .unreadable(path: path, reason: "\(size) bytes, more than a task file may have (\(maxFileBytes))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "permission denied or not a regular file")
        }
        return try parse(data, path: path)
    }

    /// The task files `paths` name: each file as given, each directory as its `.jsonl` files in name order.
    public static func files(_ paths: [String]) throws(EvalError) -> [String] {
        var out = [String]()
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw .unreadable(path: path, reason: "no such file or directory")
            }
            guard isDirectory.boolValue else {
                out.append(path)
                continue
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            let found = names.filter { $0.hasSuffix(".jsonl") }.sorted()
            guard !found.isEmpty else { throw .unreadable(path: path, reason: "a directory with no .jsonl task files") }
            out += found.map { (path as NSString).appendingPathComponent($0) }
        }
        return out
    }

    /// Parses a task file's bytes (see `read(path:)`).
    public static func parse(_ data: Data, path: String) throws(EvalError) -> EvalTask {
        let decoder = JSONDecoder()
        var header: Header?
        var examples = [Example]()
        try forEachJSONLine(in: data) { (line, lineNumber) throws(EvalError) in
            do {
                if header == nil {
                    header = try decoder.decode(Header.self, from: line)
                } else {
                    guard examples.count < maxExamples else {
                        throw EvalError.badLine(path: path, line: lineNumber, reason: "more than \(maxExamples) examples")
                    }
                    examples.append(try decoder.decode(Example.self, from: line))
                }
            } catch let error as EvalError {
                throw error
            } catch {
                let what = header == nil ? "the header ({\"task\": …, \"kind\": …})" : "an example"
                throw .badLine(path: path, line: lineNumber, reason: "not \(what): \(Self.describe(error))")
            }
        }
        guard let header else { throw .unreadable(path: path, reason: "empty: no header line") }
        do {
            return try EvalTask(header: header, examples: examples)
        } catch {
            throw .inFile(path: path, error.description)
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "no \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\": \(context.debugDescription.lowercased())"
        case DecodingError.dataCorrupted(let context):
            context.codingPath.isEmpty ? "invalid JSON"
                : "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\": \(context.debugDescription.lowercased())"
        default: "invalid JSON"
        }
    }
}

/// What went wrong reading or running an evaluation, in one line naming the file or task.
public enum EvalError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case badLine(path: String, line: Int, reason: String)
    case invalidTask(task: String, reason: String)
    case invalidExample(task: String, index: Int, reason: String)
    case inFile(path: String, String)
    /// The model cannot run this task (no chat format, a letter that is not one token, …).
    case unsupported(task: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read the task: \(reason)"
        case let .badLine(path, line, reason): "\(path):\(line): \(reason)"
        case let .invalidTask(task, reason): "task \(task): \(reason)"
        case let .invalidExample(task, index, reason): "task \(task), example \(index): \(reason)"
        case let .inFile(path, message): "\(path): \(message)"
        case let .unsupported(task, reason): "task \(task): \(reason)"
        }
    }
}
