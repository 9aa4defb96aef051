// Generation from a GGUF model's quantized blocks (`GGUFModel.read(…, keepQuantized: true)`) against the same
// file read as float32: a prompt of more than `CPUBackend.quantizedDotRows` rows runs the float GEMM over weights
// dequantized while packing, so its logits equal the float model's to rounding; a decode step multiplies the
// blocks with 8-bit activations, so its logits are close, by the activations' rounding. Also: Llama's permuted
// q/k rows kept in blocks, the quantized embedding table and tied head, and a prompt longer than the prefill chunk.
import Foundation
import Testing
@testable import LLM

@Suite struct QuantizedModelTests {
    static let tokenizer = Tokenizer(tokens: (0..<256).map { [UInt8($0)] }, pattern: .gpt2,
                                     specialTokens: ["<|endoftext|>": 256])

    /// A small Llama with GQA whose rows are whole Q8_0 blocks (64 and 128 columns) and whose head is tied.
    static func llama(maxSeq: Int = 64) throws -> ModelWeights {
        var c = try HuggingFaceFolder.readConfig(folder: Fixtures.path("llama-gqa", "hf"))
        (c.channels, c.hiddenSize, c.numHeads, c.numKVHeads, c.headSize) = (64, 128, 4, 2, 16)
        c.maxSeqLen = maxSeq
        return ModelWeights.random(config: c, seed: 3)
    }

    /// The model written as a GGUF of `type`, read back both ways.
    static func both(_ weights: ModelWeights, type: GGMLType, in dir: String) throws -> (float: ModelWeights, quantized: ModelWeights) {
        let path = dir + "/model.gguf"
        try GGUFModel.write(weights, tokenizer: tokenizer, chatTemplate: nil, name: "q", type: type, to: path)
        return (try GGUFModel.read(path), try GGUFModel.read(path, keepQuantized: true))
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
    }

    @Test(arguments: [GGMLType.q8_0, .f16, .bf16])
    func quantizedGenerationFollowsTheFloatModel(type: GGMLType) throws {
        try withTemporaryDirectory { dir in
            let (float, quantized) = try Self.both(try Self.llama(), type: type, in: dir)
            let kept = try #require(quantized.quantized)
            #expect(kept.global[.wte]?.type == type)
            #expect(kept.linear(.qkvw, layer: 0)?.parts.map(\.rows) == [64, 32, 32])  // q, k, v
            #expect(kept.linear(.fcw, layer: 1)?.parts.count == 2)                    // gate, up
            // The float slots of what is kept stay zero: nothing reads them.
            #expect(quantized.tensor(.qkvw).allSatisfy { $0 == 0 })

            var rng = SplitMix64(seed: 5)
            let V = float.config.vocabSize
            let prompt = (0..<20).map { _ in Int32(rng.next() % UInt64(V)) }
            let a = Generator(weights: float, parallel: ParallelFor(threads: 2))
            let b = Generator(weights: quantized, parallel: ParallelFor(threads: 2))
            // 20 rows: the float GEMM from dequantized blocks, the same arithmetic as the float model's, except for
            // the LM head, which runs on the last row alone (8-bit activations for a Q8_0 table).
            try a.forward(prompt[...])
            try b.forward(prompt[...])
            let scale = a.logits().map(abs).max()!
            let prefill = Self.maxDifference(a.logits(), b.logits())
            #expect(prefill <= (type == .q8_0 ? 0.03 : 1e-4) * max(scale, 1), "prefill logits differ by \(prefill)")
            // One row at a time: 8-bit activations (F16 and BF16 weights take the float activations).
            for t in 0..<4 {
                let next = Int32((t * 37 + 11) % V)
                try a.forward([next][...])
                try b.forward([next][...])
                let diff = Self.maxDifference(a.logits(), b.logits())
                let bound: Float = type == .q8_0 ? 0.03 : 1e-4
                #expect(diff <= bound * max(scale, 1), "decode step \(t): logits differ by \(diff) (largest \(scale))")
            }
        }
    }

    /// Gemma 3 (norms stored as 1 + w stay float, the embedding scale applies to the dequantized rows).
    @Test func gemmaKeepsItsNormsAndScalesTheEmbedding() throws {
        var c = try HuggingFaceFolder.readConfig(folder: Fixtures.path("gemma3-window", "hf"))
        c.numLayers = 6
        c.slidingLayers = (0..<6).map { ($0 + 1) % 6 != 0 }
        c.queryPreAttentionScalar = Double(c.headSize)
        let weights = ModelWeights.random(config: c, seed: 7)
        try withTemporaryDirectory { dir in
            let (float, quantized) = try Self.both(weights, type: .f16, in: dir)
            #expect(quantized.quantized != nil)
            let V = float.config.vocabSize
            let prompt = (0..<12).map { Int32(($0 * 13 + 5) % V) }
            let a = Generator(weights: float, parallel: ParallelFor(threads: 1))
            let b = Generator(weights: quantized, parallel: ParallelFor(threads: 1))
            for (i, token) in prompt.enumerated() {  // one at a time: the quantized path on every row
                try a.forward([token][...])
                try b.forward([token][...])
                let scale = a.logits().map(abs).max()!
                let diff = Self.maxDifference(a.logits(), b.logits())
                #expect(diff <= 1e-4 * max(scale, 1), "position \(i): logits differ by \(diff)")
            }
        }
    }

    /// A prompt longer than the prefill chunk runs in chunks, each appended to the cache: the same logits as the
    /// training model's full forward pass.
    @Test func aPromptLongerThanAChunkGivesTheFullForwardLogits() throws {
        let weights = try Self.llama(maxSeq: BatchedLayout.prefillChunk + 40)
        let c = weights.config, T = BatchedLayout.prefillChunk + 30, V = c.vocabSize, Vp = c.paddedVocabSize
        var rng = SplitMix64(seed: 8)
        let tokens = (0..<T).map { _ in Int32(rng.next() % UInt64(V)) }
        let full = try Transformer(weights: weights, batch: 1, seq: T, parallel: ParallelFor(threads: 2))
        try full.forward(inputs: tokens)
        let reference = Array(full.logits()[(T - 1) * Vp..<(T - 1) * Vp + V])
        let generator = Generator(weights: weights, parallel: ParallelFor(threads: 2))
        try generator.forward(tokens[...])
        let diff = Self.maxDifference(generator.logits(), reference)
        #expect(diff <= 2e-5, "logits differ by \(diff)")
    }

    @Test func trainingRefusesQuantizedWeights() throws {
        try withTemporaryDirectory { dir in
            let (_, quantized) = try Self.both(try Self.llama(), type: .q8_0, in: dir)
            #expect(throws: ModelError.self) { try Transformer(weights: quantized, batch: 1, seq: 4) }
        }
    }
}
