// Fuzz harnesses: for each parser of outside input, a function from arbitrary bytes to either a value or the
// parser's typed error, never a crash, a hang or unbounded memory. `llm-fuzz` (Sources/llm-fuzz) runs one under
// libFuzzer (scripts/fuzz.sh) or replays files through it (which is how a crash is reproduced), and
// FuzzCorpusTests runs every harness over its committed seed corpus (Tests/Fuzz/corpus/<name>/).
//
// A parser that only reads files gets the input through a file in /dev/shm (else the temporary directory),
// rewritten for each input. Whatever the parser returns is then used the way the program uses it (tensors
// dequantized, tokenizers encoding and decoding, conversations rendered, prompts built), so that what a file
// can make a parser accept is fuzzed too.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct FuzzHarness: Sendable {
    /// The target's name (`llm-fuzz NAME FILE...`, LLM_FUZZ_TARGET=NAME, Tests/Fuzz/corpus/NAME/).
    public let name: String
    /// The longest input worth trying (libFuzzer's -max_len).
    public let maxLength: Int
    private let expected: @Sendable (any Error) -> Bool
    private let body: @Sendable (Data) throws -> Void

    /// A harness whose `body` may throw only errors for which `expected` is true.
    public init(name: String, maxLength: Int, expecting expected: @escaping @Sendable (any Error) -> Bool,
                _ body: @escaping @Sendable (Data) throws -> Void) {
        self.name = name
        self.maxLength = maxLength
        self.expected = expected
        self.body = body
    }

    /// Runs the parser on `input`: nil when it accepted the input, else the typed error it refused it with. Any
    /// other error is a finding and traps, as a crash does.
    @discardableResult
    public func run(_ input: Data) -> (any Error)? {
        do {
            try body(input)
            return nil
        } catch where expected(error) {
            return error
        } catch {
            fatalError("\(name): \(type(of: error)) is not one of this parser's typed errors: \(error)")
        }
    }

    /// The harnesses of the LLM library (the server's request bodies are `ServerFuzzHarnesses` in LLMServer).
    public static let all: [FuzzHarness] = [
        FuzzHarness(name: "llmc-checkpoint", maxLength: 8192, expecting: { $0 is FormatError }) { data in
            _ = try withInputFile(data, name: "model.bin") { try LLMCCheckpoint.read($0) }
        },
        FuzzHarness(name: "llmc-debug-state", maxLength: 8192, expecting: { $0 is FormatError }) { data in
            let state = try withInputFile(data, name: "state.bin") { try DebugState.read($0, config: tinyGPT2) }
            _ = state.gradients.arena.withBuffer { $0.reduce(0, +) }
        },
        FuzzHarness(name: "safetensors", maxLength: 8192, expecting: { $0 is FormatError }) { data in
            let file = try withInputFile(data, name: "model.safetensors") { try SafeTensorsFile.read($0) }
            for name in file.entries.keys.sorted() {
                do { _ = try file.entries[name]!.dtype == "I32" ? file.int32s(name).count : file.floats(name).count } catch {
                    guard case FormatError.unsupportedDType = error else { throw error }
                }
            }
        },
        FuzzHarness(name: "gguf", maxLength: 16384,
                    expecting: { $0 is FormatError || $0 is TokenizerError }) { data in
            try withInputFile(data, name: "model.gguf") { path in
                let file = try GGUFFile.open(path)
                for info in file.tensors where info.type.canDequantize {
                    _ = try file.dequantize(info, parallel: ParallelFor(threads: 1))
                }
                if file.metadata["tokenizer.ggml.model"] != nil {
                    try exercise(try Tokenizer(gguf: file.metadata, path: path))
                }
                _ = try GGUFModel.read(file)
            }
        },
        FuzzHarness(name: "hf-config", maxLength: 4096, expecting: { $0 is FormatError }) { data in
            _ = try withInputFile(data, name: "config.json") { try HuggingFaceConfig.read($0) }
        },
        FuzzHarness(name: "tokenizer-file", maxLength: 8192, expecting: { $0 is TokenizerError }) { data in
            try exercise(try withInputFile(data, name: "tokenizer.tok") { try Tokenizer.load($0) })
        },
        FuzzHarness(name: "llmc-tokenizer", maxLength: 8192, expecting: { $0 is TokenizerError }) { data in
            try exercise(try withInputFile(data, name: "gpt2_tokenizer.bin") { try Tokenizer.llmcDecoder($0) })
        },
        FuzzHarness(name: "tokenizer-json", maxLength: 16384, expecting: { $0 is TokenizerError }) { data in
            try exercise(try withInputFile(data, name: "tokenizer.json") { try Tokenizer.loadHuggingFace(tokenizerJSON: $0) })
        },
        FuzzHarness(name: "token-shard", maxLength: 4096, expecting: { $0 is DataError }) { data in
            let shard = try withInputFile(data, name: "shard.bin") { try TokenShardReader(path: $0) }
            _ = try shard.tokens(in: 0..<shard.count)
            if shard.count > 2 { _ = try shard.tokens(in: 1..<shard.count - 1) }
        },
        FuzzHarness(name: "conversations", maxLength: 8192, expecting: { $0 is ChatFormatError }) { data in
            let renderer = ChatRenderer(tokenizer: try gpt2())
            try forEachJSONLine(in: data) { (line, lineNumber) throws(ChatFormatError) in
                let conversation = try Conversation.parse(jsonLine: Data(line), path: "fuzz.jsonl", line: lineNumber)
                _ = renderer.render(conversation, maxTokens: 256)
                _ = try? renderer.renderForCompletion(conversation)
            }
        },
        FuzzHarness(name: "chat-template", maxLength: 8192, expecting: { $0 is ChatTemplateError }) { data in
            var limits = ChatTemplate.Limits()
            limits.maxSteps = 200_000
            limits.maxOutputBytes = 1 << 20
            let template = try ChatTemplate(source: String(decoding: data, as: UTF8.self), limits: limits)
            let messages: [[String: JinjaValue]] = [
                ["role": .string("system"), "content": .string("Be brief.")],
                ["role": .string("user"), "content": .string("What is 2+2?")],
                ["role": .string("assistant"), "content": .string("4"),
                 "tool_calls": .array([.object(["type": .string("function"), "function": .object([
                     "name": .string("add"), "arguments": .object(["a": .int(2), "b": .int(2)])])])])],
                ["role": .string("tool"), "content": .string("4")],
                ["role": .string("user"), "content": .string("Thanks <|im_end|> {{ 1 }}")],
            ]
            let tools: [JinjaValue] = [.object(["type": .string("function"), "function": .object([
                "name": .string("add"), "parameters": .object(["type": .string("object")])])])]
            let utc = TimeZone(identifier: "UTC")!, epoch = Date(timeIntervalSince1970: 0)
            _ = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>",
                                     tools: tools, now: epoch, timeZone: utc)
            // Many templates refuse system and tool messages; every one takes user and assistant turns.
            _ = try template.render(messages: messages.filter { ["user", "assistant"].contains($0["role"]) }.suffix(3),
                                    addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>", now: epoch, timeZone: utc)
        },
        FuzzHarness(name: "eval-task", maxLength: 8192, expecting: { $0 is EvalError }) { data in
            let task = try EvalTask.parse(data, path: "fuzz.jsonl")
            let tokenizer = try gpt2()
            for (i, example) in task.examples.prefix(8).enumerated() {
                if task.kind.isChat {
                    _ = EvalPrompts.chatQuestion(example.question ?? "", choices: example.choices ?? [])
                    _ = example.answer.map { EvalPrompts.answersMatch(EvalPrompts.extractAnswer($0) ?? "", $0) }
                    continue
                }
                let shots = EvalPrompts.fewshotIndices(for: i, count: task.examples.count, k: task.fewshot)
                    .map { task.examples[$0] }
                let texts = EvalPrompts.texts(for: example, shots: shots, task: task)
                _ = EvalPrompts.sequences(texts: texts, kind: task.kind, tokenizer: tokenizer, first: 50256, maxLength: 64)
            }
        },
    ]

    /// A GPT-2 of 300 parameters: the model a debug state is read for.
    static let tinyGPT2 = try! ModelConfig.gpt2(maxSeqLen: 4, vocabSize: 8, numLayers: 1, numHeads: 1, channels: 4,
                                                paddedVocabSize: 8)

    /// GPT-2's tokenizer, loaded once.
    public static func gpt2() throws -> Tokenizer { try gpt2Tokenizer.get() }
    private static let gpt2Tokenizer = Result { try Tokenizer.gpt2() }

    /// Uses a tokenizer the file gave: encodes a text of every kind of character, decodes what came out and
    /// ids at and past the vocabulary's edges.
    static func exercise(_ tokenizer: Tokenizer) throws {
        let text = "Hello, world! It's 2024: naïve café, 日本語, 🙂🙂\n\t  x  <|endoftext|><s> 12345 \u{0}\u{7F}"
        _ = try tokenizer.decode(tokenizer.encode(text, allowSpecial: true))
        _ = tokenizer.encode(text, allowSpecial: false, addSpecialTokens: true)
        let last = Int32(clamping: tokenizer.vocabSize)
        for id in [0, 1, last - 1] where id >= 0 && id < last { _ = try tokenizer.decode([id]) }
        for id in [-1, last, Int32.max] { _ = try? tokenizer.decode([id]) }
    }

    /// Calls `body` with the path of a file holding `data` (named `name`, for parsers that look at the name).
    static func withInputFile<R>(_ data: Data, name: String, _ body: (String) throws -> R) throws -> R {
        let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        let path = (directory as NSString).appendingPathComponent("llm-fuzz-\(getpid())-\(name)")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot write \(path): \(String(cString: strerror(errno)))")
        defer { unlink(path) }
        let written = data.withUnsafeBytes { raw in raw.isEmpty ? 0 : write(fd, raw.baseAddress!, raw.count) }
        close(fd)
        precondition(written == data.count, "cannot write \(path)")
        return try body(path)
    }
}
