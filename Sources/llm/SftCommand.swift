// `llm sft`: supervised fine-tuning on conversations (nanochat's SFT step): a trained model learns to answer in
// the chat format (nanochat's, or a real chat model's own template), with the loss on the assistant's replies
// only. The run directory works like `llm train`'s.
import ArgumentParser
import Foundation
import LLM

struct SftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Fine-tune a model on conversations (JSONL) into a chat assistant.",
        discussion: """
            Each line of --data is {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]} \
            (`llm chat-data` writes a synthetic set). Conversations are rendered in the chat format, packed whole \
            into rows of --seq tokens (one cut to fit if longer) and trained with the loss on the assistant's \
            turns only (its text and its end-of-turn token), as the mean over those tokens. Unless --val-data is \
            given, --val-fraction of the conversations is held out for evals. A real chat model (a GGUF file or \
            Hugging Face folder with a chat template) is fine-tuned in its own template, with its own tokenizer \
            and vocabulary; the run keeps both (chat_template.jinja, tokenizer.gguf). A model trained here uses \
            nanochat's format; one without its chat tokens (GPT-2's vocabulary of 50257) gets them: its \
            vocabulary grows to hold them. Chat with the result: `llm chat --model RUN_DIR`.

            With --lora-rank R the model stays frozen and a low-rank adapter (LoRA) on its linear layers trains \
            instead: A (R × in) and B (out × R) per layer, added as (alpha/R)·B·A, with no gradients or optimizer \
            state for the model itself. A GGUF model stays in its quantized blocks (QLoRA) unless --dequantize. The \
            run writes the adapter in PEFT's format (RUN_DIR/adapter: adapter_config.json + \
            adapter_model.safetensors); `llm chat --model RUN_DIR` runs the model with it, `llm merge` folds it in.
            """)

    @Option(help: "The model to fine-tune: a GGUF file or Hugging Face folder (a chat model is trained in its own template), a run directory (its newest weights and tokenizer), or an llm.c .bin.")
    var `init`: String?
    @Option(help: "Training conversations, JSONL.") var data: String?
    @Option(help: "Held-out conversations for evals, JSONL (default: hold out --val-fraction of --data).")
    var valData: String?
    @Option(help: "Fraction of --data held out when there is no --val-data.") var valFraction = 0.05
    @Option(help: "gpt2 or a tokenizer file (default: the model's own, the run's, or gpt2 for a checkpoint).") var tokenizer: String?
    @Option(help: "The chat format: auto (the model's own template, or nanochat's for a model trained here), nanochat, or a built-in template: \(ChatTemplate.builtinNames.joined(separator: ", ")).")
    var chatFormat = "auto"

    @Option(help: "Micro-batch size B (rows of packed conversations).") var batch = 8
    @Option(help: "Row length T (default: the model's context, at most 512).") var seq: Int?
    @Option(help: "Tokens per optimizer step (a multiple of B·T; more means gradient accumulation).")
    var totalBatchTokens: Int?
    @Option(help: "Passes over the training conversations (ignored with --steps).") var epochs = 1.0
    @Option(help: "Optimizer steps (default: from --epochs).") var steps: Int?
    @Option(help: "Peak learning rate.") var lr = 3e-4
    @Option(help: "Warmup steps.") var warmup = 0
    @Option(help: "Schedule: cosine, linear, constant, wsd.") var schedule: LearningRateSchedule.Kind = .linear
    @Option(help: "Final learning rate as a fraction of the peak.") var finalFraction = 0.0
    @Option(help: "AdamW weight decay (2-D tensors only).") var weightDecay = 0.0
    @Option(help: "Global gradient-norm clip (0 disables).") var gradClip = 1.0
    @Option(help: "adamw, or muon: nanochat's Muon for the blocks' matrices and AdamW for the embeddings and head, at 2% of nanochat's pretraining rates as its chat_sft (--lr then sets the norms' and biases' rate and --schedule scales every rate). Not with --lora-rank.")
    var optimizer: OptimizerKind = .adamw
    @Option(help: "Seed for the held-out split, the data order, new token embeddings, LoRA's A matrices and samples.")
    var seed: UInt64 = 1337

    @Option(help: "Train a LoRA adapter of this rank on the frozen model instead of the model itself.")
    var loraRank: Int?
    @Option(help: "LoRA's alpha: the adapter's output is scaled by alpha / rank (default: 2 × rank).")
    var loraAlpha: Double?
    @Option(help: "The layers LoRA adapts, comma-separated Hugging Face names or suffixes (q_proj, v_proj, mlp.down_proj, c_attn, …), or all-linear.")
    var loraTargets = LoRAConfig.allLinear
    @Flag(help: "With --lora-rank on a GGUF model: expand its quantized tensors to float32 instead of keeping them in their blocks (QLoRA).")
    var dequantize = false

    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        if runOptions.resume == nil && (`init` == nil || data == nil) {
            throw ValidationError("give --init MODEL and --data CONVERSATIONS.jsonl, or --resume RUN_DIR")
        }
        if runOptions.resume != nil && (`init` != nil || data != nil) {
            throw ValidationError("--resume continues a run as configured; it takes no --init or --data")
        }
        if !(["auto", "nanochat"] + ChatTemplate.builtinNames).contains(chatFormat) {
            throw ValidationError("--chat-format \(chatFormat): choose auto, nanochat, \(ChatTemplate.builtinNames.joined(separator: ", "))")
        }
        if !(epochs > 0 && epochs <= 1_000_000) { throw ValidationError("--epochs \(epochs) must be above 0 and at most 1000000") }
        if loraRank == nil && (loraAlpha != nil || dequantize) {
            throw ValidationError("--lora-alpha and --dequantize go with --lora-rank")
        }
        if loraRank != nil && optimizer == .muon {
            throw ValidationError("--optimizer muon trains a whole model, not a LoRA adapter: leave out --lora-rank or use --optimizer adamw")
        }
        if let lora = loraConfig {
            if runOptions.resume != nil { throw ValidationError("--resume continues a run as configured; it takes no --lora-rank") }
            try asValidation { try lora.validate() }
        }
        if let seq, seq < 2 { throw ValidationError("--seq \(seq) must be at least 2") }
        // Every count and rate, before anything is read or created (also with --resume, where they are ignored).
        try asValidation {
            try ConversationLoader.checkHeldOutFraction(valFraction)
            var t = trainingConfig()
            if seq == nil, let tokens = t.totalBatchTokens {
                // Its multiple of B·T is checked once the model's context sets T.
                try checkRange(tokens, "--total-batch-tokens", 1...TrainingConfig.maxStepTokens)
                t.totalBatchTokens = nil
            }
            try t.validate()
        }
    }

    /// The flags as a training config. Without --steps its steps are a stand-in (NewSFTRun counts them from
    /// --epochs and cuts the warmup to them), chosen so any warmup ≥ 0 passes validation; likewise the
    /// sequence length when --seq is not given (the model's context replaces it).
    private func trainingConfig() -> TrainingConfig {
        var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
        t.batch = batch
        t.seq = seq ?? 2  // NewSFTRun replaces it with the model's context unless given
        t.totalBatchTokens = totalBatchTokens
        t.steps = steps ?? max(1, warmup)
        t.learningRate = lr
        t.warmupSteps = warmup
        t.schedule = schedule
        t.finalFraction = finalFraction
        t.weightDecay = weightDecay
        t.gradClip = gradClip
        t.muon = optimizer == .muon ? .fineTuning : nil
        t.seed = seed
        runOptions.apply(to: &t)
        t.conversations = .init(train: data ?? "", val: valData, valFraction: valFraction)
        return t
    }

    /// The LoRA flags as a config, or nil without --lora-rank.
    private var loraConfig: LoRAConfig? {
        loraRank.map { rank in
            let targets = loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            return LoRAConfig(rank: rank, alpha: loraAlpha, targets: targets)
        }
    }

    func run() throws {
        try reportingErrors {
            let ranks = try Ranks.communicator()
            let progress = TrainingProgress(quiet: runOptions.quiet || !ranks.isMain, peakGflops: runOptions.peakGflops)
            let trainer: Trainer
            if let resume = runOptions.resume {
                // Through a link such as runs/latest, the run it names now: checkpoints keep going there if it moves.
                trainer = try Ranks.resume(ranks, run: resume, parallel: runOptions.parallel, status: progress.status)
                progress.status("resuming \(trainer.run.path) at step \(trainer.step) of \(trainer.config.training.steps)")
            } else {
                var t = trainingConfig()
                t.conversations = nil  // NewSFTRun fills it in
                let name = URL(fileURLWithPath: data!).deletingPathExtension().lastPathComponent
                var job = NewSFTRun(runDirectory: runOptions.out ?? timestampedRunDirectory(name: "sft-" + name),
                                    initFrom: `init`!, tokenizer: tokenizer, data: data!, valData: valData, training: t)
                job.valFraction = valFraction
                job.chatFormat = chatFormat
                job.seq = seq
                job.epochs = steps == nil ? epochs : nil
                job.lora = loraConfig
                job.quantizedBase = !dequantize
                job.linksLatest = runOptions.out == nil  // runs/latest, for runs in the default folder
                trainer = try Ranks.start(ranks, parallel: runOptions.parallel) {
                    try job.start(parallel: runOptions.parallel, communicator: ranks, status: progress.status)
                }
                progress.status("run \(runOptions.runName(trainer)): \(trainer.config.model), \(trainer.config.model.parameterCount) parameters\(trainer.config.lora == nil ? "" : " (frozen)")")
            }
            try runOptions.train(trainer, progress: progress)
        }
    }
}
