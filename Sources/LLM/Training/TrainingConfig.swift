// Everything a training run is configured with, saved as RUN_DIR/config.json so `--resume` needs nothing else.

public struct TrainingConfig: Codable, Sendable, Equatable {
    /// Train and val token shards (glob patterns), relative to the run directory or absolute.
    public var trainShards: String
    public var valShards: String?
    /// "gpt2", or a tokenizer file (from `llm tokenizer train`, or tokenizer.gguf: a Hugging Face or GGUF model's
    /// tokenizer as GGUF metadata), relative to the run directory or absolute.
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
    /// nanochat's Muon settings when the run trains with Muon (`--optimizer muon`); nil: AdamW for every tensor,
    /// with the settings above. Under Muon the AdamW groups use the Muon config's betas, eps and weight decay, and
    /// `learningRate` is the 1-D tensors' rate and the reference the schedule's multiplier is taken against.
    public var muon: MuonConfig? = nil

    public var seed: UInt64 = 1337             // data order and samples
    public var shuffle = true
    public var evalEvery = 50                  // steps between validation passes (0: never)
    public var evalBatches = 10
    public var sampleEvery = 100               // steps between text samples (0: never)
    public var sampleTokens = 64
    public var checkpointEvery = 100           // steps between checkpoints (0: only at the end)
    public var keepCheckpoints = 2
    public var skipNonFinite = false           // skip a step whose loss or gradient norm is not finite
    /// ZeRO stage of a data-parallel run: 1 shards AdamW's moments over the ranks (`--zero 1`); nil or 0: every
    /// rank keeps them all.
    public var zeroStage: Int? = nil
    /// SFT: conversations instead of token shards (trainShards and valShards are then unused).
    public var conversations: ConversationData? = nil
    /// SFT of a model with its own chat template: the template the conversations are rendered with; nil renders
    /// them in nanochat's format (`ChatRenderer`).
    public var chatTemplate: ChatTemplateFile? = nil

    /// A run's chat template (`TemplateChatFormat`).
    public struct ChatTemplateFile: Codable, Sendable, Equatable {
        /// The Jinja file (chat_template.jinja), relative to the run directory or absolute.
        public var path: String
        /// The model's end tokens besides the tokenizer's (a Hugging Face folder's generation_config.json).
        public var eos: [Int32]

        public init(path: String, eos: [Int32]) {
            self.path = path
            self.eos = eos
        }
    }

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

    /// The most tokens in one micro-batch (B·T): 2^31, so every index into a batch's activations fits in an
    /// Int32 and B·T·C stays far from Int's range.
    public static let maxMicroBatchTokens = 1 << 31
    /// The most tokens in one optimizer step (`totalBatchTokens`): 2^40, about a trillion, far beyond any run.
    public static let maxStepTokens = 1 << 40

    /// The optimizer the run trains with.
    public var optimizer: OptimizerKind { muon == nil ? .adamw : .muon }

    /// Micro-batches per optimizer step (1 for a configuration `validate()` rejects).
    public var accumulationSteps: Int {
        let (bt, overflow) = batch.multipliedReportingOverflow(by: seq)
        guard !overflow, bt > 0 else { return 1 }
        return max(1, (totalBatchTokens ?? bt) / bt)
    }

    /// Optimizer steps for a budget of `tokens` at `stepTokens` per step (rounded up), without overflowing for
    /// any positive inputs; at least 1.
    public static func steps(forTokens tokens: Int, stepTokens: Int) -> Int {
        precondition(tokens > 0 && stepTokens > 0, "tokens and stepTokens must be positive")
        return max(1, tokens / stepTokens + (tokens % stepTokens == 0 ? 0 : 1))
    }

    /// Checks --batch, --seq and --total-batch-tokens on their own (no overflow in B·T or the step's tokens);
    /// `validate()` starts with this. Call it before computing anything from them.
    public func validateBatchShape() throws(TrainingError) {
        func fail(_ s: String) -> TrainingError { .invalidConfig(s) }
        if batch < 1 { throw fail("--batch \(batch) must be at least 1") }
        if seq < 1 { throw fail("--seq \(seq) must be at least 1") }
        let (bt, overflow) = batch.multipliedReportingOverflow(by: seq)
        if overflow || bt > Self.maxMicroBatchTokens {
            throw fail("--batch \(batch) × --seq \(seq) is more than 2^31 tokens per micro-batch")
        }
        if let t = totalBatchTokens {
            if t < bt || t % bt != 0 {
                throw fail("--total-batch-tokens \(t) must be a positive multiple of batch × seq = \(bt)")
            }
            if t > Self.maxStepTokens { throw fail("--total-batch-tokens \(t) must be at most 2^40") }
        }
    }

