// Hugging Face GPT-2 folders (config.json + model.safetensors) to and from ModelWeights.
// HF's Conv1D stores matmul weights (in, out); ours are (out, in). HF's wte has V rows; ours has Vp.
import Foundation

public enum HuggingFaceGPT2 {
    /// HF names of one layer's tensors (after `h.{l}.`) and whether they are Conv1D weights to transpose.
    static let layerNames: [(ParameterTensor, String, Bool)] = [
        (.ln1w, "ln_1.weight", false), (.ln1b, "ln_1.bias", false),
        (.qkvw, "attn.c_attn.weight", true), (.qkvb, "attn.c_attn.bias", false),
        (.attprojw, "attn.c_proj.weight", true), (.attprojb, "attn.c_proj.bias", false),
        (.ln2w, "ln_2.weight", false), (.ln2b, "ln_2.bias", false),
        (.fcw, "mlp.c_fc.weight", true), (.fcb, "mlp.c_fc.bias", false),
        (.fcprojw, "mlp.c_proj.weight", true), (.fcprojb, "mlp.c_proj.bias", false),
    ]

    /// Reads the model config from `folder/config.json`.
    public static func readConfig(folder: String) throws -> ModelConfig {
        let path = folder + "/config.json"
        let bytes = try readWholeFile(path)
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "not a JSON object")
        }
        func int(_ keys: String...) throws -> Int {
            for k in keys { if let v = json[k] as? NSNumber { return v.intValue } }
            throw FormatError.malformed(path: path, reason: "missing \(keys[0])")
        }
        if let type = json["model_type"] as? String, type != "gpt2" {
            throw FormatError.mismatch(path: path, reason: "model_type is \(type), only gpt2 is supported")
        }
        if let act = json["activation_function"] as? String, !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
            throw FormatError.mismatch(path: path, reason: "activation_function \(act) is not GPT-2's tanh GELU (gelu_new)")
        }
        if let eps = json["layer_norm_epsilon"] as? NSNumber, abs(eps.doubleValue - 1e-5) > 1e-12 {
            throw FormatError.mismatch(path: path, reason: "layer_norm_epsilon \(eps) is not 1e-5")
        }
        if let tied = json["tie_word_embeddings"] as? Bool, !tied {
            throw FormatError.mismatch(path: path, reason: "untied word embeddings are not supported")
        }
        if let inner = json["n_inner"] as? NSNumber, inner.intValue != 4 * (try int("n_embd")) {
            throw FormatError.mismatch(path: path, reason: "n_inner \(inner) is not 4 × n_embd")
        }
        do {
            return try ModelConfig.gpt2(maxSeqLen: try int("n_positions", "n_ctx"), vocabSize: try int("vocab_size"),
                                  numLayers: try int("n_layer"), numHeads: try int("n_head"),
                                  channels: try int("n_embd"))
        } catch let error as ModelError {
            throw FormatError.inconsistentHeader(path: path, reason: "\(error)")
        }
    }

    /// Reads `folder` (config.json + model.safetensors; F32, F16 or BF16 tensors) into fp32 weights.
    public static func read(folder: String) throws -> ModelWeights {
        let config = try readConfig(folder: folder)
        let path = folder + "/model.safetensors"
        if !FileManager.default.fileExists(atPath: path),
           FileManager.default.fileExists(atPath: folder + "/model.safetensors.index.json") {
            throw FormatError.unreadable(path: path, reason: "sharded checkpoints are not supported; merge the shards into one model.safetensors")
        }
        let file = try SafeTensorsFile.read(path)
        // Accept names with and without the "transformer." prefix; skip non-parameter buffers and the tied head.
        var byName = [String: SafeTensorsFile.Entry]()
        for (name, entry) in file.entries {
            let short = name.hasPrefix("transformer.") ? String(name.dropFirst("transformer.".count)) : name
            if short.hasSuffix(".attn.bias") || short.hasSuffix(".attn.masked_bias") || short == "lm_head.weight" {
                continue
            }
            byName[short] = entry
        }
        let weights = ModelWeights(config: config)
        let C = config.channels, L = config.numLayers
        var used = Set<String>()

        func load(_ name: String, shape: [Int]) throws -> [Float] {
            guard let e = byName[name] else { throw FormatError.missingTensor(path: path, name: name) }
            guard e.shape == shape else { throw FormatError.wrongShape(path: path, name: name, expected: shape, found: e.shape) }
            used.insert(name)
            return try file.floats(e.name)
        }

        var wte = try load("wte.weight", shape: [config.vocabSize, C])
        wte += [Float](repeating: 0, count: (config.paddedVocabSize - config.vocabSize) * C)
        weights.setTensor(.wte, wte)
        weights.setTensor(.wpe, try load("wpe.weight", shape: [config.maxSeqLen, C]))
        weights.setTensor(.lnfw, try load("ln_f.weight", shape: [C]))
        weights.setTensor(.lnfb, try load("ln_f.bias", shape: [C]))
        for (tensor, suffix, isConv1D) in layerNames {
            let shape = Array(weights.layout.shape(tensor).dropFirst())  // one layer's (out, in) or (n)
            let perLayer = shape.reduce(1, *)
            var stacked = [Float]()
            stacked.reserveCapacity(perLayer * L)
            for l in 0..<L {
                if isConv1D {
                    let (out, inp) = (shape[0], shape[1])
                    stacked += transpose(try load("h.\(l).\(suffix)", shape: [inp, out]), rows: inp, cols: out)
                } else {
                    stacked += try load("h.\(l).\(suffix)", shape: shape)
                }
            }
            weights.setTensor(tensor, stacked)
        }
        if let extra = byName.keys.filter({ !used.contains($0) }).sorted().first {
            throw FormatError.unexpectedTensor(path: path, name: extra)
        }
        return weights
    }

    /// Writes `folder/config.json` and `folder/model.safetensors` (names with the `transformer.` prefix, as
    /// `save_pretrained` does), each atomically; creates the folder if needed.
    public static func write(_ weights: ModelWeights, to folder: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw FormatError.writeFailed(path: folder, reason: "cannot create the folder (\(error.localizedDescription))")
        }
        let c = weights.config, C = c.channels
        var tensors = [SafeTensorsFile.Tensor]()
        func add(_ name: String, _ shape: [Int], _ values: [Float]) {
            tensors.append(.init(name: "transformer." + name, shape: shape, values: values))
        }
        add("wte.weight", [c.vocabSize, C], Array(weights.tensor(.wte).prefix(c.vocabSize * C)))
        add("wpe.weight", [c.maxSeqLen, C], weights.tensor(.wpe))
        add("ln_f.weight", [C], weights.tensor(.lnfw))
        add("ln_f.bias", [C], weights.tensor(.lnfb))
        for (tensor, suffix, isConv1D) in layerNames {
            let shape = Array(weights.layout.shape(tensor).dropFirst())
            let perLayer = shape.reduce(1, *)
            let all = weights.tensor(tensor)
            for l in 0..<c.numLayers {
                let slice = Array(all[l * perLayer..<(l + 1) * perLayer])
                if isConv1D {
                    add("h.\(l).\(suffix)", [shape[1], shape[0]], transpose(slice, rows: shape[0], cols: shape[1]))
                } else {
                    add("h.\(l).\(suffix)", shape, slice)
                }
            }
        }
        try SafeTensorsFile.write(tensors, to: folder + "/model.safetensors")
        // GPT-2's <|endoftext|> (50256) is its bos/eos token; a smaller vocabulary has none (null, not
        // transformers' default of 50256, which it would flag as out of range).
        let special = c.vocabSize > 50256 ? "50256" : "null"
        let fields: [(String, String)] = [
            ("activation_function", "\"gelu_new\""), ("architectures", "[\"GPT2LMHeadModel\"]"),
            ("attn_pdrop", "0.0"), ("bos_token_id", special), ("embd_pdrop", "0.0"), ("eos_token_id", special),
            ("initializer_range", "0.02"), ("layer_norm_epsilon", "1e-05"), ("model_type", "\"gpt2\""),
            ("n_embd", "\(C)"), ("n_head", "\(c.numHeads)"), ("n_inner", "null"), ("n_layer", "\(c.numLayers)"),
            ("n_positions", "\(c.maxSeqLen)"), ("resid_pdrop", "0.0"), ("scale_attn_weights", "true"),
            ("tie_word_embeddings", "true"), ("torch_dtype", "\"float32\""), ("vocab_size", "\(c.vocabSize)"),
        ]
        let config = "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
        try writeFileAtomically(folder + "/config.json") { try $0.write(Array(config.utf8)) }
    }

    /// (rows, cols) row-major → (cols, rows) row-major.
    static func transpose(_ m: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        for r in 0..<rows {
            for c in 0..<cols { out[c * rows + r] = m[r * cols + c] }
        }
        return out
    }
}

/// Reads weights from an llm.c `.bin` file or a Hugging Face folder, chosen by what the path is.
public func loadWeights(_ path: String) throws -> ModelWeights {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        return try HuggingFaceGPT2.read(folder: path)
    }
    return try LLMCCheckpoint.read(path)
}

/// Writes weights as an llm.c `.bin` file (a path ending in `.bin`) or a Hugging Face folder (anything else).
public func saveWeights(_ weights: ModelWeights, to path: String) throws {
    if path.hasSuffix(".bin") {
        try LLMCCheckpoint.write(weights, to: path)
    } else {
        try HuggingFaceGPT2.write(weights, to: path)
    }
}
