// Llama, Qwen2, Gemma 3 and nanochat through the one transformer: each committed generic fixture against PyTorch
// (forward, every gradient, ten AdamW steps, final weights), Hugging Face folders written back byte for byte,
// the generator's cached forward against the training forward (GQA, sliding windows, RoPE at every position),
// and a training step that allocates nothing, for every architecture.
import Foundation
import MallocCounter
import Testing
@testable import LLM

@Suite struct ArchitectureTests {
    @Test(arguments: Fixtures.architectureNames, [1, 2])
    func forwardBackwardAndTrajectoryMatchPyTorch(fixture name: String, threads: Int) throws {
        let fixture = try ParityFixture.load(Fixtures.path(name))
        let state = fixture.state, trajectory = try #require(fixture.trajectory)
        let model = try Transformer(weights: fixture.weights, batch: state.batch, seq: state.seq,
                                    parallel: ParallelFor(threads: threads))
        let checks = try Parity.checkForwardBackward(model, state: state)
        #expect(checks.count == 2 + fixture.weights.layout.present.count)
        for check in checks { #expect(check.passed, "\(name) \(check.name): \(check.difference) > \(check.bound)") }

        let steps = try Parity.runTrajectory(model, state: state, trajectory: trajectory)
        #expect(steps.count == 10)
        for s in steps {
            #expect(s.lossCheck.passed, "\(name) step \(s.step) loss \(s.loss) vs \(s.referenceLoss)")
            #expect(s.gradNormCheck.passed, "\(name) step \(s.step) grad norm \(s.gradNorm) vs \(s.referenceGradNorm)")
        }
        for check in Parity.checkFinalWeights(model.weights, reference: try #require(fixture.final),
                                              referenceGradients: state.gradients, trajectory: trajectory) {
            #expect(check.passed, "\(name) \(check.name): \(check.difference) > \(check.bound)")
        }
    }

    /// What each fixture is there to cover, read back from its config.
    @Test func fixturesCoverEveryPart() throws {
        let configs = try Fixtures.architectureNames.map { try HuggingFaceFolder.readConfig(folder: Fixtures.path($0, "hf")) }
        let (llama, qwen, gemma, nanochat) = (configs[0], configs[1], configs[2], configs[3])
        #expect(llama.architecture == .llama && llama.numKVHeads < llama.numHeads && !llama.tiedEmbeddings)
        #expect(qwen.architecture == .qwen2 && qwen.numKVHeads == 1 && qwen.qkvBias && !qwen.attnOutBias)
        #expect(try ParityFixture.load(Fixtures.path("qwen2-mqa")).state.seq == qwen.maxSeqLen, "T == maxT")
        #expect(gemma.architecture == .gemma3 && gemma.norm == .rmsNormOnePlus && gemma.qkNorm == .beforeRoPE)
        #expect(gemma.slidingWindow == 5 && gemma.slidingLayers == [true, true, false] && gemma.sandwichNorms)
        #expect(gemma.headSize * gemma.numHeads != gemma.channels && gemma.scaleEmbeddings)
        #expect(gemma.queryPreAttentionScalar == 24 && gemma.logitSoftcap == 30)
        #expect(gemma.ropeTheta == 1_000_000 && gemma.ropeLocalTheta == 10_000)
        #expect(nanochat.norm == .rmsNormNoWeight && nanochat.qkNorm == .afterRoPE && nanochat.normAfterEmbedding)
        #expect(nanochat.logitSoftcap == 15 && nanochat.activation == .reluSquared && !nanochat.tiedEmbeddings)
    }

    /// The checks must be able to fail: Gemma's sliding window widened by one moves the logits past the bound.
    @Test func aWrongWindowFailsTheChecks() throws {
        let fixture = try ParityFixture.load(Fixtures.path("gemma3-window"))
        var config = fixture.weights.config
        config.slidingWindow += 1
        let weights = ModelWeights(config: config)
        fixture.weights.arena.withBuffer { src in weights.arena.withMutableBuffer { _ = $0.update(fromContentsOf: src) } }
        let model = try Transformer(weights: weights, batch: fixture.state.batch, seq: fixture.state.seq,
                                    parallel: ParallelFor(threads: 1))
        let checks = try Parity.checkForwardBackward(model, state: fixture.state)
        #expect(!checks[0].passed, "logits should differ")
    }

    /// Reading a fixture's folder and writing it back gives transformers' own safetensors file, byte for byte, and
    /// a config that reads back to the same ModelConfig.
    @Test(arguments: Fixtures.architectureNames)
    func huggingFaceFolderRoundTrips(fixture name: String) throws {
        try withTemporaryDirectory { dir in
            let weights = try HuggingFaceFolder.read(folder: Fixtures.path(name, "hf"))
            try HuggingFaceFolder.write(weights, to: dir + "/hf")
            #expect(try readBytes(dir + "/hf/model.safetensors") == (try Fixtures.bytes(name, "hf/model.safetensors")))
            #expect(try HuggingFaceFolder.readConfig(folder: dir + "/hf") == weights.config)
            #expect(throws: FormatError.self) { try LLMCCheckpoint.write(weights, to: dir + "/model.bin") }
        }
    }

    /// The generator's prefill and decode steps (RoPE at each position, the cache of H_kv heads, sliding windows,
    /// softcap) give the training model's full-forward logits at every position.
    @Test(arguments: Fixtures.architectureNames, [1, 3])
    func cachedLogitsEqualAFullForward(fixture name: String, threads: Int) throws {
        let weights = try HuggingFaceFolder.read(folder: Fixtures.path(name, "hf"))
        let c = weights.config, T = min(c.maxSeqLen, 20), V = c.vocabSize, Vp = c.paddedVocabSize
        var rng = SplitMix64(seed: 9)
        let tokens = (0..<T).map { _ in Int32(rng.next() % UInt64(V)) }
        let full = try Transformer(weights: weights, batch: 1, seq: T, parallel: ParallelFor(threads: threads))
        try full.forward(inputs: tokens)
        let reference = full.logits()
        let generator = Generator(weights: weights, parallel: ParallelFor(threads: threads))
        try generator.forward(tokens[0..<6])
        for t in 5..<T {
            if t > 5 { try generator.forward(tokens[t...t]) }
            let logits = generator.logits()
            let diff = (0..<V).reduce(Float(0)) { max($0, abs(logits[$1] - reference[t * Vp + $1])) }
            #expect(diff <= 2e-5, "\(name): position \(t) logits differ by \(diff)")
        }
    }

    /// A batched decode step over several slots, each at its own position, gives each row what one sequence alone
    /// gets (the engine's path, with the caches of H_kv heads and sliding windows).
    @Test(arguments: ["gemma3-window", "nanochat-tiny"])
    func batchedDecodeEqualsOneSequenceAlone(fixture name: String) throws {
        let weights = try HuggingFaceFolder.read(folder: Fixtures.path(name, "hf"))
        let V = weights.config.vocabSize
        var rng = SplitMix64(seed: 4)
        let prompts = [9, 3, 14].map { n in (0..<n).map { _ in Int32(rng.next() % UInt64(V)) } }
        let next = prompts.map { _ in Int32(rng.next() % UInt64(V)) }
        let batched = BatchedGenerator(weights: weights, slots: 3, parallel: ParallelFor(threads: 2))
        for (slot, prompt) in prompts.enumerated() { try batched.prefill(slot: slot, tokens: prompt[...]) }
        // Rows in another order than slots, to catch a row/slot mix-up.
        for (row, slot) in [2, 0, 1].enumerated() {
            batched.setRow(row, slot: slot, token: next[slot], position: prompts[slot].count)
        }
        batched.decode(rows: 3)
        for (row, slot) in [2, 0, 1].enumerated() {
            let alone = Generator(weights: weights, parallel: ParallelFor(threads: 2))
            try alone.forward((prompts[slot] + [next[slot]])[...])
            let expected = alone.logits(), got = batched.withLogits(row: row) { Array($0) }
            let diff = zip(got, expected).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            #expect(diff <= 1e-5, "\(name): slot \(slot) differs by \(diff)")
        }
    }

    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"), arguments: Fixtures.architectureNames)
    func aTrainingStepAllocatesNothing(fixture name: String) throws {
        let weights = try HuggingFaceFolder.read(folder: Fixtures.path(name, "hf"))
        let V = weights.config.vocabSize
        let model = try Transformer(weights: weights, batch: 2, seq: 8, parallel: ParallelFor(threads: 1))
        let inputs = (0..<16).map { Int32($0 * 7 % V) }, targets = (0..<16).map { Int32($0 * 3 % V) }
        func step(_ t: Int) throws {
            try model.forward(inputs: inputs, targets: targets)
            model.zeroGradients()
            try model.backward()
            try model.update(AdamWConfig(learningRate: 1e-3), step: t)
        }
        try step(1)
        malloc_counter_arm()
        try step(2)
        let count = malloc_counter_disarm()
        #expect(count == 0, "\(name): a training step made \(count) heap allocations")
    }

    /// Each preset builds, validates and initialises as documented.
    @Test func presetsFollowTheirFamilies() throws {
        let nano = try ModelPreset.config(.nanochat, "d20", vocabSize: 65536, maxSeqLen: 2048)
        #expect(nano.channels == 1280 && nano.numHeads == 10 && nano.headSize == 128 && nano.hiddenSize == 4 * 1280)
        #expect(try ModelPreset.config(.nanochat, "d3", vocabSize: 100).channels == 256)
        let w = ModelWeights.random(config: try ModelPreset.config(.nanochat, "d2", vocabSize: 100, maxSeqLen: 16), seed: 1)
        #expect(w.tensor(.lmHead).allSatisfy { $0 == 0 } && w.tensor(.attprojw).allSatisfy { $0 == 0 })
        let embedding = w.tensor(.wte).prefix(100 * 128)
        let std = (embedding.reduce(0) { $0 + Double($1 * $1) } / Double(embedding.count)).squareRoot()
        #expect(abs(std - 1) < 0.05, "nanochat's embedding is N(0, 1), got std \(std)")
        let llama = try ModelPreset.config(.llama, "d12", vocabSize: 50257)
        #expect(llama.numKVHeads == 4 && llama.hiddenSize == 2048 && llama.tiedEmbeddings && llama.ropeTheta == 500_000)
        #expect(throws: ModelError.self) { try ModelPreset.config(.gemma3, "d12") }
    }
}
