// `llm perplexity`: a model's perplexity on a text file, computed as llama.cpp's llama-perplexity does (chunks of
// --context tokens, the second half of each scored), so the two can be compared on the same file and model.
import ArgumentParser
import Foundation
import LLM

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Measure a model's perplexity on a text file (llama-perplexity's method).",
        discussion: """
            The text is tokenized (with the model's BOS first if its tokenizer adds one) and cut into chunks of \
            --context tokens; each chunk is evaluated from an empty cache and its second half scored. The same \
            command in llama.cpp: `llama-perplexity -m MODEL.gguf -f FILE -c 512 --chunks N -t THREADS`. A GGUF \
            model runs from its quantized blocks, as `llm chat` does; --dequantize measures the float32 model.
            """)

    @Option(help: "The model: a GGUF file, a Hugging Face folder, an llm.c .bin or a run directory.") var model: String
    @Option(help: "The text file to score.") var text: String
    @Option(help: "Tokens per chunk.") var context = 512
    @Option(help: "Chunks to evaluate (default: all the text holds).") var chunks: Int?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Expand a quantized GGUF model to float32 instead of computing from its blocks.") var dequantize = false
    @Option(help: "A LoRA adapter to run on top of the model: a PEFT folder (adapter_config.json + adapter_model.safetensors), from `llm sft --lora-rank` or PEFT.")
    var adapter: String?
    @OptionGroup var tokenizerOptions: ModelTokenizerOptions

    func validate() throws {
        try checkRange(context, "--context", 4...1_000_000)
        if let chunks { try checkRange(chunks, "--chunks", 1...1_000_000) }
        try checkThreads(threads)
    }

    func run() throws {
        try reportingErrors {
            let loaded = try LoadedModel.load(model, tokenizer: tokenizerOptions.tokenizer, quantized: !dequantize,
                                              adapter: adapter)
            let config = loaded.weights.config
            guard context <= config.maxSeqLen else {
                throw ValidationError("--context \(context) is longer than the model's context, \(config.maxSeqLen)")
            }
            guard let contents = FileManager.default.contents(atPath: text) else {
                throw ValidationError("cannot read --text \(text)")
            }
            let data = [UInt8](contents)
            let tokenizer = loaded.tokenizer
            var tokens = data.withUnsafeBufferPointer { tokenizer.encode(utf8: $0) }
            if tokenizer.addBOS, let bos = tokenizer.bos { tokens.insert(bos, at: 0) }
            guard tokens.count >= context else {
                throw ValidationError("\(text) holds \(tokens.count) tokens, fewer than one --context of \(context)")
            }
            let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
            try InferenceEngine.checkMemory(config: config, maxConcurrent: 1, threads: parallel.threads)
            let generator = Generator(weights: loaded.weights, parallel: parallel)
            let total = min(tokens.count / context, chunks ?? .max)
            let kind = loaded.weights.quantized.map { "quantized blocks (\($0.typeSummary))" } ?? "float32 weights"
            FileHandle.standardError.write(Data("\(loaded.weightsPath): \(tokens.count) tokens, \(total) chunks of \(context), \(kind), kernels \(KernelVariant.current)\n".utf8))
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try Perplexity.evaluate(
                generator: generator, tokens: tokens, context: context, maxChunks: chunks,
                bos: tokenizer.addBOS ? tokenizer.bos : nil) { chunk, running in
                    FileHandle.standardError.write(Data(String(format: "[%d] %.4f\n", chunk + 1, running).utf8))
                }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print(String(format: "perplexity %.4f over %d tokens (%d chunks of %d), %.1f s", result.perplexity,
                         result.scored, result.chunks, context, seconds))
            print(String(format: "{\"perplexity\": %.6f, \"mean_nll\": %.6f, \"scored\": %d, \"chunks\": %d, \"context\": %d, \"quantized\": %@, \"kernels\": \"%@\", \"seconds\": %.1f}",
                         result.perplexity, result.meanNLL, result.scored, result.chunks, context,
                         loaded.weights.quantized == nil ? "false" : "true", KernelVariant.current.rawValue, seconds))
        }
    }
}
