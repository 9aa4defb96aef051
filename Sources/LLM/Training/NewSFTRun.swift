// Setting up a supervised fine-tuning (SFT) run: a trained model (a checkpoint, a Hugging Face folder or a run
// directory) and a JSONL file of conversations become a new run directory that `Trainer` trains like any other,
// with conversations packed into rows and the loss on the assistant's replies only (`ConversationLoader`).
import Foundation

public struct NewSFTRun {
    public var runDirectory: String
    /// The model to fine-tune: an llm.c .bin, a Hugging Face folder, or a run directory (its newest weights and
    /// its tokenizer).
    public var initFrom: String
    /// "gpt2" or a tokenizer file; nil takes the run directory's, or GPT-2's for a checkpoint or folder.
    public var tokenizer: String?
    /// Training conversations (JSONL) and, optionally, held-out ones; otherwise `valFraction` of them is held out.
    public var data: String
    public var valData: String?
    public var valFraction = 0.05
    /// Passes over the training conversations; when set, it decides `training.steps`.
    public var epochs: Double?
    /// The chat format: nil or "auto" (the model's own template, as `LoadedModel.load` finds it, else nanochat's),
    /// "nanochat", or a built-in template (`ChatTemplate.builtinNames`). A model with a template is fine-tuned
    /// in it: its vocabulary is kept and the template goes into the run (chat_template.jinja).
    public var chatFormat: String?
    /// Sequence length; nil takes the model's context, at most 512.
    public var seq: Int?
    /// Optimization settings; its data and tokenizer fields are filled in here.
    public var training: TrainingConfig
    /// Train a LoRA adapter on the frozen model instead of the model itself.
    public var lora: LoRAConfig?
    /// With `lora`, a GGUF model's quantized tensors stay in their blocks (QLoRA), dequantized on the fly in both
    /// passes, so memory stays near the file's size; false dequantizes them to float32 first.
    public var quantizedBase = true
    /// Once the run is set up, point `latest` beside it at it (`RunDirectory.linkAsLatest`), as `llm sft` does for
    /// a run in its default folder, runs/. `initFrom` is resolved first, so `--init runs/latest` fine-tunes (and
    /// the config records) the run the link named when this started. A link that cannot be made is reported to
    /// `status`, not thrown.
    public var linksLatest = false

    public init(runDirectory: String, initFrom: String, tokenizer: String?, data: String, valData: String?,
                training: TrainingConfig) {
        self.runDirectory = runDirectory
        self.initFrom = initFrom
        self.tokenizer = tokenizer
        self.data = data
        self.valData = valData
        self.training = training
    }

