// The `llm` command: a thin tree of subcommands over the LLM library.
import ArgumentParser

@main
struct LLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm",
        abstract: "Train, fine-tune, run and serve language models (GPT-2, Llama, Qwen2, Gemma 3, nanochat), written from scratch in Swift.",
        subcommands: [TrainCommand.self, SftCommand.self, ChatDataCommand.self, SampleCommand.self, ChatCommand.self, ServeCommand.self, PullCommand.self, InspectCommand.self, PrepareCommand.self, TokenizerCommand.self, VerifyCommand.self, ConvertCommand.self, MergeCommand.self, LogitsCommand.self, PerplexityCommand.self, BenchCommand.self, PlotCommand.self])
}
