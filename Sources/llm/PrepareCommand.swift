// `llm prepare`: tokenize text into llm.c token shards for training.
import ArgumentParser
import Foundation
import LLM

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize text files into llm.c token shards (NAME_val_000000.bin, NAME_train_000001.bin, ...).",
        discussion: """
            .txt files are one document each; .jsonl files one document per line (its "text" field); a folder \
            means the .txt and .jsonl files in it. Every document is preceded by <|endoftext|> (or <|bos|>). \
            `llm prepare tinyshakespeare` downloads TinyShakespeare into ~/.cache/llm first.
            """)

    @Argument(help: "A known dataset to download instead of --input: \(KnownDataset.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dataset: String?
    @Option(parsing: .upToNextOption, help: "Text files or folders.") var input: [String] = []
    @Option(help: "Output folder (default: data/NAME).") var out: String?
    @Option(help: "Shard name prefix (default: the dataset or first input's name).") var name: String?
    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(help: "Fraction of the token stream, from the start, for validation.") var valFraction = 0.1
    @Option(help: "Most tokens per train shard.") var shardTokens = 100_000_000
    @Option(help: "Tokenizer threads (default: all cores).") var threads: Int?
    @Flag(help: "Replace invalid UTF-8 with U+FFFD instead of failing.") var lossy = false
    @Flag(help: "Replace existing shards of the same name.") var overwrite = false

    func validate() throws {
        if dataset == nil && input.isEmpty { throw ValidationError("give --input FILE_OR_DIR... or a dataset name") }
        if let dataset, KnownDataset(rawValue: dataset) == nil {
            throw ValidationError("unknown dataset \(dataset) (known: \(KnownDataset.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if !(valFraction > 0 && valFraction < 1) { throw ValidationError("--val-fraction \(valFraction) must be between 0 and 1 (exclusive)") }
        if shardTokens < 1 || shardTokens > Int(Int32.max) {
            throw ValidationError("--shard-tokens \(shardTokens) must be between 1 and 2147483647 (a shard's header counts its tokens in 32 bits)")
        }
        try checkThreads(threads)
    }

    func run() throws {
        try reportingErrors {
            var inputs = input
            if let dataset, let known = KnownDataset(rawValue: dataset) { inputs = [try known.cachedFile()] }
            let name = name ?? dataset ?? URL(fileURLWithPath: inputs[0]).deletingPathExtension().lastPathComponent
            var job = DatasetPreparation(inputs: inputs, outputDirectory: out ?? "data/\(name)", name: name)
            job.valFraction = valFraction
            job.shardTokens = shardTokens
            job.lossy = lossy
            job.overwrite = overwrite
            if let threads { job.threads = max(1, threads) }
            let bar = ProgressBar(label: "tokenizing")
            let t0 = DispatchTime.now().uptimeNanoseconds
            let result = try job.run(tokenizer: try tokenizerOptions.load()) { done, total in bar.update(done, total) }
            bar.finish()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            print(String(format: "%d documents, %d bytes -> %d val + %d train tokens in %.2f s", result.documents,
                         result.bytes, result.valTokens, result.trainTokens, seconds))
            for f in result.files { print("wrote \(f)") }
        }
    }
}
