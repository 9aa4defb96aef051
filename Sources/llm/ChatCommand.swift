// `llm chat`: a terminal conversation with a chat model (nanochat's chat_cli), streaming each reply as it is
// generated. The conversation, the rendering and the input rules are the library's ChatSession; this file
// is the terminal: reading lines, printing pieces, and Ctrl-C.
import ArgumentParser
import Foundation
import LLM
import Synchronization

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model in the terminal.",
        discussion: """
            Type a message and press return; the reply streams as it is generated. A line ending in \\ continues \
            on the next line, and a line with just \"\"\" starts or ends a multi-line block. Commands: /clear, \
            /temperature X, /topk K, /topp P, /system TEXT, /help, /quit (or Ctrl-D). Ctrl-C during a reply stops \
            it and keeps what was printed so far in the conversation; Ctrl-C at the prompt drops the line being \
            typed (use /quit or Ctrl-D to exit). When the conversation outgrows the model's context, its oldest \
            exchanges are forgotten. With stdin not a terminal, each line (or block) is a message and stdout gets \
            only the replies, one per message (notes go to stderr; Ctrl-C between replies exits). --prompt asks \
            one question and exits. A GGUF file or Hugging Face folder chats in its own template; a model trained \
            here needs nanochat's chat tokens: fine-tune it with `llm sft` first. Such a model may call the \
            calculator (nanochat's tool use): each call shows as [calculator: expression = result], dimmed.
            """)

    @Option(help: "A GGUF file or Hugging Face folder of a chat model (its own tokenizer and chat template), a run directory from `llm sft` (its newest weights and its tokenizer), or an llm.c .bin checkpoint.")
    var model: String
    @Option(help: "gpt2, a tokenizer file, a tokenizer.json, a GGUF file or a Hugging Face folder (default: the model's own; gpt2 for a checkpoint).")
    var tokenizer: String?
    @Option(help: "The chat format: auto (the model's own template, or nanochat's for a model trained here), nanochat, or a built-in template: \(ChatTemplate.builtinNames.joined(separator: ", ")).")
    var chatFormat = "auto"
    @Option(help: "Sampling temperature; 0 always takes the most likely token.") var temperature: Float = 0.6
    @Option(help: "Sample among the K most likely tokens only (0 for all).") var topK = 50
    @Option(help: "Then keep the fewest most likely tokens whose probability reaches P.") var topP: Float = 1
    @Option(help: "Most tokens in one reply.") var maxNewTokens = 512
    @Option(help: "Seed for the replies' sampling: the same seed and messages give the same replies (default: random).")
    var seed: UInt64?
    @Option(help: "A system prompt, merged into the first message of the conversation.") var system: String?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Expand a quantized GGUF model to float32 instead of computing from its blocks (4 to 8 times the memory).")
    var dequantize = false
    @Option(help: "Ask this one question, print the reply and exit.") var prompt: String?
    @Option(help: "A LoRA adapter to run on top of the model: a PEFT folder (adapter_config.json + adapter_model.safetensors), from `llm sft --lora-rank` or PEFT.")
    var adapter: String?

    func validate() throws {
        if !parameters.isValid {
            throw ValidationError("--max-new-tokens must be ≥ 0, --temperature ≥ 0, --top-k ≥ 0 and --top-p in (0, 1]")
        }
        try checkThreads(threads)
        if !(["auto", "nanochat"] + ChatTemplate.builtinNames).contains(chatFormat) {
            throw ValidationError("--chat-format \(chatFormat): choose auto, nanochat, \(ChatTemplate.builtinNames.joined(separator: ", "))")
        }
    }

    /// A warning for a run of this project that was pretrained but never fine-tuned on conversations: it has
    /// the chat tokens but never learned to answer or to stop, so it continues the text until its context fills.
    static func notFineTunedWarning(_ model: String) throws -> String? {
        guard RunDirectory.isRun(model) else { return nil }
        let config = try RunDirectory(model).readConfig()
        guard config.training.conversations == nil, config.lora == nil else { return nil }
        return "llm: warning: \(model) was pretrained but never fine-tuned on conversations, so it will continue text rather than answer; fine-tune it first: llm sft --init \(model) --data CONVERSATIONS.jsonl (llm chat-data writes some)"
    }

    private var parameters: GenerateParameters {
        GenerateParameters(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK == 0 ? nil : topK, topP: topP)
    }

    func run() throws {
        try reportingErrors {
            let loaded = try LoadedModel.load(model, tokenizer: tokenizer, chatFormat: chatFormat, quantized: !dequantize,
                                              adapter: adapter)
            guard let format = loaded.chatFormat else {
                if !loaded.tokenizer.isRankBased {
                    // A real model without a template: a base model, most likely.
                    throw ChatSessionError.noChatTemplate(path: loaded.weightsPath)
                }
                let needed = ChatTokens(tokenizer: loaded.tokenizer).requiredVocabSize
                throw ChatSessionError.noChatTokens(vocabSize: loaded.weights.config.vocabSize, required: needed)
            }
            if let warning = try Self.notFineTunedWarning(model) { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
            try InferenceEngine.checkMemory(config: loaded.weights.config, maxConcurrent: 1, threads: threads)
            let engine = InferenceEngine(weights: loaded.weights, maxConcurrent: 1, threads: threads)
            defer { engine.shutdown() }
            let session = try ChatSession(engine: engine, format: format, parameters: parameters,
                                          system: system, seed: seed ?? .random(in: .min ... .max))
            if let prompt {
                let reply = try session.replyPieces(to: prompt) { write(shown($0)); return true }
                write("\n")
                note(reply, terminal: nil)
            } else {
                Terminal(session: session, loaded: loaded).run()
            }
        }
    }
}

