// `llm bench`: times training steps or forward passes on a random-weight model; no files needed.
import ArgumentParser
import Foundation
import LLM

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a GPT-2 training step (forward, backward, AdamW) or a forward pass on random weights.",
        discussion: "Prints each timed repetition, then a summary, then one JSON line with the same keys as ../shared/tools/torch_gpt2_bench.py.")

    enum Mode: String, ExpressibleByArgument, CaseIterable { case train, forward, generate, matmul }

    @Argument(help: "What to time: train, forward, generate (greedy, KV cache), or matmul (the model's matmul shapes).")
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
    @Option(help: "generate: prompt tokens.") var prompt = 16
    @Option(help: "generate: new tokens.") var new = 256
    @Option(help: "Timed repetitions.") var steps = 5
    @Option(help: "Untimed warm-up repetitions.") var warmup = 1
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Print where a step's time goes, per kind of operation.") var profile = false

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
        if mode == .generate && model == nil {
            try checkRange(prompt, "--prompt", 1...Int.max, "generation starts from at least one prompt token")
            try checkRange(new, "--new", 0...Int.max)
            if prompt.addingReportingOverflow(new).overflow || prompt + new > maxSeq {
                throw ValidationError("--prompt \(prompt) + --new \(new) must be at most --max-seq \(maxSeq)")
            }
        }
        try checkThreads(threads)
    }

    func run() throws {
        try reportingErrors {
            try device.check()
            let loaded = try model.map { try LoadedModel.load($0).weights }
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
            if mode == .generate {
                if prompt + new > config.maxSeqLen {
                    throw ValidationError("--prompt \(prompt) + --new \(new) must be at most the model's context, \(config.maxSeqLen)")
                }
                try benchGenerate(weights: loaded ?? .random(config: config, seed: 0), prompt: prompt, new: new,
                                  repeats: steps, warmup: warmup, parallel: parallel)
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
    print("matmul shapes at N=\(N), \(parallel.threads) threads (forward: 2·N·C·OC FLOPs; backward: 4·N·C·OC)")
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

/// Greedy decoding with the KV cache from a random prompt, as torch_gpt2_bench.py's `generate` does.
private func benchGenerate(weights: ModelWeights, prompt: Int, new: Int, repeats: Int, warmup: Int,
                           parallel: ParallelFor) throws {
    let config = weights.config
    try InferenceEngine.checkMemory(config: config, maxConcurrent: 1, threads: parallel.threads)
    let generator = Generator(weights: weights, parallel: parallel)
    var rng = SplitMix64(seed: 1)
    let ids = (0..<prompt).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
    var parameters = GenerateParameters(maxNewTokens: new, temperature: 0)
    parameters.stopTokens = []
    var rates = [Double]()
    for i in 0..<(warmup + repeats) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let result = try generator.generate(prompt: ids, parameters: parameters) { _ in true }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let rate = Double(result.tokens.count) / seconds
        FileHandle.standardError.write(Data(String(format: "%@ %d: %.2f tokens/s (prefill %.3f s)\n",
                                                   i < warmup ? "warmup" : "run", i + 1, rate, result.prefillSeconds).utf8))
        if i >= warmup { rates.append(rate) }
    }
    let sorted = rates.sorted()
    print(String(format: "median %.2f tokens/s (min %.2f, max %.2f), %d-token prompt, %d new tokens, greedy, KV cache",
                 sorted[sorted.count / 2], sorted.first!, sorted.last!, prompt, new))
    print(String(format: "{\"mode\": \"generate\", \"tokens_per_s\": %.3f, \"min\": %.3f, \"max\": %.3f, \"threads\": %d, \"prompt\": %d, \"new\": %d, \"params\": %d}",
                 sorted[sorted.count / 2], sorted.first!, sorted.last!, parallel.threads, prompt, new,
                 config.parameterCount))
}
