// `llm chat-data`: write the project's synthetic conversations (JSONL) for trying SFT end to end.
import ArgumentParser
import LLM

struct ChatDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-data",
        abstract: "Write synthetic conversations (greetings, identity, arithmetic, facts about the model, calculator use) as JSONL.",
        discussion: "Each line is {\"messages\": [{\"role\": \"user\"|\"assistant\"|\"system\", \"content\": \"…\"}, …]}, the shape public chat datasets can be converted to. An assistant's answer that uses the calculator has a list of parts as its content, as nanochat writes tool use: [{\"type\": \"text\", \"text\": \"Let me compute: \"}, {\"type\": \"python\", \"text\": \"123*45\"}, {\"type\": \"python_output\", \"text\": \"5535\"}, {\"type\": \"text\", \"text\": \" The answer is 5535.\"}].")

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
