// LoRA adapters in Hugging Face PEFT's format, so an adapter trained here loads with `PeftModel.from_pretrained`
// and one trained with PEFT runs here:
//
//   adapter_config.json          {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", …], …}
//   adapter_model.safetensors    base_model.model.<layer>.lora_A.weight (r, in) and .lora_B.weight (out, r)
//
// where <layer> is the Hugging Face name of the adapted linear layer (model.layers.0.self_attn.q_proj). Options this
// engine does not implement (DoRA, per-layer ranks, modules_to_save, biases) are refused with their name, never
// ignored.
import Foundation

extension LoRAAdapter {
    static let configFile = "adapter_config.json"
    static let weightsFile = "adapter_model.safetensors"
    static let tensorPrefix = "base_model.model."

    /// Whether `path` is a folder holding a PEFT adapter.
    public static func isAdapterFolder(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/" + configFile)
    }

    /// The tensor names of a part in adapter_model.safetensors.
    static func tensorNames(_ part: LoRAPart) -> (a: String, b: String) {
        (tensorPrefix + part.module + ".lora_A.weight", tensorPrefix + part.module + ".lora_B.weight")
    }

    /// Reads a PEFT LoRA adapter folder for a model of `model`'s shape.
    public static func read(folder: String, model: ModelConfig) throws -> LoRAAdapter {
        let configPath = folder + "/" + configFile
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw FormatError.unreadable(path: folder, reason: "not a PEFT adapter folder (no \(configFile))")
        }
        let config = try readConfig(configPath)
        let adapter: LoRAAdapter
        do { adapter = try LoRAAdapter(config: config, model: model) } catch {
            throw FormatError.mismatch(path: configPath, reason: "\(error)")
        }
        let file = try SafeTensorsFile.read(folder + "/" + weightsFile)
        var expected = Set<String>()
        for part in adapter.parts {
            let names = tensorNames(part)
            for (name, range, shape) in [(names.a, part.a, [config.rank, part.inputs]),
                                         (names.b, part.b, [part.outputs, config.rank])] {
                expected.insert(name)
                guard let entry = file.entries[name] else { throw FormatError.missingTensor(path: file.path, name: name) }
                guard entry.shape == shape else {
                    throw FormatError.wrongShape(path: file.path, name: name, expected: shape, found: entry.shape)
                }
                let values = try file.floats(name)
                if let i = values.firstIndex(where: { !$0.isFinite }) {
                    throw FormatError.nonFinite(path: file.path, name: name, index: i, value: values[i])
                }
                adapter.arena.withMutableBuffer(range) { _ = $0.update(fromContentsOf: values) }
            }
        }
        if let extra = file.entries.keys.sorted().first(where: { !expected.contains($0) }) {
            throw FormatError.unexpectedTensor(path: file.path, name: extra)
        }
        return adapter
    }

    /// Parses adapter_config.json into a LoRAConfig, refusing what this engine does not run.
    static func readConfig(_ path: String) throws -> LoRAConfig {
        let data = try Data(readWholeFile(path))
        guard let json = try? JSONSerialization.jsonObject(with: data), let o = json as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "not a JSON object")
        }
        func refuse(_ why: String) -> FormatError { .mismatch(path: path, reason: why) }
        if let type = o["peft_type"] as? String, type != "LORA" {
            throw refuse("peft_type \(type): only LoRA adapters are supported")
        }
        guard let r = (o["r"] as? NSNumber)?.intValue else { throw refuse("no rank \"r\"") }
        let alpha = (o["lora_alpha"] as? NSNumber)?.doubleValue ?? 8  // PEFT's default
        for flag in ["use_dora", "use_rslora"] where (o[flag] as? Bool) == true {
            throw refuse("\(flag) is set, which this engine does not implement")
        }
        if let bias = o["bias"] as? String, bias != "none" { throw refuse("bias \"\(bias)\": only \"none\" is supported") }
        for key in ["modules_to_save", "layers_to_transform", "trainable_token_indices"] {
            if let v = o[key], !(v is NSNull), !((v as? [Any])?.isEmpty ?? false) {
                throw refuse("\(key) is set, which this engine does not implement")
            }
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let v = o[key] as? [String: Any], !v.isEmpty {
                throw refuse("\(key) gives some layers their own rank or alpha, which this engine does not implement")
            }
        }
        let targets: [String]
        switch o["target_modules"] {
        case let list as [String]: targets = list
        case let name as String where name == LoRAConfig.allLinear: targets = [name]
        case let pattern as String:
            throw refuse("target_modules is the regular expression \"\(pattern)\"; list the layer names instead")
        default: throw refuse("no target_modules")
        }
        return LoRAConfig(rank: r, alpha: alpha, targets: targets.sorted())
    }

    /// Writes the adapter as a PEFT folder (created if needed; each file atomically). `baseModel` is recorded as
    /// base_model_name_or_path.
    public func write(folder: String, baseModel: String? = nil) throws {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw FormatError.writeFailed(path: folder, reason: "cannot create the folder (\(error.localizedDescription))")
        }
        var tensors = [SafeTensorsFile.Tensor]()
        for part in parts {
            let names = Self.tensorNames(part)
            tensors.append(.init(name: names.a, shape: [config.rank, part.inputs], values: arena.array(part.a)))
            tensors.append(.init(name: names.b, shape: [part.outputs, config.rank], values: arena.array(part.b)))
        }
        try SafeTensorsFile.write(tensors, to: folder + "/" + Self.weightsFile)
        try writeFileAtomically(folder + "/" + Self.configFile) { try $0.write(Array(configJSON(baseModel).utf8)) }
    }

    /// adapter_config.json as PEFT writes it (the fields its LoraConfig reads; the rest take PEFT's defaults).
    func configJSON(_ baseModel: String?) -> String {
        let alpha = config.alpha == config.alpha.rounded() && abs(config.alpha) < 1e15
            ? String(Int(config.alpha)) : String(config.alpha)
        let targets: String = config.targets == [LoRAConfig.allLinear] ? "\"all-linear\""
            : "[" + config.targets.map(jsonQuoted).joined(separator: ", ") + "]"
        let fields: [(String, String)] = [
            ("base_model_name_or_path", baseModel.map(jsonQuoted) ?? "null"),
            ("bias", "\"none\""),
            ("fan_in_fan_out", modelConfig.architecture == .gpt2 ? "true" : "false"),  // GPT-2's Conv1D layers
            ("inference_mode", "true"),
            ("init_lora_weights", "true"),
            ("lora_alpha", alpha),
            ("lora_dropout", "0.0"),
            ("modules_to_save", "null"),
            ("peft_type", "\"LORA\""),
            ("r", String(config.rank)),
            ("target_modules", targets),
            ("task_type", "\"CAUSAL_LM\""),
            ("use_dora", "false"),
            ("use_rslora", "false"),
        ]
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}

private func jsonQuoted(_ s: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [s])) ?? Data("[\"\"]".utf8)
    return String(decoding: data, as: UTF8.self).dropFirst().dropLast().description
}
