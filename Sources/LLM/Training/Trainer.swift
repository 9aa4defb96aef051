// The training loop, read top to bottom: each step zeroes the gradients, runs k micro-batches of forward
// and backward (gradient accumulation, each scaled by 1/k), clips and applies AdamW (or Muon) at the schedule's
// learning rate; every so often it evaluates, samples and checkpoints. Everything it needs to continue
// exactly (weights, moments, data position, RNG, step) goes into each checkpoint.
//
// Data parallel (`mpirun -np W llm train …`): every rank runs this same loop on its own slice of each step's
// data (k/W micro-batches, each scaled by 1/k), and the gradients are summed over the ranks before clipping and
// the update, so every rank applies the same update to the same weights: W ranks equal one process
// accumulating k micro-batches. Rank 0 alone writes (config, logs, checkpoints, the final model), evaluates
// and samples.
import Foundation

/// One optimizer step's numbers.
public struct StepReport: Sendable {
    public let step: Int            // steps completed, counting this one
    public let totalSteps: Int
    public let loss: Float          // mean over the step's micro-batches
    public let learningRate: Double
    public let gradNorm: Double     // before clipping
    public let milliseconds: Double
    public let tokens: Int
    public let flops: Double        // estimated model FLOPs of the step
    public let skipped: Bool        // not applied: the loss or gradient norm was not finite (--skip-nonfinite)
}

/// A validation pass.
public struct EvalReport: Sendable {
    public let step: Int
    public let loss: Float
    public let bitsPerByte: Double?
}

public enum TrainingEvent: Sendable {
    case step(StepReport)
    case eval(EvalReport)
    case sample(step: Int, text: String)
    case checkpoint(step: Int, path: String)
}

public final class Trainer {
    public let run: RunDirectory
    public let config: RunConfig
    public let model: Transformer
    public let tokenizer: Tokenizer
    /// Optimizer steps completed.
    public private(set) var step: Int
    /// The ranks training together (one process: `SingleProcess`).
    public let communicator: any Communicator

    private let trainLoader: any TrainingBatches
    private let valLoader: (any TrainingBatches)?
    private let schedule: LearningRateSchedule
    private var sampleRNG: SplitMix64
    private let runLog: RunLogWriter?   // rank 0's
    private var inputs: [Int32], targets: [Int32]
    private let tokenBytes: [Int]   // UTF-8 bytes per token id (0 for special tokens), for bits per byte
    /// The prompt samples continue: the corpus's first tokens (a one-file corpus has a single document
    /// separator, so a sample started from it alone begins in a context the model has seen once). In SFT, the
    /// first held-out conversation's first user turn, rendered for the assistant's reply.
    private let samplePrompt: [Int32]
    /// SFT: the chat format (nanochat's, or the run's chat template), and the user text the sample answers.
    private let chat: (format: any ChatFormat, question: String)?
    /// The lock on config.json of a run this trainer started (see `start`).
    private var runLock: RunLock?
    /// Damaged checkpoints `resume` passed over, removed when this trainer writes its first checkpoint.
    private var damagedCheckpoints: [String] = []
    /// A KV-cache generator over the same weights, made on first use.
    private lazy var sampler = Generator(weights: model.weights, parallel: model.parallel)

    private var training: TrainingConfig { config.training }

