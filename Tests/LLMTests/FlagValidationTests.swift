// Range checks behind the `llm` commands' flags, at the library level where a library user would hit the same
// crash: `TrainingConfig.validate()` (every count and rate, overflow-safe batch shapes), `ConversationLoader`
// (bad batch shapes and held-out fractions throw instead of trapping) and `SyntheticConversations` (a count too
// large to hold). The command-line rules on top of these (--threads, --max-concurrent, --repeats, bench's
// --prompt/--new) live in the executable target: Tests/LLMCommandTests/FlagRuleTests.swift checks them.
import Foundation
import Testing
@testable import LLM

@Suite struct FlagValidationTests {
    static func config(_ change: (inout TrainingConfig) -> Void = { _ in }) -> TrainingConfig {
        var t = TrainingConfig(trainShards: "x", valShards: nil, tokenizer: "gpt2")
        change(&t)
        return t
    }

    /// The message `validate()` gives, or nil when it accepts the config.
    static func problem(_ change: (inout TrainingConfig) -> Void) -> String? {
        do {
            try config(change).validate()
            return nil
        } catch {
            guard case .invalidConfig(let why) = error else { return "unexpected \(error)" }
            return why
        }
    }

    @Test func defaultsAreValid() throws {
        try Self.config().validate()
        try Self.config { $0.conversations = .init(train: "c.jsonl", val: nil, valFraction: 0) }.validate()
    }

    @Test func countsOutOfRangeNameTheirFlag() {
        let cases: [(String, (inout TrainingConfig) -> Void)] = [
            ("--batch", { $0.batch = 0 }),
            ("--seq", { $0.seq = -1 }),
            ("--steps", { $0.steps = 0 }),
            ("--warmup", { $0.warmupSteps = -1 }),
            ("--warmup", { $0.warmupSteps = $0.steps + 1 }),
            ("--eval-every", { $0.evalEvery = -1 }),
            ("--eval-batches", { $0.evalBatches = 0 }),
            ("--sample-every", { $0.sampleEvery = -5 }),
            ("--sample-tokens", { $0.sampleEvery = 1; $0.sampleTokens = -1 }),
            ("--sample-tokens", { $0.sampleEvery = 1; $0.sampleTokens = 0 }),
            ("--checkpoint-every", { $0.checkpointEvery = -1 }),
            ("--keep-checkpoints", { $0.keepCheckpoints = 0 }),
        ]
        for (flag, change) in cases {
            let why = Self.problem(change)
            #expect(why?.hasPrefix(flag) == true, "\(flag): \(why ?? "accepted")")
        }
    }

    @Test func sampleTokensMatterOnlyWhenSampling() throws {
        try Self.config { $0.sampleEvery = 0; $0.sampleTokens = 0 }.validate()
    }

    @Test(arguments: [Double.nan, .infinity, -.infinity, -1, 0])
    func learningRateMustBeFinitePositive(lr: Double) {
        #expect(Self.problem { $0.learningRate = lr }?.hasPrefix("--lr") == true)
    }

    @Test(arguments: [Double.nan, .infinity, -0.1])
    func weightDecayAndGradClipMustBeFiniteNonNegative(x: Double) {
        #expect(Self.problem { $0.weightDecay = x }?.hasPrefix("--weight-decay") == true)
        #expect(Self.problem { $0.gradClip = x }?.hasPrefix("--grad-clip") == true)
    }

    @Test(arguments: [Double.nan, .infinity, -0.5, 1.5])
    func fractionsMustBeInRange(x: Double) {
        #expect(Self.problem { $0.finalFraction = x }?.hasPrefix("--final-fraction") == true)
        #expect(Self.problem { $0.decayFraction = x }?.hasPrefix("--decay-fraction") == true)
        #expect(Self.problem { $0.conversations = .init(train: "c", val: nil, valFraction: x) }?.hasPrefix("--val-fraction") == true)
    }

    @Test func valFractionOneIsRejected() {
        #expect(Self.problem { $0.conversations = .init(train: "c", val: nil, valFraction: 1) }?.hasPrefix("--val-fraction") == true)
    }

    @Test func optimizerConstantsMustBeSane() {
        #expect(Self.problem { $0.beta1 = 1 } != nil)
        #expect(Self.problem { $0.beta2 = .nan } != nil)
        #expect(Self.problem { $0.eps = 0 } != nil)
    }

