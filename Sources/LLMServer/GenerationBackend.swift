// What the server needs from an inference engine, and from the model it runs. `llm serve` passes an
// `InferenceEngine`; the tests also pass scripted fakes, to watch cancellation without racing a real model.
import LLM

/// Generates tokens for the server's requests. Model compute runs on the backend's own threads; the HTTP
/// handlers only await the stream.
public protocol GenerationBackend: Sendable {
    /// The tokens that continue `prompt`, then one `.finished`. Dropping or cancelling the stream cancels the
    /// generation.
    func generate(prompt: [Int32], parameters: GenerateParameters) -> AsyncThrowingStream<EngineEvent, any Error>
    /// The same with the calculator answering the model's calls (its output tokens are streamed like the
    /// others). A backend without tool use ignores `tools`.
    func generate(prompt: [Int32], parameters: GenerateParameters, tools: ToolCalls?) -> AsyncThrowingStream<EngineEvent, any Error>
    /// Generations running now.
    var activeCount: Int { get }
    /// Generations waiting for a slot.
    var queuedCount: Int { get }
}

/// The model behind the API: its name, its context and vocabulary, and how its tokens become text.
public struct ServedModel: Sendable {
    /// The id `/v1/models` lists and every response names.
    public let name: String
    public let tokenizer: Tokenizer
    /// The longest prompt plus reply (maxT).
    public let contextLength: Int
    /// The chat format, or nil when the model's vocabulary has no rows for the chat tokens (then only
    /// `/v1/completions` works).
    public let chat: (any ChatFormat)?
    /// The tokens that end any reply because they are not text: the chat format's stops, the tokenizer's
    /// special tokens (such as `<|endoftext|>`), and ids past the tokenizer's vocabulary.
    public let stopTokens: Set<Int32>

    /// A model trained here: nanochat's chat format, if the vocabulary has room for its tokens.
    public init(name: String, tokenizer: Tokenizer, config: ModelConfig) {
        let renderer = ChatRenderer(tokenizer: tokenizer)
        self.init(name: name, tokenizer: tokenizer, config: config,
                  format: renderer.requiredVocabSize <= config.vocabSize ? renderer : nil)
    }

    /// A model with the given chat format (nil: completions only).
    public init(name: String, tokenizer: Tokenizer, config: ModelConfig, format: (any ChatFormat)?) {
        self.name = name
        self.tokenizer = tokenizer
        contextLength = config.maxSeqLen
        chat = format
        var stops = Set(tokenizer.specialTokens.values)
        if let renderer = format as? ChatRenderer { stops.formUnion(renderer.tokens.all) }
        if let format { stops.formUnion(format.stopTokens) }
        stops.formUnion((tokenizer.vocabSize..<max(tokenizer.vocabSize, config.vocabSize)).map { Int32($0) })
        stopTokens = stops
    }
}

extension GenerationBackend {
    public func generate(prompt: [Int32], parameters: GenerateParameters,
                         tools: ToolCalls?) -> AsyncThrowingStream<EngineEvent, any Error> {
        generate(prompt: prompt, parameters: parameters)
    }
}

extension InferenceEngine: GenerationBackend {}
