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
    /// Sequence length; nil takes the model's context, at most 512.
    public var seq: Int?
    /// Optimization settings; its data and tokenizer fields are filled in here.
    public var training: TrainingConfig

    public init(runDirectory: String, initFrom: String, tokenizer: String?, data: String, valData: String?,
                training: TrainingConfig) {
        self.runDirectory = runDirectory
        self.initFrom = initFrom
        self.tokenizer = tokenizer
        self.data = data
        self.valData = valData
        self.training = training
    }

    /// Loads the model, grows its vocabulary to hold the chat tokens if needed, and returns a trainer at step 0.
    public func start(parallel: ParallelFor, status: (String) -> Void = { _ in }) throws -> Trainer {
        let run = RunDirectory(runDirectory)
        if FileManager.default.fileExists(atPath: run.configPath) { throw TrainingError.runExists(runDirectory: run.path) }
        try ConversationLoader.checkHeldOutFraction(valFraction)
        var config = training
        config.conversations = .init(train: absolute(data), val: valData.map(absolute), valFraction: valFraction)
        config.trainShards = ""
        config.valShards = nil

        let loaded = try LoadedModel.load(initFrom, tokenizer: tokenizer)
        let chatTokens = ChatTokens(tokenizer: loaded.tokenizer)
        let weights = try loaded.weights.growingVocabulary(to: chatTokens.requiredVocabSize, seed: config.seed)
        if weights !== loaded.weights {
            status("grew the vocabulary from \(loaded.weights.config.vocabSize) to \(weights.config.vocabSize) for the chat tokens")
        }
        config.seq = seq ?? min(512, weights.config.maxSeqLen)
        guard config.seq <= weights.config.maxSeqLen else {
            throw TrainingError.shapeMismatch("--seq \(config.seq) exceeds the model's maximum sequence length \(weights.config.maxSeqLen)")
        }

        if let epochs {
            // Steps for that many passes: count the packed batches of the training split.
            let all = try Conversation.readJSONL(path: data)
            let train = valData == nil ? ConversationLoader.split(all, heldOutFraction: valFraction, seed: config.seed).train : all
            let loader = try ConversationLoader(conversations: train, renderer: ChatRenderer(tokenizer: loaded.tokenizer),
                                                batch: config.batch, seq: config.seq, order: .sequential,
                                                vocabSize: weights.config.vocabSize, source: data)
            config.steps = max(1, Int((epochs * Double(loader.batchesPerEpoch) / Double(config.accumulationSteps)).rounded(.up)))
            config.warmupSteps = min(config.warmupSteps, config.steps)
            status("\(train.count) training conversations in \(loader.batchesPerEpoch) batches of \(config.batch)×\(config.seq); \(config.steps) steps for \(epochs) epoch\(epochs == 1 ? "" : "s")")
        }
        try config.validate()

        do { try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true) } catch {
            throw FormatError.writeFailed(path: run.path, reason: "cannot create the run directory")
        }
        // GPT-2's tokenizer is named; any other is copied into the run, so the run stands alone.
        let runTokenizer = try tokenizer ?? (RunDirectory.isRun(initFrom) ? RunDirectory(initFrom).readConfig().training.tokenizer : "gpt2")
        if runTokenizer == "gpt2" {
            config.tokenizer = "gpt2"
        } else {
            try loaded.tokenizer.save(to: run.path + "/tokenizer.tok")
            config.tokenizer = "tokenizer.tok"
        }
        let runConfig = RunConfig(model: weights.config, training: config, initializedFrom: absolute(loaded.weightsPath))
        return try Trainer.start(run: run, config: runConfig, weights: weights, tokenizer: loaded.tokenizer,
                                 parallel: parallel)
    }

    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