    /// Checks every setting on its own and against the others; messages name the flag and the accepted range.
    /// `NewRun` and `NewSFTRun` call it before creating the run directory, `Trainer` on start and resume.
    public func validate() throws(TrainingError) {
        func fail(_ s: String) -> TrainingError { .invalidConfig(s) }
        try validateBatchShape()
        if steps < 1 { throw fail("--steps \(steps) must be at least 1") }
        if !(learningRate.isFinite && learningRate > 0) { throw fail("--lr \(learningRate) must be a finite number above 0") }
        if warmupSteps < 0 || warmupSteps > steps { throw fail("--warmup \(warmupSteps) must be between 0 and --steps \(steps)") }
        if !(finalFraction.isFinite && (0...1).contains(finalFraction)) {
            throw fail("--final-fraction \(finalFraction) must be between 0 and 1")
        }
        if !(decayFraction.isFinite && (0...1).contains(decayFraction)) {
            throw fail("--decay-fraction \(decayFraction) must be between 0 and 1")
        }
        if !(weightDecay.isFinite && weightDecay >= 0) { throw fail("--weight-decay \(weightDecay) must be a finite number ≥ 0") }
        if !(gradClip.isFinite && gradClip >= 0) { throw fail("--grad-clip \(gradClip) must be a finite number ≥ 0 (0 disables)") }
        if !(beta1.isFinite && (0..<1).contains(beta1)) { throw fail("beta1 \(beta1) must be in [0, 1)") }
        if !(beta2.isFinite && (0..<1).contains(beta2)) { throw fail("beta2 \(beta2) must be in [0, 1)") }
        if !(eps.isFinite && eps > 0) { throw fail("eps \(eps) must be a finite number above 0") }
        if let c = conversations, !(c.valFraction.isFinite && (0..<1).contains(c.valFraction)) {
            throw fail("--val-fraction \(c.valFraction) must be in [0, 1)")
        }
        if evalEvery < 0 { throw fail("--eval-every \(evalEvery) must be ≥ 0 (0: never)") }
        if evalBatches < 1 { throw fail("--eval-batches \(evalBatches) must be at least 1") }
        if sampleEvery < 0 { throw fail("--sample-every \(sampleEvery) must be ≥ 0 (0: never)") }
        if sampleEvery > 0 && sampleTokens < 1 {
            throw fail("--sample-tokens \(sampleTokens) must be at least 1 when sampling (--sample-every 0 turns samples off)")
        }
        if checkpointEvery < 0 { throw fail("--checkpoint-every \(checkpointEvery) must be ≥ 0 (0: only at the end)") }
        if keepCheckpoints < 1 { throw fail("--keep-checkpoints \(keepCheckpoints) must be at least 1") }
        try muon?.validate()
        if let z = zeroStage, !(0...1).contains(z) { throw fail("--zero \(z) must be 0 or 1") }
        if zeroStage == 1 && muon != nil {
            throw fail("--zero 1 shards AdamW's moments; Muon orthogonalises whole matrices and is not sharded yet: train with --optimizer adamw or without --zero")
        }
    }

    /// Whether the optimizer state is sharded over the ranks (ZeRO-1).
    public var shardsOptimizer: Bool { zeroStage == 1 }

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
    /// Every checkpoint of the run is damaged (newest first).
    case noIntactCheckpoint(runDirectory: String, damaged: [DamagedCheckpoint])
    /// A fresh start into a folder whose run a trainer is still running (before its first checkpoint).
    case runInUse(runDirectory: String)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid training configuration: \(why)"
        case .shapeMismatch(let why): why
        case .noCheckpoint(let dir):
            "\(dir): no checkpoint to resume from: the run never reached one; start it again with the same --out to restart it"
        case let .notARun(dir, reason): "\(dir): not a training run (\(reason))"
        case .runExists(let dir): "\(dir) already holds a run; resume it with --resume \(dir) or choose another --out"
        case let .noIntactCheckpoint(dir, damaged):
            "\(dir): no intact checkpoint to resume from: " + damaged.map(\.description).joined(separator: "; ")
        case .runInUse(let dir):
            "\(dir): a trainer is still running this run (it holds config.json's lock); stop it or choose another --out"
        case let .nonFinite(step, what):
            "step \(step): \(what) is not finite; stopping (the last checkpoint is intact; --skip-nonfinite skips such steps)"
        }
    }
}
