// `llm chat-data`: write the project's synthetic conversations (JSONL) for trying SFT end to end.
import ArgumentParser
import LLM

struct ChatDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-data",
        abstract: "Write synthetic conversations (greetings, identity, arithmetic, facts about the model) as JSONL.",
        discussion: "Each line is {\"messages\": [{\"role\": \"user\"|\"assistant\"|\"system\", \"content\": \"…\"}, …]}, the shape public chat datasets can be converted to.")

    @Option(help: "Where to write the JSONL file.") var out: String
    @Option(help: "Number of conversations.") var count = 3000
    @Option(help: "Seed: the same seed writes the same file.") var seed: UInt64 = 1

    func validate() throws {
        try asValidation { try SyntheticConversations.checkCount(count) }
    }

    func run() throws {
        try reportingErrors {
            try Conversation.writeJSONL(SyntheticConversations.generate(count: count, seed: seed), to: out)
            print("wrote \(count) conversations to \(out)")
        }
    }
}
