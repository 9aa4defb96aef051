// Hugging Face folders (config.json + model.safetensors) to and from ModelWeights, for every architecture:
// GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM, Gemma3ForCausalLM (text) and the project's own nanochat
// layout. One table per architecture says where each HF tensor lives in the arena (our fused q|k|v and gate|up
// matrices take several HF tensors each); reading, writing and the parity fixtures' gradients all use it.
import Foundation

public enum HuggingFaceFolder {
    /// Where one HF tensor lives: rows `rows` of layer `layer`'s slice of `tensor` (the whole tensor when it is
    /// not per-layer), stored by HF with `shape`, and transposed when `transposed` (GPT-2's Conv1D (in, out)).
    struct Placement {
        let name: String
        let shape: [Int]
        let tensor: ParameterTensor
        let layer: Int?
        let rows: Range<Int>
        let transposed: Bool

        /// Where these rows lie in an arena laid out by `layout` (the weights, or gradients like them).
        func arenaRange(_ layout: ParameterLayout) -> Range<Int> {
            let shape = layout.shape(tensor), perLayer = layout.count(tensor) / (tensor.isPerLayer ? shape[0] : 1)
            let rowLength = shape.count - (tensor.isPerLayer ? 1 : 0) >= 2 ? shape[shape.count - 1] : 1
            let start = layout.offset(tensor) + (layer ?? 0) * perLayer + rows.lowerBound * rowLength
            return start..<start + rows.count * rowLength
        }
    }

