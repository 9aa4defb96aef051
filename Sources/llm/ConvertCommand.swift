// `llm convert`: between llm.c .bin checkpoints (GPT-2) and Hugging Face folders (every architecture).
import ArgumentParser
import LLM

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert weights between an llm.c .bin checkpoint (GPT-2 only) and a Hugging Face folder.",
        discussion: """
            The format follows the path: a file ending in .bin is an llm.c checkpoint (version 3 fp32 or \
            5 bf16 on input, version 3 on output); anything else is a Hugging Face folder with config.json and \
            model.safetensors (F32, F16 or BF16 on input, F32 on output). Output files are written atomically.
            """)

    @Option(help: "Source: an llm.c .bin checkpoint or a Hugging Face folder.")
    var from: String
    @Option(help: "Destination: a path ending in .bin, or a folder for Hugging Face format.")
    var to: String

    func run() throws {
        try reportingErrors {
            let weights = try loadWeights(from)
            try saveWeights(weights, to: to)
            print("wrote \(to) (\(to.hasSuffix(".bin") ? "llm.c checkpoint" : "Hugging Face folder"), \(weights.config))")
        }
    }
}
