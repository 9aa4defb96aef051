// GGUF models: what `llm convert --to X.gguf` writes reads back to the same model (Llama's q/k rows permuted and
// back, Gemma's norm weights stored as 1 + w and back, GPT-2's tied head), with its tokenizer; what llama.cpp
// cannot express is refused. (That the reading direction matches llama.cpp's converter is checked on the real
// models: `llm verify --greedy` in scripts/ci_real_models_check.sh, and on these exports by transformers in
// scripts/ci_transformers_check.sh.)
import Foundation
import Testing
@testable import LLM

@Suite struct GGUFModelTests {
    /// A byte-level tokenizer small enough for the fixtures' vocabularies (256 bytes and one special token).
    static let tokenizer = Tokenizer(tokens: (0..<256).map { [UInt8($0)] }, pattern: .gpt2,
                                     specialTokens: ["<|endoftext|>": 256])

    /// The fixtures' models; Gemma's with llama.cpp's layer pattern (five sliding layers, then a global one) and
    /// query scale, which are all that a GGUF can say.
    static func model(_ name: String) throws -> ModelWeights {
        let weights = try HuggingFaceFolder.read(folder: Fixtures.path(name, "hf"))
        guard name == "gemma3-window" else { return weights }
        var c = weights.config
        c.numLayers = 6
        c.slidingLayers = (0..<6).map { ($0 + 1) % 6 != 0 }
        c.queryPreAttentionScalar = Double(c.headSize)
        return ModelWeights.random(config: c, seed: 7)
    }

    @Test(arguments: ["llama-gqa", "qwen2-mqa", "gemma3-window"])
    func f32ExportReadsBackToTheSameModel(fixture name: String) throws {
        let weights = try Self.model(name)
        let tokenizer = Tokenizer(tokens: (0..<255).map { [UInt8($0)] } + [[255]], pattern: .gpt2, specialTokens: [:])
        try withTemporaryDirectory { dir in
            let path = dir + "/model.gguf"
            try GGUFModel.write(weights, tokenizer: tokenizer, chatTemplate: "{{ messages }}", name: name, type: .f32, to: path)
            let file = try GGUFFile.open(path)
            #expect(file.metadata["general.name"]?.string == name)
            #expect(file.metadata["tokenizer.chat_template"]?.string == "{{ messages }}")
            let back = try GGUFModel.read(file)
            // GGUF stores ε as a float32, as transformers then reads it.
            var expected = weights.config
            expected.normEps = Double(Float(expected.normEps))
            #expect(back.config == expected)
            let (a, b) = (weights.arena.array(), back.arena.array())
            if weights.config.architecture == .gemma3 {
                // (1 + w) − 1 in float32 rounds w to the precision of numbers near 1, as transformers' loader does.
                #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-7 })
            } else {
                #expect(a == b)
            }
            // The file stores Llama's q rows permuted (so llama.cpp's rotary layout applies), not as we hold them.
            if weights.config.architecture == .llama {
                let q = try file.dequantize("blk.0.attn_q.weight")
                let ours = Array(a[weights.layout.offset(.qkvw)..<weights.layout.offset(.qkvw) + q.count])
                #expect(q != ours)
                #expect(GGUFModel.unpermuteRotaryRows(q, heads: weights.config.numHeads, columns: weights.config.channels) == ours)
            }
            let tok = try Tokenizer(gguf: file.metadata, path: path)
            #expect(tok.encode("Hello, world! 123") == tokenizer.encode("Hello, world! 123"))
        }
    }