    /// Loads the model, grows its vocabulary to hold nanochat's chat tokens if it is trained in that format and
    /// needs them, and returns a trainer at step 0. A run already in `runDirectory` is refused, unless it never
    /// reached a checkpoint: that one is replaced (`status` says so).
    public func start(parallel: ParallelFor, communicator: any Communicator = SingleProcess(),
                      status: (String) -> Void = { _ in }) throws -> Trainer {
        let run = RunDirectory(runDirectory)
        try run.prepareFreshStart(status: status)  // a run there that never reached a checkpoint is replaced
        try ConversationLoader.checkHeldOutFraction(valFraction)
        // What the run records and resume reads again: never through a link such as runs/latest, which this
        // run (or a later one) moves on.
        let initFrom = RunDirectory.resolvingLinks(self.initFrom)
        let tokenizer = self.tokenizer.map { $0 == "gpt2" ? $0 : RunDirectory.resolvingLinks($0) }
        let data = RunDirectory.resolvingLinks(self.data), valData = self.valData.map(RunDirectory.resolvingLinks)
        var config = training
        config.conversations = .init(train: absolute(data), val: valData.map(absolute), valFraction: valFraction)
        config.trainShards = ""
        config.valShards = nil

        let loaded = try LoadedModel.load(initFrom, tokenizer: tokenizer, chatFormat: chatFormat,
                                          quantized: lora != nil && quantizedBase)
        if lora != nil && loaded.weights.adapter != nil {
            throw TrainingError.invalidConfig("\(initFrom) is itself a LoRA run: fold its adapter into a model first (llm merge), then train a new adapter on that")
        }
        let template = loaded.chatFormat as? TemplateChatFormat
        let format: any ChatFormat
        var weights: ModelWeights
        if let template {
            // The model's own chat format: its tokens are already in its vocabulary.
            format = template
            weights = loaded.weights
            status("conversations rendered with \(template.origin)")
        } else {
            let renderer = ChatRenderer(tokenizer: loaded.tokenizer)
            format = renderer
            if lora != nil && renderer.requiredVocabSize > loaded.weights.config.vocabSize {
                throw TrainingError.invalidConfig("LoRA leaves the model's embedding frozen, so its vocabulary of \(loaded.weights.config.vocabSize) cannot grow to hold nanochat's chat tokens: fine-tune \(initFrom) in a chat template (--chat-format \(ChatTemplate.builtinNames.first ?? "chatml")), or fully (without --lora-rank)")
            }
            weights = try loaded.weights.growingVocabulary(to: renderer.requiredVocabSize, seed: config.seed)
            if weights !== loaded.weights {
                status("grew the vocabulary from \(loaded.weights.config.vocabSize) to \(weights.config.vocabSize) for the chat tokens")
            }
        }
        if let lora {
            let adapter = try LoRAAdapter(config: lora, model: weights.config)
            adapter.initialize(seed: config.seed)
            let base = weights.quantized == nil ? "float32" : "kept in its GGUF blocks (\(weights.quantized!.typeSummary))"
            weights = try weights.withAdapter(adapter)
            status("LoRA rank \(lora.rank), alpha \(lora.alpha) on \(adapter.parts.count) layers: \(adapter.parameterCount) trainable parameters; the base is frozen, \(base)")
        }
        config.seq = seq ?? min(512, weights.config.maxSeqLen)
        guard config.seq <= weights.config.maxSeqLen else {
            throw TrainingError.shapeMismatch("--seq \(config.seq) exceeds the model's maximum sequence length \(weights.config.maxSeqLen)")
        }

        if let epochs {
            // Steps for that many passes: count the packed batches of the training split.
            let all = try Conversation.readJSONL(path: data)
            let train = valData == nil ? ConversationLoader.split(all, heldOutFraction: valFraction, seed: config.seed).train : all
            let loader = try ConversationLoader(conversations: train, renderer: format,
                                                batch: config.batch, seq: config.seq, order: .sequential,
                                                vocabSize: weights.config.vocabSize, source: data)
            config.steps = max(1, Int((epochs * Double(loader.batchesPerEpoch) / Double(config.accumulationSteps)).rounded(.up)))
            config.warmupSteps = min(config.warmupSteps, config.steps)
            status("\(train.count) training conversations in \(loader.batchesPerEpoch) batches of \(config.batch)×\(config.seq); \(config.steps) steps for \(epochs) epoch\(epochs == 1 ? "" : "s")")
        }
        try config.validate()

        // A start that fails (unreadable conversations, say) leaves nothing behind: the folder it made goes, with
        // the tokenizer and template it copied there.
        let created = !FileManager.default.fileExists(atPath: run.path)
        let trainer: Trainer
        do {
            do { try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true) } catch {
                throw FormatError.writeFailed(path: run.path, reason: "cannot create the run directory")
            }
            // GPT-2's tokenizer is named; any other is copied into the run, so the run stands alone: a tiktoken-style
            // one as the project's tokenizer file, a Hugging Face or GGUF one as a GGUF file of its metadata alone.
            let initRun = RunDirectory.isRun(initFrom) ? RunDirectory(initFrom) : nil
            let usesGPT2 = try tokenizer.map { $0 == "gpt2" } ?? initRun.map { try $0.readConfig().training.tokenizer == "gpt2" }
                ?? !(isGGUF(initFrom) || FileManager.default.fileExists(atPath: initFrom + "/tokenizer.json"))
            if usesGPT2 {
                config.tokenizer = "gpt2"
            } else if loaded.tokenizer.isRankBased {
                try loaded.tokenizer.save(to: run.path + "/tokenizer.tok")
                config.tokenizer = "tokenizer.tok"
            } else {
                var writer = GGUFWriter()
                for (key, value) in try loaded.tokenizer.ggufMetadata(vocabularySize: loaded.tokenizer.vocabSize,
                                                                      path: run.path + "/tokenizer.gguf") {
                    writer.add(key, value)
                }
                try writer.write(to: run.path + "/tokenizer.gguf")
                config.tokenizer = "tokenizer.gguf"
            }
            if let template {
                // The template and the model's end tokens, which resume and `llm chat --model RUN` rebuild it from.
                let eos = try initRun.map { try $0.readConfig().training.chatTemplate?.eos ?? [] }
                    ?? (isDirectory(initFrom) ? HuggingFaceFolder.generationEOS(folder: initFrom) : [])
                try writeFileAtomically(run.path + "/chat_template.jinja") { try $0.write(Array(template.template.source.utf8)) }
                config.chatTemplate = .init(path: "chat_template.jinja", eos: eos)
            }
            let runConfig = RunConfig(model: weights.config, training: config, initializedFrom: absolute(loaded.weightsPath),
                                      lora: lora.map { LoRARun(adapter: $0, base: absolute(loaded.weightsPath),
                                                               quantizedBase: weights.quantized != nil) })
            trainer = try Trainer.start(run: run, config: runConfig, weights: weights, tokenizer: loaded.tokenizer,
                                        parallel: parallel, communicator: communicator)
        } catch {
            if created { try? FileManager.default.removeItem(atPath: run.path) }
            throw error
        }
        if linksLatest { run.linkAsLatestReporting(status: status) }
        return trainer
    }

    private func absolute(_ path: String) -> String { RunDirectory.absolute(path) }
}
