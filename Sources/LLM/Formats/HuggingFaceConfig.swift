// Hugging Face config.json to and from ModelConfig, for GPT-2, Llama, Qwen2, Gemma 3 (text) and nanochat. Both
// spellings of RoPE's θ are read: transformers 4's top-level `rope_theta` (and Gemma's `rope_local_base_freq`)
// and transformers 5's `rope_parameters` (per layer type for Gemma 3); both are written. A field this engine
// cannot honour (a RoPE scaling, experts, attention softcapping, …) is an error that names it, never ignored.
import Foundation

enum HuggingFaceConfig {
    /// Reads and checks a config.json.
    static func read(_ path: String) throws -> ModelConfig {
        let bytes = try readWholeFile(path)
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "not a JSON object")
        }
        return try parse(json, path: path)
    }

    /// Checks a config given as config.json's dictionary (`path` names its source in errors). The GGUF reader
    /// turns a GGUF file's metadata into such a dictionary, as transformers does, and parses it here.
    static func parse(_ json: [String: Any], path: String) throws -> ModelConfig {
        let fields = Fields(json: json, path: path)
        let architectures = (json["architectures"] as? [String]) ?? []
        let modelType = json["model_type"] as? String
        let config: ModelConfig
        switch modelType {
        case "gpt2": config = try gpt2(fields)
        case "llama", "qwen2": config = try llama(fields, qwen: modelType == "qwen2")
        case "gemma3_text": config = try gemma3(fields)
        case "nanochat": config = try nanochat(fields)
        case "gemma3":
            throw FormatError.mismatch(path: path, reason: "model_type gemma3 is the multimodal Gemma 3 (\(architectures.joined(separator: ", "))); only its text model (Gemma3ForCausalLM, gemma3_text) is supported")
        case let other:
            throw FormatError.mismatch(path: path, reason: "model_type \(other ?? "(missing)") is not supported (supported: gpt2, llama, qwen2, gemma3_text, nanochat)")
        }
        do { try config.validate() } catch {
            throw FormatError.inconsistentHeader(path: path, reason: "\(error)")
        }
        return config
    }

    /// Typed access to config.json's fields, with errors naming the file and the field.
    struct Fields {
        let json: [String: Any]
        let path: String

        func has(_ key: String) -> Bool { json[key] != nil && !(json[key] is NSNull) }
        func int(_ keys: String...) throws -> Int {
            for k in keys { if let v = try optionalInt(k) { return v } }
            throw FormatError.malformed(path: path, reason: "missing \(keys[0])")
        }
        /// A whole number of at most 32 bits (so no size arithmetic on it can overflow before `validate` bounds it).
        func optionalInt(_ key: String) throws -> Int? {
            guard let v = json[key] as? NSNumber else { return nil }
            guard let i = Int(exactly: v), abs(i) <= Int(Int32.max) else {
                throw FormatError.malformed(path: path, reason: "\(key) \(v) is not a whole number below 2^31")
            }
            return i
        }
        func double(_ key: String) -> Double? { (json[key] as? NSNumber)?.doubleValue }
        func bool(_ key: String) -> Bool? { (json[key] as? NSNumber)?.boolValue }
        func string(_ key: String) -> String? { json[key] as? String }
        func unsupported(_ key: String, _ why: String) -> FormatError {
            .mismatch(path: path, reason: "\(key): \(why)")
        }
        /// Rejects fields that change the model in ways this engine does not implement.
        func rejectUnsupported() throws {
            for key in ["num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size"] where has(key) {
                throw unsupported(key, "mixture-of-experts models are not supported")
            }
            if has("rope_scaling") {
                let type = ((json["rope_scaling"] as? [String: Any])?["rope_type"] ?? (json["rope_scaling"] as? [String: Any])?["type"]) as? String
                throw unsupported("rope_scaling", "RoPE scaling \(type ?? "") is not supported")
            }
            if has("attn_logit_softcapping") { throw unsupported("attn_logit_softcapping", "attention softcapping is not supported") }
        }
        /// θ from `rope_parameters` (transformers 5; per layer type when `layerType` is given) or `rope_theta`.
        func ropeTheta(layerType: String? = nil, legacyKey: String = "rope_theta") throws -> Double? {
            if var p = json["rope_parameters"] as? [String: Any] {
                if let layerType {
                    guard let sub = p[layerType] as? [String: Any] else { return double(legacyKey) }
                    p = sub
                }
                if let type = p["rope_type"] as? String, type != "default" {
                    throw unsupported("rope_parameters.rope_type", "RoPE type \(type) is not supported (only default)")
                }
                if let theta = (p["rope_theta"] as? NSNumber)?.doubleValue { return theta }
            }
            return double(legacyKey)
        }
    }

    private static func gpt2(_ f: Fields) throws -> ModelConfig {
        if let act = f.string("activation_function"), !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
            throw FormatError.mismatch(path: f.path, reason: "activation_function \(act) is not GPT-2's tanh GELU (gelu_new)")
        }
        if let eps = f.double("layer_norm_epsilon"), abs(eps - 1e-5) > 1e-12 {
            throw FormatError.mismatch(path: f.path, reason: "layer_norm_epsilon \(eps) is not 1e-5")
        }
        if let tied = f.bool("tie_word_embeddings"), !tied {
            throw FormatError.mismatch(path: f.path, reason: "untied word embeddings are not supported for gpt2")
        }
        if let inner = try f.optionalInt("n_inner"), inner != 4 * (try f.int("n_embd")) {
            throw FormatError.mismatch(path: f.path, reason: "n_inner \(inner) is not 4 × n_embd")
        }
        do {
            return try .gpt2(maxSeqLen: try f.int("n_positions", "n_ctx"), vocabSize: try f.int("vocab_size"),
                             numLayers: try f.int("n_layer"), numHeads: try f.int("n_head"), channels: try f.int("n_embd"))
        } catch let error as ModelError {
            throw FormatError.inconsistentHeader(path: f.path, reason: "\(error)")
        }
    }

    /// The fields Llama, Qwen2, Gemma 3 and nanochat share.
    private static func decoder(_ f: Fields, _ arch: Architecture) throws -> ModelConfig {
        try f.rejectUnsupported()
        let C = try f.int("hidden_size"), H = try f.int("num_attention_heads"), V = try f.int("vocab_size")
        guard H > 0, C > 0 else { throw FormatError.inconsistentHeader(path: f.path, reason: "hidden_size and num_attention_heads must be positive") }
        var c = ModelConfig(maxSeqLen: try f.int("max_position_embeddings"), vocabSize: V,
                            paddedVocabSize: ModelConfig.pad(V), numLayers: try f.int("num_hidden_layers"),
                            numHeads: H, numKVHeads: try f.optionalInt("num_key_value_heads") ?? H,
                            headSize: try f.optionalInt("head_dim") ?? C / H, channels: C,
                            hiddenSize: try f.int("intermediate_size"))
        c.architecture = arch
        c.learnedPositions = false
        c.norm = .rmsNorm
        c.normEps = f.double("rms_norm_eps") ?? 1e-6
        c.activation = .swiGLU
        (c.qkvBias, c.attnOutBias, c.mlpBias) = (false, false, false)
        return c
    }

    private static func llama(_ f: Fields, qwen: Bool) throws -> ModelConfig {
        var c = try decoder(f, qwen ? .qwen2 : .llama)
        if let act = f.string("hidden_act"), act != "silu" {
            throw f.unsupported("hidden_act", "\(act) is not supported (Llama and Qwen2 use silu)")
        }
        if qwen {
            if f.bool("use_sliding_window") == true {
                throw f.unsupported("use_sliding_window", "Qwen2's sliding-window layers are not supported")
            }
            c.qkvBias = true  // Qwen2 always has q/k/v biases and none elsewhere
        } else {
            let attentionBias = f.bool("attention_bias") ?? false
            (c.qkvBias, c.attnOutBias, c.mlpBias) = (attentionBias, attentionBias, f.bool("mlp_bias") ?? false)
        }
        c.tiedEmbeddings = f.bool("tie_word_embeddings") ?? false
        c.ropeTheta = try f.ropeTheta() ?? 10_000
        return c
    }

    private static func gemma3(_ f: Fields) throws -> ModelConfig {
        var c = try decoder(f, .gemma3)
        if let act = f.string("hidden_activation") ?? f.string("hidden_act"), act != "gelu_pytorch_tanh" {
            throw f.unsupported("hidden_activation", "\(act) is not supported (Gemma 3 uses gelu_pytorch_tanh)")
        }
        if f.bool("use_bidirectional_attention") == true {
            throw f.unsupported("use_bidirectional_attention", "only causal attention is supported")
        }
        c.norm = .rmsNormOnePlus
        c.activation = .geGLU
        c.qkNorm = .beforeRoPE
        c.sandwichNorms = true
        c.scaleEmbeddings = true
        c.tiedEmbeddings = f.bool("tie_word_embeddings") ?? true
        let bias = f.bool("attention_bias") ?? false
        (c.qkvBias, c.attnOutBias) = (bias, bias)
        c.queryPreAttentionScalar = f.double("query_pre_attn_scalar") ?? Double(c.headSize)
        c.logitSoftcap = f.double("final_logit_softcapping")
        c.ropeTheta = try f.ropeTheta(layerType: "full_attention") ?? 1_000_000
        c.ropeLocalTheta = try f.ropeTheta(layerType: "sliding_attention", legacyKey: "rope_local_base_freq") ?? 10_000
        if let window = try f.optionalInt("sliding_window"), window > 0 {
            c.slidingWindow = window
            if let types = f.json["layer_types"] as? [String] {
                guard types.count == c.numLayers, types.allSatisfy({ $0 == "sliding_attention" || $0 == "full_attention" }) else {
                    throw f.unsupported("layer_types", "expected \(c.numLayers) of sliding_attention / full_attention")
                }
                c.slidingLayers = types.map { $0 == "sliding_attention" }
            } else {
                // transformers 4: every `sliding_window_pattern`-th layer is global.
                let pattern = try f.optionalInt("sliding_window_pattern") ?? 6
                guard pattern > 0 else { throw f.unsupported("sliding_window_pattern", "\(pattern) is not positive") }
                // Bounded before the list of layer types is built, not after (2^31 layers would take minutes and 2 GB).
                guard c.numLayers <= ModelConfig.maxLayers else {
                    throw FormatError.inconsistentHeader(path: f.path, reason: "num_hidden_layers \(c.numLayers) is more than \(ModelConfig.maxLayers)")
                }
                c.slidingLayers = (0..<max(c.numLayers, 0)).map { ($0 + 1) % pattern != 0 }
            }
        }
        return c
    }

    private static func nanochat(_ f: Fields) throws -> ModelConfig {
        var c = try decoder(f, .nanochat)
        c.norm = .rmsNormNoWeight
        c.activation = .reluSquared
        c.qkNorm = .afterRoPE
        c.normAfterEmbedding = true
        c.tiedEmbeddings = f.bool("tie_word_embeddings") ?? false
        c.logitSoftcap = f.double("final_logit_softcapping")
        c.ropeTheta = try f.ropeTheta() ?? 100_000
        return c
    }

    // MARK: - Writing

    /// config.json for `c`, as transformers writes it for the architecture; throws when the config is not one
    /// that architecture can express.
    static func json(_ c: ModelConfig, path: String) throws -> String {
        func fail(_ why: String) -> FormatError { .mismatch(path: path, reason: "cannot write a \(c.architecture.rawValue) config: \(why)") }
        func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : "\(x)" }
        // transformers types query_pre_attn_scalar as an int when it is one.
        func scalar(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? "\(Int(x))" : "\(x)" }
        var fields: [(String, String)]
        if c.architecture == .gpt2 {
            // GPT-2's <|endoftext|> (50256) is its bos/eos token; a smaller vocabulary has none (null, not
            // transformers' default of 50256, which it would flag as out of range).
            let special = c.vocabSize > 50256 ? "50256" : "null"
            fields = [
                ("activation_function", "\"gelu_new\""), ("architectures", "[\"GPT2LMHeadModel\"]"),
                ("attn_pdrop", "0.0"), ("bos_token_id", special), ("embd_pdrop", "0.0"), ("eos_token_id", special),
                ("initializer_range", "0.02"), ("layer_norm_epsilon", "1e-05"), ("model_type", "\"gpt2\""),
                ("n_embd", "\(c.channels)"), ("n_head", "\(c.numHeads)"), ("n_inner", "null"),
                ("n_layer", "\(c.numLayers)"), ("n_positions", "\(c.maxSeqLen)"), ("resid_pdrop", "0.0"),
                ("scale_attn_weights", "true"), ("tie_word_embeddings", "true"), ("torch_dtype", "\"float32\""),
                ("vocab_size", "\(c.vocabSize)"),
            ]
        } else {
            fields = [
                ("bos_token_id", "null"), ("eos_token_id", "null"), ("pad_token_id", "null"),
                ("head_dim", "\(c.headSize)"), ("hidden_size", "\(c.channels)"),
                ("intermediate_size", "\(c.hiddenSize)"), ("max_position_embeddings", "\(c.maxSeqLen)"),
                ("num_attention_heads", "\(c.numHeads)"), ("num_hidden_layers", "\(c.numLayers)"),
                ("num_key_value_heads", "\(c.numKVHeads)"), ("rms_norm_eps", "\(c.normEps)"),
                ("tie_word_embeddings", "\(c.tiedEmbeddings)"), ("torch_dtype", "\"float32\""),
                ("vocab_size", "\(c.vocabSize)"),
            ]
            let defaultRoPE = "{\"rope_theta\": \(number(c.ropeTheta)), \"rope_type\": \"default\"}"
            switch c.architecture {
            case .llama, .qwen2:
                guard c.norm == .rmsNorm, c.activation == .swiGLU, c.qkNorm == .none, !c.sandwichNorms,
                      !c.scaleEmbeddings, !c.normAfterEmbedding, c.logitSoftcap == nil, c.slidingWindow == 0,
                      c.usesRoPE else { throw fail("it has parts Llama and Qwen2 do not") }
                if c.architecture == .qwen2 {
                    guard c.qkvBias, !c.attnOutBias, !c.mlpBias else { throw fail("Qwen2 has q/k/v biases only") }
                    fields += [("architectures", "[\"Qwen2ForCausalLM\"]"), ("model_type", "\"qwen2\""),
                               ("use_sliding_window", "false")]
                } else {
                    guard c.qkvBias == c.attnOutBias else { throw fail("Llama's attention biases are all or none") }
                    fields += [("architectures", "[\"LlamaForCausalLM\"]"), ("model_type", "\"llama\""),
                               ("attention_bias", "\(c.qkvBias)"), ("mlp_bias", "\(c.mlpBias)")]
                }
                fields += [("hidden_act", "\"silu\""), ("rope_theta", number(c.ropeTheta)),
                           ("rope_parameters", defaultRoPE)]
            case .gemma3:
                guard c.norm == .rmsNormOnePlus, c.activation == .geGLU, c.qkNorm == .beforeRoPE, c.sandwichNorms,
                      c.scaleEmbeddings, !c.mlpBias else { throw fail("it has parts Gemma 3 does not") }
                let local = c.ropeLocalTheta ?? c.ropeTheta
                let types = (0..<c.numLayers).map { c.isSliding($0) ? "\"sliding_attention\"" : "\"full_attention\"" }
                fields += [
                    ("architectures", "[\"Gemma3ForCausalLM\"]"), ("model_type", "\"gemma3_text\""),
                    ("attention_bias", "\(c.qkvBias)"), ("hidden_activation", "\"gelu_pytorch_tanh\""),
                    ("query_pre_attn_scalar", scalar(c.queryPreAttentionScalar ?? Double(c.headSize))),
                    ("final_logit_softcapping", c.logitSoftcap.map(number) ?? "null"),
                    ("attn_logit_softcapping", "null"),
                    ("sliding_window", c.slidingWindow > 0 ? "\(c.slidingWindow)" : "null"),
                    ("layer_types", "[" + types.joined(separator: ", ") + "]"),
                    ("rope_theta", number(c.ropeTheta)), ("rope_local_base_freq", number(local)),
                    ("rope_parameters", "{\"full_attention\": \(defaultRoPE), \"sliding_attention\": {\"rope_theta\": \(number(local)), \"rope_type\": \"default\"}}"),
                ]
            case .nanochat:
                guard c.norm == .rmsNormNoWeight, c.activation == .reluSquared, c.qkNorm == .afterRoPE,
                      c.normAfterEmbedding, !c.qkvBias, !c.attnOutBias, !c.mlpBias else {
                    throw fail("it has parts nanochat does not")
                }
                fields += [("architectures", "[\"NanochatForCausalLM\"]"), ("model_type", "\"nanochat\""),
                           ("final_logit_softcapping", c.logitSoftcap.map(number) ?? "null"),
                           ("rope_theta", number(c.ropeTheta))]
            case .gpt2: break
            }
        }
        fields.sort { $0.0 < $1.0 }
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}
