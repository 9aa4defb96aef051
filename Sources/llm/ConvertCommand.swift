// `llm convert`: between llm.c .bin checkpoints (GPT-2), Hugging Face folders (every architecture) and GGUF files
// (llama.cpp's format, for llama, qwen2, gemma3 and gpt2).
import ArgumentParser
import Foundation
import LLM

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a model between llm.c .bin checkpoints, Hugging Face folders and GGUF files.",
        discussion: """
            --from is any model `llm` reads: a GGUF file (quantized tensors are dequantized), a Hugging Face \
            folder, an llm.c .bin checkpoint or a run directory (its newest weights and its tokenizer). The \
            output format follows --to: a path ending in .gguf is a GGUF file with the model's tokenizer and chat \
            template, its matrices in --type (vectors stay F32), which llama.cpp and Ollama run; a path ending in \
            .bin is an llm.c checkpoint (GPT-2 only, version 3 fp32); anything else is a Hugging Face folder with \
            config.json and model.safetensors (F32). Output files are written atomically.
            """)

    @Option(help: "Source: a GGUF file, a Hugging Face folder, an llm.c .bin checkpoint or a run directory.")
    var from: String
    @Option(help: "Destination: a path ending in .gguf or .bin, or a folder for Hugging Face format.")
    var to: String
    @Option(help: "GGUF only: the matrices' type: f32, f16, bf16 or q8_0.") var type = "f16"
    @Option(help: "GGUF only: the model's name (general.name; default: --to's file name).") var name: String?
    @Option(help: "The tokenizer to write into a GGUF file (default: the model's own; gpt2 for a checkpoint).")
    var tokenizer: String?

    func validate() throws {
        if GGUFModel.exportTypes[type.lowercased()] == nil {
            throw ValidationError("--type \(type) is not one of f32, f16, bf16, q8_0")
        }
    }

    func run() throws {
        try reportingErrors {
            if to.hasSuffix(".gguf") {
                let loaded = try LoadedModel.load(from, tokenizer: tokenizer, chatFormat: "auto")
                let template = (loaded.chatFormat as? TemplateChatFormat)?.template.source
                let modelName = name ?? URL(fileURLWithPath: to).deletingPathExtension().lastPathComponent
                try GGUFModel.write(loaded.weights, tokenizer: loaded.tokenizer, chatTemplate: template, name: modelName,
                                    type: GGUFModel.exportTypes[type.lowercased()]!, to: to)
                print("wrote \(to) (GGUF, \(type.uppercased()) matrices, \(loaded.weights.config))")
                return
            }
            let weights = RunDirectory.isRun(from) ? try LoadedModel.load(from).weights : try loadWeights(from)
            try saveWeights(weights, to: to)
            print("wrote \(to) (\(to.hasSuffix(".bin") ? "llm.c checkpoint" : "Hugging Face folder"), \(weights.config))")
        }
    }
}
