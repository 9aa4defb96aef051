// `llm bench`: times training steps or forward passes on a random-weight model; no files needed.
import ArgumentParser
import Foundation
import LLM

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a training step, a forward pass, generation, a prompt's prefill, or the model's matmuls, on random weights or a model's.",
        discussion: "train and forward print each timed repetition, then a summary, then one JSON line; generate and prefill print tokens/s comparable with llama.cpp's llama-bench; matmul prints forward and backward GFLOP/s for each of the model's matmul shapes at --batch × --seq rows. The last line is always JSON. reference/torch_gpt2_bench.py times train, forward, generate and matmul in PyTorch on the same GPT-2 shapes and prints the same JSON keys.")

    enum Mode: String, ExpressibleByArgument, CaseIterable { case train, forward, generate, prefill, matmul }

    @Argument(help: "What to time: train, forward, generate (greedy decoding with the KV cache, after a prompt), prefill (a prompt's forward pass into the cache), or matmul (the model's matmul shapes). generate and prefill on a GGUF file compare with llama.cpp's `llama-bench -p 512 -n 128 -t N` as `llm bench prefill --prompt 512` and `llm bench generate --prompt 1 --new 128`.")
    var mode: Mode = .train
    @Option(help: "A real model to time (a GGUF file, a Hugging Face folder, a .bin checkpoint or a run directory) instead of random weights of a preset shape.")
    var model: String?
    @Option(help: "Architecture: gpt2, llama or nanochat.") var arch: Architecture = .gpt2
    @Option(help: "Model preset: d12 (GPT-2 124M), d24, d36, d48, or d6 (nanochat: dN for depth N).")
    var preset: String?
    @Option(help: "Layers (without a preset).") var layers = 12
    @Option(help: "Heads (without a preset).") var heads = 12
    @Option(help: "Channels (without a preset).") var channels = 768
    @Option(help: "Vocabulary size.") var vocab = 50257
    @Option(help: "Maximum sequence length.") var maxSeq = 1024
    @Option(help: "Batch size B.") var batch = 4
    @Option(help: "Sequence length T.") var seq = 64
    @Option(help: "generate: prompt tokens (default 16); prefill: prompt tokens (default 512).") var prompt: Int?
    @Option(help: "generate: new tokens.") var new = 256
    @Option(help: "Timed repetitions.") var steps = 5
    @Option(help: "Untimed warm-up repetitions.") var warmup = 1
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Print where a step's time goes, per kind of operation.") var profile = false
    @Flag(help: "generate, prefill: expand a quantized GGUF model to float32 instead of computing from its blocks.")
    var dequantize = false

    @OptionGroup var device: DeviceOption

    func validate() throws {
        try checkRange(batch, "--batch", 1...Int.max)
        try checkRange(seq, "--seq", 1...Int.max)
        if batch.multipliedReportingOverflow(by: seq).overflow || batch * seq > TrainingConfig.maxMicroBatchTokens {
            throw ValidationError("--batch \(batch) × --seq \(seq) is more than 2^31 tokens")
        }
        try checkRange(steps, "--steps", 1...1_000_000)
        try checkRange(warmup, "--warmup", 0...1_000_000)
        if seq > maxSeq && model == nil { throw ValidationError("--seq \(seq) exceeds --max-seq \(maxSeq)") }
        if model != nil && preset != nil { throw ValidationError("give --model or --preset, not both") }
        if (mode == .generate || mode == .prefill) && model == nil {
            try checkRange(promptTokens, "--prompt", 1...Int.max, "generation starts from at least one prompt token")
            try checkRange(new, "--new", 0...Int.max)
            if promptTokens.addingReportingOverflow(new).overflow || promptTokens + new > maxSeq {
                throw ValidationError("--prompt \(promptTokens) + --new \(new) must be at most --max-seq \(maxSeq)")
            }
        }
        if let prompt { try checkRange(prompt, "--prompt", 1...Int.max, "generation starts from at least one prompt token") }
        try checkRange(new, "--new", 0...Int.max)
        try checkThreads(threads)
    }

    private var promptTokens: Int { prompt ?? (mode == .prefill ? 512 : 16) }

    func run() throws {
        try reportingErrors {
            try device.check()
            let generation = mode == .generate || mode == .prefill
            let loaded = try model.map { try LoadedModel.load($0, quantized: generation && !dequantize).weights }
            let config = try loaded?.config ?? preset.map { try ModelPreset.config(arch, $0, vocabSize: vocab, maxSeqLen: maxSeq) }
                ?? (arch == .llama
                    ? ModelPreset.llama(layers: layers, heads: heads, channels: channels, vocabSize: vocab, maxSeqLen: maxSeq)
                    : arch == .nanochat ? ModelPreset.nanochat(depth: layers, vocabSize: vocab, maxSeqLen: maxSeq)
                    : ModelConfig.gpt2(maxSeqLen: maxSeq, vocabSize: vocab, numLayers: layers, numHeads: heads,
                                       channels: channels))
            let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
            if mode == .matmul {
                benchMatmuls(config: config, rows: batch * seq, parallel: parallel)
                return
            }
            if generation {
                let new = mode == .prefill ? 0 : self.new
                if promptTokens + new > config.maxSeqLen {
                    throw ValidationError("--prompt \(promptTokens) + --new \(new) must be at most the model's context, \(config.maxSeqLen)")
                }
                // Before random weights are made: an absurd shape is an error, not an allocation abort.
                try InferenceEngine.checkMemory(config: config, maxConcurrent: 1, threads: parallel.threads)
                try benchGenerate(weights: loaded ?? .random(config: config, seed: 0), prompt: promptTokens, new: new,
                                  repeats: steps, warmup: warmup, parallel: parallel, mode: mode.rawValue,
                                  profile: profile)
                return
            }
            try MemoryBudget.checkTraining(config: config, batch: batch, seq: seq, parallel: parallel)
            if seq > config.maxSeqLen { throw ValidationError("--seq \(seq) exceeds the model's context, \(config.maxSeqLen)") }
            let net = try Transformer(weights: loaded ?? .random(config: config, seed: 0), batch: batch, seq: seq, parallel: parallel)
            var rng = SplitMix64(seed: 1)
            let tokens = (0..<batch * (seq + 1)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
            let inputs = Array(tokens.prefix(batch * seq)), targets = Array(tokens.suffix(batch * seq))
            FileHandle.standardError.write(Data("bench \(mode.rawValue): \(config), B=\(batch) T=\(seq), \(parallel.threads) threads, \(net.allocatedBytes / 1_000_000) MB allocated\n".utf8))
            var times = [Double]()
            let ops = OpProfile()
            for i in 0..<(warmup + steps) {
                net.profile = profile && i >= warmup ? ops : nil
                let t0 = DispatchTime.now().uptimeNanoseconds
                if mode == .train {
                    try net.forward(inputs: inputs, targets: targets)
                    net.zeroGradients()
                    try net.backward()
                    try net.update(AdamWConfig(learningRate: 1e-4), step: i + 1)
                } else {
                    try net.forward(inputs: inputs)
                }
                let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                FileHandle.standardError.write(Data(String(format: "%@ %d: %.1f ms\n", i < warmup ? "warmup" : "step", i + 1, ms).utf8))
                if i >= warmup { times.append(ms) }
            }
            if profile {
                let total = ops.entries.reduce(0) { $0 + $1.milliseconds }
                print("per step (mean of \(steps)):")
                for e in ops.entries {
                    let name = e.op.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                    print(String(format: "  %@ %9.1f ms  %5.1f%%  (%d calls)", name, e.milliseconds / Double(steps),
                                 100 * e.milliseconds / total, e.calls / steps))
                }
            }
            let sorted = times.sorted()
            let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            let flops = Double(mode == .train ? 6 : 2) * Double(config.parameterCount) * Double(batch * seq)
            print(String(format: "median %.1f ms (min %.1f, max %.1f), %.0f tokens/s, %.1f GFLOP/s",
                         median, sorted.first!, sorted.last!, Double(batch * seq) / (median / 1e3), flops / (median / 1e3) / 1e9))
            print(String(format: "{\"mode\": \"%@\", \"median_ms\": %.3f, \"min\": %.3f, \"max\": %.3f, \"threads\": %d, \"batch\": %d, \"seq\": %d, \"params\": %d, \"tokens_per_s\": %.1f}",
                         mode.rawValue, median, sorted.first!, sorted.last!, parallel.threads, batch, seq, config.parameterCount,
                         Double(batch * seq) / (median / 1e3)))
        }
    }
}

