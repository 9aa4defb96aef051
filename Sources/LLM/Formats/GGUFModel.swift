// GGUF models (llama.cpp's format) to ModelWeights, for the architectures llama, qwen2, gemma3 and gpt2.
//
// The mapping follows what transformers does when it loads a GGUF (`from_pretrained(…, gguf_file=…)`), so that a
// model read here equals the one transformers builds, tensor for tensor:
//   - the metadata (`llama.embedding_length`, …) becomes a config.json-like dictionary, parsed by the same code
//     as a Hugging Face folder's config.json (same defaults, same refusals);
//   - each Hugging Face tensor (HuggingFaceFolder's placement table) has a GGUF name (`blk.3.attn_q.weight`);
//     GGUF stores a matrix with ggml's dims [in, out], i.e. the same (out, in) row-major data as nn.Linear;
//   - two transformations llama.cpp's converter applies are undone: Llama's q and k rows are permuted (pairs
//     interleaved, for ggml's rotary layout; transformers' `_reverse_permute_weights`), and Gemma's norm
//     weights are stored as 1 + w (transformers subtracts 1 again, in float32, as here);
//   - quantized tensors are dequantized to float32, bit for bit as the `gguf` package does.
import Foundation

public enum GGUFModel {
    /// The `general.architecture` values this engine runs.
    public static let supportedArchitectures = ["llama", "qwen2", "gemma3", "gpt2"]

    /// Reads a GGUF file's model: config and float32 weights (quantized tensors dequantized), or, with
    /// `keepQuantized`, the linear layers and embedding left in their blocks for generation (`ModelWeights.quantized`).
    public static func read(_ path: String, keepQuantized: Bool = false) throws -> ModelWeights {
        let file = try GGUFFile.open(path)
        return try read(file, keepQuantized: keepQuantized)
    }

    /// The model in an open GGUF file.
    public static func read(_ file: GGUFFile, keepQuantized: Bool = false) throws -> ModelWeights {
        let path = file.path
        let config = try self.config(file)
        let pairs = try match(file, config: config)
        let arch = try architecture(file)
        let kept = pairs.filter { keepQuantized && QuantizedWeights.keeps($0.0.tensor, type: $0.1.type) }
        // The file is mapped, not read: the float weights are the only large allocation (less what stays quantized).
        let keptFloats = kept.reduce(0) { $0 + $1.1.elementCount }
        try MemoryBudget.check(MemoryBudget.weightBytes(config: config).map { max($0 - 4 * keptFloats, 0) },
                               for: "\(path): the model")
        let quantized = kept.isEmpty ? nil : QuantizedWeights(file: file, layers: config.numLayers)
        let weights = ModelWeights(config: config, quantized: quantized)
        let layout = weights.layout
        for (p, info) in pairs {
            let permuted = arch == "llama" && p.tensor == .qkvw
                && (info.name.contains(".attn_q.") || info.name.contains(".attn_k."))
            // q rows are H heads, k rows H_kv heads, each permuted by the converter.
            let heads = p.rows.lowerBound == 0 ? config.numHeads : config.numKVHeads
            if let quantized, QuantizedWeights.keeps(p.tensor, type: info.type) {
                let rows = p.rows.count, cols = info.dims[0]
                quantized.add(p.tensor, layer: p.layer, info: info, rows: rows, cols: cols,
                              rowOrder: permuted ? rotaryRowOrder(rows: rows, heads: heads) : nil)
                continue
            }
            // Straight into the arena: no second copy of a tensor (Gemma's embedding alone is 671 MB in float32).
            try weights.arena.withMutableBuffer(p.arenaRange(layout)) { dst in
                try file.dequantize(info, into: dst)
                if let i = dst.firstIndex(where: { !$0.isFinite }) {
                    throw FormatError.nonFinite(path: path, name: info.name, index: i, value: dst[i])
                }
                if permuted {
                    _ = dst.update(fromContentsOf: unpermuteRotaryRows(Array(dst), heads: heads, columns: config.channels))
                }
                if arch == "gemma3", info.name.hasSuffix("norm.weight") {
                    for i in dst.indices { dst[i] -= 1 }
                }
            }
        }
        return weights
    }

