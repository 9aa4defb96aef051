// What the chat front ends (`llm chat`, `llm serve`), `llm sample` and fine-tuning load: weights, the tokenizer
// that goes with them and the chat format, from a GGUF file, a Hugging Face folder, an llm.c checkpoint or a run
// directory.
//
//   GGUF file            weights (dequantized, or with `quantized` the linear layers kept in their blocks),
//                        tokenizer and chat template from the file's metadata
//   Hugging Face folder  config.json + safetensors; tokenizer.json; the template from tokenizer_config.json or
//                        chat_template.jinja; end tokens from generation_config.json
//   run directory        its newest weights and the tokenizer its config names; its chat_template.jinja (an SFT
//                        run of a model with its own template), else nanochat's chat format
//   llm.c .bin           GPT-2's tokenizer
import Foundation

/// A model ready for inference: its weights, its tokenizer and how it chats.
public struct LoadedModel: Sendable {
    public let weights: ModelWeights
    public let tokenizer: Tokenizer
    /// The weights file or folder actually read (a run directory's newest weights, say).
    public let weightsPath: String
    /// How conversations become tokens, or nil when the model cannot chat (a base model without a template,
    /// or one trained here whose vocabulary has no rows for nanochat's chat tokens).
    public let chatFormat: (any ChatFormat)?
    /// The tokens that end generated text: the model's end-of-sequence ids (and the document separator).
    public let endTokens: [Int32]
    /// The model's own name, where the file says (GGUF's general.name).
    public let name: String?

    public init(weights: ModelWeights, tokenizer: Tokenizer, weightsPath: String, chatFormat: (any ChatFormat)? = nil,
                endTokens: [Int32]? = nil, name: String? = nil) {
        self.weights = weights
        self.tokenizer = tokenizer
        self.weightsPath = weightsPath
        self.chatFormat = chatFormat
        self.endTokens = endTokens ?? ([tokenizer.documentSeparator].compactMap { $0 } + tokenizer.eos)
        self.name = name
    }

    /// Loads `path` (see the top of this file). `tokenizer` overrides the tokenizer: "gpt2" (bundled), a
    /// tokenizer file, a tokenizer.json, a GGUF file or a Hugging Face folder. `chatFormat` picks the chat format:
    /// nil or "auto" (the model's own template, or nanochat's for a model trained here), or a built-in name
    /// (`ChatTemplate.builtinNames`, or "nanochat"). `quantized`: a GGUF file's quantized linear layers and
    /// embedding stay in their blocks (`ModelWeights.quantized`), for generation only, where the CPU has the
    /// AVX2 or AVX-512 kernels (`KernelVariant`); elsewhere they are dequantized, which is faster there. Throws if the tokenizer has more tokens than the model's
    /// vocabulary, or the model's template cannot be read (the message names the --chat-format fallback).
    /// `adapter`: a LoRA adapter folder in PEFT's format to run on top of the model (a LoRA run directory brings
    /// its own: its base with its newest adapter).
    public static func load(_ path: String, tokenizer tokenizerName: String? = nil, chatFormat: String? = nil,
                            quantized: Bool = false, adapter: String? = nil) throws -> LoadedModel {
        let run = RunDirectory.isRun(path) ? RunDirectory(path) : nil
        let weightsPath = try run?.latestWeightsPath() ?? path
        var tokenizer: Tokenizer?
        if let tokenizerName { tokenizer = try loadTokenizer(tokenizerName) }

        var weights: ModelWeights
        var templateSource: String?, eos: [Int32] = [], name: String?
        if run == nil && isGGUF(weightsPath) {
            let file = try GGUFFile.open(weightsPath)
            // The generic (non-x86) quantized dot products are plain Swift loops, several times slower than
            // float32 matmuls: without the AVX2 or AVX-512 kernels, generation is faster dequantized.
            weights = try GGUFModel.read(file, keepQuantized: quantized && KernelVariant.current != .generic)
            if tokenizer == nil { tokenizer = try Tokenizer(gguf: file.metadata, path: weightsPath) }
            templateSource = file.metadata["tokenizer.chat_template"]?.string
            name = file.metadata["general.name"]?.string
        } else {
            if let lora = try run?.readConfig().lora {
                weights = try Trainer.loraWeights(lora, adapter: weightsPath,
                                                  quantized: quantized && KernelVariant.current != .generic)
            } else {
                weights = try loadWeights(weightsPath)
            }
            if let run {
                let training = try run.readConfig().training
                if tokenizer == nil { tokenizer = try Trainer.loadTokenizer(training.tokenizer, run: run) }
                if let file = training.chatTemplate {
                    templateSource = String(decoding: try readWholeFile(run.resolve(file.path)), as: UTF8.self)
                    eos = file.eos
                }
            }
            if isDirectory(weightsPath) && run == nil {
                if tokenizer == nil && FileManager.default.fileExists(atPath: weightsPath + "/tokenizer.json") {
                    tokenizer = try Tokenizer.loadHuggingFace(folder: weightsPath)
                }
                templateSource = try HuggingFaceFolder.chatTemplate(folder: weightsPath)
                eos = try HuggingFaceFolder.generationEOS(folder: weightsPath)
            }
        }
        if let adapter {
            guard weights.adapter == nil else {
                throw TrainingError.invalidConfig("\(path) is a LoRA run with its own adapter; give --adapter with a model, not a LoRA run")
            }
            weights = try weights.withAdapter(try LoRAAdapter.read(folder: adapter, model: weights.config))
        }
        let tok = try tokenizer ?? Tokenizer.gpt2()
        guard tok.vocabSize <= weights.config.vocabSize else {
            throw TrainingError.shapeMismatch("the tokenizer has \(tok.vocabSize) tokens but the model in \(weightsPath) only \(weights.config.vocabSize); give the model's own tokenizer")
        }
        let format = try chooseChatFormat(chatFormat, templateSource: templateSource, tokenizer: tok, eos: eos,
                                          vocabSize: weights.config.vocabSize, path: weightsPath)
        let ends = eos + tok.eos + [tok.documentSeparator].compactMap { $0 }
        var seen = Set<Int32>()
        return LoadedModel(weights: weights, tokenizer: tok, weightsPath: weightsPath, chatFormat: format,
                           endTokens: ends.filter { seen.insert($0).inserted }, name: name)
    }

