// `llm eval`: score a model on task files (CORE- and ChatCORE-style) and, optionally, its bits per byte on a text.
import ArgumentParser
import Foundation
import LLM

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model on evaluation tasks (CORE, ChatCORE) and its bits per byte on a text.",
        discussion: """
            Each task is a JSONL file: a header line ({"task": NAME, "kind": KIND, …}) then one example per line; \
            tasks/README.md describes the kinds (multiple_choice, schema, language_modeling, chat_choice, \
            chat_answer) and how to convert HellaSwag, ARC, MMLU or GSM8K. A directory stands for every .jsonl \
            file in it. The raw-text tasks' mean centred accuracy is CORE, the chat tasks' ChatCORE. Prints a \
            Markdown table; --json writes every example's result. A GGUF model runs from its quantized blocks, \
            as `llm chat` does; --dequantize scores the float32 model.
            """)

    @Option(help: "The model: a GGUF file, a Hugging Face folder, an llm.c .bin or a run directory.") var model: String
    @Option(parsing: .upToNextOption, help: "Task files (JSONL) or directories of them.") var tasks: [String] = []
    @Option(help: "Also measure bits per byte on this text file.") var text: String?
    @Option(help: "Tokens of --text to score.") var textTokens = 16384
    @Option(help: "Tokens per window of --text (default: the model's context).") var context: Int?
    @Option(help: "Score only the first N examples of each task.") var limit: Int?
    @Option(help: "Write the results, every example's included, to this JSON file.") var json: String?
    @Option(help: "Write the Markdown table to this file too.") var markdown: String?
    @Option(help: "The chat format for chat tasks: auto (the model's own template, or nanochat's for a model trained here), nanochat, or a built-in template: \(ChatTemplate.builtinNames.joined(separator: ", ")).")
    var chatFormat = "auto"
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Expand a quantized GGUF model to float32 instead of computing from its blocks.") var dequantize = false
    @Option(help: "A LoRA adapter to run on top of the model: a PEFT folder.") var adapter: String?
    @Flag(help: "No progress lines on stderr.") var quiet = false
    @OptionGroup var tokenizerOptions: ModelTokenizerOptions

    func validate() throws {
        guard !tasks.isEmpty || text != nil else {
            throw ValidationError("give --tasks FILE… (or a directory of them), --text FILE, or both")
        }
        try checkRange(textTokens, "--text-tokens", 2...100_000_000)
        if let context { try checkRange(context, "--context", 2...1_000_000) }
        if let limit { try checkRange(limit, "--limit", 1...EvalTask.maxExamples) }
        try checkThreads(threads)
        if !(["auto", "nanochat"] + ChatTemplate.builtinNames).contains(chatFormat) {
            throw ValidationError("--chat-format \(chatFormat): choose auto, nanochat, \(ChatTemplate.builtinNames.joined(separator: ", "))")
        }
    }

    func run() throws {
        try reportingErrors {
            // Read every task before loading the model: a typo fails in a second, not after the load.
            let taskFiles = try EvalTask.files(tasks)
            let loaded = try taskFiles.map { path throws(EvalError) in try EvalTask.read(path: path) }
            let textBytes = try text.map { path -> [UInt8] in
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ValidationError("cannot read --text \(path)")
                }
                return [UInt8](data)
            }
            let model = try LoadedModel.load(self.model, tokenizer: tokenizerOptions.tokenizer,
                                             chatFormat: chatFormat, quantized: !dequantize, adapter: adapter)
            let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
            try InferenceEngine.checkMemory(config: model.weights.config, maxConcurrent: 1, threads: parallel.threads)
            let evaluator = Evaluator(model: model, parallel: parallel)
            let kind = model.weights.quantized.map { "quantized blocks (\($0.typeSummary))" } ?? "float32 weights"
            note("\(model.weightsPath): \(loaded.count) task(s), \(kind), kernels \(KernelVariant.current)")
            var scores = [TaskScore]()
            for task in loaded {
                let total = min(task.examples.count, limit ?? .max)
                let score = try evaluator.evaluate(task, limit: limit) { done, correct in
                    progress("\(task.name): \(done)/\(total), \(correct) right (\(String(format: "%.1f", 100 * Double(correct) / Double(done)))%)",
                             last: done == total)
                }
                scores.append(score)
            }
            var bpb: BitsPerByte?
            if let textBytes {
                note("bits per byte on \(text!): up to \(textTokens) tokens")
                bpb = try evaluator.bitsPerByte(text: textBytes, context: context ?? model.weights.config.maxSeqLen,
                                                maxTokens: textTokens)
            }
            let report = EvaluationReport(model: model.weightsPath, tasks: scores, bitsPerByte: bpb,
                                          kernels: KernelVariant.current.rawValue,
                                          quantized: model.weights.quantized != nil)
            print(report.markdown, terminator: "")
            if let json { try EvaluationReport.write(try report.json(), to: json) }
            if let markdown { try EvaluationReport.write(Data(report.markdown.utf8), to: markdown) }
        }
    }

    private func note(_ line: String) {
        if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    /// A progress line, rewritten in place on a terminal (one line per task otherwise).
    private func progress(_ line: String, last: Bool) {
        guard !quiet else { return }
        if isatty(2) != 0 {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (last ? "\n" : "")).utf8))
        } else if last {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
}