/// The model's four linear layers and its LM head at N = B·T rows: forward and backward GFLOP/s.
private func benchMatmuls(config c: ModelConfig, rows N: Int, parallel: ParallelFor) {
    let C = c.channels
    let shapes = [("qkv", C, c.qkvWidth), ("attproj", c.attentionWidth, C), ("fc", C, c.fcWidth),
                  ("fcproj", c.hiddenSize, C), ("lm head", C, c.paddedVocabSize)]
    print("matmul shapes at N=\(N), \(parallel.threads) threads, \(KernelVariant.current) kernels (LLM_KERNELS=generic|avx2|avx512"
          + " forces one) (forward: 2·N·C·OC FLOPs; backward: 4·N·C·OC)")
    var flops = 0.0, seconds = 0.0
    for (name, inC, outC) in shapes {
        let r = KernelBenchmark.matmul(N: N, C: inC, OC: outC, parallel: parallel)
        print(String(format: "  %@ %5d -> %5d   forward %7.2f ms %6.1f GFLOP/s   backward %7.2f ms %6.1f GFLOP/s",
                     name.padding(toLength: 8, withPad: " ", startingAt: 0), inC, outC, r.forwardMs, r.forwardGFLOPS,
                     r.backwardMs, r.backwardGFLOPS))
        let weight = name == "lm head" ? 1.0 : Double(c.numLayers)
        flops += weight * 6 * Double(N * inC * outC)
        seconds += weight * (r.forwardMs + r.backwardMs) / 1e3
    }
    print(String(format: "all of a step's matmuls: %.1f GFLOP/s", flops / seconds / 1e9))
    print(String(format: "{\"mode\": \"matmul\", \"gflops\": %.1f, \"threads\": %d, \"rows\": %d}", flops / seconds / 1e9,
                 parallel.threads, N))
}

