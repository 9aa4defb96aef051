// `llm plot`: redraws a run's loss curve (RUN_DIR/loss.svg) from its log, for a finished, killed or running run.
import ArgumentParser
import LLM

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw RUN_DIR/loss.svg (train and validation loss against step) from RUN_DIR/log.jsonl.",
        discussion: "Training redraws the plot after every evaluation; this does it on demand. Prints the SVG's path.")

    @Argument(help: "The run folder, holding log.jsonl.")
    var runDirectory: String
    @Flag(help: "Use a logarithmic loss axis.")
    var log = false

    func run() throws {
        try reportingErrors {
            try LossPlot.write(runDirectory: runDirectory, logScale: log)
            print(LossPlot.path(runDirectory: runDirectory))
        }
    }
}