    /// A model's float weights alone, without its tokenizer (`llm logits`, `llm merge`): `path` as `loadWeights`
    /// reads it, a LoRA run as its base with its newest adapter, and `adapter` (a PEFT folder) attached when given.
    public static func weights(_ path: String, adapter: String? = nil) throws -> ModelWeights {
        let run = RunDirectory.isRun(path) ? RunDirectory(path) : nil
        let weightsPath = try run?.latestWeightsPath() ?? path
        var weights = try run?.readConfig().lora.map { try Trainer.loraWeights($0, adapter: weightsPath, quantized: false) }
            ?? loadWeights(weightsPath)
        if let adapter {
            guard weights.adapter == nil else {
                throw TrainingError.invalidConfig("\(path) is a LoRA run with its own adapter; give --adapter with a model, not a LoRA run")
            }
            weights = try weights.withAdapter(try LoRAAdapter.read(folder: adapter, model: weights.config))
        }
        return weights
    }

    /// A tokenizer by name: "gpt2", a GGUF file, a Hugging Face folder or tokenizer.json, or the project's file.
    /// llm.c's decode-only gpt2_tokenizer.bin is refused: a model's prompts must be encoded.
    public static func loadTokenizer(_ name: String) throws -> Tokenizer {
        if name == "gpt2" { return try Tokenizer.gpt2() }
        if isDirectory(name) { return try Tokenizer.loadHuggingFace(folder: name) }
        if name.hasSuffix(".json") {
            return try Tokenizer.loadHuggingFace(folder: (name as NSString).deletingLastPathComponent)
        }
        if isGGUF(name) {
            let file = try GGUFFile.open(name)
            return try Tokenizer(gguf: file.metadata, path: name)
        }
        if (try? TokenizerSource.of(name)) == .llmcDecoder { throw TokenizerError.decodeOnly(path: name) }
        return try Tokenizer.load(name)
    }

    /// The chat format `choice` names (see `load`).
    static func chooseChatFormat(_ choice: String?, templateSource: String?, tokenizer: Tokenizer, eos: [Int32],
                                 vocabSize: Int, path: String) throws -> (any ChatFormat)? {
        switch choice ?? "auto" {
        case "auto":
            if let templateSource {
                do {
                    return TemplateChatFormat(template: try ChatTemplate(source: templateSource), tokenizer: tokenizer,
                                              origin: "the model's template", eos: eos)
                } catch {
                    throw ChatTemplateLoadError(path: path, reason: "\(error)")
                }
            }
            let renderer = ChatRenderer(tokenizer: tokenizer)
            return renderer.requiredVocabSize <= vocabSize ? renderer : nil
        case "nanochat":
            return ChatRenderer(tokenizer: tokenizer)
        case let name:
            guard let template = ChatTemplate.builtin(name) else {
                throw ChatTemplateLoadError(path: path, reason: "no built-in chat format \(name) (choose auto, nanochat, \(ChatTemplate.builtinNames.joined(separator: ", ")))")
            }
            return TemplateChatFormat(template: template, tokenizer: tokenizer, origin: "built-in \(name)", eos: eos)
        }
    }
}

/// The model's chat template could not be used.
public struct ChatTemplateLoadError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String {
        "\(path): the model's chat template cannot be used: \(reason); pass --chat-format with one of \(ChatTemplate.builtinNames.joined(separator: ", "))"
    }
}

func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
}

extension HuggingFaceFolder {
    /// The chat template of a Hugging Face folder: chat_template.jinja, else tokenizer_config.json's
    /// `chat_template` (a string, or a list of named templates, of which "default"); nil if there is none.
    public static func chatTemplate(folder: String) throws -> String? {
        let jinja = folder + "/chat_template.jinja"
        if FileManager.default.fileExists(atPath: jinja) {
            return String(decoding: try readWholeFile(jinja), as: UTF8.self)
        }
        let configPath = folder + "/tokenizer_config.json"
        guard FileManager.default.fileExists(atPath: configPath) else { return nil }
        guard let json = try? JSONSerialization.jsonObject(with: Data(try readWholeFile(configPath))) as? [String: Any] else {
            throw FormatError.malformed(path: configPath, reason: "not a JSON object")
        }
        switch json["chat_template"] {
        case let s as String: return s
        case let list as [[String: Any]]:
            return (list.first { $0["name"] as? String == "default" } ?? list.first)?["template"] as? String
        default: return nil
        }
    }

    /// generation_config.json's `eos_token_id` (one id or a list), or none.
    public static func generationEOS(folder: String) throws -> [Int32] {
        let path = folder + "/generation_config.json"
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let json = try? JSONSerialization.jsonObject(with: Data(try readWholeFile(path))) as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "not a JSON object")
        }
        let value = json["eos_token_id"]
        let raw: [Any] = value is NSNull ? [] : (value as? [Any]) ?? (value.map { [$0] } ?? [])
        return try raw.map { v in
            guard let n = v as? NSNumber, let id = Int32(exactly: n.doubleValue), id >= 0 else {
                throw FormatError.malformed(path: path, reason: "eos_token_id \(v) is not a token id")
            }
            return id
        }
    }
}