/// A random prompt's prefill, then greedy decoding of `new` tokens with the KV cache, timed apart: prefill
/// tokens/s is llama-bench's pp, decode tokens/s its tg; tokens_per_s (all new tokens over the whole time, prefill
/// included) is what torch_gpt2_bench.py's `generate` reports.
private func benchGenerate(weights: ModelWeights, prompt: Int, new: Int, repeats: Int, warmup: Int,
                           parallel: ParallelFor, mode: String, profile: Bool) throws {
    let config = weights.config
    try InferenceEngine.checkMemory(config: config, maxConcurrent: 1, threads: parallel.threads)
    let generator = Generator(weights: weights, parallel: parallel)
    var rng = SplitMix64(seed: 1)
    let ids = (0..<prompt).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
    var runs = [(overall: Double, prefill: Double, decode: Double)]()
    let kind = weights.quantized.map { "quantized blocks (\($0.typeSummary))" } ?? "float32 weights"
    FileHandle.standardError.write(Data("bench \(mode): \(config), \(kind), \(parallel.threads) threads, kernels \(KernelVariant.current)\n".utf8))
    let ops = OpProfile()
    for i in 0..<(warmup + repeats) {
        generator.profile = profile && i >= warmup ? ops : nil
        let t0 = DispatchTime.now().uptimeNanoseconds
        try generator.forward(ids[...], at: 0)
        let t1 = DispatchTime.now().uptimeNanoseconds
        var token = generator.withLogits { argmax($0) }
        for _ in 0..<max(new - 1, 0) {  // the first new token comes from the prefill's logits
            try generator.forward([token][...])
            token = generator.withLogits { argmax($0) }
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        let prefill = Double(t1 - t0) / 1e9, decode = Double(t2 - t1) / 1e9
        let run = (overall: Double(new) / (prefill + decode), prefill: Double(prompt) / prefill,
                   decode: new > 1 ? Double(new - 1) / decode : 0)
        FileHandle.standardError.write(Data(String(format: "%@ %d: prefill %.1f tokens/s (%.3f s), decode %.2f tokens/s\n",
                                                   i < warmup ? "warmup" : "run", i + 1, run.prefill, prefill,
                                                   run.decode).utf8))
        if i >= warmup { runs.append(run) }
    }
    if profile {
        let total = ops.entries.reduce(0) { $0 + $1.milliseconds }
        print("per run (mean of \(repeats): a \(prompt)-token prefill and \(max(new - 1, 0)) decode steps):")
        for e in ops.entries {
            print(String(format: "  %@ %9.1f ms  %5.1f%%  (%d calls)", e.op.name.padding(toLength: 18, withPad: " ", startingAt: 0),
                         e.milliseconds / Double(repeats), 100 * e.milliseconds / total, e.calls / repeats))
        }
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    let overall = median(runs.map(\.overall)), prefill = median(runs.map(\.prefill)), decode = median(runs.map(\.decode))
    if new > 0 {
        print(String(format: "median decode %.2f tokens/s, prefill %.1f tokens/s (%d-token prompt, %d new tokens, greedy, KV cache)",
                     decode, prefill, prompt, new))
    } else {
        print(String(format: "median prefill %.1f tokens/s (%d-token prompt)", prefill, prompt))
    }
    print(String(format: "{\"mode\": \"%@\", \"tokens_per_s\": %.3f, \"decode_tokens_per_s\": %.3f, \"prefill_tokens_per_s\": %.3f, \"threads\": %d, \"prompt\": %d, \"new\": %d, \"params\": %d, \"kernels\": \"%@\", \"quantized\": %@}",
                 mode, overall, decode, prefill, parallel.threads, prompt, new, config.parameterCount,
                 KernelVariant.current.rawValue, weights.quantized == nil ? "false" : "true"))
}
