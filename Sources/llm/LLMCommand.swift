// The `llm` command: a thin tree of subcommands over the LLM library.
import ArgumentParser
import Foundation

@main
struct LLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm",
        abstract: "Train, fine-tune, run and serve language models (GPT-2, Llama, Qwen2, Gemma 3, nanochat), written from scratch in Swift.",
        subcommands: [TrainCommand.self, SftCommand.self, ChatDataCommand.self, SampleCommand.self, ChatCommand.self, ServeCommand.self, PullCommand.self, InspectCommand.self, PrepareCommand.self, TokenizerCommand.self, VerifyCommand.self, ConvertCommand.self, MergeCommand.self, LogitsCommand.self, PerplexityCommand.self, EvalCommand.self, RLCommand.self, ReportCommand.self, BenchCommand.self, PlotCommand.self])

    /// ArgumentParser's, after one check of our own: a word where a command's name goes that names none is an
    /// error (`llm eval --help` would otherwise print the root help and exit 0).
    static func main() {
        if let problem = unknownCommand(in: Array(CommandLine.arguments.dropFirst())) {
            FileHandle.standardError.write(Data("llm: error: \(problem)\n".utf8))
            Foundation.exit(1)
        }
        main(nil)
    }

    /// The message for the first word, down the command tree, that stands where a subcommand's name goes (no
    /// leading `-`, under a command that has subcommands) and names none; nil when there is none (`help` is
    /// ArgumentParser's own).
    static func unknownCommand(in arguments: [String]) -> String? {
        var command: ParsableCommand.Type = LLMCommand.self
        var path = ["llm"]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty, command.configuration.defaultSubcommand == nil, !word.hasPrefix("-") else { return nil }
            if path.count == 1 && word == "help" { return nil }
            guard let next = subcommands.first(where: { $0._commandName == word || $0.configuration.aliases.contains(word) }) else {
                let names = subcommands.map { $0._commandName }.joined(separator: ", ")
                return path.count == 1 ? "unknown command '\(word)' (commands: \(names))"
                    : "unknown command '\(path.dropFirst().joined(separator: " ")) \(word)' (\(path.joined(separator: " ")) has: \(names))"
            }
            command = next
            path.append(word)
        }
        return nil
    }
}
