// `llm train`: train a model (GPT-2, Llama or nanochat's architecture) from scratch or from a checkpoint, with evals, samples and checkpoints in a
// run directory; `--resume RUN_DIR` continues exactly where the last checkpoint left off.
import ArgumentParser
import Foundation
import LLM

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model; progress on stderr, results on stdout, everything else in the run directory.",
        discussion: """
            With only --input FILE, it trains a 4096-token BPE tokenizer on the text, prepares the shards, and trains \
            a small model (4 layers, 4 heads, 256 channels) for a few minutes on a CPU, printing samples as it goes.
            --arch picks the family: gpt2 (LayerNorm, GELU, learned positions), llama (RMSNorm, SwiGLU, RoPE, \
            grouped-query attention) or nanochat (parameter-free RMSNorm, ReLU², RoPE with QK-norm, softcapped logits).
            The run directory holds config.json, log.jsonl, loss.svg, checkpoints/ and the final model.bin.
            """)

    // Data and tokenizer.
    @Option(help: "A text file to train on (tokenized into RUN_DIR/data), or `tinyshakespeare` to download it.")
    var input: String?
    @Option(help: "Train shards (glob), from `llm prepare`.") var train: String?
    @Option(help: "Validation shards (glob).") var val: String?
    @Option(help: "gpt2, or a tokenizer file. Default with --input: train a BPE tokenizer on it; otherwise gpt2.")
    var tokenizer: String?
    @Option(help: "Vocabulary size of a tokenizer trained on --input.") var vocabSize = 4096

    // Model.
    @Option(help: "Architecture of a fresh model: gpt2, llama or nanochat.") var arch: Architecture = .gpt2
    @Option(help: "Model preset: d6, d12 (GPT-2 124M), d24, d36, d48; nanochat: dN for depth N.") var preset: String?
    @Option(help: "Layers (default 4; nanochat's depth, which sets its width).") var layers: Int?
    @Option(help: "Attention heads (default 4; not for nanochat).") var heads: Int?
    @Option(help: "Key/value heads (llama; default a third of the heads when that divides them).") var kvHeads: Int?
    @Option(help: "Channels (default 256; not for nanochat).") var channels: Int?
    @Option(help: "Maximum sequence length, i.e. position embeddings (default 256).") var maxSeq: Int?
    @Option(help: "Start from these weights (llm.c .bin or Hugging Face folder) instead of a fresh init.")
    var `init`: String?

    // Optimization.
    @Option(help: "Micro-batch size B.") var batch = 16
    @Option(help: "Sequence length T.") var seq = 128
    @Option(help: "Tokens per optimizer step (a multiple of B·T; more means gradient accumulation).")
    var totalBatchTokens: Int?
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Token budget instead of --steps.") var tokens: Int?
    @Option(help: "Peak learning rate.") var lr = 1e-3
    @Option(help: "Warmup steps.") var warmup = 20
    @Option(help: "Schedule: cosine, linear, constant, wsd.") var schedule: LearningRateSchedule.Kind = .cosine
    @Option(help: "Final learning rate as a fraction of the peak.") var finalFraction = 0.1
    @Option(help: "WSD: the final fraction of training that decays.") var decayFraction = 0.2
    @Option(help: "AdamW weight decay (2-D tensors only).") var weightDecay = 0.1
    @Option(help: "Global gradient-norm clip (0 disables).") var gradClip = 1.0
    @Option(help: "adamw, or muon: nanochat's Muon for the blocks' matrices and AdamW at nanochat's rates for the embeddings and head (--lr then sets the norms' and biases' rate and --schedule scales every rate).")
    var optimizer: OptimizerKind = .adamw
    @Option(help: "Seed for the init, the data order and samples.") var seed: UInt64 = 1337

    @OptionGroup var runOptions: RunOptions

    @OptionGroup var device: DeviceOption

    func validate() throws {
        if runOptions.resume == nil && input == nil && train == nil { throw ValidationError("give --input FILE, --train PATTERN or --resume RUN_DIR") }
        if input != nil && train != nil { throw ValidationError("--input and --train are alternatives") }
        if steps != nil && tokens != nil { throw ValidationError("--steps and --tokens are alternatives") }
        if ![.gpt2, .llama, .nanochat].contains(arch) {
            throw ValidationError("--arch \(arch.rawValue): train gpt2, llama or nanochat from scratch; fine-tune others with --init")
        }
        if arch == .nanochat && (heads != nil || channels != nil) {
            throw ValidationError("nanochat's width and heads follow from its depth: give --layers or --preset dN only")
        }
        if kvHeads != nil && arch != .llama { throw ValidationError("--kv-heads is for --arch llama") }
        if let tokens { try checkRange(tokens, "--tokens", 1...Int.max) }
        // Every count and rate, before anything is read or created (also with --resume, where they are ignored).
        try asValidation { _ = try trainingConfig() }
    }

    func run() throws {
        try reportingErrors {
            try device.check()
            let parallel = runOptions.parallel
            let ranks = try Ranks.communicator()
            let progress = TrainingProgress(quiet: runOptions.quiet || !ranks.isMain, peakGflops: runOptions.peakGflops)
            let trainer: Trainer
            if let resume = runOptions.resume {
                // Through a link such as runs/latest, the run it names now: checkpoints keep going there if it moves.
                trainer = try Ranks.resume(ranks, run: resume, parallel: parallel, status: progress.status)
                try checkShapeFlags(against: trainer.config.model, source: resume)
                progress.status("resuming \(trainer.run.path) at step \(trainer.step) of \(trainer.config.training.steps)")
            } else {
                var input = input
                if let name = input, let known = KnownDataset(rawValue: name), !FileManager.default.fileExists(atPath: name) {
                    progress.status("fetching \(name) (\(known.url))")
                    input = try known.cachedFile()
                }
                var job = NewRun(runDirectory: runOptions.out ?? defaultRunDirectory(), model: try modelChoice(),
                                 tokenizer: tokenizerChoice(), input: input, trainShards: train, valShards: val,
                                 training: try trainingConfig())
                job.linksLatest = runOptions.out == nil  // runs/latest, for runs in the default folder
                trainer = try Ranks.start(ranks, parallel: parallel) {
                    try job.start(parallel: parallel, communicator: ranks, status: progress.status)
                }
                if `init` != nil { try checkShapeFlags(against: trainer.config.model, source: `init`!) }
                progress.status("run \(runOptions.runName(trainer)): \(trainer.config.model), \(trainer.config.model.parameterCount) parameters")
            }
            try runOptions.train(trainer, progress: progress)
        }
    }

    private func modelChoice() throws -> NewRun.Model {
        if let path = `init` { return .initFrom(path) }
        let maxSeq = maxSeq ?? 256
        // The vocabulary is the tokenizer's, set once it is known.
        if let preset {
            var config = try ModelPreset.config(arch, preset, vocabSize: 1, maxSeqLen: maxSeq)
            if let kvHeads {
                config.numKVHeads = kvHeads
                try config.validate()
            }
            return .fresh(config)
        }
        let (L, H, C) = (layers ?? 4, heads ?? 4, channels ?? 256)
        switch arch {
        case .llama:
            return .fresh(try ModelPreset.llama(layers: L, heads: H, channels: C, kvHeads: kvHeads, vocabSize: 1,
                                                maxSeqLen: maxSeq))
        case .nanochat: return .fresh(try ModelPreset.nanochat(depth: L, vocabSize: 1, maxSeqLen: maxSeq))
        default:
            return .fresh(try .gpt2(maxSeqLen: maxSeq, vocabSize: 1, numLayers: L, numHeads: H, channels: C))
        }
    }

    /// Shape flags given with --resume or --init must agree with the checkpoint's shape.
    private func checkShapeFlags(against model: ModelConfig, source: String) throws {
        for (flag, value, actual) in [("--layers", layers, model.numLayers), ("--heads", heads, model.numHeads),
                                      ("--channels", channels, model.channels), ("--max-seq", maxSeq, model.maxSeqLen)] {
            if let value, value != actual {
                throw TrainingError.shapeMismatch("\(source): the checkpoint has \(flag.dropFirst(2)) \(actual), but \(flag) \(value) was given")
            }
        }
        if let preset, let p = ModelPreset.gpt2Shapes[preset],
           (p.layers, p.heads, p.channels) != (model.numLayers, model.numHeads, model.channels) {
            throw TrainingError.shapeMismatch("\(source): the checkpoint's shape \(model) is not --preset \(preset)")
        }
    }

    private func tokenizerChoice() -> NewRun.TokenizerChoice {
        switch tokenizer {
        case "gpt2": .gpt2
        case let path?: .file(path)
        case nil: input != nil ? .trainOnInput(vocabSize: vocabSize) : .gpt2
        }
    }

    /// The flags as a validated training config.
    private func trainingConfig() throws -> TrainingConfig {
        var t = TrainingConfig(trainShards: train ?? "", valShards: val, tokenizer: "")
        t.batch = batch
        t.seq = seq
        t.totalBatchTokens = totalBatchTokens
        try t.validateBatchShape()  // so B·T below cannot overflow
        let stepTokens = totalBatchTokens ?? batch * seq
        if let tokens, tokens < 1 { throw TrainingError.invalidConfig("--tokens \(tokens) must be at least 1") }
        t.steps = steps ?? tokens.map { TrainingConfig.steps(forTokens: $0, stepTokens: stepTokens) } ?? 300
        t.learningRate = lr
        // A warmup longer than the run is cut to it; a negative one is left for validate() to reject.
        t.warmupSteps = warmup < 0 ? warmup : min(warmup, t.steps)
        t.schedule = schedule
        t.finalFraction = finalFraction
        t.decayFraction = decayFraction
        t.weightDecay = weightDecay
        t.gradClip = gradClip
        t.muon = optimizer == .muon ? MuonConfig() : nil
        t.seed = seed
        runOptions.apply(to: &t)
        try t.validate()
        return t
    }

    private func defaultRunDirectory() -> String {
        timestampedRunDirectory(name: input.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? preset ?? arch.rawValue)
    }
}

extension LearningRateSchedule.Kind: ExpressibleByArgument {}
extension Architecture: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
