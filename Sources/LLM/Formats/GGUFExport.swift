// Writing a model as GGUF, so that llama.cpp and Ollama run what was trained or converted here: the metadata
// llama.cpp's loader reads for the architecture (`llama.embedding_length`, …), the tensors under its names
// (GGUFModel's table, used backwards: Llama's q/k rows permuted for ggml's rotary layout, Gemma's norm weights
// stored as 1 + w, as llama.cpp's converter does), the tokenizer (`tokenizer.ggml.*`) and the chat template.
//
// Matrices are written as F32, F16, BF16 or Q8_0; vectors (norm weights, biases) always as F32, as llama.cpp's
// converter does, and a matrix whose rows are not whole Q8_0 blocks falls back to F16.
import Foundation

extension GGUFModel {
    /// The tensor types `llm convert --to FILE.gguf --type` writes.
    public static let exportTypes: [String: GGMLType] = ["f32": .f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0]

    /// Writes `weights` with `tokenizer` (and `chatTemplate`, if any) to a GGUF file at `path`, atomically.
    /// Throws for an architecture llama.cpp does not have (nanochat) or a tokenizer it cannot express.
    public static func write(_ weights: ModelWeights, tokenizer: Tokenizer, chatTemplate: String?, name: String,
                             type: GGMLType, to path: String) throws {
        let c = weights.config
        func fail(_ why: String) -> FormatError { .mismatch(path: path, reason: why) }
        let arch: String
        switch c.architecture {
        case .llama: arch = "llama"
        case .qwen2: arch = "qwen2"
        case .gemma3: arch = "gemma3"
        case .gpt2: arch = "gpt2"
        case .nanochat:
            throw fail("llama.cpp has no architecture for nanochat's (ReLU², QK-norm without weights, untied head, logit softcap); export it as a Hugging Face folder instead")
        }
        guard [.f32, .f16, .bf16, .q8_0].contains(type) else { throw fail("cannot write tensors of type \(type) (choose F32, F16, BF16 or Q8_0)") }
        if arch == "llama" || arch == "qwen2" {
            guard c.qkNorm == .none, c.logitSoftcap == nil, c.slidingWindow == 0, !c.mlpBias, c.qkvBias == (arch == "qwen2"),
                  !c.attnOutBias else { throw fail("the model has parts llama.cpp's \(arch) does not") }
        }
        guard tokenizer.vocabSize <= c.vocabSize else {
            throw fail("the tokenizer has \(tokenizer.vocabSize) tokens but the model only \(c.vocabSize)")
        }

        var w = GGUFWriter()
        w.add("general.architecture", .string(arch))
        w.add("general.type", .string("model"))
        w.add("general.name", .string(name))
        let fileType: UInt32 = switch type { case .f16: 1; case .q8_0: 7; case .bf16: 32; default: 0 }
        w.add("general.file_type", .uint32(fileType))
        if type == .q8_0 { w.add("general.quantization_version", .uint32(2)) }
        func u32(_ key: String, _ v: Int) { w.add("\(arch).\(key)", .uint32(UInt32(v))) }
        func f32(_ key: String, _ v: Double) { w.add("\(arch).\(key)", .float32(Float(v))) }
        u32("context_length", c.maxSeqLen)
        u32("embedding_length", c.channels)
        u32("block_count", c.numLayers)
        u32("feed_forward_length", c.hiddenSize)
        u32("attention.head_count", c.numHeads)
        if arch == "gpt2" {
            f32("attention.layer_norm_epsilon", 1e-5)
        } else {
            u32("attention.head_count_kv", c.numKVHeads)
            f32("rope.freq_base", c.ropeTheta)
            f32("attention.layer_norm_rms_epsilon", c.normEps)
            if arch == "gemma3" || c.headSize * c.numHeads != c.channels {
                u32("attention.key_length", c.headSize)
                u32("attention.value_length", c.headSize)
            }
            if arch == "llama" { u32("rope.dimension_count", c.headSize) }
            if arch == "gemma3" {
                // llama.cpp's Gemma 3 makes every sixth layer global and takes θ = 10,000 for the others.
                let pattern = (0..<c.numLayers).map { ($0 + 1) % 6 != 0 }
                guard c.slidingWindow > 0, (0..<c.numLayers).map(c.isSliding) == pattern,
                      (c.ropeLocalTheta ?? 10_000) == 10_000,
                      c.queryPreAttentionScalar == nil || c.queryPreAttentionScalar == Double(c.headSize) else {
                    throw fail("llama.cpp's gemma3 has sliding windows on five of every six layers, local θ 10000 and query scale 1/√head_dim; this model differs")
                }
                u32("attention.sliding_window", c.slidingWindow)
                if let cap = c.logitSoftcap { f32("final_logit_softcapping", cap) }
            }
        }
        u32("vocab_size", c.vocabSize)
        for (key, value) in try tokenizer.ggufMetadata(vocabularySize: c.vocabSize, path: path) { w.add(key, value) }
        if let chatTemplate { w.add("tokenizer.chat_template", .string(chatTemplate)) }

        let layout = weights.layout
        for p in HuggingFaceFolder.placements(c) {
            let name = ggufName(p.name, architecture: c.architecture)
            let dims = p.transposed ? p.shape : Array(p.shape.reversed())
            var tensorType = dims.count == 1 ? GGMLType.f32 : type
            if tensorType == .q8_0 && dims[0] % GGMLType.q8_0.blockSize != 0 { tensorType = .f16 }
            let range = p.arenaRange(layout)
            let permute = arch == "llama" && p.tensor == .qkvw && (name.contains(".attn_q.") || name.contains(".attn_k."))
            let heads = p.rows.lowerBound == 0 ? c.numHeads : c.numKVHeads
            let normShift = arch == "gemma3" && name.hasSuffix("norm.weight")
            w.addTensor(name: name, dims: dims, type: tensorType) { dst in
                var values = weights.arena.array(range)
                if permute { values = permuteRotaryRows(values, heads: heads, columns: c.channels) }
                if normShift { for i in values.indices { values[i] += 1 } }
                _ = dst.update(fromContentsOf: values)
            }
            // GPT-2's converter stores the tied head as output.weight too, and llama.cpp's gpt2 expects it.
            if arch == "gpt2" && p.tensor == .wte {
                w.addTensor(name: "output.weight", dims: dims, type: tensorType) { dst in
                    _ = dst.update(fromContentsOf: weights.arena.array(range))
                }
            }
        }
        try w.write(to: path)
    }
}
