// `llm inspect`: what a model file holds, without loading its weights: architecture and shapes, parameter
// count, tensor types and bytes, tokenizer, special tokens and chat template. For a GGUF file, a Hugging Face
// folder, an llm.c checkpoint or a run directory.
import Foundation

public enum ModelInspection {
    /// A report of `path`, one fact per line.
    public static func report(_ path: String) throws -> String {
        var lines = [String]()
        func add(_ key: String, _ value: String) { lines.append(key.padding(toLength: 16, withPad: " ", startingAt: 0) + value) }
        let run = RunDirectory.isRun(path) ? RunDirectory(path) : nil
        let weightsPath = try run?.latestWeightsPath() ?? path
        let config: ModelConfig
        var tokenizer: Tokenizer?, template: String?
        if run == nil && isGGUF(weightsPath) {
            let file = try GGUFFile.open(weightsPath)
            add("format", "GGUF v\(file.version), \(file.tensors.count) tensors, \(file.metadata.count) metadata keys, alignment \(file.alignment)")
            if let name = file.metadata["general.name"]?.string { add("name", name) }
            if let license = file.metadata["general.license"]?.string { add("license", license) }
            config = try GGUFModel.config(file)
            var byType = [String: (count: Int, elements: Int, bytes: Int)]()
            for t in file.tensors {
                let e = byType[t.type.description, default: (0, 0, 0)]
                byType[t.type.description] = (e.count + 1, e.elements + t.elementCount, e.bytes + t.byteCount)
            }
            for (type, e) in byType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
                add("  \(type)", "\(e.count) tensors, \(e.elements) values, \(bytes(e.bytes)) (\(String(format: "%.2f", Double(e.bytes) * 8 / Double(max(e.elements, 1)))) bits/value)")
            }
            add("tensor data", bytes(file.tensors.reduce(0) { $0 + $1.byteCount }))
            tokenizer = try? Tokenizer(gguf: file.metadata, path: weightsPath)
            if tokenizer == nil {
                do { _ = try Tokenizer(gguf: file.metadata, path: weightsPath) } catch { add("tokenizer", "unreadable: \(error)") }
            }
            template = file.metadata["tokenizer.chat_template"]?.string
        } else if isDirectory(weightsPath) {
            config = try HuggingFaceFolder.readConfig(folder: weightsPath)
            var byType = [String: (count: Int, bytes: Int)]()
            for shard in try HuggingFaceFolder.safetensorsFiles(folder: weightsPath) {
                for e in try SafeTensorsFile.readHeader(shard).entries.values {
                    let v = byType[e.dtype, default: (0, 0)]
                    byType[e.dtype] = (v.count + 1, v.bytes + e.offsets.count)
                }
            }
            add("format", "Hugging Face folder")
            for (type, e) in byType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
                add("  \(type)", "\(e.count) tensors, \(bytes(e.bytes))")
            }
            if FileManager.default.fileExists(atPath: weightsPath + "/tokenizer.json") {
                do { tokenizer = try Tokenizer.loadHuggingFace(folder: weightsPath) } catch { add("tokenizer", "unreadable: \(error)") }
            }
            template = try HuggingFaceFolder.chatTemplate(folder: weightsPath)
        } else {
            config = try LLMCCheckpoint.read(weightsPath).config
            add("format", "llm.c checkpoint (float32)")
        }
        if let run, tokenizer == nil {
            tokenizer = try? Trainer.loadTokenizer(try run.readConfig().training.tokenizer, run: run)
        }
        if run != nil { add("run", "\(path): newest weights \(weightsPath)") }
        add("architecture", config.architecture.rawValue)
        add("layers", "\(config.numLayers)")
        add("channels", "\(config.channels) (MLP hidden \(config.hiddenSize))")
        add("heads", "\(config.numHeads) query, \(config.numKVHeads) key/value, head size \(config.headSize)")
        add("context", "\(config.maxSeqLen) tokens")
        add("vocabulary", "\(config.vocabSize)")
        add("parts", config.description)
        let parameters = ParameterLayout(config: config).totalCount
        add("parameters", "\(parameters) (\(String(format: "%.1f", Double(parameters) / 1e6))M; \(bytes(parameters * 4)) as float32)")
        if let t = tokenizer {
            add("tokenizer", "\(t.kindDescription), \(t.vocabSize) tokens, \(t.specialTokens.count) special")
            func names(_ ids: [Int32]) -> String { ids.map { "\(t.name(of: $0) ?? "?") (\($0))" }.joined(separator: ", ") }
            add("bos", t.bos.map { names([$0]) + (t.addBOS ? ", added to prompts" : "") } ?? "none")
            add("eos", t.eos.isEmpty ? "none" : names(t.eos))
            let specials = t.specialTokens.sorted { $0.value < $1.value }.prefix(12).map { "\($0.key) (\($0.value))" }
            if !specials.isEmpty { add("special tokens", specials.joined(separator: ", ") + (t.specialTokens.count > 12 ? ", …" : "")) }
        }
        if let template {
            let status: String
            do { _ = try ChatTemplate(source: template); status = "parses" } catch { status = "cannot be used: \(error)" }
            add("chat template", "\(template.utf8.count) bytes, \(status)")
        } else {
            add("chat template", "none")
        }
        return lines.joined(separator: "\n")
    }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 30 ? String(format: "%.2f GiB", Double(n) / Double(1 << 30))
            : n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20)) : "\(n) B"
    }
}
