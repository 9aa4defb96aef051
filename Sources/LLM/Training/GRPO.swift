// Reinforcement learning on verifiable rewards, nanochat's simplified GRPO: for each prompt, K replies sampled
// with the current weights (the calculator on); reward 1 for a right answer, 0 otherwise; each reply's advantage
// is its reward minus the mean reward of the prompt's K; the loss is −Σ advantage · log p(token) over the
// sampled tokens, divided by how many there are (token-level normalisation); no KL term, no ratio clipping
// (one update per batch of samples, so it is on-policy). The tokens the calculator fed (its output) are not
// the model's choices and get no gradient, nor does the prompt.
import Foundation

/// The settings of an RL run.
public struct RLConfig: Codable, Sendable, Equatable {
    public var steps = 80
    /// Problems per step, and replies sampled for each (nanochat: 16 × 16 on GPUs).
    public var problemsPerStep = 8
    public var samplesPerProblem = 8
    public var maxNewTokens = 64
    public var temperature: Float = 1
    public var topK: Int? = 50
    public var learningRate = 1e-4
    /// Rows per forward/backward pass (the replies of a step are split into micro-batches of this many).
    public var microBatch = 8
    public var seed: UInt64 = 1
    /// Steps between evaluations (pass@1, greedy, on held-out problems), and how many problems.
    public var evalEvery = 20
    public var evalProblems = 200

    public init() {}

    public func validate() throws(TrainingError) {
        func bad(_ s: String) -> TrainingError { .invalidConfig(s) }
        guard (1...1_000_000).contains(steps) else { throw bad("--steps \(steps) must be between 1 and 1000000") }
        guard (1...1024).contains(problemsPerStep) else { throw bad("--problems \(problemsPerStep) must be between 1 and 1024") }
        guard (2...256).contains(samplesPerProblem) else { throw bad("--samples \(samplesPerProblem) must be between 2 and 256 (advantages need at least two)") }
        guard (1...4096).contains(maxNewTokens) else { throw bad("--max-new-tokens \(maxNewTokens) must be between 1 and 4096") }
        guard temperature.isFinite, temperature > 0, temperature <= 10 else { throw bad("--temperature \(temperature) must be in (0, 10]") }
        guard learningRate.isFinite, learningRate > 0, learningRate < 1 else { throw bad("--lr \(learningRate) must be in (0, 1)") }
        guard (1...1024).contains(microBatch) else { throw bad("--micro-batch \(microBatch) must be between 1 and 1024") }
        guard (0...1_000_000).contains(evalEvery) else { throw bad("--eval-every \(evalEvery) must be between 0 and 1000000") }
        guard (1...100_000).contains(evalProblems) else { throw bad("--eval-problems \(evalProblems) must be between 1 and 100000") }
    }
}

/// One RL step's numbers.
public struct RLStep: Sendable {
    public var step: Int
    /// The mean reward over every sampled reply.
    public var meanReward: Double
    /// Sampled tokens that got a gradient, and the loss they made.
    public var tokens: Int
    public var loss: Double
    public var seconds: Double
}

/// GRPO over a chat model trained here (nanochat's chat format with the calculator's tokens).
public final class GRPOTrainer {
    public let config: RLConfig
    public let weights: ModelWeights
    let format: any ChatFormat
    let tools: ToolCalls?
    let model: Transformer
    let generator: Generator
    let stopTokens: Set<Int32>
    let rows: Int, seq: Int
    /// Held-out problems: a seed no training step draws from.
    public let evalSet: [ArithmeticProblem]
    public private(set) var step = 0
    /// Updates made (a step whose replies all got the same reward makes none): AdamW's bias correction counts these.
    private var updates = 0

    public init(weights: ModelWeights, format: any ChatFormat, endTokens: [Int32], config: RLConfig,
                parallel: ParallelFor = .allCores) throws {
        try config.validate()
        self.config = config
        self.weights = weights
        self.format = format
        tools = format.toolCalls
        rows = config.microBatch
        // A row holds a prompt (an arithmetic question: a few dozen tokens) and its reply; longer prompts are skipped.
        seq = min(weights.config.maxSeqLen, config.maxNewTokens + 128)
        model = try Transformer(weights: weights, batch: rows, seq: seq, parallel: parallel)
        generator = Generator(weights: weights, parallel: parallel)  // reads the arena the updates write
        stopTokens = Set(format.stopTokens + endTokens)
        evalSet = ArithmeticProblems.generate(count: config.evalProblems, seed: 0xE7A1_5E7 ^ config.seed)
    }

    /// The prompt for a problem: the user's question, ready for the assistant's reply.
    func prompt(_ problem: ArithmeticProblem) throws -> [Int32] {
        try format.renderForCompletion(Conversation(messages: [.init(role: .user, content: problem.question)]))
    }

    /// A reply for `prompt`: its tokens, the stop token that ended it included (the model chose to stop, so
    /// that choice is rewarded too, as nanochat does), which of them the model chose (not fed by the
    /// calculator), and its text.
    func reply(to prompt: [Int32], parameters: GenerateParameters) throws -> (tokens: [Int32], chosen: [Bool], text: String) {
        var p = parameters
        p.maxNewTokens = min(p.maxNewTokens, seq - 1 - prompt.count)
        let result = try generator.generate(prompt: prompt, parameters: p, tools: tools) { _ in true }
        var tokens = result.tokens, chosen = [Bool](), inOutput = false
        for t in tokens {
            if let tools, t == tools.outputStart { inOutput = true }
            chosen.append(!inOutput)
            if let tools, t == tools.outputEnd { inOutput = false }
        }
        let text = try format.decode(tokens)
        if case .stopToken(let end) = result.stopReason {
            tokens.append(end)
            chosen.append(true)
        }
        return (tokens, chosen, text)
    }

