// Setting up a new training run from what the user asked for: the tokenizer (GPT-2's, a file, or one trained
// on the input text, as nanochat does), the token shards (given, or prepared from --input into RUN/data),
// and the starting weights (a fresh model of any architecture, initialised as its family does, or a checkpoint).
import Foundation

public struct NewRun {
    public enum Model {
        /// A fresh model of this config (its vocabulary is set from the tokenizer), initialised as its family does.
        case fresh(ModelConfig)
        case initFrom(String)   // an llm.c .bin or a Hugging Face folder
    }

    public enum TokenizerChoice {
        case gpt2
        case file(String)
        case trainOnInput(vocabSize: Int)   // needs `input`
    }

    public var runDirectory: String
    public var model: Model
    public var tokenizer: TokenizerChoice
    public var input: String?               // a text file to prepare into RUN/data
    public var trainShards: String?
    public var valShards: String?
    public var training: TrainingConfig     // its shard and tokenizer fields are filled in here
    public var valFraction = 0.1
    /// Once the run is set up, point `latest` beside it at it (`RunDirectory.linkAsLatest`), as `llm train` does
    /// for a run in its default folder, runs/. A link that cannot be made is reported to `status`, not thrown.
    public var linksLatest = false

    public init(runDirectory: String, model: Model, tokenizer: TokenizerChoice, input: String?, trainShards: String?,
                valShards: String?, training: TrainingConfig) {
        self.runDirectory = runDirectory
        self.model = model
        self.tokenizer = tokenizer
        self.input = input
        self.trainShards = trainShards
        self.valShards = valShards
        self.training = training
    }

    /// Builds everything and returns a trainer at step 0. `status` gets one line per stage. A run already in
    /// `runDirectory` is refused, unless it never reached a checkpoint: that one is replaced (status says so).
    public func start(parallel: ParallelFor, communicator: any Communicator = SingleProcess(),
                      status: (String) -> Void = { _ in }) throws -> Trainer {
        let run = RunDirectory(runDirectory)
        try run.prepareFreshStart(status: status)  // a run there that never reached a checkpoint is replaced
        try training.validate()
        guard input != nil || trainShards != nil else { throw TrainingError.invalidConfig("give --input FILE or --train PATTERN") }
        if case let .fresh(shape) = model, training.seq > shape.maxSeqLen {
            throw TrainingError.shapeMismatch("--seq \(training.seq) exceeds the model's maximum sequence length \(shape.maxSeqLen) (--max-seq)")
        }
        if case .trainOnInput = tokenizer, input == nil {
            throw TrainingError.invalidConfig("training a tokenizer needs --input; otherwise pass --tokenizer gpt2 or a file")
        }
        do { try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true) } catch {
            throw FormatError.writeFailed(path: run.path, reason: "cannot create the run directory")
        }
        guard access(run.path, W_OK) == 0 else { throw FormatError.writeFailed(path: run.path, reason: "not writable") }

        // Tokenizer.
        var config = training
        let tok: Tokenizer
        switch tokenizer {
        case .gpt2:
            tok = try Tokenizer.gpt2()
            config.tokenizer = "gpt2"
        case .file(let given):
            let path = RunDirectory.resolvingLinks(given)  // recorded: a link such as runs/latest moves on
            tok = try Tokenizer.load(path)
            config.tokenizer = RunDirectory.absolute(path)
        case .trainOnInput(let vocabSize):
            let text = try readText(input!)
            let t0 = DispatchTime.now().uptimeNanoseconds
            tok = try BPETrainer.train(texts: [text], vocabSize: vocabSize, pattern: .gpt4,
                                       specialTokens: BPETrainer.chatSpecialTokens)
            try tok.save(to: run.path + "/tokenizer.tok")
            config.tokenizer = "tokenizer.tok"
            status(String(format: "trained a %d-token BPE tokenizer on %@ in %.1f s", vocabSize, input!,
                          Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
        }

        // Data.
        if let input {
            var job = DatasetPreparation(inputs: [input], outputDirectory: run.path + "/data", name: "data")
            job.valFraction = valFraction
            job.threads = parallel.threads
            job.overwrite = true  // a failed earlier start may have left shards here
            let r = try job.run(tokenizer: tok)
            config.trainShards = "data/data_train_*.bin"
            config.valShards = "data/data_val_*.bin"
            status("prepared \(input): \(r.valTokens) val + \(r.trainTokens) train tokens in \(run.path)/data")
        } else {
            // Patterns as the user meant them: relative to the current directory, not to the run directory.
            config.trainShards = RunDirectory.absolute(trainShards!)
            config.valShards = valShards.map { RunDirectory.absolute($0) }
        }

        // Weights.
        let weights: ModelWeights
        var initializedFrom: String? = nil
        switch model {
        case .fresh(var shape):
            shape.vocabSize = tok.vocabSize
            shape.paddedVocabSize = ModelConfig.pad(tok.vocabSize)
            try shape.validate()
            try MemoryBudget.checkTraining(config: shape, batch: config.batch, seq: config.seq, parallel: parallel)
            weights = .random(config: shape, seed: config.seed)
        case .initFrom(let given):
            let path = RunDirectory.resolvingLinks(given)  // recorded: a link such as runs/latest moves on
            weights = try loadWeights(path)
            initializedFrom = path
        }
        let runConfig = RunConfig(model: weights.config, training: config, initializedFrom: initializedFrom)
        let trainer = try Trainer.start(run: run, config: runConfig, weights: weights, tokenizer: tok, parallel: parallel,
                                        communicator: communicator)
        if linksLatest { run.linkAsLatestReporting(status: status) }
        return trainer
    }

    private func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.unreadable(path: path, reason: "no such file or not readable")
        }
        let bytes = [UInt8](data)
        if bytes.isEmpty { throw DataError.emptyInput(path: path) }
        if let offset = firstInvalidUTF8Offset(bytes) { throw DataError.invalidUTF8(path: path, offset: offset) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
