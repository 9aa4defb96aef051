// RL (GRPO): the per-position weighted backward it is built on, checked against the masked-mean loss's, and the
// trainer's pieces: which reply tokens get a gradient, and no update when a step has no signal.
import Foundation
import Testing
@testable import LLM

@Suite struct GRPOTests {
    static let config = try! ModelPreset.llama(layers: 1, heads: 2, channels: 16, kvHeads: 1, vocabSize: 40, maxSeqLen: 8)
    static let inputs: [Int32] = (0..<16).map { Int32($0 * 7 % 40) }
    static let targets: [Int32] = (0..<16).map { Int32($0 * 3 % 40) }

    static func gradients(targets: [Int32], weights: [Float]?, lossScale: Float = 1) throws -> [Float] {
        let model = try Transformer(weights: .random(config: config, seed: 5), batch: 2, seq: 8,
                                    parallel: ParallelFor(threads: 1))
        try model.forward(inputs: inputs, targets: targets)
        model.zeroGradients()
        if let weights { try model.backward(positionWeights: weights) } else { try model.backward(lossScale: lossScale) }
        return model.grads.withBuffer { Array($0) }
    }

    /// One position weighted 1, the others 0, is the gradient of that position's loss alone: the mean loss of a
    /// forward pass where only it is supervised.
    @Test func aWeightedPositionIsItsLossAlone() throws {
        for k in [0, 5, 13] {
            var w = [Float](repeating: 0, count: 16)
            w[k] = 1
            let weighted = try Self.gradients(targets: Self.targets, weights: w)
            var only = [Int32](repeating: -1, count: 16)
            only[k] = Self.targets[k]
            let alone = try Self.gradients(targets: only, weights: nil)
            #expect(weighted == alone, "position \(k)")
            #expect(weighted.contains { $0 != 0 })
        }
    }

    /// Weights of lossScale/N everywhere are the mean loss's backward, bit for bit; a sign flips the gradient.
    @Test func uniformWeightsAreTheMeanLoss() throws {
        let mean = try Self.gradients(targets: Self.targets, weights: nil, lossScale: 0.5)
        #expect(try Self.gradients(targets: Self.targets, weights: [Float](repeating: 0.5 / 16, count: 16)) == mean)
        let negated = try Self.gradients(targets: Self.targets, weights: [Float](repeating: -0.5 / 16, count: 16))
        #expect(zip(negated, mean).allSatisfy { $0 == -$1 })
    }

    /// The calculator's output (<|output_start|> … <|output_end|>) is fed, not chosen: no gradient goes there.
    @Test func calculatorOutputGetsNoGradient() throws {
        let t = ToolUseTests.self
        let weights = t.scriptedModel(t.callScript(from: t.prompt.last!, expression: "2+3", after: [t.id("5")]))
        var c = RLConfig()
        c.maxNewTokens = 20
        let trainer = try GRPOTrainer(weights: weights, format: ChatRenderer(tokenizer: t.tokenizer), endTokens: [],
                                      config: c, parallel: ParallelFor(threads: 1))
        let reply = try trainer.reply(to: t.prompt, parameters: t.greedy)
        let start = try #require(reply.tokens.firstIndex(of: t.chat.outputStart))
        let end = try #require(reply.tokens.firstIndex(of: t.chat.outputEnd))
        #expect(reply.tokens[..<start].contains(t.chat.pythonEnd))
        for i in reply.tokens.indices { #expect(reply.chosen[i] == !(start...end).contains(i), "token \(i)") }
        #expect(reply.tokens.last == t.chat.assistantEnd)  // the choice to stop is the model's too
        #expect(reply.text.contains("<|output_start|>5<|output_end|>"))
    }

    /// Every reply of a problem rewarded alike gives every advantage 0: the step changes no weight.
    @Test func aStepWithoutSignalChangesNothing() throws {
        let t = ToolUseTests.self
        let config = try ModelPreset.nanochat(depth: 1, vocabSize: t.chat.requiredVocabSize, maxSeqLen: 64)
        let weights = ModelWeights.random(config: config, seed: 9)
        let before = weights.arena.withBuffer { Array($0) }
        var c = RLConfig()
        (c.problemsPerStep, c.samplesPerProblem, c.maxNewTokens, c.microBatch, c.evalProblems) = (1, 2, 4, 2, 2)
        let trainer = try GRPOTrainer(weights: weights, format: ChatRenderer(tokenizer: t.tokenizer), endTokens: [],
                                      config: c, parallel: ParallelFor(threads: 1))
        let step = try trainer.trainStep()  // a random model answers no arithmetic right: rewards 0, 0
        #expect(step.meanReward == 0 && step.tokens == 0)
        #expect(weights.arena.withBuffer { Array($0) } == before)
        #expect(try trainer.evaluate() == 0)
    }

    @Test func settingsAreChecked() {
        var c = RLConfig()
        c.samplesPerProblem = 1
        #expect(throws: TrainingError.invalidConfig("--samples 1 must be between 2 and 256 (advantages need at least two)")) { try c.validate() }
    }
}
