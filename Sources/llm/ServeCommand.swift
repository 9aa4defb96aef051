// `llm serve`: one model over HTTP, with a chat page and an OpenAI-compatible API (the LLMServer library).
import ArgumentParser
import Dispatch
import Foundation
import LLM
import LLMServer

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model: a chat page at / and an OpenAI-compatible API under /v1.",
        discussion: """
            Routes: GET / (the chat page, self-contained, works offline), POST /v1/chat/completions, \
            POST /v1/completions (both with "stream": true for server-sent events), GET /v1/models and GET \
            /health (active and queued generations). Requests take OpenAI's fields (messages or prompt, \
            max_tokens, temperature, top_p, stop, seed, stream) plus top_k; errors come back in OpenAI's error \
            shape. Up to --max-concurrent requests generate together, batched; more wait in a queue; a client \
            that disconnects cancels its generation. A GGUF file or Hugging Face folder chats in its own template \
            (or --chat-format); a model trained here needs rows for nanochat's chat tokens (50265 or more with \
            GPT-2's tokenizer); other models serve /v1/completions only. SIGINT or \
            SIGTERM stops the server gracefully: it stops accepting connections, finishes the requests in \
            flight and exits with status 0.
            """)

    @Option(help: "A GGUF file, a Hugging Face folder, an llm.c .bin checkpoint, or a run directory from `llm train` or `llm sft` (its newest weights and its tokenizer).")
    var model: String
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free one, which the banner shows).") var port = 8000
    @Option(help: "The model's id in the API (default: --model's last component, without .bin).") var name: String?
    @Option(help: "Requests that generate at once, batched; more wait in a queue.") var maxConcurrent = 4
    @Option(help: "Compute threads (default: all cores).") var threads: Int?
    @Flag(help: "Expand a quantized GGUF model to float32 instead of computing from its blocks (4 to 8 times the memory).")
    var dequantize = false
    @Option(help: "A LoRA adapter to run on top of the model: a PEFT folder (adapter_config.json + adapter_model.safetensors), from `llm sft --lora-rank` or PEFT.")
    var adapter: String?
    @Option(help: "The key every /v1 request must send as `Authorization: Bearer KEY` (default: $LLM_API_KEY; none: the API is open). The chat page asks for it.")
    var apiKey: String?
    @Option(help: "The web origin whose pages may call the API from a browser (https://example.org, or * for any); default: none, no CORS headers.")
    var corsOrigin: String?
    @Option(help: "The largest max_tokens a request may ask for; also the default.") var maxTokens = 512
    @Option(help: "The most messages in one chat request.") var maxMessages = 64
    @Option(help: "The longest message or prompt, in UTF-8 bytes.") var maxMessageBytes = 32_768
    @Option(help: "The largest request body, in bytes.") var maxBodyBytes = 1 << 20
    @OptionGroup var tokenizerOptions: ModelTokenizerOptions
    @Option(help: "The chat format: auto (the model's own template, or nanochat's for a model trained here), nanochat, or a built-in template: \(ChatTemplate.builtinNames.joined(separator: ", ")).")
    var chatFormat = "auto"

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        try checkRange(maxConcurrent, "--max-concurrent", 1...256, "each slot holds a key/value cache for the model's whole context")
        try checkThreads(threads)
        if !(["auto", "nanochat"] + ChatTemplate.builtinNames).contains(chatFormat) {
            throw ValidationError("--chat-format \(chatFormat): choose auto, nanochat, \(ChatTemplate.builtinNames.joined(separator: ", "))")
        }
        if let apiKey, apiKey.isEmpty || apiKey.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw ValidationError("--api-key must be non-empty, without spaces")
        }
        if let corsOrigin, corsOrigin != "*" && !(corsOrigin.hasPrefix("http://") || corsOrigin.hasPrefix("https://")) {
            throw ValidationError("--cors-origin \(corsOrigin): give an origin such as https://example.org, or *")
        }
        if maxTokens < 1 || maxMessages < 1 || maxMessageBytes < 1 || maxBodyBytes < 1 {
            throw ValidationError("--max-tokens, --max-messages, --max-message-bytes and --max-body-bytes must be positive")
        }
    }

    func run() throws {
        var loaded: LoadedModel?
        try reportingErrors {
            let model = try LoadedModel.load(model, tokenizer: tokenizerOptions.tokenizer, chatFormat: chatFormat,
                                             quantized: !dequantize, adapter: adapter)
            // Reported as every other error is (llm: error: …, status 1), before the engine allocates anything.
            try InferenceEngine.checkMemory(config: model.weights.config, maxConcurrent: maxConcurrent, threads: threads)
            loaded = model
        }
        guard let loaded else { return }
        let config = loaded.weights.config
        // A run directory is named for itself, not for its model.bin, and runs/latest for the run it points at.
        let file = URL(fileURLWithPath: RunDirectory.resolvingLinks(model)).standardized.lastPathComponent
        let modelName = name ?? (file.hasSuffix(".bin") ? String(file.dropLast(4)) : file.hasSuffix(".gguf") ? String(file.dropLast(5)) : file)
        let served = ServedModel(name: modelName, tokenizer: loaded.tokenizer, config: config, format: loaded.chatFormat)
        var limits = ServerLimits()
        limits.maxTokens = maxTokens
        limits.maxMessages = maxMessages
        limits.maxMessageBytes = maxMessageBytes
        limits.maxBodyBytes = maxBodyBytes

        let engine = InferenceEngine(weights: loaded.weights, maxConcurrent: maxConcurrent, threads: threads)
        let key = apiKey ?? ProcessInfo.processInfo.environment["LLM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let access = ServerAccess(apiKey: key, corsOrigin: corsOrigin)
        var notes = ""
        if served.chat == nil {
            let needed = ChatTokens(tokenizer: loaded.tokenizer).requiredVocabSize
            notes += "\nthe model's vocabulary (\(config.vocabSize)) has no rows for the chat tokens (\(needed) needed): /v1/completions only"
        }
        if let warning = ChatPage.warning { notes += "\nwarning: " + warning }
        if key != nil { notes += "\n/v1 requires the API key (Authorization: Bearer KEY)" }
        if let warning = access.warning(host: host) { notes += "\nwarning: " + warning }
        // The banner once the server listens (with the port it got, for --port 0), never before: a port in use
        // is an error, not a false "serving".
        let listening = ListeningFlag()
        let (address, description, notesText) = (host, "\(config)", notes)
        let app = buildApplication(backend: engine, model: served,
                                   configuration: ServerConfiguration(host: host, port: port, limits: limits,
                                                                      access: access)) { port in
            listening.set()
            let banner = "serving \(modelName) (\(description)) on http://\(address):\(port): chat page at /, API at /v1" + notesText
            FileHandle.standardError.write(Data((banner + "\n").utf8))
        }
        do {
            try runBlocking { try await app.runService() }
        } catch where !listening.isSet {
            engine.shutdown()
            FileHandle.standardError.write(Data("llm: error: cannot listen on \(host):\(port): \(listenFailure(error))\n".utf8))
            Foundation.exit(1)
        }
        engine.shutdown()
    }
}

