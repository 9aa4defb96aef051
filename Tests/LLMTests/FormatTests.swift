// Model files byte for byte: llm.c checkpoints, Hugging Face folders, and the conversions between them.
import Foundation
import Testing
@testable import LLM

@Suite struct FormatTests {
    @Test(arguments: Fixtures.names)
    func checkpointRoundTripIsByteIdentical(fixture: String) throws {
        try withTemporaryDirectory { dir in
            let weights = try LLMCCheckpoint.read(Fixtures.path(fixture, "model.bin"))
            try LLMCCheckpoint.write(weights, to: dir + "/out.bin")
            #expect(try readBytes(dir + "/out.bin") == Fixtures.bytes(fixture, "model.bin"))
        }
    }

    @Test(arguments: Fixtures.names)
    func hfFolderConvertsToTheFixtureCheckpoint(fixture: String) throws {
        try withTemporaryDirectory { dir in
            try saveWeights(try loadWeights(Fixtures.path(fixture, "hf")), to: dir + "/from-hf.bin")
            #expect(try readBytes(dir + "/from-hf.bin") == Fixtures.bytes(fixture, "model.bin"))
        }
    }

    /// Our safetensors writer lays files out exactly as transformers' save_pretrained does.
    @Test(arguments: Fixtures.names)
    func checkpointConvertsToTheFixtureSafetensors(fixture: String) throws {
        try withTemporaryDirectory { dir in
            try saveWeights(try loadWeights(Fixtures.path(fixture, "model.bin")), to: dir + "/hf")
            #expect(try readBytes(dir + "/hf/model.safetensors") == Fixtures.bytes(fixture, "hf/model.safetensors"))
            let config = try HuggingFaceFolder.readConfig(folder: dir + "/hf")
            #expect(config == (try HuggingFaceFolder.readConfig(folder: Fixtures.path(fixture, "hf"))))
        }
    }

    @Test func hfToBinToHfToBinIsByteIdentical() throws {
        try withTemporaryDirectory { dir in
            try saveWeights(try loadWeights(Fixtures.path("deep-heads", "hf")), to: dir + "/a.bin")
            try saveWeights(try loadWeights(dir + "/a.bin"), to: dir + "/hf")
            try saveWeights(try loadWeights(dir + "/hf"), to: dir + "/b.bin")
            #expect(try readBytes(dir + "/a.bin") == readBytes(dir + "/b.bin"))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
            #expect(leftovers.isEmpty, "temporary files left behind: \(leftovers)")
        }
    }

    /// llm.c version 5 stores bf16; reading widens it. Compare with model.bin rounded to bf16 here.
    @Test func bf16CheckpointReadsAsRoundedFloat32() throws {
        let fp32 = try LLMCCheckpoint.read(Fixtures.path("odd-vocab", "model.bin"))
        let bf16 = try LLMCCheckpoint.read(Fixtures.path("odd-vocab", "model-bf16.bin"))
        #expect(bf16.config == fp32.config)
        #expect(bf16.arena.array() == fp32.arena.array().map(roundToBFloat16))
    }

    @Test func halfPrecisionSafetensorsReadAsRoundedFloat32() throws {
        let fp32 = try LLMCCheckpoint.read(Fixtures.path("odd-vocab", "model.bin")).arena.array()
        let bf16 = try HuggingFaceFolder.read(folder: Fixtures.path("odd-vocab", "hf-bf16")).arena.array()
        #expect(bf16 == fp32.map(roundToBFloat16))
        #if arch(x86_64) || arch(arm64)
        let fp16 = try HuggingFaceFolder.read(folder: Fixtures.path("odd-vocab", "hf-fp16")).arena.array()
        #expect(fp16 == fp32.map { Float(Float16($0)) })
        #endif
    }

    /// The published gpt2 checkpoints have no "transformer." prefix and carry attn.bias buffers.
    @Test func namesWithoutPrefixAndBuffersAreAccepted() throws {
        let fixture = "odd-vocab"
        let original = try SafeTensorsFile.read(Fixtures.path(fixture, "hf/model.safetensors"))
        let config = try HuggingFaceFolder.readConfig(folder: Fixtures.path(fixture, "hf"))
        var tensors = try original.entries.values.map {
            SafeTensorsFile.Tensor(name: String($0.name.dropFirst("transformer.".count)), shape: $0.shape,
                                   values: try original.floats($0.name))
        }
        let T = config.maxSeqLen
        for l in 0..<config.numLayers {
            tensors.append(.init(name: "h.\(l).attn.bias", shape: [1, 1, T, T], values: .init(repeating: 1, count: T * T)))
            tensors.append(.init(name: "h.\(l).attn.masked_bias", shape: [], values: [-1e4]))
        }
        tensors.append(.init(name: "lm_head.weight", shape: [config.vocabSize, config.channels],
                             values: try original.floats("transformer.wte.weight")))
        try withTemporaryDirectory { dir in
            try FileManager.default.copyItem(atPath: Fixtures.path(fixture, "hf/config.json"), toPath: dir + "/config.json")
            try SafeTensorsFile.write(tensors, to: dir + "/model.safetensors")
            try saveWeights(try loadWeights(dir), to: dir + "/out.bin")
            #expect(try readBytes(dir + "/out.bin") == Fixtures.bytes(fixture, "model.bin"))
        }
    }

    @Test func randomInitFollowsGPT2() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 64, vocabSize: 300, numLayers: 4, numHeads: 4, channels: 64)
        let w = ModelWeights.randomGPT2(config: config, seed: 42)
        #expect(w.tensor(.ln1w).allSatisfy { $0 == 1 } && w.tensor(.lnfw).allSatisfy { $0 == 1 })
        #expect(w.tensor(.qkvb).allSatisfy { $0 == 0 } && w.tensor(.lnfb).allSatisfy { $0 == 0 })
        #expect(w.tensor(.wte).suffix((config.paddedVocabSize - config.vocabSize) * config.channels).allSatisfy { $0 == 0 })
        func std(_ x: [Float]) -> Double {
            let m = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
            return (x.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(x.count)).squareRoot()
        }
        #expect(abs(std(w.tensor(.fcw)) - 0.02) < 0.001)
        #expect(abs(std(w.tensor(.fcprojw)) - 0.02 / (8.0).squareRoot()) < 0.0005)
        #expect(ModelWeights.randomGPT2(config: config, seed: 42).arena.array() == w.arena.array())
    }
}

/// Float32 → bfloat16 → Float32 with round-to-nearest-even, written independently of the library.
func roundToBFloat16(_ x: Float) -> Float {
    let bits = x.bitPattern
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return Float(bitPattern: rounded & 0xFFFF_0000)
}
