// LoRA: the adapted linear layer's forward and backward against finite differences of a Double reference, which
// layers a target list selects, parity with PEFT (reference/make_lora_fixture.py), PEFT's file format both ways,
// merging, and a frozen base that really is frozen (no gradient buffers, unchanged weights, no allocation).
import Foundation
import MallocCounter
import Testing
@testable import LLM

@Suite struct LoRATests {
    static let fixtures = ["lora-llama", "lora-llama-qv"]

    /// y = base + s·(x·Aᵀ)·Bᵀ on OC of ldOut columns from `offset`, in Double, from the math.
    private static func reference(x: [Double], a: [Double], b: [Double], base: [Double], scale: Double, N: Int, C: Int,
                                  OC: Int, ldOut: Int, offset: Int, rank: Int) -> [Double] {
        var y = base
        for n in 0..<N {
            var u = [Double](repeating: 0, count: rank)
            for r in 0..<rank { for c in 0..<C { u[r] += x[n * C + c] * a[r * C + c] } }
            for o in 0..<OC {
                var s = 0.0
                for r in 0..<rank { s += u[r] * b[o * rank + r] }
                y[n * ldOut + offset + o] += scale * s
            }
        }
        return y
    }

    @Test(arguments: KernelVariant.supported, [(N: 5, C: 19, OC: 7, rank: 3), (N: 8, C: 40, OC: 33, rank: 2)])
    func kernelMatchesFiniteDifferences(variant: KernelVariant, shape: (N: Int, C: Int, OC: Int, rank: Int)) {
        let (N, C, OC, rank) = shape
        let ldOut = OC + 5, offset = 3, scale: Float = 2.5
        var rng = SplitMix64(seed: 41)
        let x = gaussians(N * C, &rng), a = gaussians(rank * C, &rng, std: 0.3), b = gaussians(OC * rank, &rng, std: 0.3)
        let base = gaussians(N * ldOut, &rng), dout = gaussians(N * ldOut, &rng)
        let scratch = MatmulScratch(threads: 2), parallel = ParallelFor(threads: 2)
        var u = [Float](repeating: .nan, count: N * rank), du = u
        let ref = { (x: [Double], a: [Double], b: [Double]) in
            Self.reference(x: x, a: a, b: b, base: doubles(base), scale: Double(scale), N: N, C: C, OC: OC,
                           ldOut: ldOut, offset: offset, rank: rank)
        }

        var out = base
        out.withUnsafeMutableBufferPointer { o in
            loraForward(out: o.baseAddress! + offset, ldOut: ldOut, inp: x, a: a, b: b, u: &u, scale: scale, N: N,
                        C: C, OC: OC, rank: rank, parallel: parallel, scratch: scratch, variant: variant)
        }
        expectClose(out, ref(doubles(x), doubles(a), doubles(b)), "LoRA forward (\(variant))")

        // The gradient of Σ dout ⊙ y; only the adapter's columns of dout reach it.
        let backward = { (grads: [[Float]]) -> [[Float]] in
            var (dx, da, db) = (grads[0], grads[1], grads[2])
            dout.withUnsafeBufferPointer { d in
                loraBackward(dinp: &dx, da: &da, db: &db, dout: d.baseAddress! + offset, ldDout: ldOut, inp: x, a: a,
                             b: b, u: &u, du: &du, scale: scale, N: N, C: C, OC: OC, rank: rank, parallel: parallel,
                             scratch: scratch, variant: variant)
            }
            return [dx, da, db]
        }
        let grads = backward([[Float](repeating: 0, count: N * C), [Float](repeating: 0, count: rank * C),
                              [Float](repeating: 0, count: OC * rank)])
        let (xd, ad, bd) = (doubles(x), doubles(a), doubles(b))
        expectClose(grads[0], numericGradient(at: xd) { weightedSum(dout, ref($0, ad, bd)) }, "LoRA dinp (\(variant))")
        expectClose(grads[1], numericGradient(at: ad) { weightedSum(dout, ref(xd, $0, bd)) }, "LoRA dA (\(variant))")
        expectClose(grads[2], numericGradient(at: bd) { weightedSum(dout, ref(xd, ad, $0)) }, "LoRA dB (\(variant))")
        expectAccumulates(grads, backward)
    }

