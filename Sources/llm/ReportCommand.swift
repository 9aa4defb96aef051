// `llm report`: a pipeline's report card (Markdown + SVG) from its run directories and evaluation results.
import ArgumentParser
import Foundation
import LLM

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a report card (report.md and SVG plots) for training runs and evaluations.",
        discussion: """
            For each run directory: its stage (pretraining, SFT, LoRA), model, tokenizer, data, final losses, bits \
            per byte, tokens/s, wall time, last sample and loss curve. For each `llm eval --json` file: its table, \
            CORE and ChatCORE, and a bar chart of accuracy per task. Then the machine it was made on.
            """)

    @Argument(help: "Run directories (runs/NAME, runs/latest).") var runs: [String] = []
    @Option(parsing: .upToNextOption, help: "`llm eval --json` result files.") var eval: [String] = []
    @Option(help: "The folder to write report.md and the plots into.") var out = "report"

    func validate() throws {
        guard !runs.isEmpty || !eval.isEmpty else { throw ValidationError("give run directories, --eval FILE…, or both") }
    }

    func run() throws {
        try reportingErrors {
            let card = try ReportCard.read(runs: runs, evaluations: eval)
            try card.write(to: out)
            print((out as NSString).appendingPathComponent("report.md"))
        }
    }
}
