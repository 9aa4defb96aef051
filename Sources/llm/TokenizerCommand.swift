// `llm tokenizer`: encode and decode with a tokenizer, train a new one, and time encoding.
import ArgumentParser
import Foundation
import LLM

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Encode, decode, train and benchmark BPE tokenizers (the project's, Hugging Face's, GGUF's).",
        subcommands: [Encode.self, Decode.self, Train.self, Bench.self])
}

/// `--tokenizer gpt2|PATH` for the commands that encode text without a model (`llm prepare`, `llm tokenizer encode`,
/// `llm tokenizer bench`).
struct TokenizerOptions: ParsableArguments {
    @Option(help: "gpt2 (bundled; the default), a tokenizer file (from `llm tokenizer train`, or a run's own: RUN_DIR/tokenizer.tok when it was trained with --input), a Hugging Face folder or tokenizer.json, or a GGUF model file.")
    var tokenizer: String?

    func load() throws -> Tokenizer { try loadTokenizer(named: tokenizer, encoding: true) }
}

/// `--tokenizer gpt2|PATH` for `llm tokenizer decode`, which also reads llm.c's decode-only gpt2_tokenizer.bin.
struct DecodingTokenizerOptions: ParsableArguments {
    @Option(help: "gpt2 (bundled; the default), a tokenizer file (from `llm tokenizer train`, or a run's own: RUN_DIR/tokenizer.tok when it was trained with --input), a Hugging Face folder or tokenizer.json, a GGUF model file, or llm.c's gpt2_tokenizer.bin.")
    var tokenizer: String?

    func load() throws -> Tokenizer { try loadTokenizer(named: tokenizer) }
}

/// `--tokenizer gpt2|PATH` for the commands that run a model (`llm sample`, `llm serve`, `llm perplexity`): the
/// model brings its own unless told otherwise.
struct ModelTokenizerOptions: ParsableArguments {
    @Option(help: "Use this tokenizer instead of the model's own: gpt2 (bundled), a tokenizer file from `llm tokenizer train`, a Hugging Face folder or tokenizer.json, or a GGUF model file. Default: the model's own (a run directory's, a GGUF file's, a Hugging Face folder's); gpt2 for an llm.c .bin.")
    var tokenizer: String?

    func load() throws -> Tokenizer { try loadTokenizer(named: tokenizer, encoding: true) }
}