    @Test func targetsSelectLayersAsPEFTDoes() throws {
        let c = try HuggingFaceFolder.readConfig(folder: Fixtures.path("lora-llama", "hf"))
        let (H, Hkv, d, L) = (c.numHeads, c.numKVHeads, c.headSize, c.numLayers)
        let qv = try LoRAAdapter(config: LoRAConfig(rank: 2, targets: ["q_proj", "v_proj"]), model: c)
        #expect(qv.parts.map(\.module) == (0..<L).flatMap {
            ["model.layers.\($0).self_attn.q_proj", "model.layers.\($0).self_attn.v_proj"]
        })
        #expect(qv.parts[0].rows == 0..<H * d && qv.parts[1].rows == (H + Hkv) * d..<(H + 2 * Hkv) * d)
        #expect(qv.parameterCount == L * 2 * (2 * c.channels) + L * 2 * (H * d + Hkv * d))
        let all = try LoRAAdapter(config: LoRAConfig(rank: 4, targets: ["all-linear"]), model: c)
        #expect(all.parts.count == 7 * L && all.config.alpha == 8)
        let down = try LoRAAdapter(config: LoRAConfig(rank: 1, targets: ["mlp.down_proj"]), model: c)
        #expect(down.parts.count == L && down.parts[0].inputs == c.hiddenSize && down.parts[0].outputs == c.channels)
        #expect(throws: ModelError.self) { try LoRAAdapter(config: LoRAConfig(rank: 4, targets: ["c_attn"]), model: c) }
        #expect(throws: ModelError.self) { try LoRAAdapter(config: LoRAConfig(rank: 0, targets: ["q_proj"]), model: c) }
        // GPT-2's layer names: c_proj is both the attention's output and the MLP's down projection, as in PEFT.
        let gpt2 = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 50, numLayers: 2, numHeads: 2, channels: 16)
        let proj = try LoRAAdapter(config: LoRAConfig(rank: 2, targets: ["c_proj"]), model: gpt2)
        #expect(proj.parts.map(\.linear) == [.attprojw, .fcprojw, .attprojw, .fcprojw])
    }

    @Test(arguments: fixtures, [1, 2])
    func trainingMatchesPEFT(fixture name: String, threads: Int) throws {
        let fixture = try LoRAParityFixture.load(Fixtures.path(name))
        let (checks, steps, final, _) = try Parity.checkLoRA(fixture, parallel: ParallelFor(threads: threads))
        let adapter = try LoRAAdapter.read(folder: Fixtures.path(name, "adapter"), model: fixture.base.config)
        #expect(checks.count == 2 + 2 * adapter.parts.count)
        for check in checks + final { #expect(check.passed, "\(name) \(check.name): \(check.difference) > \(check.bound)") }
        #expect(steps.count == 10)
        for s in steps {
            #expect(s.lossCheck.passed, "\(name) step \(s.step) loss \(s.loss) vs \(s.referenceLoss)")
            #expect(s.gradNormCheck.passed, "\(name) step \(s.step) grad norm \(s.gradNorm) vs \(s.referenceGradNorm)")
        }
    }

    @Test func theBaseStaysFrozen() throws {
        let fixture = try LoRAParityFixture.load(Fixtures.path("lora-llama"))
        let weights = try fixture.weights()
        let before = weights.arena.array()
        let model = try Transformer(weights: weights, batch: fixture.batch, seq: fixture.seq,
                                    parallel: ParallelFor(threads: 1))
        #expect(model.grads.count == weights.adapter!.parameterCount && model.adamM.count == model.grads.count)
        let opt = AdamWConfig(learningRate: 1e-2)
        func step(_ t: Int) throws {
            try model.forward(inputs: fixture.inputs, targets: fixture.targets)
            model.zeroGradients()
            try model.backward()
            try model.update(opt, step: t)
        }
        try step(1)
        if isLinux {
            malloc_counter_arm()
            try step(2)
            let count = malloc_counter_disarm()
            #expect(count == 0, "a LoRA training step made \(count) heap allocations")
        }
        #expect(weights.arena.array() == before, "the base weights changed")
    }

    @Test func mergingGivesTheSameLogits() throws {
        let fixture = try LoRAParityFixture.load(Fixtures.path("lora-llama"))
        let adapted = try fixture.weights(final: true)
        let merged = fixture.base.copy()
        adapted.adapter!.merge(into: merged)
        func logits(_ w: ModelWeights) throws -> [Float] {
            let m = try Transformer(weights: w, batch: fixture.batch, seq: fixture.seq, parallel: ParallelFor(threads: 1))
            try m.forward(inputs: fixture.inputs)
            return m.logits()
        }
        let (a, b) = (try logits(adapted), try logits(merged))
        let (diff, scale) = Parity.maxAbsDiff(a, b)
        #expect(diff <= 1e-5 * max(1, scale), "merged logits differ by \(diff)")
        #expect(merged.arena.array() != fixture.base.arena.array())
        // And the generator (KV cache, decode path) runs the adapter as the training forward does.
        let generator = Generator(weights: adapted, parallel: ParallelFor(threads: 1))
        try generator.forward(fixture.inputs[0..<fixture.seq])
        let V = fixture.base.config.vocabSize, Vp = fixture.base.config.paddedVocabSize
        let last = Array(a[(fixture.seq - 1) * Vp..<(fixture.seq - 1) * Vp + V])
        let (gdiff, _) = Parity.maxAbsDiff(generator.logits(), last)
        #expect(gdiff <= 1e-4, "generator logits differ by \(gdiff)")
    }

    @Test func peftFilesRoundTrip() throws {
        let c = try HuggingFaceFolder.readConfig(folder: Fixtures.path("lora-llama", "hf"))
        let adapter = try LoRAAdapter.read(folder: Fixtures.path("lora-llama", "final"), model: c)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try adapter.write(folder: dir, baseModel: "tiny")
        let back = try LoRAAdapter.read(folder: dir, model: c)
        #expect(back.config == adapter.config && back.parts == adapter.parts)
        #expect(back.arena.array() == adapter.arena.array())
        // PEFT's own tensor names and shapes, byte for byte the same tensors as PEFT's file holds.
        let ours = try SafeTensorsFile.read(dir + "/adapter_model.safetensors")
        let theirs = try SafeTensorsFile.read(Fixtures.path("lora-llama", "final/adapter_model.safetensors"))
        #expect(Set(ours.entries.keys) == Set(theirs.entries.keys))
        for name in theirs.entries.keys { #expect(try ours.floats(name) == theirs.floats(name)) }

        // What this engine does not run is refused by name.
        let configPath = dir + "/adapter_config.json"
        let original = try String(contentsOfFile: configPath, encoding: .utf8)
        for (from, to, expected) in [("\"use_dora\": false", "\"use_dora\": true", "use_dora"),
                                     ("\"modules_to_save\": null", "\"modules_to_save\": [\"lm_head\"]", "modules_to_save"),
                                     ("\"bias\": \"none\"", "\"bias\": \"all\"", "bias"),
                                     ("\"r\": 4", "\"r\": 3", "shape")] {
            try original.replacingOccurrences(of: from, with: to).write(toFile: configPath, atomically: true, encoding: .utf8)
            do {
                _ = try LoRAAdapter.read(folder: dir, model: c)
                Issue.record("\(to) was accepted")
            } catch {
                #expect("\(error)".contains(expected) || "\(error)".contains("wrongShape"), "\(to): \(error)")
            }
        }
    }
}

@Suite struct LoRASFTTests {
    /// A tiny chat model as a GGUF file whose matrices are Q8_0 blocks (the QLoRA base) or F32.
    static func writeModel(in dir: String, type: GGMLType) throws -> String {
        let c = try ModelPreset.llama(layers: 2, heads: 2, channels: 32, kvHeads: 1, vocabSize: 832, maxSeqLen: 128)
        let path = dir + "/model-\(type).gguf"
        try GGUFModel.write(ModelWeights.random(config: c, seed: 5), tokenizer: try TemplateSFTTests.tokenizer(),
                            chatTemplate: TemplateSFTTests.chatML.source, name: "tiny", type: type, to: path)
        return path
    }

    /// A three-step LoRA fine-tuning of rank 2 on `targets`, checkpointing every step (keeping `keep`).
    static func job(_ runDirectory: String, model: String, data: String, targets: [String], keep: Int = 2) -> NewSFTRun {
        var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
        t.batch = 1
        t.steps = 3
        t.warmupSteps = 0
        t.learningRate = 1e-2
        t.evalEvery = 0
        t.sampleEvery = 0
        t.checkpointEvery = 1
        t.keepCheckpoints = keep
        var job = NewSFTRun(runDirectory: runDirectory, initFrom: model, tokenizer: nil, data: data, valData: nil,
                            training: t)
        job.seq = 48
        job.lora = LoRAConfig(rank: 2, targets: targets)
        return job
    }

    /// On a quantized base the frozen layers run from their blocks in both passes: the loss and every adapter
    /// gradient equal those on the same base dequantized to float32.
    @Test func aQuantizedBaseGivesTheGradientsOfItsDequantizedWeights() throws {
        guard KernelVariant.current != .generic else { return }  // (the quantized path needs AVX2 or AVX-512)
        try withTemporaryDirectory { dir in
            let path = try Self.writeModel(in: dir, type: .q8_0)
            let quantized = try GGUFModel.read(path, keepQuantized: true), float = try GGUFModel.read(path)
            #expect(quantized.quantized != nil && float.quantized == nil)
            let adapter = try LoRAAdapter(config: LoRAConfig(rank: 4, targets: ["all-linear"]), model: float.config)
            adapter.initialize(seed: 9)
            adapter.arena.withMutableBuffer { b in for i in b.indices where b[i] == 0 { b[i] = 0.01 * Float(i % 7 - 3) } }
            var rng = SplitMix64(seed: 2)
            let inputs = (0..<2 * 20).map { _ in Int32(rng.next() % 832) }
            let targets = (0..<2 * 20).map { _ in Int32(rng.next() % 832) }
            var results = [(loss: Float, grads: [Float])]()
            for base in [quantized, float] {
                let model = try Transformer(weights: try base.withAdapter(adapter), batch: 2, seq: 20,
                                            parallel: ParallelFor(threads: 2))
                let loss = try #require(try model.forward(inputs: inputs, targets: targets))
                model.zeroGradients()
                try model.backward()
                results.append((loss, model.adapterGradient(0..<adapter.parameterCount)))
            }
            #expect(abs(results[0].loss - results[1].loss) <= 1e-5 * abs(results[1].loss))
            let (diff, scale) = Parity.maxAbsDiff(results[0].grads, results[1].grads)
            #expect(diff <= 1e-4 * scale, "adapter gradients differ by \(diff) (max \(scale))")
        }
    }

    /// `llm sft --lora-rank`'s path: a run that trains an adapter on a frozen GGUF base (kept in its blocks),
    /// checkpoints the adapter alone in PEFT's format, resumes exactly, and loads for chat with the adapter on.
    @Test func aLoRARunCheckpointsResumesExactlyAndLoads() throws {
        try withTemporaryDirectory { dir in
            let model = try Self.writeModel(in: dir, type: .q8_0)
            let data = dir + "/conv.jsonl"
            try Conversation.writeJSONL(SyntheticConversations.generate(count: 16, seed: 3), to: data)
            func job(_ name: String) -> NewSFTRun {
                Self.job(dir + "/" + name, model: model, data: data, targets: ["q_proj", "v_proj", "down_proj"])
            }
            let straight = try job("straight").start(parallel: ParallelFor(threads: 1))
            #expect(straight.config.lora?.adapter.rank == 2)
            #expect(straight.config.lora?.quantizedBase == (KernelVariant.current != .generic))
            #expect(straight.model.weights.adapter!.parts.count == 3 * 2)
            try straight.train()

            let interrupted = try job("interrupted").start(parallel: ParallelFor(threads: 1))
            try interrupted.train(stopAfter: 2)
            let checkpoint = try #require(interrupted.run.checkpoints().last).path
            #expect(FileManager.default.fileExists(atPath: checkpoint + "/adapter/adapter_model.safetensors"))
            #expect(!FileManager.default.fileExists(atPath: checkpoint + "/model"), "a LoRA checkpoint holds no model")
            let resumed = try Trainer.resume(run: interrupted.run, parallel: ParallelFor(threads: 1))
            #expect(resumed.step == 2)
            try resumed.train()

            let a = try LoRAAdapter.read(folder: dir + "/straight/adapter", model: straight.config.model)
            let b = try LoRAAdapter.read(folder: dir + "/interrupted/adapter", model: straight.config.model)
            #expect(a.arena.array() == b.arena.array(), "resuming changed the trained adapter")
            #expect(a.parts.contains { a.arena.array($0.b).contains { $0 != 0 } }, "B starts at zero: training moves it")

            // The run loads for chat: the base with the run's adapter, in the model's template.
            let loaded = try LoadedModel.load(dir + "/straight", quantized: true)
            #expect(loaded.weights.adapter?.arena.array() == a.arena.array())
            #expect(loaded.chatFormat is TemplateChatFormat)
            // And --adapter on the base model gives the same.
            let direct = try LoadedModel.load(model, quantized: true, adapter: dir + "/straight/adapter")
            #expect(direct.weights.adapter?.arena.array() == a.arena.array())
        }
    }

    @Test func loraRefusesToGrowTheVocabulary() throws {
        try withTemporaryDirectory { dir in
            let c = try ModelConfig.gpt2(maxSeqLen: 64, vocabSize: 50257, numLayers: 1, numHeads: 2, channels: 16)
            try saveWeights(.randomGPT2(config: c, seed: 1), to: dir + "/gpt2.bin")
            let data = dir + "/conv.jsonl"
            try Conversation.writeJSONL(SyntheticConversations.generate(count: 4, seed: 3), to: data)
            var job = NewSFTRun(runDirectory: dir + "/run", initFrom: dir + "/gpt2.bin", tokenizer: nil, data: data,
                                valData: nil, training: TrainingConfig(trainShards: "", valShards: nil, tokenizer: ""))
            job.lora = LoRAConfig(rank: 2, targets: ["c_attn"])
            #expect(throws: TrainingError.self) { try job.start(parallel: ParallelFor(threads: 1)) }
            #expect(!FileManager.default.fileExists(atPath: dir + "/run/config.json"))
        }
    }
}