    /// pass@1 on the held-out problems: the share answered right by the greedy reply.
    public func evaluate(progress: (Int) -> Void = { _ in }) throws -> Double {
        var right = 0
        let parameters = GenerateParameters(maxNewTokens: config.maxNewTokens, temperature: 0, stopTokens: stopTokens)
        for (i, problem) in evalSet.enumerated() {
            let prompt = try prompt(problem)
            guard prompt.count < seq else { continue }
            if problem.isCorrect(try reply(to: prompt, parameters: parameters).text) { right += 1 }
            progress(i + 1)
        }
        return Double(right) / Double(evalSet.count)
    }

    /// One GRPO step: sample, reward, and one update of the weights.
    public func trainStep() throws -> RLStep {
        let start = DispatchTime.now().uptimeNanoseconds
        step += 1
        let problems = ArithmeticProblems.generate(count: config.problemsPerStep,
                                                   seed: config.seed &* 0x9E37_79B9 &+ UInt64(step))
        // Sample K replies per problem and score them.
        var sequences = [(tokens: [Int32], promptCount: Int, chosen: [Bool], advantage: Float)]()
        var rewardSum = 0.0
        for (p, problem) in problems.enumerated() {
            let prompt = try prompt(problem)
            guard prompt.count < seq else { continue }
            var group = [(tokens: [Int32], chosen: [Bool], reward: Double)]()
            for k in 0..<config.samplesPerProblem {
                let seed = config.seed ^ UInt64(step) << 32 ^ UInt64(p * config.samplesPerProblem + k)
                let parameters = GenerateParameters(maxNewTokens: config.maxNewTokens, temperature: config.temperature,
                                                    topK: config.topK, seed: seed, stopTokens: stopTokens)
                let r = try reply(to: prompt, parameters: parameters)
                group.append((r.tokens, r.chosen, problem.isCorrect(r.text) ? 1 : 0))
            }
            let mean = group.reduce(0) { $0 + $1.reward } / Double(group.count)
            rewardSum += mean * Double(group.count)
            for g in group where g.reward != mean && !g.tokens.isEmpty {
                sequences.append((prompt + g.tokens, prompt.count, g.chosen, Float(g.reward - mean)))
            }
        }
        let sampled = config.problemsPerStep * config.samplesPerProblem
        // Token-level normalisation: every chosen token of the step counts once in the denominator.
        let tokens = sequences.reduce(0) { $0 + $1.chosen.filter { $0 }.count }
        var loss = 0.0
        if tokens > 0 {
            model.zeroGradients()
            var inputs = [Int32](repeating: 0, count: rows * seq)
            var targets = [Int32](repeating: -1, count: rows * seq)
            var w = [Float](repeating: 0, count: rows * seq)
            var first = 0
            while first < sequences.count {
                let batch = sequences[first..<min(first + rows, sequences.count)]
                for i in 0..<(rows * seq) { (inputs[i], targets[i], w[i]) = (0, -1, 0) }
                for (r, s) in batch.enumerated() {
                    // Position j reads tokens[j] and predicts tokens[j + 1]; a reply's token i is at j = prompt + i - 1.
                    for j in 0..<(s.tokens.count - 1) { inputs[r * seq + j] = s.tokens[j] }
                    for (i, chosen) in s.chosen.enumerated() where chosen {
                        let j = s.promptCount + i - 1
                        targets[r * seq + j] = s.tokens[j + 1]
                        w[r * seq + j] = s.advantage / Float(tokens)
                    }
                }
                try model.forward(inputs: inputs, targets: targets)
                model.withPositionLosses { losses in
                    for i in 0..<(rows * seq) where targets[i] >= 0 { loss += Double(w[i]) * Double(losses[i]) }
                }
                try model.backward(positionWeights: w)
                first += rows
            }
            updates += 1
            try model.update(AdamWConfig(learningRate: config.learningRate, weightDecay: 0, gradClip: 1), step: updates)
        }
        return RLStep(step: step, meanReward: rewardSum / Double(sampled), tokens: tokens, loss: loss,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}

extension GRPOTrainer {
    /// Makes `out` (which must not exist) the run directory of an RL run starting from the chat run `from`: its
    /// config.json with `rl` set, and the tokenizer and chat template files it names, copied. Returns it.
    public static func makeRunDirectory(from: String, out: String, config: RLConfig) throws -> RunDirectory {
        let source = RunDirectory(RunDirectory.resolvingLinks(from))
        guard RunDirectory.isRun(source.path) else {
            throw TrainingError.invalidConfig("\(from) is not a run directory: RL starts from a chat run of `llm sft`")
        }
        var runConfig = try source.readConfig()
        guard runConfig.lora == nil else { throw TrainingError.invalidConfig("\(from) is a LoRA run; RL trains a whole model") }
        guard !FileManager.default.fileExists(atPath: out) else {
            throw TrainingError.invalidConfig("\(out) already exists; give a new --out")
        }
        let weights = try source.latestWeightsPath()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let run = RunDirectory(out)
        var files = [runConfig.training.tokenizer]
        if let template = runConfig.training.chatTemplate?.path { files.append(template) }
        for file in files where file != "gpt2" && !file.hasPrefix("/") {
            try FileManager.default.copyItem(atPath: source.resolve(file), toPath: run.resolve(file))
        }
        runConfig.rl = config
        runConfig.initializedFrom = weights
        try run.writeConfig(runConfig)
        return run
    }
}