/// The interactive loop: prompts, lines, commands, replies and Ctrl-C.
private struct Terminal {
    let session: ChatSession
    let loaded: LoadedModel
    /// stdin is a terminal: show prompts, a banner and notes on stdout. Otherwise stdout gets only replies.
    let interactive = isatty(STDIN_FILENO) == 1
    let signals = SignalState()

    init(session: ChatSession, loaded: LoadedModel) {
        self.session = session
        self.loaded = loaded
    }

    func run() {
        // Ctrl-C is handled here rather than killing the process: SIG_IGN stops the default action, and the
        // Dispatch source (off the main thread, which sits in readLine or waits for a reply) still sees it.
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "llm.chat.sigint"))
        source.setEventHandler { [signals, interactive] in
            if signals.replying.load(ordering: .acquiring) {
                signals.stopReply.store(true, ordering: .releasing)
            } else if interactive {
                signals.dropInput.store(true, ordering: .releasing)
                write("\n(Ctrl-C: use /quit or Ctrl-D to exit)\n> ")
            } else {
                exit(130)  // nobody to talk to: a script's Ctrl-C ends it
            }
        }
        source.resume()
        defer { source.cancel() }

        if interactive {
            let c = session.engine.config
            write("llm chat: \(loaded.weightsPath) (\(c.numLayers) layers, \(c.channels) channels, "
                  + "context \(c.maxSeqLen) tokens)\n")
            write("/help for commands, /quit or Ctrl-D to exit.\n")
        }
        var assembler = ChatLineAssembler()
        while true {
            if interactive { write(assembler.isContinuing ? "... " : "> ") }
            guard let line = readLine(strippingNewline: true) else {
                if interactive { write("\n") }
                if let rest = assembler.finish() { send(rest) }
                return
            }
            if signals.dropInput.exchange(false, ordering: .acquiringAndReleasing) { assembler.reset() }
            guard let input = assembler.add(line) else { continue }
            switch ChatInput.parse(input) {
            case .message(let text): send(text)
            case .clear:
                session.clear()
                info("(conversation cleared)")
            case .temperature(let t):
                session.parameters.temperature = t
                info("(temperature \(t))")
            case .topK(let k):
                session.parameters.topK = k
                info("(top-k \(k.map(String.init) ?? "off"))")
            case .topP(let p):
                session.parameters.topP = p
                info("(top-p \(p))")
            case .system(let s):
                session.system = s
                info(s == nil ? "(no system prompt)" : "(system prompt set)")
            case .help: info(ChatInput.helpText)
            case .quit: return
            case .invalid(let why): warn(why)
            }
        }
    }

    /// One user message and the streamed reply; Ctrl-C meanwhile stops the reply.
    private func send(_ text: String) {
        guard !text.allSatisfy(\.isWhitespace) else { return }
        signals.stopReply.store(false, ordering: .releasing)
        signals.replying.store(true, ordering: .releasing)
        defer { signals.replying.store(false, ordering: .releasing) }
        do {
            let reply = try session.replyPieces(to: text) { [signals] piece in
                if signals.stopReply.load(ordering: .acquiring) { return false }
                write(shown(piece))
                return true
            }
            write("\n")
            note(reply, terminal: self)
        } catch {
            warn("\(error)")
        }
    }

    /// A note for the user: on stdout at a terminal, else stderr (stdout holds only replies).
    func info(_ s: String) {
        if interactive { write(s + "\n") } else { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }

    func warn(_ s: String) { FileHandle.standardError.write(Data("error: \(s)\n".utf8)) }
}

/// Tells the user why a reply ended early and what was forgotten, if anything.
private func note(_ reply: ChatReply, terminal: Terminal?) {
    let say = { (s: String) in
        if let terminal { terminal.info(s) } else { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }
    if reply.forgottenMessages > 0 {
        say("(the conversation outgrew the model's context: forgot its \(reply.forgottenMessages) oldest messages)")
    }
    switch reply.finish.stopReason {
    case .stopToken: break
    case .cancelled: say("(stopped)")
    case .maxNewTokens: say("(reply cut at --max-new-tokens)")
    case .contextFull:
        say(terminal == nil ? "(the reply filled the model's context and was cut there)"
                            : "(the model's context is full: /clear to start a new conversation)")
    }
}

/// Flags shared by the main thread, the engine thread (which streams the reply) and the SIGINT handler.
private final class SignalState: Sendable {
    /// A reply is being generated: Ctrl-C stops it.
    let replying = Atomic(false)
    /// Ctrl-C arrived during the reply: the next piece stops it.
    let stopReply = Atomic(false)
    /// Ctrl-C arrived at the prompt: drop the pending multi-line input.
    let dropInput = Atomic(false)
}

/// A reply piece as printed: text as it is, a calculator call as "[calculator: 123*45 = 5535]", dimmed
/// when stdout is a terminal.
private func shown(_ piece: ReplyPiece) -> String {
    guard case let .call(expression, output) = piece else { return piece.inlineText }
    let call = "[calculator: \(expression) = \(output ?? "no answer")]"
    return isatty(STDOUT_FILENO) == 1 ? "\u{1B}[2m" + call + "\u{1B}[0m" : call
}

/// Unbuffered: each piece reaches the terminal before the next token is computed.
private func write(_ s: String) {
    if !s.isEmpty { FileHandle.standardOutput.write(Data(s.utf8)) }
}

