// The training loop: gradient accumulation equals one big batch, a resumed run reproduces an uninterrupted
// one bit for bit (also after a write killed mid-checkpoint), and bad setups fail with clear errors.
import Foundation
import Testing
@testable import LLM

@Suite struct TrainerTests {
    /// k micro-batches with loss scale 1/k give the gradients of one batch holding all of them.
    @Test func gradientAccumulationEqualsOneBigBatch() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 40, numLayers: 2, numHeads: 2, channels: 16)
        let weights = ModelWeights.randomGPT2(config: config, seed: 5)
        var rng = SplitMix64(seed: 9)
        let tokens = (0..<4 * 9).map { _ in Int32(rng.next() % 40) }
        let rows = (0..<4).map { Array(tokens[$0 * 9..<$0 * 9 + 9]) }
        let x = rows.flatMap { $0.prefix(8) }, y = rows.flatMap { $0.suffix(8) }

        let big = try Transformer(weights: weights.copy(), batch: 4, seq: 8, parallel: ParallelFor(threads: 1))
        try big.forward(inputs: x, targets: y)
        big.zeroGradients()
        try big.backward()

        let small = try Transformer(weights: weights.copy(), batch: 2, seq: 8, parallel: ParallelFor(threads: 1))
        small.zeroGradients()
        for half in 0..<2 {
            try small.forward(inputs: Array(x[half * 16..<half * 16 + 16]), targets: Array(y[half * 16..<half * 16 + 16]))
            try small.backward(lossScale: 0.5)
        }
        for t in weights.layout.present {
            let a = big.gradient(t), b = small.gradient(t)
            let scale = a.reduce(Float(0)) { max($0, abs($1)) }
            let diff = zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            #expect(diff <= 1e-6 * max(scale, 1e-3), "\(t.name): \(diff) (scale \(scale))")
        }
    }

    /// Targets of -1 are ignored: the loss is the mean over the others, and ignoring a position equals
    /// dropping its term (checked against the per-position losses), with no gradient through it.
    @Test func ignoredTargetsAreLeftOutOfTheLossAndItsGradient() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 40, numLayers: 1, numHeads: 2, channels: 16)
        let weights = ModelWeights.randomGPT2(config: config, seed: 8)
        let model = try Transformer(weights: weights, batch: 1, seq: 8, parallel: ParallelFor(threads: 1))
        let x: [Int32] = [1, 5, 9, 13, 17, 21, 25, 29], y: [Int32] = [2, 6, 10, 14, 18, 22, 26, 30]
        _ = try model.forward(inputs: x, targets: y)
        let perPosition = model.withPositionLosses { Array($0) }
        var masked = y
        for i in [0, 3, 4] { masked[i] = -1 }
        let loss = try model.forward(inputs: x, targets: masked)!
        let kept = [1, 2, 5, 6, 7].map { Double(perPosition[$0]) }
        #expect(abs(Double(loss) - kept.reduce(0, +) / 5) < 1e-6)
        #expect(model.supervised == 5)
        model.zeroGradients()
        try model.backward()
        let allIgnored = try Transformer(weights: weights, batch: 1, seq: 8, parallel: ParallelFor(threads: 1))
        #expect(try allIgnored.forward(inputs: x, targets: [Int32](repeating: -1, count: 8)) == 0)
        allIgnored.zeroGradients()
        try allIgnored.backward()
        #expect(allIgnored.gradient(.fcw).allSatisfy { $0 == 0 }, "no supervised position, no gradient")
        #expect(model.gradient(.fcw).contains { $0 != 0 })
    }

    /// A tiny run: a trained 270-token tokenizer, random-token shards, a 1-layer model.
    struct Setup {
        let dir: String
        let tokenizerPath: String

        init(_ dir: String) throws {
            self.dir = dir
            let tok = try BPETrainer.train(texts: ["the cat sat on the mat, the cat ate the rat"], vocabSize: 270,
                                           pattern: .gpt4, specialTokens: ["<|bos|>"])
            tokenizerPath = dir + "/tok.tok"
            try tok.save(to: tokenizerPath)
            var rng = SplitMix64(seed: 3)
            for (name, n) in [("d_train_000001.bin", 700), ("d_train_000002.bin", 500), ("d_val_000000.bin", 300)] {
                try TokenShard.write((0..<n).map { _ in Int32(rng.next() % 270) }, to: dir + "/" + name, vocabSize: 270)
            }
        }

        func newRun(_ name: String, steps: Int = 9, accumulate: Bool = true,
                    model: ModelConfig? = nil, muon: MuonConfig? = nil) throws -> Trainer {
            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
            t.batch = 2
            t.seq = 8
            t.totalBatchTokens = accumulate ? 32 : nil
            t.steps = steps
            t.warmupSteps = 2
            t.evalEvery = 4
            t.evalBatches = 2
            t.sampleEvery = 4
            t.sampleTokens = 5
            t.checkpointEvery = 3
            t.keepCheckpoints = 5
            t.muon = muon
            return try NewRun(runDirectory: dir + "/" + name, model: .fresh(try model ?? .gpt2(maxSeqLen: 16, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16)),
                              tokenizer: .file(tokenizerPath), input: nil, trainShards: dir + "/d_train_*.bin",
                              valShards: dir + "/d_val_*.bin", training: t).start(parallel: ParallelFor(threads: 1))
        }
    }

    /// Losses, eval losses and samples of a run, by step.
    func trace(_ trainer: Trainer, stopAfter: Int? = nil, shouldStop: () -> Bool = { false }) throws -> [String] {
        var out = [String]()
        try trainer.train(stopAfter: stopAfter, observer: { event in
            switch event {
            case .step(let r): out.append("\(r.step) loss \(r.loss.bitPattern) norm \(r.gradNorm.bitPattern)")
            case .eval(let e): out.append("\(e.step) val \(e.loss.bitPattern)")
            case let .sample(step, text): out.append("\(step) sample \(text)")
            case .checkpoint: break
            }
        }, shouldStop: shouldStop)
        return out
    }

    /// Llama and nanochat runs (their weights in Hugging Face folders) resume as exactly as GPT-2's.
    @Test(arguments: [Architecture.llama, .nanochat])
    func resumedRunsAreBitIdenticalForEveryArchitecture(arch: Architecture) throws {
        let model = arch == .llama
            ? try ModelPreset.llama(layers: 2, heads: 2, channels: 16, kvHeads: 1, vocabSize: 1, maxSeqLen: 16)
            : try ModelPreset.nanochat(depth: 1, vocabSize: 1, maxSeqLen: 16)
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let whole = try trace(try setup.newRun("whole", steps: 6, model: model))
            let first = try trace(try setup.newRun("split", steps: 6, model: model), stopAfter: 3)
            let rest = try trace(try Trainer.resume(run: RunDirectory(dir + "/split"), parallel: ParallelFor(threads: 2)))
            #expect(first + rest.filter { !$0.hasPrefix("0 ") } == whole)
            let run = RunDirectory(dir + "/split")
            #expect(try run.latestWeightsPath() == dir + "/split/model")
            #expect(try loadWeights(try run.latestWeightsPath()).config.architecture == arch)
        }
    }

    /// A Muon run (its momentum buffers in optimizer.bin, its settings in config.json) resumes bit for bit, with
    /// another thread count, for a tied GPT-2 (biases, learned positions) and a GQA Llama (fused gate|up).
    @Test(arguments: [Architecture.gpt2, .llama])
    func muonRunsResumeBitExactly(arch: Architecture) throws {
        let model = arch == .llama
            ? try ModelPreset.llama(layers: 2, heads: 2, channels: 16, kvHeads: 1, vocabSize: 1, maxSeqLen: 16)
            : try ModelConfig.gpt2(maxSeqLen: 16, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16)
        var muon = MuonConfig()
        muon.momentumWarmupSteps = 4  // the momentum still rising at the checkpoint
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let whole = try trace(try setup.newRun("whole", steps: 6, model: model, muon: muon))
            let adamW = try trace(try setup.newRun("adamw", steps: 6, model: model))
            #expect(whole.filter { $0.contains("loss") } != adamW.filter { $0.contains("loss") })
            let first = try trace(try setup.newRun("split", steps: 6, model: model, muon: muon), stopAfter: 3)
            let resumed = try Trainer.resume(run: RunDirectory(dir + "/split"), parallel: ParallelFor(threads: 2))
            #expect(resumed.config.training.muon == muon && resumed.model.optimizer == .muon)
            let rest = try trace(resumed)
            #expect(first + rest.filter { !$0.hasPrefix("0 ") } == whole)
        }
    }

    /// A stop request (what SIGINT/SIGTERM/SIGHUP set in `llm train`) after step 4, between the checkpoints at 3
    /// and 6, writes a checkpoint of step 4 and returns; resuming from it gives the uninterrupted run exactly.
    @Test func aStopRequestCheckpointsAndResumesBitExactly() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let whole = try trace(try setup.newRun("whole"))
            let trainer = try setup.newRun("stopped")
            var steps = 0
            let first = try trace(trainer, shouldStop: { steps += 1; return steps == 4 })
            #expect(trainer.step == 4)
            #expect(RunDirectory(dir + "/stopped").checkpoints().map(\.step) == [3, 4])
            let rest = try trace(try Trainer.resume(run: RunDirectory(dir + "/stopped"), parallel: ParallelFor(threads: 1)))
            #expect(first + rest.filter { !$0.hasPrefix("0 ") } == whole)
        }
    }

    @Test func resumedRunsAreBitIdentical() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let whole = try trace(try setup.newRun("whole"))
            #expect(whole.count > 9)

            // Stop after 5 steps (checkpoints at 3 and 5), resume, finish.
            let first = try trace(try setup.newRun("split"), stopAfter: 5)
            let rest = try trace(try Trainer.resume(run: RunDirectory(dir + "/split"), parallel: ParallelFor(threads: 2)))
            #expect(first + rest.filter { !$0.hasPrefix("0 ") } == whole)

            // Resume from the older checkpoint after "killing" a checkpoint write of step 6 mid-way.
            let run = RunDirectory(dir + "/split")
            for c in run.checkpoints() where c.step > 3 { try FileManager.default.removeItem(atPath: c.path) }
            try FileManager.default.createDirectory(atPath: run.checkpointsPath + "/.tmp-step_000006-4242",
                                                    withIntermediateDirectories: true)
            try writeBytes([1, 2, 3], run.checkpointsPath + "/.tmp-step_000006-4242/model.bin")
            let again = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1))
            #expect(again.step == 3)
            #expect(!FileManager.default.fileExists(atPath: run.checkpointsPath + "/.tmp-step_000006-4242"))
            let tail = try trace(again)
            #expect(tail == Array(whole.drop { !$0.hasPrefix("4 ") }))
            // The log was cut back to step 3 on resume, then continued: one train record per step.
            let trainSteps = try RunLog.read(run.logPath).filter { $0.kind == .train }.map(\.step)
            #expect(trainSteps == Array(1...9))
            #expect(FileManager.default.fileExists(atPath: run.finalModelPath(for: again.config.model)))
        }
    }

    @Test func nonFiniteLossStopsWithoutACheckpoint() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let trainer = try setup.newRun("nan")
            trainer.model.weights.arena[trainer.model.weights.layout.offset(.lnfw)] = .nan
            #expect(throws: TrainingError.nonFinite(step: 1, what: "the loss (NaN)")) { try trainer.train() }
            #expect(RunDirectory(dir + "/nan").checkpoints().isEmpty)
        }
    }

    @Test func badSetupsFailClearly() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            // A run that has not reached a checkpoint may be started again, but not while its trainer lives.
            let a = try setup.newRun("a", steps: 2)
            #expect(throws: TrainingError.runInUse(runDirectory: dir + "/a")) { try setup.newRun("a") }
            withExtendedLifetime(a) {}
            #expect(throws: TrainingError.noCheckpoint(runDirectory: dir + "/a")) {
                try Trainer.resume(run: RunDirectory(dir + "/a"), parallel: ParallelFor(threads: 1))
            }
            #expect(throws: TrainingError.self) {
                try Trainer.resume(run: RunDirectory(dir + "/nothing"), parallel: ParallelFor(threads: 1))
            }
            // A shard too small for one batch names itself and the counts.
            try TokenShard.write([1, 2, 3], to: dir + "/tiny_train_000001.bin", vocabSize: 270)
            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
            t.batch = 2
            t.seq = 8
            #expect(throws: DataError.shardTooSmall(path: dir + "/tiny_train_000001.bin", tokens: 3, batch: 2, seq: 8, chunks: 1)) {
                try NewRun(runDirectory: dir + "/b", model: .fresh(try .gpt2(maxSeqLen: 8, vocabSize: 1, numLayers: 1, numHeads: 1, channels: 8)),
                           tokenizer: .file(setup.tokenizerPath), input: nil, trainShards: dir + "/tiny_train_*.bin",
                           valShards: nil, training: t).start(parallel: ParallelFor(threads: 1))
            }
            t.seq = 32
            #expect(throws: TrainingError.self) {
                try NewRun(runDirectory: dir + "/c", model: .fresh(try .gpt2(maxSeqLen: 8, vocabSize: 1, numLayers: 1, numHeads: 1, channels: 8)),
                           tokenizer: .file(setup.tokenizerPath), input: nil, trainShards: dir + "/d_train_*.bin",
                           valShards: nil, training: t).start(parallel: ParallelFor(threads: 1))
            }
        }
    }
}

/// Paths and patterns the user gives are recorded absolute: config.json's relative paths are read against the run
/// directory, so `--train data/*.bin` used to look inside the run.
@Test func userPathsAreRecordedAgainstTheCurrentDirectory() {
    #expect(RunDirectory.absolute("data/train_*.bin", in: "/home/me/project") == "/home/me/project/data/train_*.bin")
    #expect(RunDirectory.absolute("data/train_*.bin", in: "/") == "/data/train_*.bin")
    #expect(RunDirectory.absolute("/srv/shards/*.bin", in: "/home/me") == "/srv/shards/*.bin")
    #expect(RunDirectory.absolute("x.bin") == FileManager.default.currentDirectoryPath + "/x.bin")
}
