// The `llm` command: a thin tree of subcommands over the LLM library.
import ArgumentParser

@main
struct LLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm",
        abstract: "Train, verify and run GPT-2 models, written from scratch in Swift.",
        subcommands: [TrainCommand.self, SftCommand.self, ChatDataCommand.self, SampleCommand.self, ChatCommand.self, ServeCommand.self, PrepareCommand.self, TokenizerCommand.self, VerifyCommand.self, ConvertCommand.self, LogitsCommand.self, BenchCommand.self, PlotCommand.self])
}