    /// Starts a new run in `run`: writes config.json, then trains from `weights`. A run already there is
    /// refused unless it never reached a checkpoint, which is replaced (`RunDirectory.prepareFreshStart`;
    /// `status` says so). The trainer holds a lock on config.json while it lives, so another fresh start into
    /// the same folder does not replace this run while it trains towards its first checkpoint.
    ///
    /// Data parallel, only rank 0 calls this (it prepares the run); the other ranks then `join` it.
    public static func start(run: RunDirectory, config: RunConfig, weights: ModelWeights, tokenizer: Tokenizer,
                             parallel: ParallelFor, communicator: any Communicator = SingleProcess(),
                             status: (String) -> Void = { _ in }) throws -> Trainer {
        try run.prepareFreshStart(status: status)
        do { try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true) } catch {
            throw FormatError.writeFailed(path: run.path, reason: "cannot create the run directory")
        }
        let trainer = try Trainer(run: run, config: config, weights: weights, tokenizer: tokenizer, parallel: parallel,
                                  communicator: communicator, resumeFrom: nil)
        try run.writeConfig(config)  // last: a start that fails leaves no run behind to block the next attempt
        trainer.runLock = RunLock(run)
        return trainer
    }

    /// A rank other than 0 joining the run rank 0 has just started (`start`), once its config.json is written:
    /// the same model, data and tokenizer, with weights that `synchronizeWeights` then makes rank 0's.
    public static func join(run: RunDirectory, parallel: ParallelFor, communicator: any Communicator) throws -> Trainer {
        let config = try run.readConfig()
        let weights: ModelWeights
        if let lora = config.lora {  // the same frozen base; the adapter's values come from rank 0
            let base = isGGUF(lora.base) ? try GGUFModel.read(lora.base, keepQuantized: lora.quantizedBase)
                : try loadWeights(lora.base)
            weights = try base.withAdapter(try LoRAAdapter(config: lora.adapter, model: base.config))
        } else {
            weights = ModelWeights(config: config.model)
        }
        return try Trainer(run: run, config: config, weights: weights,
                           tokenizer: try loadTokenizer(config.training.tokenizer, run: run), parallel: parallel,
                           communicator: communicator, resumeFrom: nil)
    }

    /// Makes every rank's trainable weights rank 0's (after `start` and `join`).
    public func synchronizeWeights() throws {
        try model.broadcastTrainableWeights(over: communicator, root: 0)
    }

    /// Continues a run from its newest intact checkpoint. First removes what interrupted writes left
    /// (`RunDirectory.removeLeftovers`), then checks the checkpoints newest first against their checksums
    /// (`RunDirectory.latestIntactCheckpoint`): a damaged one is passed over for the next older. `status` gets
    /// one line for each leftover removed, each checkpoint passed over (which, the file, what is wrong), and a
    /// checkpoint resumed unverified because it predates checksums. Throws `noCheckpoint` for a run that never
    /// reached one (start it again instead) and `noIntactCheckpoint`, naming each, when all are damaged.
    ///
    /// Data parallel, every rank resumes; rank 0 first (it removes leftovers), the others after it.
    public static func resume(run: RunDirectory, parallel: ParallelFor, communicator: any Communicator = SingleProcess(),
                              status: (String) -> Void = { _ in }) throws -> Trainer {
        let config = try run.readConfig()
        // Check what the files say before anything is sized from it: the settings and the shape, then that the
        // weights, moments and activations fit in memory (before the weights are even read).
        do {
            try config.training.validate()
            try config.model.validate()
            let parameters = try MemoryBudget.parameterCount(config.model).map { n in
                (n, try config.lora.map { try LoRAAdapter(config: $0.adapter, model: config.model).parameterCount } ?? n)
            }
            try MemoryBudget.checkTraining(config: config.model, batch: config.training.batch, seq: config.training.seq,
                                           parallel: parallel, parameters: parameters?.0, trainable: parameters?.1)
        } catch {
            let reason = if case .invalidConfig(let why)? = error as? TrainingError { why } else { "\(error)" }
            throw TrainingError.invalidConfig("\(run.configPath): \(reason)")
        }
        if communicator.isMain {
            for leftover in run.removeLeftovers() { status("removed \(leftover), left by an interrupted write") }
        }
        let latest = try run.latestIntactCheckpoint()
        for damaged in latest.skipped {
            status("skipping damaged checkpoint \(damaged) (it is removed when the next checkpoint is written)")
        }
        if !latest.verified {
            status("\(latest.path) has no \(RunDirectory.checksumsName) (written before checkpoints had one): resuming from it unverified")
        }
        guard let weightsPath = RunDirectory.weightsPath(in: latest.path) else {
            throw FormatError.unreadable(path: latest.path, reason: "the checkpoint holds no weights")
        }
        let state = try run.readCheckpointState(latest.path)
        guard (0...config.training.steps).contains(state.step) else {
            throw TrainingError.invalidConfig("\(latest.path)/state.json: step \(state.step) is not between 0 and the run's \(config.training.steps) steps")
        }
        let weights = try config.lora.map { try loraWeights($0, adapter: weightsPath) } ?? loadWeights(weightsPath)
        guard weights.config == config.model else {
            throw TrainingError.shapeMismatch("\(weightsPath): shape \(weights.config) differs from config.json's \(config.model)")
        }
        let tokenizer = try loadTokenizer(config.training.tokenizer, run: run)
        let trainer = try Trainer(run: run, config: config, weights: weights, tokenizer: tokenizer, parallel: parallel,
                                  communicator: communicator, resumeFrom: latest.path)
        trainer.damagedCheckpoints = latest.skipped.map(\.path)
        return trainer
    }

    /// A LoRA run's frozen base (kept in its GGUF blocks where the run says so and `quantized` allows) with the
    /// adapter in the PEFT folder `adapter` attached.
    public static func loraWeights(_ lora: LoRARun, adapter: String, quantized: Bool = true) throws -> ModelWeights {
        let base = isGGUF(lora.base) ? try GGUFModel.read(lora.base, keepQuantized: lora.quantizedBase && quantized)
            : try loadWeights(lora.base)
        return try base.withAdapter(try LoRAAdapter.read(folder: adapter, model: base.config))
    }

    /// The tokenizer named in a config: "gpt2" or a file relative to the run: the project's tokenizer file, or a
    /// .gguf holding a tokenizer's GGUF metadata (a Hugging Face or GGUF model's tokenizer).
    public static func loadTokenizer(_ name: String, run: RunDirectory) throws -> Tokenizer {
        if name == "gpt2" { return try Tokenizer.gpt2() }
        let path = run.resolve(name)
        if name.hasSuffix(".gguf") { return try Tokenizer(gguf: try GGUFFile.open(path).metadata, path: path) }
        return try Tokenizer.load(path)
    }

    /// The chat format an SFT run renders its conversations with: its chat template (`training.chatTemplate`)
    /// if it has one, otherwise nanochat's.
    public static func chatFormat(_ training: TrainingConfig, run: RunDirectory, tokenizer: Tokenizer) throws -> any ChatFormat {
        guard let file = training.chatTemplate else { return ChatRenderer(tokenizer: tokenizer) }
        let path = run.resolve(file.path)
        let source = String(decoding: try readWholeFile(path), as: UTF8.self)
        let template: ChatTemplate
        do { template = try ChatTemplate(source: source) } catch {
            throw ChatTemplateLoadError(path: path, reason: "\(error)")
        }
        return TemplateChatFormat(template: template, tokenizer: tokenizer, origin: "the run's template", eos: file.eos)
    }

    private init(run: RunDirectory, config: RunConfig, weights: ModelWeights, tokenizer: Tokenizer, parallel: ParallelFor,
                 communicator: any Communicator, resumeFrom checkpoint: String?) throws {
        let t = config.training
        try t.validate()
        let ranks = communicator.size, rank = communicator.rank
        guard t.accumulationSteps % ranks == 0 else {
            throw TrainingError.invalidConfig("\(t.accumulationSteps) micro-batches per step (--total-batch-tokens \(t.totalBatchTokens ?? t.batch * t.seq) ÷ B·T \(t.batch * t.seq)) cannot be split evenly over \(ranks) ranks: make --total-batch-tokens a multiple of \(ranks) × B × T = \(ranks * t.batch * t.seq)")
        }
        let microBatches = t.accumulationSteps / ranks
        if t.shardsOptimizer && config.lora != nil {
            throw TrainingError.invalidConfig("--zero 1 shards a whole model's AdamW moments; a LoRA adapter's are small: train it without --zero")
        }
        guard tokenizer.vocabSize <= config.model.vocabSize else {
            throw TrainingError.shapeMismatch("the tokenizer has \(tokenizer.vocabSize) tokens but the model's vocabulary is \(config.model.vocabSize)")
        }
        guard t.seq <= config.model.maxSeqLen else {
            throw TrainingError.shapeMismatch("--seq \(t.seq) exceeds the model's maximum sequence length \(config.model.maxSeqLen)")
        }
        self.run = run
        self.config = config
        self.tokenizer = tokenizer
        self.communicator = communicator
        model = try Transformer(weights: weights, batch: t.batch, seq: t.seq, parallel: parallel, optimizer: t.optimizer,
                                optimizerShard: t.shardsOptimizer
                                    ? evenParts(count: weights.layout.totalCount, size: ranks)[rank] : nil)
        schedule = try t.learningRateSchedule()
        let order: DataOrder = t.shuffle ? .shuffled(seed: t.seed) : .sequential
        if let data = t.conversations {
            let renderer = try Self.chatFormat(t, run: run, tokenizer: tokenizer)
            guard renderer.requiredVocabSize <= config.model.vocabSize else {
                throw TrainingError.shapeMismatch("the chat tokens need a vocabulary of \(renderer.requiredVocabSize) but the model's is \(config.model.vocabSize)")
            }
            let all = try Conversation.readJSONL(path: run.resolve(data.train))
            let (train, heldOut) = try data.val.map { (all, try Conversation.readJSONL(path: run.resolve($0))) }
                ?? ConversationLoader.split(all, heldOutFraction: data.valFraction, seed: t.seed)
            trainLoader = try ConversationLoader(conversations: train, renderer: renderer, batch: t.batch, seq: t.seq,
                                                 order: order, vocabSize: config.model.vocabSize, source: data.train,
                                                 rank: rank, worldSize: ranks, microBatches: microBatches)
            valLoader = heldOut.isEmpty ? nil
                : try ConversationLoader(conversations: heldOut, renderer: renderer, batch: t.batch, seq: t.seq,
                                         order: .sequential, vocabSize: config.model.vocabSize,
                                         source: data.val ?? data.train + " (held out)")
            // The sample: the assistant's answer to the first held-out (or training) conversation's first turn.
            let first = (heldOut.first ?? train[0]).messages
            let turn = Array(first.prefix { $0.role != .assistant })
            let prompt = try renderer.renderForCompletion(Conversation(messages: turn))
            samplePrompt = Array(prompt.suffix(config.model.maxSeqLen / 2))  // room for a reply
            let question = renderer is ChatRenderer ? ChatRenderer.merged(turn).last?.content : turn.last?.content
            chat = (renderer, question ?? "")
        } else {
            let shards = try DataLoader(pattern: run.resolve(t.trainShards), batch: t.batch, seq: t.seq, rank: rank,
                                        worldSize: ranks, microBatches: microBatches, order: order,
                                        vocabSize: config.model.vocabSize)
            trainLoader = shards
            valLoader = try t.valShards.map {
                try DataLoader(pattern: run.resolve($0), batch: t.batch, seq: t.seq, vocabSize: config.model.vocabSize)
            }
            let promptSource = try TokenShardReader(path: (valLoader as? DataLoader ?? shards).files[0])
            samplePrompt = try promptSource.tokens(in: 0..<min(16, promptSource.count, config.model.maxSeqLen / 2))
            chat = nil
        }
        inputs = [Int32](repeating: 0, count: t.batch * t.seq)
        targets = inputs
        tokenBytes = tokenizer.textByteCounts()
        sampleRNG = SplitMix64(seed: t.seed ^ 0x5A4D_504C)
        step = 0
        if let checkpoint {
            try model.readOptimizerState(from: checkpoint + "/optimizer.bin")
            let state = try run.readCheckpointState(checkpoint)
            try trainLoader.restore(state.trainLoader)
            sampleRNG = SplitMix64(seed: state.sampleRNG)  // a SplitMix64's seed is its state
            step = state.step
            if communicator.isMain { _ = try RunLog.truncate(run.logPath, afterStep: step) }
        }
        runLog = communicator.isMain ? try RunLogWriter(runDirectory: run.path) : nil
    }

    // MARK: - The loop

    /// Trains to the configured number of steps (or `stopAfter` steps, for tests and demos), reporting each
    /// step, eval, sample and checkpoint. Evaluates and checkpoints at the end. `shouldStop` is asked after each
    /// step (a signal handler's flag, say): when it says yes, the step's checkpoint is written and training
    /// returns, so `resume` continues exactly there. Data parallel, the ranks stop together when any one is
    /// asked to, and only rank 0 evaluates, samples, checkpoints and reports events.
    public func train(stopAfter: Int? = nil, observer: (TrainingEvent) -> Void = { _ in },
                      shouldStop: () -> Bool = { false }) throws {
        let last = min(training.steps, stopAfter ?? training.steps)
        let main = communicator.isMain
        if main && step == 0 && training.evalEvery > 0, valLoader != nil { try report(evaluate(), observer) }
        while step < last {
            let r = try trainStep()
            try runLog?.append(RunLogRecord(kind: .train, step: r.step, loss: Double(r.loss), lr: r.learningRate,
                                            gradNorm: r.gradNorm, ms: r.milliseconds,
                                            tokensPerSecond: Double(r.tokens) / (r.milliseconds / 1e3)))
            if main { observer(.step(r)) }
            let end = step == training.steps
            if main, valLoader != nil, training.evalEvery > 0, step % training.evalEvery == 0 || end {
                try report(evaluate(), observer)
            }
            if main, training.sampleEvery > 0, step % training.sampleEvery == 0 || end {
                let text = try sample(tokens: training.sampleTokens)
                try runLog?.append(RunLogRecord(kind: .sample, step: step, text: text))
                observer(.sample(step: step, text: text))
            }
            let stopping = try !end && step != last && communicator.any(shouldStop())
            if (training.checkpointEvery > 0 && step % training.checkpointEvery == 0) || end || step == last
                || stopping {
                try checkpoint()
                if main { observer(.checkpoint(step: step, path: run.checkpoints().last!.path)) }
            }
            if stopping { return }
        }
        if main && step == training.steps {
            if let adapter = model.weights.adapter {
                try adapter.write(folder: run.finalOutputPath(config), baseModel: config.lora?.base)
            } else {
                try saveWeights(model.weights, to: run.finalOutputPath(config))
            }
        }
    }

    private func report(_ e: EvalReport, _ observer: (TrainingEvent) -> Void) throws {
        try runLog?.append(RunLogRecord(kind: .eval, step: e.step, valLoss: Double(e.loss), bitsPerByte: e.bitsPerByte))
        try? LossPlot.write(runDirectory: run.path)
        observer(.eval(e))
    }

    /// One optimizer step over `accumulationSteps` micro-batches (data parallel: this rank's share of them,
    /// then the gradients and the loss summed over the ranks).
    public func trainStep() throws -> StepReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let k = training.accumulationSteps, ranks = communicator.size
        model.zeroGradients()
        var lossSum: Float = 0
        for _ in 0..<k / ranks {
            try trainLoader.next(into: &inputs, targets: &targets)
            lossSum += try model.forward(inputs: inputs, targets: targets)!
            try model.backward(lossScale: 1 / Float(k))
        }
        if ranks > 1 {
            if !training.shardsOptimizer { try model.sumGradients(over: communicator) }  // ZeRO-1 reduce-scatters them
            lossSum = Float(try communicator.sum(Double(lossSum)))
        }
        let loss = lossSum / Float(k)
        let lr = schedule.learningRate(at: step)
        var norm = Double.nan, skipped = false
        if loss.isFinite {
            do {
                if let muon = training.muon {  // every group's rate follows the schedule, as nanochat's lrm
                    let opt = AdamWConfig(learningRate: lr, beta1: muon.adamBeta1, beta2: muon.adamBeta2,
                                          eps: muon.adamEps, weightDecay: muon.adamWeightDecay,
                                          gradClip: training.gradClip)
                    norm = try model.update(opt, muon: muon, learningRateScale: lr / training.learningRate,
                                            step: step + 1)
                } else {
                    let opt = AdamWConfig(learningRate: lr, beta1: training.beta1, beta2: training.beta2,
                                          eps: training.eps, weightDecay: training.weightDecay,
                                          gradClip: training.gradClip)
                    norm = training.shardsOptimizer ? try model.updateSharded(opt, step: step + 1, over: communicator)
                        : try model.update(opt, step: step + 1)
                }
            } catch {  // (matching the case in the catch pattern crashes the 6.3 compiler with typed throws)
                guard let modelError = error as? ModelError, case .nonFinite = modelError else { throw error }
                skipped = true
            }
        } else {
            skipped = true
        }
        if skipped && !training.skipNonFinite {
            throw TrainingError.nonFinite(step: step + 1, what: loss.isFinite ? "the gradient norm" : "the loss (\(loss.isNaN ? "NaN" : "\(loss)"))")
        }
        step += 1
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let tokens = k * training.batch * training.seq
        return StepReport(step: step, totalSteps: training.steps, loss: loss, learningRate: lr, gradNorm: norm,
                          milliseconds: ms, tokens: tokens, flops: flopsPerToken * Double(tokens), skipped: skipped)
    }

    /// Model FLOPs per trained token: 6 per parameter (forward and backward) plus attention's 12·L·(H·d)·T; 4 for
    /// a frozen base (LoRA), whose weights get no gradient.
    public var flopsPerToken: Double {
        let c = config.model
        return (config.lora == nil ? 6 : 4) * Double(c.parameterCount)
            + 12 * Double(c.numLayers * c.attentionWidth * training.seq)
    }

    /// Mean validation loss over the first `evalBatches` batches of the val shards, and bits per byte.
    public func evaluate() throws -> EvalReport {
        guard let valLoader else { throw TrainingError.invalidConfig("no validation shards") }
        try valLoader.restore(DataLoaderState(epoch: 0, shard: 0, sample: 0, order: .sequential))
        let batches = min(training.evalBatches, valLoader.batchesPerEpoch)
        var lossSum = 0.0, nats = 0.0, bytes = 0
        for _ in 0..<batches {
            try valLoader.next(into: &inputs, targets: &targets)
            lossSum += Double(try model.forward(inputs: inputs, targets: targets)!)
            model.withPositionLosses { losses in
                for (i, target) in targets.enumerated()
                where target >= 0 && Int(target) < tokenBytes.count && tokenBytes[Int(target)] > 0 {
                    nats += Double(losses[i])
                    bytes += tokenBytes[Int(target)]
                }
            }
        }
        let bpb = bytes > 0 ? nats / Double(bytes) / M_LN2 : nil
        return EvalReport(step: step, loss: Float(lossSum / Double(batches)), bitsPerByte: bpb)
    }

    /// The sample prompt and its continuation, generated with the run's seeded sampler at temperature 0.8 and
    /// top-k 40, as nanoGPT samples: a small, briefly trained model has a long tail of unlikely tokens that
    /// plain sampling keeps picking.
    public func sample(tokens: Int) throws -> String {
        var parameters = GenerateParameters()
        parameters.maxNewTokens = min(tokens, config.model.maxSeqLen - samplePrompt.count)
        parameters.temperature = 0.8
        parameters.topK = 40
        parameters.seed = sampleRNG.next()
        if let chat {
            // SFT: the question, then the reply up to the format's end of turn (<|assistant_end|>, say; chat
            // tokens shown by name).
            parameters.stopTokens = Set(chat.format.stopTokens)
            let reply = try sampler.generate(prompt: samplePrompt, parameters: parameters) { _ in true }
            return "user: \(chat.question)\nassistant: " + ((try? chat.format.decode(reply.tokens)) ?? "")
        }
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var text = ""
        // Special tokens (the document separator) are left out of the text.
        func show(_ id: Int32) { if Int(id) < tokenBytes.count, tokenBytes[Int(id)] > 0 { text += (try? decoder.push(id)) ?? "" } }
        for id in samplePrompt { show(id) }
        _ = try sampler.generate(prompt: samplePrompt, parameters: parameters) { id in
            show(id)
            return true
        }
        return text + decoder.finish()
    }

    /// Writes a checkpoint of the current step: rank 0 writes it; under ZeRO-1 the other ranks send it their
    /// parts of the optimizer's moments, otherwise they have nothing of their own to write.
    public func checkpoint() throws {
        let sharded = training.shardsOptimizer && communicator.size > 1
        guard communicator.isMain else {
            if sharded { try model.writeOptimizerState(to: nil, over: communicator) }
            return
        }
        let state = CheckpointState(step: step, trainLoader: trainLoader.state, sampleRNG: sampleRNG.state, config: config)
        let communicator = communicator
        try run.writeCheckpoint(model: model, state: state, keep: training.keepCheckpoints, superseding: damagedCheckpoints,
                                writeOptimizer: sharded ? { [model] in try model.writeOptimizerState(to: $0, over: communicator) } : nil)
        damagedCheckpoints = []
        try runLog?.append(RunLogRecord(kind: .info, step: step, message: "checkpoint step_\(String(format: "%06d", step))"))
    }
}