    /// Every tensor of a model of this config, with its HF name.
    static func placements(_ c: ModelConfig) -> [Placement] {
        let d = c.headSize, H = c.numHeads, Hkv = c.numKVHeads, F = c.hiddenSize, V = c.vocabSize
        let layout = ParameterLayout(config: c)
        var out = [Placement]()
        func add(_ name: String, _ t: ParameterTensor, layer: Int? = nil, rows: Range<Int>? = nil, transposed: Bool = false) {
            guard layout.has(t) else { return }
            let full = t.isPerLayer ? Array(layout.shape(t).dropFirst()) : layout.shape(t)
            let r = rows ?? 0..<full[0]
            let shape = full.count == 1 ? [r.count] : transposed ? [full[1], r.count] : [r.count, full[1]]
            out.append(Placement(name: name, shape: shape, tensor: t, layer: layer, rows: r, transposed: transposed))
        }
        if c.architecture == .gpt2 {
            add("transformer.wte.weight", .wte, rows: 0..<V)
            add("transformer.wpe.weight", .wpe)
            for l in 0..<c.numLayers {
                let p = "transformer.h.\(l)."
                add(p + "ln_1.weight", .ln1w, layer: l); add(p + "ln_1.bias", .ln1b, layer: l)
                add(p + "attn.c_attn.weight", .qkvw, layer: l, transposed: true)
                add(p + "attn.c_attn.bias", .qkvb, layer: l)
                add(p + "attn.c_proj.weight", .attprojw, layer: l, transposed: true)
                add(p + "attn.c_proj.bias", .attprojb, layer: l)
                add(p + "ln_2.weight", .ln2w, layer: l); add(p + "ln_2.bias", .ln2b, layer: l)
                add(p + "mlp.c_fc.weight", .fcw, layer: l, transposed: true); add(p + "mlp.c_fc.bias", .fcb, layer: l)
                add(p + "mlp.c_proj.weight", .fcprojw, layer: l, transposed: true)
                add(p + "mlp.c_proj.bias", .fcprojb, layer: l)
            }
            add("transformer.ln_f.weight", .lnfw); add("transformer.ln_f.bias", .lnfb)
            return out
        }
        add("model.embed_tokens.weight", .wte, rows: 0..<V)
        let gemma = c.architecture == .gemma3
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            add(p + "input_layernorm.weight", .ln1w, layer: l)
            let (q, k, v) = (0..<H * d, H * d..<(H + Hkv) * d, (H + Hkv) * d..<(H + 2 * Hkv) * d)
            for (proj, rows) in [("q", q), ("k", k), ("v", v)] {
                add(p + "self_attn.\(proj)_proj.weight", .qkvw, layer: l, rows: rows)
                add(p + "self_attn.\(proj)_proj.bias", .qkvb, layer: l, rows: rows)
            }
            add(p + "self_attn.q_norm.weight", .qNormw, layer: l)
            add(p + "self_attn.k_norm.weight", .kNormw, layer: l)
            add(p + "self_attn.o_proj.weight", .attprojw, layer: l)
            add(p + "self_attn.o_proj.bias", .attprojb, layer: l)
            if gemma {
                add(p + "post_attention_layernorm.weight", .postAttnNormw, layer: l)
                add(p + "pre_feedforward_layernorm.weight", .ln2w, layer: l)
                add(p + "post_feedforward_layernorm.weight", .postMLPNormw, layer: l)
            } else {
                add(p + "post_attention_layernorm.weight", .ln2w, layer: l)
            }
            if c.activation.isGated {
                for (proj, rows) in [("gate", 0..<F), ("up", F..<2 * F)] {
                    add(p + "mlp.\(proj)_proj.weight", .fcw, layer: l, rows: rows)
                    add(p + "mlp.\(proj)_proj.bias", .fcb, layer: l, rows: rows)
                }
            } else {
                add(p + "mlp.up_proj.weight", .fcw, layer: l)
                add(p + "mlp.up_proj.bias", .fcb, layer: l)
            }
            add(p + "mlp.down_proj.weight", .fcprojw, layer: l)
            add(p + "mlp.down_proj.bias", .fcprojb, layer: l)
        }
        add("model.norm.weight", .lnfw)
        add("lm_head.weight", .lmHead, rows: 0..<V)
        return out
    }

    // MARK: - Reading

    /// Reads the model config from `folder/config.json`.
    public static func readConfig(folder: String) throws -> ModelConfig {
        try HuggingFaceConfig.read(folder + "/config.json")
    }

    /// Reads `folder` (config.json + model.safetensors, or shards listed in model.safetensors.index.json; F32,
    /// F16 or BF16 tensors) into fp32 weights.
    public static func read(folder: String) throws -> ModelWeights {
        let config = try readConfig(folder: folder)
        let shards = try safetensorsFiles(folder: folder)
        // Every check that needs no memory comes first: the headers name every tensor once with the right shape
        // and a readable dtype, and the weights plus the largest shard's data (both held while copying) fit.
        var entries = [String: SafeTensorsFile.Entry](), largest = 0
        for shard in shards {
            let header = try SafeTensorsFile.readHeader(shard)
            for (name, entry) in header.entries {
                guard entries.updateValue(entry, forKey: name) == nil else {
                    throw FormatError.malformed(path: shard, reason: "tensor \(name) is also in another shard")
                }
            }
            largest = max(largest, header.dataBytes)
        }
        _ = try match(entries, config: config, path: shards.count == 1 ? shards[0] : folder, prefix: "")
        try MemoryBudget.checkWeights(config: config, extraBytes: largest, what: "\(folder): the model")
        let weights = ModelWeights(config: config)
        for shard in shards {
            try fill(weights, from: try SafeTensorsFile.read(shard), prefix: "", requireFinite: true, partial: shards.count > 1)
        }
        return weights
    }

    /// The safetensors files of a folder: model.safetensors, or the shards its index names (each once, in
    /// name order), checked to lie inside the folder.
    static func safetensorsFiles(folder: String) throws -> [String] {
        let single = folder + "/model.safetensors", indexPath = folder + "/model.safetensors.index.json"
        let fm = FileManager.default
        if fm.fileExists(atPath: single) || !fm.fileExists(atPath: indexPath) { return [single] }
        let bytes = try readWholeFile(indexPath)
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let map = json["weight_map"] as? [String: Any] else {
            throw FormatError.malformed(path: indexPath, reason: "no weight_map object")
        }
        var files = Set<String>()
        for (tensor, file) in map {
            guard let file = file as? String, !file.isEmpty, !file.contains("/"), file != "..", file != "." else {
                throw FormatError.malformed(path: indexPath, reason: "tensor \(tensor) maps to a file name that is not a plain name in the folder")
            }
            files.insert(file)
        }
        guard !files.isEmpty else { throw FormatError.malformed(path: indexPath, reason: "weight_map is empty") }
        return files.sorted().map { folder + "/" + $0 }
    }

    /// Pairs each placement of `config` with its entry among `entries` (named `prefix` + the HF name), checking
    /// shapes and dtypes. GPT-2's names may lack their `transformer.` prefix; its attention-mask buffers and a
    /// stored copy of a tied LM head are skipped; any other tensor the table does not name is an error.
    /// With `partial` (one shard of several), placements absent from `entries` are skipped.
    static func match(_ entries: [String: SafeTensorsFile.Entry], config c: ModelConfig, path: String,
                      prefix: String, partial: Bool = false) throws -> [(Placement, SafeTensorsFile.Entry)] {
        var byName = [String: SafeTensorsFile.Entry]()
        for (name, entry) in entries where name.hasPrefix(prefix) {
            var short = String(name.dropFirst(prefix.count))
            if c.architecture == .gpt2 {
                if !short.hasPrefix("transformer.") && short != "lm_head.weight" { short = "transformer." + short }
                if short.hasSuffix(".attn.bias") || short.hasSuffix(".attn.masked_bias") { continue }
            }
            if c.tiedEmbeddings && short == "lm_head.weight" { continue }
            byName[short] = entry
        }
        var used = Set<String>(), out = [(Placement, SafeTensorsFile.Entry)]()
        for p in placements(c) {
            guard let e = byName[p.name] else {
                if partial { continue }
                throw FormatError.missingTensor(path: path, name: prefix + p.name)
            }
            guard e.shape == p.shape else {
                throw FormatError.wrongShape(path: path, name: prefix + p.name, expected: p.shape, found: e.shape)
            }
            guard ["F32", "F16", "BF16"].contains(e.dtype) else {
                throw FormatError.unsupportedDType(path: path, name: e.name, dtype: e.dtype)
            }
            used.insert(p.name)
            out.append((p, e))
        }
        if let extra = byName.keys.filter({ !used.contains($0) }).sorted().first {
            throw FormatError.unexpectedTensor(path: path, name: prefix + extra)
        }
        return out
    }

    /// Copies the tensors named `prefix` + each placement's name from `file` into `weights`' arena (see `match`
    /// for the names). With `requireFinite`, a NaN or infinite value is an error naming the tensor.
    static func fill(_ weights: ModelWeights, from file: SafeTensorsFile, prefix: String,
                     requireFinite: Bool = false, partial: Bool = false) throws {
        let layout = weights.layout, path = file.path
        for (p, e) in try match(file.entries, config: weights.config, path: path, prefix: prefix, partial: partial) {
            var values = try file.floats(e.name)
            if requireFinite, let i = values.firstIndex(where: { !$0.isFinite }) {
                throw FormatError.nonFinite(path: path, name: e.name, index: i, value: values[i])
            }
            if p.transposed { values = transpose(values, rows: p.shape[0], cols: p.shape[1]) }
            weights.arena.withMutableBuffer(p.arenaRange(layout)) { _ = $0.update(fromContentsOf: values) }
        }
    }

    // MARK: - Writing

    /// Writes `folder/config.json` and `folder/model.safetensors` with the names transformers uses for the
    /// architecture, each atomically; creates the folder if needed.
    public static func write(_ weights: ModelWeights, to folder: String) throws {
        // The config first: a model the architecture cannot express fails before any folder exists.
        let config = try HuggingFaceConfig.json(weights.config, path: folder + "/config.json")
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw FormatError.writeFailed(path: folder, reason: "cannot create the folder (\(error.localizedDescription))")
        }
        try SafeTensorsFile.write(tensors(weights), to: folder + "/model.safetensors")
        try writeFileAtomically(folder + "/config.json") { try $0.write(Array(config.utf8)) }
    }

    /// The weights (or gradients laid out like them) as HF-named tensors, each `prefix` + its name.
    static func tensors(_ weights: ModelWeights, prefix: String = "") -> [SafeTensorsFile.Tensor] {
        let layout = weights.layout
        return placements(weights.config).map { p in
            var values = weights.arena.array(p.arenaRange(layout))
            if p.transposed { values = transpose(values, rows: p.shape[1], cols: p.shape[0]) }
            return SafeTensorsFile.Tensor(name: prefix + p.name, shape: p.shape, values: values)
        }
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

/// Reads weights from an llm.c `.bin` file, a GGUF file or a Hugging Face folder, chosen by what the path is
/// (a folder, or a file's first four bytes: "GGUF").
public func loadWeights(_ path: String) throws -> ModelWeights {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        return try HuggingFaceFolder.read(folder: path)
    }
    if isGGUF(path) { return try GGUFModel.read(path) }
    return try LLMCCheckpoint.read(path)
}

/// Whether the file at `path` starts with GGUF's magic bytes.
public func isGGUF(_ path: String) -> Bool {
    guard let handle = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? handle.close() }
    return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
}

/// Writes weights as an llm.c `.bin` file (a path ending in `.bin`; GPT-2 only) or a Hugging Face folder
/// (anything else).
public func saveWeights(_ weights: ModelWeights, to path: String) throws {
    if path.hasSuffix(".bin") {
        try LLMCCheckpoint.write(weights, to: path)
    } else {
        try HuggingFaceFolder.write(weights, to: path)
    }
}