    @Test func hugeBatchShapesAreRejectedWithoutOverflow() {
        // B·T overflows Int: rejected, not trapped.
        #expect(Self.problem { $0.batch = 1 << 62; $0.seq = 128 }?.contains("2^31") == true)
        #expect(Self.problem { $0.batch = .max; $0.seq = .max }?.contains("2^31") == true)
        // Fits Int, but over 2^31 tokens per micro-batch.
        #expect(Self.problem { $0.batch = 1 << 20; $0.seq = 1 << 12 }?.contains("2^31") == true)
        // The step's tokens: a multiple of B·T, at most 2^40.
        #expect(Self.problem { $0.batch = 1; $0.seq = 1; $0.totalBatchTokens = .max }?.hasPrefix("--total-batch-tokens") == true)
        #expect(Self.problem { $0.batch = 2; $0.seq = 3; $0.totalBatchTokens = 7 }?.hasPrefix("--total-batch-tokens") == true)
        #expect(Self.problem { $0.batch = 2; $0.seq = 3; $0.totalBatchTokens = 0 }?.hasPrefix("--total-batch-tokens") == true)
        #expect(Self.problem { $0.batch = 2; $0.seq = 3; $0.totalBatchTokens = 12 } == nil)
    }

    @Test func accumulationStepsNeverTraps() {
        #expect(Self.config { $0.batch = 0 }.accumulationSteps == 1)
        #expect(Self.config { $0.batch = .max; $0.seq = 2 }.accumulationSteps == 1)
        #expect(Self.config { $0.batch = 2; $0.seq = 3; $0.totalBatchTokens = 12 }.accumulationSteps == 2)
    }

    @Test func stepsForATokenBudgetRoundUpWithoutOverflow() {
        #expect(TrainingConfig.steps(forTokens: 1, stepTokens: 2048) == 1)
        #expect(TrainingConfig.steps(forTokens: 2048, stepTokens: 2048) == 1)
        #expect(TrainingConfig.steps(forTokens: 2049, stepTokens: 2048) == 2)
        #expect(TrainingConfig.steps(forTokens: .max, stepTokens: 2048) == Int.max / 2048 + 1)
        #expect(TrainingConfig.steps(forTokens: .max, stepTokens: 1) == .max)
    }

    /// NewRun validates before creating anything: a bad float leaves no run directory behind.
    @Test func newRunRejectsBadConfigBeforeCreatingTheRun() throws {
        try withTemporaryDirectory { dir in
            for change in [{ (t: inout TrainingConfig) in t.weightDecay = .nan }, { $0.learningRate = .infinity },
                           { $0.sampleEvery = 1; $0.sampleTokens = -1 }] {
                let run = dir + "/run"
                #expect(throws: TrainingError.self) {
                    try NewRun(runDirectory: run,
                               model: .fresh(try .gpt2(maxSeqLen: 8, vocabSize: 1, numLayers: 1, numHeads: 1, channels: 8)),
                               tokenizer: .gpt2, input: nil, trainShards: dir + "/none_*.bin", valShards: nil,
                               training: Self.config(change)).start(parallel: ParallelFor(threads: 1))
                }
                #expect(!FileManager.default.fileExists(atPath: run))
            }
        }
    }

    // MARK: - Conversations

    @Test(arguments: [Double.nan, .infinity, -0.5, 1, 2])
    func heldOutFractionOutOfRangeThrows(x: Double) {
        #expect(throws: DataError.invalidArgument("--val-fraction \(x) must be in [0, 1)")) {
            try ConversationLoader.checkHeldOutFraction(x)
        }
    }

    @Test(arguments: [0.0, 0.05, 0.999])
    func heldOutFractionInRangeIsAccepted(x: Double) throws {
        try ConversationLoader.checkHeldOutFraction(x)
    }

    @Test func loaderRejectsBadBatchShapesInsteadOfTrapping() throws {
        let conversations = SyntheticConversations.generate(count: 4, seed: 1)
        let renderer = ChatRenderer(tokenizer: try Tokenizer.gpt2())
        for (batch, seq) in [(0, 8), (1, 0), (-1, 8), (Int.max, 2), (1 << 30, 8)] {
            #expect(throws: DataError.self, "batch \(batch), seq \(seq)") {
                try ConversationLoader(conversations: conversations, renderer: renderer, batch: batch, seq: seq,
                                       order: .sequential, vocabSize: 50304, source: "test")
            }
        }
    }

    @Test func syntheticCountIsBounded() throws {
        for count in [0, -1, SyntheticConversations.maxCount + 1, .max] {
            #expect(throws: DataError.self, "count \(count)") { try SyntheticConversations.checkCount(count) }
        }
        try SyntheticConversations.checkCount(1)
        try SyntheticConversations.checkCount(SyntheticConversations.maxCount)
    }

    /// A shard's header holds its token count in 32 bits: a larger --shard-tokens is an error, not a crash, and
    /// leaves no staging folder behind.
    @Test func shardTokensBeyond32BitsAreRejected() throws {
        try withTemporaryDirectory { dir in
            try writeBytes(Array("some text to prepare".utf8), dir + "/t.txt")
            var job = DatasetPreparation(inputs: [dir + "/t.txt"], outputDirectory: dir + "/out", name: "t")
            job.shardTokens = 3_000_000_000
            #expect(throws: DataError.self) { try job.run(tokenizer: try Tokenizer.gpt2()) }
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/out")) ?? []
            #expect(leftovers.isEmpty, "left behind: \(leftovers)")
        }
    }
}
