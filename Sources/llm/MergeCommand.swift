// `llm merge`: folds a LoRA adapter into its model's weights (W += alpha/r · B·A, as PEFT's merge_and_unload) and
// writes the result as a Hugging Face folder, a GGUF file or an llm.c checkpoint.
import ArgumentParser
import Foundation
import LLM

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a LoRA adapter into its model and write the merged model.",
        discussion: """
            --model is the model the adapter was trained on (a GGUF file, whose quantized tensors are dequantized; a \
            Hugging Face folder; an llm.c .bin checkpoint), and --adapter the adapter: a PEFT folder \
            (adapter_config.json + adapter_model.safetensors) from `llm sft --lora-rank` or PEFT. A LoRA run \
            directory from `llm sft --lora-rank` brings both: give it as --model alone. --out ending in .gguf writes \
            a GGUF file with the model's tokenizer and chat template (matrices in --type), .bin an llm.c checkpoint \
            (GPT-2), anything else a Hugging Face folder (config.json, model.safetensors, and the tokenizer and \
            chat template files of a Hugging Face base). The merged model runs without the adapter and at the base's \
            speed; its outputs equal the adapted model's up to float rounding.
            """)

    @Option(help: "The base model, or a LoRA run directory (its base and newest adapter).") var model: String
    @Option(help: "The adapter folder (PEFT's format); not needed with a LoRA run directory.") var adapter: String?
    @Option(help: "Destination: a path ending in .gguf or .bin, or a folder for Hugging Face format.") var out: String
    @Option(help: "GGUF only: the matrices' type: f32, f16, bf16 or q8_0.") var type = "f16"

    func validate() throws {
        if GGUFModel.exportTypes[type.lowercased()] == nil {
            throw ValidationError("--type \(type) is not one of f32, f16, bf16, q8_0")
        }
    }

    func run() throws {
        try reportingErrors {
            // A GGUF file needs the tokenizer and template too; the other formats the weights alone.
            let loaded = out.hasSuffix(".gguf")
                ? try LoadedModel.load(model, chatFormat: "auto", quantized: false, adapter: adapter) : nil
            let weights = try loaded?.weights ?? LoadedModel.weights(model, adapter: adapter)
            guard let lora = weights.adapter else {
                throw ValidationError("\(model) has no adapter to merge: give --adapter DIR, or a LoRA run directory")
            }
            // Into the loaded weights themselves (they were read for this alone): no second copy of the model.
            let merged = try lora.mergedWeights(weights)
            if let loaded {
                let template = (loaded.chatFormat as? TemplateChatFormat)?.template.source
                try GGUFModel.write(merged, tokenizer: loaded.tokenizer, chatTemplate: template,
                                    name: loaded.name ?? URL(fileURLWithPath: out).deletingPathExtension().lastPathComponent,
                                    type: GGUFModel.exportTypes[type.lowercased()]!, to: out)
            } else {
                try saveWeights(merged, to: out)
                if !out.hasSuffix(".bin") { try copyTokenizerFiles(from: baseFolder(), to: out) }
            }
            print("merged \(lora.parts.count) adapted layers (rank \(lora.config.rank), alpha \(lora.config.alpha)) into \(merged.config); wrote \(out)")
        }
    }

    /// The base model's Hugging Face folder, if it is one (directly, or as a LoRA run's base).
    private func baseFolder() throws -> String? {
        let base = RunDirectory.isRun(model) ? try RunDirectory(model).readConfig().lora?.base ?? model : model
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: base, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        return base
    }

    /// The files transformers needs beside the weights to tokenize and chat, copied from a Hugging Face base.
    private func copyTokenizerFiles(from folder: String?, to out: String) throws {
        guard let folder else { return }
        let fm = FileManager.default
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                     "chat_template.jinja"] where fm.fileExists(atPath: folder + "/" + name) {
            try? fm.removeItem(atPath: out + "/" + name)
            try fm.copyItem(atPath: folder + "/" + name, toPath: out + "/" + name)
        }
    }
}