    /// For Llama's permuted q or k (`rows` rows of `heads` heads): order[m] is the file row that holds model row m
    /// (see `unpermuteRotaryRows`).
    static func rotaryRowOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads, half = d / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 { order[h * d + j * half + i] = h * d + 2 * i + j }
            }
        }
        return order
    }

    /// `general.architecture`, checked to be one this engine runs.
    static func architecture(_ file: GGUFFile) throws -> String {
        guard let arch = file.metadata["general.architecture"]?.string else {
            throw FormatError.malformed(path: file.path, reason: "no general.architecture in the metadata")
        }
        guard supportedArchitectures.contains(arch) else {
            throw FormatError.mismatch(path: file.path, reason: "architecture \(arch) is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))")
        }
        return arch
    }

    /// The model's config from the metadata, as transformers derives config.json from it.
    public static func config(_ file: GGUFFile) throws -> ModelConfig {
        let arch = try architecture(file)
        let m = file.metadata, path = file.path
        func value(_ key: String) -> GGUFValue? { m["\(arch).\(key)"] }
        // Parts of GGUF models that this engine would silently get wrong: refuse them by name.
        if let experts = value("expert_count")?.int, experts > 0 {
            throw FormatError.mismatch(path: path, reason: "\(arch).expert_count \(experts): mixture-of-experts models are not supported")
        }
        if let scaling = value("rope.scaling.type")?.string, scaling != "none" {
            throw FormatError.mismatch(path: path, reason: "\(arch).rope.scaling.type \(scaling): RoPE scaling is not supported")
        }
        if let factor = value("rope.scaling.factor")?.double, factor != 1 {
            throw FormatError.mismatch(path: path, reason: "\(arch).rope.scaling.factor \(factor): RoPE scaling is not supported")
        }
        if let cap = value("attn_logit_softcapping")?.double, cap != 0 {
            throw FormatError.mismatch(path: path, reason: "\(arch).attn_logit_softcapping: attention softcapping is not supported")
        }
        guard let embd = file.tensor(named: "token_embd.weight"), embd.dims.count == 2 else {
            throw FormatError.missingTensor(path: path, name: "token_embd.weight")
        }
        // The vocabulary: the metadata's, else the embedding's rows (transformers reads the same tensor).
        let vocab = value("vocab_size")?.int ?? embd.dims[1]
        var json: [String: Any] = [:]
        func set(_ hfKey: String, _ ggufKey: String, required: Bool = true) throws {
            if let v = value(ggufKey) {
                guard let number = v.double else {
                    throw FormatError.malformed(path: path, reason: "\(arch).\(ggufKey) is not a number")
                }
                json[hfKey] = v.int.map { NSNumber(value: $0) } ?? NSNumber(value: number)
            } else if required {
                throw FormatError.malformed(path: path, reason: "no \(arch).\(ggufKey) in the metadata")
            }
        }
        if arch == "gpt2" {
            json["model_type"] = "gpt2"
            try set("n_positions", "context_length"); try set("n_embd", "embedding_length")
            try set("n_layer", "block_count"); try set("n_head", "attention.head_count")
            json["vocab_size"] = vocab
            if let ff = value("feed_forward_length")?.int { json["n_inner"] = ff }
            if let eps = value("attention.layer_norm_epsilon")?.double, abs(eps - 1e-5) > 1e-9 {
                throw FormatError.mismatch(path: path, reason: "gpt2.attention.layer_norm_epsilon \(eps) is not 1e-5")
            }
        } else {
            json["model_type"] = arch == "gemma3" ? "gemma3_text" : arch
            try set("max_position_embeddings", "context_length"); try set("hidden_size", "embedding_length")
            try set("num_hidden_layers", "block_count"); try set("intermediate_size", "feed_forward_length")
            try set("num_attention_heads", "attention.head_count")
            try set("num_key_value_heads", "attention.head_count_kv", required: false)
            try set("rms_norm_eps", "attention.layer_norm_rms_epsilon", required: false)
            try set("rope_theta", "rope.freq_base", required: false)
            json["vocab_size"] = vocab
            json["tie_word_embeddings"] = file.tensor(named: "output.weight") == nil
            if arch == "gemma3" {
                try set("head_dim", "attention.key_length", required: false)
                try set("sliding_window", "attention.sliding_window", required: false)
                if let cap = value("final_logit_softcapping")?.double, cap != 0 { json["final_logit_softcapping"] = cap }
            } else if let headDim = value("rope.dimension_count")?.int {
                guard let C = value("embedding_length")?.int, let H = value("attention.head_count")?.int, H > 0,
                      headDim == C / H || arch == "llama" else {
                    throw FormatError.mismatch(path: path, reason: "\(arch).rope.dimension_count \(headDim): partial rotary embeddings are not supported")
                }
                if arch == "llama" { json["head_dim"] = headDim }
            }
            if let kl = value("attention.key_length")?.int, let vl = value("attention.value_length")?.int, kl != vl {
                throw FormatError.mismatch(path: path, reason: "key_length \(kl) ≠ value_length \(vl) is not supported")
            }
        }
        return try HuggingFaceConfig.parse(json, path: path)
    }

    /// Each placement of `config` paired with its GGUF tensor, dims and type checked; any tensor left over
    /// is an error (a part this engine does not have, like Llama 3's `rope_freqs`).
    static func match(_ file: GGUFFile, config c: ModelConfig) throws -> [(HuggingFaceFolder.Placement, GGUFFile.TensorInfo)] {
        let path = file.path
        var used = Set<String>(), out = [(HuggingFaceFolder.Placement, GGUFFile.TensorInfo)]()
        for p in HuggingFaceFolder.placements(c) {
            let name = ggufName(p.name, architecture: c.architecture)
            guard let info = file.tensor(named: name) else { throw FormatError.missingTensor(path: path, name: name) }
            // ggml lists dims innermost first: a (out, in) matrix is [in, out]. GPT-2's Conv1D shape is HF's
            // transposed one, which GGUF stores transposed back, as (out, in).
            let expected = p.transposed ? p.shape : Array(p.shape.reversed())
            guard info.dims == expected else {
                throw FormatError.wrongShape(path: path, name: name, expected: expected, found: info.dims)
            }
            used.insert(name)
            out.append((p, info))
        }
        for info in file.tensors where !used.contains(info.name) {
            // GPT-2's converter stores the tied head as output.weight too; it equals the embedding.
            if c.tiedEmbeddings && info.name == "output.weight" && c.architecture == .gpt2 { continue }
            throw FormatError.unexpectedTensor(path: path, name: info.name)
        }
        return out
    }

    /// The GGUF name of a Hugging Face tensor name (llama.cpp's `gguf-py/gguf/tensor_mapping.py`).
    static func ggufName(_ hf: String, architecture: Architecture) -> String {
        var parts = hf.split(separator: ".").map(String.init)
        if architecture == .gpt2 {
            if parts.first == "transformer" { parts.removeFirst() }
            let table = ["wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                         "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"]
            let joined = parts.joined(separator: ".")
            if let name = table[joined] { return name }
            guard parts.count >= 4, parts[0] == "h" else { return joined }
            let layer = parts[1], rest = parts[2...].joined(separator: ".")
            let block = ["ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
                         "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"]
            for (from, to) in block where rest.hasPrefix(from + ".") {
                return "blk.\(layer).\(to)" + rest.dropFirst(from.count)
            }
            return joined
        }
        let top = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                   "lm_head.weight": "output.weight"]
        if let name = top[hf] { return name }
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers" else { return hf }
        let layer = parts[2], rest = parts[3...].joined(separator: ".")
        var block = ["input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                     "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                     "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
                     "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                     "mlp.down_proj": "ffn_down"]
        if architecture == .gemma3 {
            block["post_attention_layernorm"] = "post_attention_norm"
            block["pre_feedforward_layernorm"] = "ffn_norm"
            block["post_feedforward_layernorm"] = "post_ffw_norm"
        }
        for (from, to) in block where rest.hasPrefix(from + ".") {
            return "blk.\(layer).\(to)" + rest.dropFirst(from.count)
        }
        return hf
    }

    /// Undoes llama.cpp's q/k permutation. Per head of d rows, GGUF row 2i + j holds Hugging Face row
    /// j·d/2 + i (i < d/2, j ∈ {0, 1}): the converter interleaves the two halves that rotate_half pairs.
    static func unpermuteRotaryRows(_ w: [Float], heads: Int, columns: Int) -> [Float] {
        moveRotaryRows(w, heads: heads, columns: columns, toGGUF: false)
    }

    /// The inverse of `unpermuteRotaryRows`, for writing GGUF files llama.cpp reads.
    static func permuteRotaryRows(_ w: [Float], heads: Int, columns: Int) -> [Float] {
        moveRotaryRows(w, heads: heads, columns: columns, toGGUF: true)
    }

    private static func moveRotaryRows(_ w: [Float], heads: Int, columns: Int, toGGUF: Bool) -> [Float] {
        precondition(w.count % (heads * columns) == 0, "rows do not divide into heads")
        let d = w.count / columns / heads, half = d / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let gguf = (h * d + 2 * i + j) * columns, hf = (h * d + j * half + i) * columns
                    let (src, dst) = toGGUF ? (hf, gguf) : (gguf, hf)
                    out[dst..<dst + columns] = w[src..<src + columns]
                }
            }
        }
        return out
    }
}
