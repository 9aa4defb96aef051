// `llm rl`: reinforcement learning on arithmetic problems with verifiable answers (nanochat's simplified GRPO).
import ArgumentParser
import Foundation
import LLM

struct RLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rl",
        abstract: "Reinforcement learning on arithmetic problems a program can check (GRPO, as nanochat's chat_rl).",
        discussion: """
            Starts from a chat run of `llm sft` (nanochat's format, so the calculator is on). Each step samples \
            --samples replies to each of --problems arithmetic problems, rewards a right final number with 1, and \
            makes one update weighing each sampled token by its reply's advantage (reward minus the problem's mean), \
            normalised by the step's token count; no KL term. pass@1 (greedy) on held-out problems is measured \
            before the first step and every --eval-every steps. The result is a run directory: config.json, \
            log.jsonl (reward and pass@1) and the final weights, for `llm chat` and `llm report`.
            """)

    @Option(help: "The chat run to start from (from `llm sft`).") var model: String
    @Option(help: "The run directory to write (must not exist).") var out: String
    @Option(help: "RL steps.") var steps = 80
    @Option(help: "Problems per step.") var problems = 8
    @Option(help: "Replies sampled per problem.") var samples = 8
    @Option(help: "Most tokens in a reply.") var maxNewTokens = 64
    @Option(help: "Sampling temperature.") var temperature: Float = 1
    @Option(help: "Sample among the K most likely tokens (0 for all).") var topK = 50
    @Option(help: "AdamW learning rate.") var lr = 1e-4
    @Option(help: "Steps between pass@1 evaluations (0: only before and after).") var evalEvery = 20
    @Option(help: "Held-out problems in each evaluation.") var evalProblems = 200
    @Option(help: "Seed for the problems and the sampling.") var seed: UInt64 = 1
    @Option(help: "Worker threads (default: all cores).") var threads: Int?

    var rlConfig: RLConfig {
        var c = RLConfig()
        (c.steps, c.problemsPerStep, c.samplesPerProblem, c.maxNewTokens) = (steps, problems, samples, maxNewTokens)
        (c.temperature, c.topK, c.learningRate, c.seed) = (temperature, topK == 0 ? nil : topK, lr, seed)
        (c.evalEvery, c.evalProblems) = (evalEvery, evalProblems)
        return c
    }

    func validate() throws {
        try asValidation { try rlConfig.validate() }
        try checkRange(topK, "--top-k", 0...1_000_000)
        try checkThreads(threads)
    }

    func run() throws {
        try reportingErrors {
            let config = rlConfig
            let loaded = try LoadedModel.load(model)
            guard let format = loaded.chatFormat, format.toolCalls != nil else {
                throw TrainingError.invalidConfig("\(model) has no calculator tokens: RL needs a chat model trained here (nanochat's chat format)")
            }
            let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
            let trainer = try GRPOTrainer(weights: loaded.weights, format: format, endTokens: loaded.endTokens,
                                          config: config, parallel: parallel)
            let run = try GRPOTrainer.makeRunDirectory(from: model, out: out, config: config)
            let log = try RunLogWriter(runDirectory: run.path)
            func evaluate(_ step: Int) throws {
                let pass = try trainer.evaluate()
                try log.append(RunLogRecord(kind: .eval, step: step, accuracy: pass))
                FileHandle.standardError.write(Data(String(format: "step %d: pass@1 %.3f on %d held-out problems\n", step, pass, config.evalProblems).utf8))
            }
            FileHandle.standardError.write(Data("run \(run.path): GRPO from \(loaded.weightsPath), \(config.problemsPerStep)×\(config.samplesPerProblem) samples per step\n".utf8))
            try evaluate(0)
            for s in 1...config.steps {
                let r = try trainer.trainStep()
                try log.append(RunLogRecord(kind: .train, step: s, loss: r.loss, lr: config.learningRate,
                                            ms: r.seconds * 1000, reward: r.meanReward))
                FileHandle.standardError.write(Data(String(format: "step %3d/%d | reward %.3f | %d tokens | loss %+.4f | %.1f s\n", s, config.steps, r.meanReward, r.tokens, r.loss, r.seconds).utf8))
                if s == config.steps || (config.evalEvery > 0 && s % config.evalEvery == 0) { try evaluate(s) }
            }
            let runConfig = try run.readConfig()
            try saveWeights(loaded.weights, to: run.finalOutputPath(runConfig))
            print(run.finalOutputPath(runConfig))
        }
    }
}
