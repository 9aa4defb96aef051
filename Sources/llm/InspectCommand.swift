// `llm inspect`: what a model file holds (ModelInspection), without loading its weights.
import ArgumentParser
import LLM

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: architecture, shapes, parameters, tensor types, tokenizer and chat template.",
        discussion: "MODEL is a GGUF file, a Hugging Face folder, an llm.c .bin checkpoint or a run directory. The weights are not loaded.")

    @Argument(help: "The model.") var model: String

    func run() throws {
        try reportingErrors { print(try ModelInspection.report(model)) }
    }
}
