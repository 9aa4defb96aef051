// `llm sample`: generate from a model with the KV-cache engine, streaming tokens to stdout as they are chosen.
import ArgumentParser
import Foundation
import LLM

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Generate text from a model, streaming it to stdout.",
        discussion: """
            Runs the prompt through the model in one batched pass, then one token per step against a key/value \
            cache. Prints only the new tokens: text, decoded as it streams without splitting a UTF-8 character, \
            or with --format ids a JSON array of ids (for `llm tokenizer decode`). Without a prompt, starts from \
            the tokenizer's document separator (<|endoftext|>). Stops after --max-new-tokens, when prompt and new \
            tokens fill the model's context, or at the document separator (--prompt-ids with --format ids uses no \
            tokenizer, so no separator either). A summary line goes to stderr.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, ids }

    @Option(help: "A GGUF file, a Hugging Face folder, an llm.c .bin checkpoint, or a run directory from `llm train` (its newest weights and its tokenizer).")
    var model: String?
    @Option(help: "Random weights of a preset shape (d6, d12, ...) instead of --model, for timing.") var randomPreset: String?
    @Option(help: "Prompt text.") var prompt: String?
    @Option(help: "Prompt token ids, comma-separated.") var promptIds: String?
    @Option(help: "Most tokens to generate.") var maxNewTokens = 256
    @Option(help: "Sampling temperature: 0 always takes the most likely token, 1 samples the model's distribution as it is; the default is what training's samples use.")
    var temperature: Float = 0.8
    @Option(help: "Sample among the K most likely tokens only (0 for all); the default is what training's samples use.")
    var topK = 40
    @Option(help: "Then keep the fewest most likely tokens whose probability reaches P.") var topP: Float = 1
    @Option(help: "Sampler seed: the same seed gives the same tokens.") var seed: UInt64 = 1337
    @Option(help: "Output: text or ids.") var format: Format = .text
    @Flag(help: "Keep only the last tokens of a prompt too long to leave room for --max-new-tokens.") var crop = false
    @Flag(help: "Recompute the whole sequence for every new token instead of using the KV cache (to compare speed).")
    var noCache = false
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Expand a quantized GGUF model to float32 instead of computing from its blocks (4 to 8 times the memory).")
    var dequantize = false
    @Option(help: "A LoRA adapter to run on top of the model: a PEFT folder (adapter_config.json + adapter_model.safetensors), from `llm sft --lora-rank` or PEFT.")
    var adapter: String?
    @OptionGroup var tokenizerOptions: ModelTokenizerOptions

    @OptionGroup var device: DeviceOption

    func validate() throws {
        if (model == nil) == (randomPreset == nil) { throw ValidationError("give exactly one of --model and --random-preset") }
        if adapter != nil && model == nil { throw ValidationError("--adapter needs --model, the model it adapts") }
        if prompt != nil && promptIds != nil { throw ValidationError("give at most one of --prompt and --prompt-ids") }
        if let promptIds, parseIDs(promptIds) == nil {
            throw ValidationError("--prompt-ids must be comma-separated token ids, such as 464,3290")
        }
        if !parameters.isValid {
            throw ValidationError("--max-new-tokens must be ≥ 0, --temperature ≥ 0, --top-k ≥ 0 and --top-p in (0, 1]")
        }
        try checkThreads(threads)
    }

    private var parameters: GenerateParameters {
        GenerateParameters(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK == 0 ? nil : topK, topP: topP, seed: seed,
                           useKVCache: !noCache)
    }

    func run() throws {
        try reportingErrors {
            try device.check()
            // A real model (a GGUF file, a Hugging Face folder with its tokenizer.json) brings its tokenizer and end
            // tokens; a run directory stands for its newest weights and, unless --tokenizer says otherwise, its
            // tokenizer.
            let run = model.flatMap { RunDirectory.isRun($0) ? RunDirectory($0) : nil }
            let real = model.map { isGGUF($0) || FileManager.default.fileExists(atPath: $0 + "/tokenizer.json") } ?? false
            let loraRun = try run.map { try $0.readConfig().lora != nil } ?? false
            let loaded = real || loraRun || adapter != nil
                ? try LoadedModel.load(model!, tokenizer: tokenizerOptions.tokenizer, quantized: !dequantize, adapter: adapter)
                : nil
            let weights = try loaded?.weights ?? run.map { try loadWeights(try $0.latestWeightsPath()) } ?? model.map(loadWeights)
                ?? .randomGPT2(config: try ModelPreset.config(.gpt2, randomPreset!), seed: 0)
            let config = weights.config
            // Text in, text out or the default start token need the tokenizer; ids in and out do not.
            let needsTokenizer = promptIds == nil || format == .text
            let tokenizer = !needsTokenizer ? nil
                : try loaded?.tokenizer ?? run.flatMap { run in tokenizerOptions.tokenizer == nil
                    ? try Trainer.loadTokenizer(try run.readConfig().training.tokenizer, run: run) : nil }
                ?? tokenizerOptions.load()
            if let tokenizer, tokenizer.vocabSize > config.vocabSize {
                throw usageError("the tokenizer has \(tokenizer.vocabSize) tokens but the model only \(config.vocabSize); give the model's own with --tokenizer")
            }
            // A prompt starts with BOS where the tokenizer says so (Gemma's and Llama's), as Hugging Face's does.
            let bos = tokenizer.flatMap { $0.addBOS ? $0.bos : nil }
            var ids = promptIds.flatMap(parseIDs) ?? tokenizer.map { t in [bos].compactMap { $0 } + t.encode(prompt ?? "") } ?? []
            if ids.isEmpty {
                guard let start = tokenizer?.documentSeparator else {
                    throw usageError("the tokenizer has no document separator to start from; give a prompt")
                }
                ids = [start]
            }
            if crop {
                ids = croppedPrompt(ids, maxNewTokens: maxNewTokens, maxSeqLen: config.maxSeqLen)
            } else if ids.count > config.maxSeqLen {
                throw usageError("the prompt has \(ids.count) tokens, more than the model's context of \(config.maxSeqLen); --crop keeps its last tokens")
            }
            var parameters = parameters
            if let loaded {
                parameters.stopTokens = Set(loaded.endTokens)
            } else if let separator = tokenizer?.documentSeparator {
                parameters.stopTokens = [separator]
            }

            let generator = Generator(weights: weights, parallel: threads.map { ParallelFor(threads: $0) } ?? .allCores)
            var output = TokenOutput(format: format, tokenizer: tokenizer)
            let result = try generator.generate(prompt: ids, parameters: parameters) { output.write($0) }
            try output.finish()
            FileHandle.standardError.write(Data(String(
                format: "prompt %d tokens, prefill %.3f s; %d new tokens in %.3f s, %.2f tokens/s (%@); stopped: %@\n",
                result.promptTokens, result.prefillSeconds, result.tokens.count, result.decodeSeconds,
                result.tokensPerSecond, noCache ? "no cache" : "KV cache", describe(result.stopReason)).utf8))
        }
    }
}

/// Writes generated tokens to stdout as they come: text through a streaming decoder, or a JSON array of ids.
private struct TokenOutput {
    let format: SampleCommand.Format
    var decoder: StreamingDecoder?
    var count = 0
    /// A decoding failure (an id the tokenizer lacks), which ends generation and is thrown by `finish`.
    var failure: TokenizerError?

    init(format: SampleCommand.Format, tokenizer: Tokenizer?) {
        self.format = format
        decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
    }

    /// Writes one token; false stops generation.
    mutating func write(_ id: Int32) -> Bool {
        defer { count += 1 }
        switch format {
        case .ids:
            emit((count == 0 ? "[" : ", ") + String(id))
        case .text:
            do { emit(try decoder!.push(id)) } catch {
                failure = error
                return false
            }
        }
        return true
    }

    mutating func finish() throws(TokenizerError) {
        if let failure { throw failure }
        switch format {
        case .ids: emit(count == 0 ? "[]\n" : "]\n")
        case .text: emit(decoder!.finish() + "\n")
        }
    }

    /// Unbuffered: each piece reaches stdout before the next token is computed.
    private func emit(_ s: String) {
        if !s.isEmpty { FileHandle.standardOutput.write(Data(s.utf8)) }
    }
}

/// Reports a problem found once the model and tokenizer are loaded as `llm: error: …` on stderr, like
/// `reportingErrors`, and returns the exit status to throw.
private func usageError(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("llm: error: \(message)\n".utf8))
    return .failure
}

private func parseIDs(_ s: String) -> [Int32]? {
    let ids = s.split(separator: ",").map { Int32($0.trimmingCharacters(in: .whitespaces)) }
    return ids.isEmpty || ids.contains(nil) ? nil : ids.map { $0! }
}

private func describe(_ reason: GenerationResult.StopReason) -> String {
    switch reason {
    case .maxNewTokens: "max new tokens"
    case .stopToken(let id): "stop token \(id)"
    case .contextFull: "context full"
    case .cancelled: "cancelled"
    }
}