/// A tokenizer by name or path (see `TokenizerSource`); nil is GPT-2's. With `encoding`, llm.c's gpt2_tokenizer.bin
/// is refused: it holds each token's bytes for decoding, not the merges that encoding needs.
func loadTokenizer(named tokenizer: String?, encoding: Bool = false) throws -> Tokenizer {
    guard let tokenizer else { return try Tokenizer.gpt2() }
    switch try TokenizerSource.of(tokenizer) {
    case .gpt2: return try Tokenizer.gpt2()
    case .projectFile: return try Tokenizer.load(tokenizer)
    case .llmcDecoder:
        if encoding {
            throw TokenizerError.decodeOnly(path: tokenizer)
        }
        return try Tokenizer.llmcDecoder(tokenizer)
    case .huggingFaceFolder: return try Tokenizer.loadHuggingFace(folder: tokenizer)
    case .huggingFaceJSON:
        // tokenizer_config.json and generation_config.json beside it, as in a model folder.
        let folder = (tokenizer as NSString).deletingLastPathComponent
        func sibling(_ name: String) -> String? {
            let path = (folder as NSString).appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        return try Tokenizer.loadHuggingFace(tokenizerJSON: tokenizer, config: sibling("tokenizer_config.json"),
                                             generationConfig: sibling("generation_config.json"))
    case .gguf: return try Tokenizer(gguf: try GGUFFile.open(tokenizer).metadata, path: tokenizer)
    }
}

extension TokenizerCommand {
    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read text on stdin, print its token ids as a JSON array on stdout.")
        @OptionGroup var options: TokenizerOptions
        @Flag(help: "Encode special-token names such as <|endoftext|> as their ids (by default they are text).")
        var allowSpecial = false
        @Flag(help: "Add BOS/EOS where the tokenizer says a prompt gets them (add_bos_token, add_eos_token).")
        var addSpecialTokens = false
        @Flag(help: "Replace invalid UTF-8 with U+FFFD instead of failing.")
        var lossy = false

        func run() throws {
            try reportingErrors {
                let tok = try options.load()
                let input = FileHandle.standardInput.readDataToEndOfFile()
                let text = try decodeUTF8([UInt8](input), path: "<stdin>", lossy: lossy)
                let ids = tok.encode(text, allowSpecial: allowSpecial, addSpecialTokens: addSpecialTokens)
                print("[" + ids.map(String.init).joined(separator: ", ") + "]")
            }
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a JSON array of token ids on stdin, print the text on stdout.")
        @OptionGroup var options: DecodingTokenizerOptions

        func run() throws {
            try reportingErrors {
                let tok = try options.load()
                let ids = try TokenizerCommand.parseTokenIDs(FileHandle.standardInput.readDataToEndOfFile())
                let bytes = try tok.decode(ids)
                FileHandle.standardOutput.write(Data(bytes))
            }
        }
    }

    /// The ids of a JSON array, each an integer in 0...Int32.max: 1e30, 3.5, -1 or true are refused, not wrapped.
    static func parseTokenIDs(_ input: Data) throws -> [Int32] {
        guard let numbers = try? JSONDecoder().decode([Double].self, from: input) else {
            throw TokenizerError.malformed(path: "stdin", reason: "not a JSON array of token ids")
        }
        return try numbers.enumerated().map { i, value in
            guard value.rounded() == value, value >= 0, value <= Double(Int32.max) else {
                throw TokenizerError.malformed(path: "stdin", reason: "element \(i) (\(value)) is not a token id (an integer from 0 to \(Int32.max))")
            }
            return Int32(value)
        }
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a byte-level BPE tokenizer on text files.",
            discussion: """
                The vocabulary holds --vocab-size ids in all: the 256 bytes, the merges, then the special tokens \
                (with --specials chat: nanochat's <|bos|>, <|user_start|>, ... <|output_end|>). Prints the time and the \
                compression (bytes per token) on the training text, beside GPT-2's.
                """)
        @Option(parsing: .upToNextOption, help: "Text files to train on.") var input: [String]
        @Option(help: "Total vocabulary size, special tokens included.") var vocabSize: Int
        @Option(help: "Split pattern: gpt2 or gpt4 (nanochat's).") var pattern: SplitPattern = .gpt4
        @Option(help: "Special tokens: chat (nanochat's nine) or none.") var specials = "chat"
        @Option(help: "Where to write the tokenizer.") var out: String
        @Option(help: "Also export tiktoken-style ranks (.tiktoken) here.") var tiktoken: String?
        @Flag(help: "Replace invalid UTF-8 with U+FFFD instead of failing.") var lossy = false

        func validate() throws {
            if input.isEmpty { throw ValidationError("give at least one --input file") }
            if !["chat", "none"].contains(specials) { throw ValidationError("--specials must be chat or none") }
        }

        func run() throws {
            try reportingErrors {
                let texts = try input.map { path -> String in
                    guard let data = FileManager.default.contents(atPath: path) else {
                        throw TokenizerError.unreadable(path: path, reason: "no such file or not readable")
                    }
                    if data.isEmpty { throw TokenizerError.malformed(path: path, reason: "empty input") }
                    return try decodeUTF8([UInt8](data), path: path, lossy: lossy)
                }
                let t0 = DispatchTime.now().uptimeNanoseconds
                let tok = try BPETrainer.train(texts: texts, vocabSize: vocabSize, pattern: pattern,
                                               specialTokens: specials == "chat" ? BPETrainer.chatSpecialTokens : [])
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                try tok.save(to: out)
                if let tiktoken { try tok.exportTiktoken(to: tiktoken) }
                let bytes = texts.reduce(0) { $0 + $1.utf8.count }
                let ours = texts.reduce(0) { $0 + tok.encode($1).count }
                let gpt2 = try Tokenizer.gpt2()
                let theirs = texts.reduce(0) { $0 + gpt2.encode($1).count }
                print(String(format: "trained %d tokens (%@ pattern) in %.2f s; wrote %@", tok.vocabSize, pattern.rawValue, seconds, out))
                print(String(format: "compression on the training text: %.3f bytes/token (%d tokens); GPT-2: %.3f bytes/token (%d tokens)",
                             Double(bytes) / Double(ours), ours, Double(bytes) / Double(theirs), theirs))
            }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time encoding a text file (single-threaded, and with --threads N the parallel path).",
            discussion: "The last line is JSON: {\"tool\", \"mb_per_s\", \"tokens\", ...}, like reference/tiktoken_bench.py. Both lines count the tokens as a token shard holds the file: the document separator (<|endoftext|> for GPT-2) that starts it, then the file's tokens; tiktoken_bench.py counts the same.")
        @OptionGroup var options: TokenizerOptions
        @Option(help: "The text file to encode.") var input: String
        @Option(help: "Timed repetitions.") var repeats = 5
        @Option(help: "Threads for the parallel path (1 = single-threaded encode).") var threads = 1

        func validate() throws {
            try checkRange(repeats, "--repeats", 1...1_000_000)
            try checkThreads(threads)
        }

        func run() throws {
            try reportingErrors {
                let tok = try options.load()
                guard let data = FileManager.default.contents(atPath: input) else {
                    throw TokenizerError.unreadable(path: input, reason: "no such file or not readable")
                }
                let bytes = [UInt8](data)
                _ = try decodeUTF8(bytes, path: input, lossy: false)
                var times = [Double](), count = 0
                for i in 0...repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let ids = bytes.withUnsafeBufferPointer {
                        threads == 1 ? tok.encode(utf8: $0) : tok.encodeParallel(utf8: $0, threads: threads)
                    }
                    let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    count = ids.count
                    if i > 0 { times.append(s) }  // the first run is a warm-up
                }
                let median = times.sorted()[times.count / 2]
                let mbps = Double(bytes.count) / 1e6 / median
                // As a shard holds the file, and as tiktoken_bench.py counts: its document separator, then its tokens.
                let separator = tok.documentSeparator.map { tok.name(of: $0) ?? "separator \($0)" }
                let tokens = count + (separator == nil ? 0 : 1)
                let counted = separator.map { " (\(count) + the \($0) that starts the stream)" } ?? ""
                print("\(input): \(bytes.count) bytes -> \(tokens) tokens\(counted), " + String(format: "median %.1f ms, %.2f MB/s (%d thread%@)",
                             median * 1e3, mbps, threads, threads == 1 ? "" : "s"))
                print(String(format: "{\"tool\": \"llm\", \"mb_per_s\": %.3f, \"tokens\": %d, \"threads\": %d}", mbps, tokens, threads))
            }
        }
    }
}

extension SplitPattern: ExpressibleByArgument {}

/// Decodes UTF-8, naming the file and byte offset of the first invalid sequence unless `lossy`.
func decodeUTF8(_ bytes: [UInt8], path: String, lossy: Bool) throws -> String {
    if !lossy, let offset = firstInvalidUTF8Offset(bytes) { throw TokenizerError.invalidUTF8(path: path, offset: offset) }
    return String(decoding: bytes, as: UTF8.self)
}
