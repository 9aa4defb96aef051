// Everything a training run is configured with, saved as RUN_DIR/config.json so `--resume` needs nothing else.

public struct TrainingConfig: Codable, Sendable, Equatable {
    /// Train and val token shards (glob patterns), relative to the run directory or absolute.
    public var trainShards: String
    public var valShards: String?
    /// "gpt2", or a tokenizer file (from `llm tokenizer train`), relative to the run directory or absolute.
    public var tokenizer: String

    public var batch = 8                       // B: sequences per micro-batch
    public var seq = 128                       // T: tokens per sequence
    public var totalBatchTokens: Int? = nil    // tokens per optimizer step; a multiple of B·T (accumulation)
    public var steps = 200                     // optimizer steps in all

    public var learningRate = 1e-3
    public var schedule: LearningRateSchedule.Kind = .cosine
    public var warmupSteps = 20
    public var finalFraction = 0.1             // the last step's lr is learningRate × finalFraction
    public var decayFraction = 0.2             // WSD: the final part of training that decays
    public var weightDecay = 0.1
    public var gradClip = 1.0
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var eps = 1e-8

    public var seed: UInt64 = 1337             // data order and samples
    public var shuffle = true
    public var evalEvery = 50                  // steps between validation passes (0: never)
    public var evalBatches = 10
    public var sampleEvery = 100               // steps between text samples (0: never)
    public var sampleTokens = 64
    public var checkpointEvery = 100           // steps between checkpoints (0: only at the end)
    public var keepCheckpoints = 2
    public var skipNonFinite = false           // skip a step whose loss or gradient norm is not finite
    /// SFT: conversations instead of token shards (trainShards and valShards are then unused).
    public var conversations: ConversationData? = nil

    /// Where SFT's conversations come from.
    public struct ConversationData: Codable, Sendable, Equatable {
        /// A JSONL file of conversations (`Conversation.readJSONL`), relative to the run directory or absolute.
        public var train: String
        /// Held-out conversations for evals; nil holds out `valFraction` of `train` (seeded by `seed`).
        public var val: String?
        public var valFraction: Double

        public init(train: String, val: String?, valFraction: Double) {
            self.train = train
            self.val = val
            self.valFraction = valFraction
        }
    }

    public init(trainShards: String, valShards: String?, tokenizer: String) {
        self.trainShards = trainShards
        self.valShards = valShards
        self.tokenizer = tokenizer
    }

    /// Micro-batches per optimizer step.
    public var accumulationSteps: Int { (totalBatchTokens ?? batch * seq) / (batch * seq) }

    /// Checks the numbers make sense together; messages name the flag.
    public func validate() throws(TrainingError) {
        func fail(_ s: String) -> TrainingError { .invalidConfig(s) }
        if batch < 1 || seq < 1 { throw fail("--batch and --seq must be positive") }
        if steps < 1 { throw fail("--steps must be positive") }
        if let t = totalBatchTokens, t < batch * seq || t % (batch * seq) != 0 {
            throw fail("--total-batch-tokens \(t) must be a multiple of batch × seq = \(batch * seq)")
        }
        if !(learningRate > 0) { throw fail("--lr must be positive") }
        if warmupSteps < 0 || warmupSteps > steps { throw fail("--warmup \(warmupSteps) must be between 0 and --steps \(steps)") }
        if !(0...1).contains(finalFraction) { throw fail("--final-fraction must be between 0 and 1") }
        if !(0...1).contains(decayFraction) { throw fail("--decay-fraction must be between 0 and 1") }
        if weightDecay < 0 || gradClip < 0 { throw fail("--weight-decay and --grad-clip must not be negative") }
        if let c = conversations, !(0..<1).contains(c.valFraction) { throw fail("--val-fraction must be in [0, 1)") }
        if evalEvery < 0 || sampleEvery < 0 || checkpointEvery < 0 || evalBatches < 1 || keepCheckpoints < 1 {
            throw fail("eval, sample and checkpoint intervals must not be negative; --eval-batches and --keep-checkpoints at least 1")
        }
    }

    public func learningRateSchedule() throws -> LearningRateSchedule {
        try LearningRateSchedule(kind: schedule, maxLR: learningRate, warmupSteps: warmupSteps, totalSteps: steps,
                                 finalFraction: finalFraction, decayFraction: decayFraction)
    }
}

/// Errors a training run reports: each one line, naming the file, flag or step.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    case invalidConfig(String)
    case shapeMismatch(String)
    case noCheckpoint(runDirectory: String)
    case notARun(runDirectory: String, reason: String)
    case runExists(runDirectory: String)
    case nonFinite(step: Int, what: String)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid training configuration: \(why)"
        case .shapeMismatch(let why): why
        case .noCheckpoint(let dir): "\(dir): no complete checkpoint to resume from"
        case let .notARun(dir, reason): "\(dir): not a training run (\(reason))"
        case .runExists(let dir): "\(dir) already holds a run; resume it with --resume \(dir) or choose another --out"
        case let .nonFinite(step, what):
            "step \(step): \(what) is not finite; stopping (the last checkpoint is intact; --skip-nonfinite skips such steps)"
        }
    }
}