    @Test func q8ExportIsCloseAndVectorsStayF32() throws {
        // Rows of 64 and 128 values: whole Q8_0 blocks of 32 (a row that is not stays F16).
        var c = try HuggingFaceFolder.readConfig(folder: Fixtures.path("llama-gqa", "hf"))
        (c.channels, c.hiddenSize, c.numHeads, c.numKVHeads, c.headSize) = (64, 128, 4, 2, 16)
        let weights = ModelWeights.random(config: c, seed: 3)
        try withTemporaryDirectory { dir in
            let path = dir + "/model.gguf"
            try GGUFModel.write(weights, tokenizer: Self.tokenizer, chatTemplate: nil, name: "q8", type: .q8_0, to: path)
            let file = try GGUFFile.open(path)
            #expect(file.tensor(named: "blk.0.attn_norm.weight")?.type == .f32)
            #expect(file.tensor(named: "blk.0.ffn_up.weight")?.type == .q8_0)
            #expect(file.metadata["general.file_type"] == .uint32(7))
            let back = try GGUFModel.read(file)
            let (a, b) = (weights.arena.array(), back.arena.array())
            let scale = a.map(abs).max()!
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= scale / 127 })
        }
    }

    @Test func gpt2ExportKeepsTheTiedHead() throws {
        let weights = try LLMCCheckpoint.read(Fixtures.path("odd-vocab", "model.bin"))
        try withTemporaryDirectory { dir in
            let path = dir + "/model.gguf"
            let tokenizer = Tokenizer(tokens: (0..<256).map { [UInt8($0)] }, pattern: .gpt2, specialTokens: [:])
            try GGUFModel.write(weights, tokenizer: tokenizer, chatTemplate: nil, name: "gpt2", type: .f32, to: path)
            let file = try GGUFFile.open(path)
            #expect(try file.dequantize("output.weight") == file.dequantize("token_embd.weight"))
            let back = try GGUFModel.read(file)
            #expect(back.config == weights.config)
            #expect(back.arena.array() == weights.arena.array())
        }
    }

    @Test func whatLlamaCppCannotRunIsRefused() throws {
        let nanochat = try HuggingFaceFolder.read(folder: Fixtures.path("nanochat-tiny", "hf"))
        try withTemporaryDirectory { dir in
                let gemma = try HuggingFaceFolder.read(folder: Fixtures.path("gemma3-window", "hf"))  // global every 3rd layer
            #expect(throws: FormatError.self) {
                try GGUFModel.write(gemma, tokenizer: Self.tokenizer, chatTemplate: nil, name: "g", type: .f16, to: dir + "/g.gguf")
            }
            #expect(throws: FormatError.self) {
                try GGUFModel.write(nanochat, tokenizer: Self.tokenizer, chatTemplate: nil, name: "n", type: .f16, to: dir + "/n.gguf")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/n.gguf"))
        }
    }

    /// A GGUF of an architecture this engine does not run is a one-line error naming it.
    @Test func unknownArchitectureIsNamed() throws {
        try withTemporaryDirectory { dir in
            var w = GGUFWriter()
            w.add("general.architecture", .string("mamba"))
            w.addTensor(name: "token_embd.weight", dims: [4, 8], type: .f32, data: [Float](repeating: 0, count: 32))
            try w.write(to: dir + "/m.gguf")
            #expect { try GGUFModel.read(dir + "/m.gguf") } throws: { error in
                "\(error)".contains("architecture mamba is not supported")
            }
        }
    }

    /// Sharded Hugging Face folders: the fixture split in two with an index reads back to the same weights.
    @Test func shardedSafetensorsReadLikeOneFile() throws {
        let folder = Fixtures.path("llama-gqa", "hf")
        let weights = try HuggingFaceFolder.read(folder: folder)
        try withTemporaryDirectory { dir in
            let tensors = HuggingFaceFolder.tensors(weights)
            let half = tensors.count / 2
            try SafeTensorsFile.write(Array(tensors[..<half]), to: dir + "/model-00001-of-00002.safetensors")
            try SafeTensorsFile.write(Array(tensors[half...]), to: dir + "/model-00002-of-00002.safetensors")
            var map = [String: String]()
            for (i, t) in tensors.enumerated() { map[t.name] = i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors" }
            let index = try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map])
            try index.write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
            try FileManager.default.copyItem(atPath: folder + "/config.json", toPath: dir + "/config.json")
            #expect(try HuggingFaceFolder.read(folder: dir).arena.array() == weights.arena.array())
            // A shard name that leaves the folder is refused.
            let bad = try JSONSerialization.data(withJSONObject: ["weight_map": ["x": "../model.safetensors"]])
            try bad.write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
            #expect(throws: FormatError.self) { try HuggingFaceFolder.read(folder: dir) }
        }
    }
}