/// Set once the server listens; read after it stops.
private final class ListeningFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// Why the server could not listen, in words: SwiftNIO's `IOError` carries the system's errno (`bind(…): Address
/// already in use (errno: 98)`), which is named with the usual remedy; any other error as it describes itself.
private func listenFailure(_ error: any Error) -> String {
    let text = String(describing: error)
    guard let code = errnoCode(of: error) else { return text }
    switch code {
    case EADDRINUSE: return "the address is already in use (another server? pick another --port, or 0 for any free one)"
    case EACCES: return "permission denied (ports below 1024 need privileges: pick another --port)"
    case EADDRNOTAVAIL: return "the address is not one of this machine's (check --host)"
    default: return String(cString: strerror(code)) + " (errno \(code))"
    }
}

/// The errno an error carries: SwiftNIO's `IOError` (this target does not import NIO) holds it as `error: .errno(N)`,
/// and says it as "(errno: N)".
private func errnoCode(of error: any Error) -> Int32? {
    for child in Mirror(reflecting: error).children where child.label == "error" {
        for inner in Mirror(reflecting: child.value).children where inner.label == "errno" {
            if let code = inner.value as? Int32 { return code }
        }
    }
    let text = String(describing: error)
    guard let range = text.range(of: "(errno: ", options: .backwards) else { return nil }
    return Int32(text[range.upperBound...].prefix { $0.isNumber })
}

/// Runs `body` on the Swift concurrency pool and blocks the calling thread until it returns: the `llm`
/// command tree is synchronous, the server is not.
private func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    /// Written by the task before it signals, read after the wait.
    final class Outcome: @unchecked Sendable { var error: (any Error)? }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { try await body() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let error = outcome.error { throw error }
}
