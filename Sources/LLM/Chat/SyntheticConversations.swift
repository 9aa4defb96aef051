// The project's own small chat dataset, generated: greetings, who-are-you answers, arithmetic, facts about the
// model itself, and arithmetic problems answered with the calculator tool (a python call and its output as
// parts of the assistant's message, nanochat's shape), so the SFT walkthrough needs no one else's data.
// Seeded, so a seed gives the same file.
import Foundation

public enum SyntheticConversations {
    /// The most conversations `generate` makes at once: ten million, about 2 GB of JSONL and several times that
    /// in memory, since they are all held before writing.
    public static let maxCount = 10_000_000

    /// Throws unless `count` is in 1...`maxCount` (`llm chat-data --count`).
    public static func checkCount(_ count: Int) throws(DataError) {
        guard (1...maxCount).contains(count) else {
            throw .invalidArgument("--count \(count) must be between 1 and \(maxCount) (all conversations are held in memory before writing)")
        }
    }

    /// `count` conversations of one to three turns, with an occasional system message; about one turn in five
    /// is an `ArithmeticProblems` problem solved with a calculator call. `count` must be in 0...`maxCount` (a
    /// programming error otherwise; `checkCount` checks a user's value first).
    public static func generate(count: Int, seed: UInt64) -> [Conversation] {
        precondition((0...maxCount).contains(count), "count \(count) must be between 0 and \(maxCount)")
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ options: [T]) -> T { options[Int(rng.next() % UInt64(options.count))] }
        func turn() -> (String, String) {
            switch rng.next() % 4 {
            case 0: return (pick(greetings), pick(greetingReplies))
            case 1: return (pick(identityQuestions), pick(identityAnswers))
            case 2:
                let a = Int(rng.next() % 100), b = Int(rng.next() % 100)
                switch rng.next() % 3 {
                case 0: return ("What is \(a) plus \(b)?", "\(a) plus \(b) is \(a + b).")
                case 1: return ("What is \(a) minus \(b)?", "\(a) minus \(b) is \(a - b).")
                default:
                    let (x, y) = (a % 13, b % 13)
                    return ("What is \(x) times \(y)?", "\(x) times \(y) is \(x * y).")
                }
            default: return pick(facts)
            }
        }
        return (0..<count).map { _ in
            var messages = [Conversation.Message]()
            if rng.next() % 8 == 0 { messages.append(.init(role: .system, content: pick(systemPrompts))) }
            for _ in 0..<1 + Int(rng.next() % 3) {
                if rng.next() % 5 == 0 {
                    let (question, answer) = toolTurn(&rng)
                    messages += [.init(role: .user, content: question), answer]
                } else {
                    let (question, answer) = turn()
                    messages += [.init(role: .user, content: question), .init(role: .assistant, content: answer)]
                }
            }
            return Conversation(messages: messages)
        }
    }

    /// An arithmetic problem and an answer that calls the calculator: a lead-in, the call, the calculator's own
    /// output (what the engine will feed back at inference), then the answer.
    static func toolTurn(_ rng: inout SplitMix64) -> (String, Conversation.Message) {
        let problem = ArithmeticProblems.problem(&rng)
        let lead = toolLeads[Int(rng.next() % UInt64(toolLeads.count))]
        let answer = Conversation.Message(role: .assistant, parts: [
            .text(lead), .python(problem.expression), .pythonOutput(problem.answer.description),
            .text(" The answer is \(problem.answerText)."),
        ])
        return (problem.question, answer)
    }

    static let toolLeads = ["Let me compute: ", "I'll use the calculator: ", "Let me work it out: ", "Calculating: "]
    static let greetings = ["Hi!", "Hello.", "Hey there", "Good morning!", "Good evening.", "hi", "Hello, how are you?"]
    static let greetingReplies = [
        "Hello! How can I help you today?", "Hi! What would you like to talk about?",
        "Hey! I'm a small language model, happy to chat.", "Good to see you. Ask me anything.",
    ]
    static let identityQuestions = [
        "Who are you?", "What are you?", "What is your name?", "Who made you?", "Are you a person?",
    ]
    static let identityAnswers = [
        "I'm a small GPT language model, trained from scratch with llm, a training stack written in Swift.",
        "I'm a language model: a small GPT trained with llm, written in Swift, no ML framework involved.",
        "I'm not a person. I'm a small GPT that predicts the next token, trained with llm in Swift.",
    ]
    static let facts: [(String, String)] = [
        ("What language were you written in?", "The stack that trained me is written in Swift."),
        ("How do you work?", "I read the conversation as tokens and predict the next token, one at a time."),
        ("Do you use PyTorch?", "No. Every layer of my forward and backward pass is hand-written Swift, checked against PyTorch."),
        ("What is a token?", "A token is a piece of text, often part of a word, that I read and write."),
        ("Can you make mistakes?", "Yes. I'm a very small model, so I make many. Please check what I say."),
        ("How were you trained?", "First on plain text to learn language, then on conversations like this one."),
    ]
    static let systemPrompts = ["You are a helpful assistant.", "Answer briefly.", "Be friendly and concise."]
}

extension Conversation {
    /// Writes conversations as JSONL (one `{"messages": [...]}` per line), atomically.
    public static func writeJSONL(_ conversations: [Conversation], to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = [UInt8]()
        for c in conversations {
            bytes += try encoder.encode(c)
            bytes.append(0x0A)
        }
        // The folder is made if missing (`--out runs/conversations.jsonl` before any run exists).
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        try writeFileAtomically(path) { try $0.write(bytes) }
    }
}
