// A training run on disk:
//   RUN/config.json                   model shape, training config, where the weights came from
//   RUN/log.jsonl                     one JSON line per step, eval and sample (RunLog)
//   RUN/loss.svg                      the loss curve, redrawn at each eval (LossPlot)
//   RUN/checkpoints/step_000100/      the weights, optimizer.bin (AdamW moments), state.json
//   RUN/model.bin or RUN/model/       the final weights
// Weights are an llm.c model.bin for GPT-2 and a Hugging Face folder model/ for the other architectures.
// A checkpoint is written into checkpoints/.tmp-… and renamed into place whole, so every step_* folder is
// complete; a run killed mid-write leaves only a .tmp- folder, which resume removes.
import Foundation

/// What config.json holds.
public struct RunConfig: Codable, Sendable, Equatable {
    public var model: ModelConfig
    public var training: TrainingConfig
    public var initializedFrom: String?   // weights path, or nil for a seeded GPT-2 init
    /// A LoRA run trains only an adapter on a frozen base; nil when every weight trains.
    public var lora: LoRARun?

    public init(model: ModelConfig, training: TrainingConfig, initializedFrom: String?, lora: LoRARun? = nil) {
        (self.model, self.training, self.initializedFrom, self.lora) = (model, training, initializedFrom, lora)
    }
}

/// What a LoRA run trains on: the adapter's settings and the frozen base it adapts.
public struct LoRARun: Codable, Sendable, Equatable {
    public var adapter: LoRAConfig
    /// The base model as given to `llm sft --init` (a GGUF file, a Hugging Face folder, …), absolute.
    public var base: String
    /// Whether a GGUF base stays in its quantized blocks (QLoRA), dequantized on the fly in both passes.
    public var quantizedBase: Bool

    public init(adapter: LoRAConfig, base: String, quantizedBase: Bool) {
        (self.adapter, self.base, self.quantizedBase) = (adapter, base, quantizedBase)
    }
}

/// What a checkpoint's state.json holds besides the weights and moments: enough, with them, to continue.
public struct CheckpointState: Codable, Sendable, Equatable {
    public var step: Int                  // optimizer steps completed
    public var trainLoader: DataLoaderState
    public var sampleRNG: UInt64
    public var config: RunConfig          // the run's configuration, so a checkpoint stands on its own
}

public struct RunDirectory: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    public var configPath: String { path + "/config.json" }
    public var logPath: String { path + "/log.jsonl" }
    public var checkpointsPath: String { path + "/checkpoints" }
    /// The final weights of a run of this architecture.
    public func finalModelPath(for config: ModelConfig) -> String { path + "/" + Self.weightsName(config) }
    /// What a finished run leaves: its final weights, or a LoRA run's adapter (a PEFT folder).
    public func finalOutputPath(_ config: RunConfig) -> String {
        config.lora == nil ? finalModelPath(for: config.model) : path + "/" + Self.adapterName
    }

    /// The weights' name inside a run or checkpoint folder: llm.c's model.bin for GPT-2, a Hugging Face folder
    /// for the others.
    static func weightsName(_ config: ModelConfig) -> String { config.architecture == .gpt2 ? "model.bin" : "model" }

    /// The adapter's folder inside a LoRA run or its checkpoints (PEFT's format).
    static let adapterName = "adapter"

    /// The weights inside `folder` (the run itself or a checkpoint), in whichever form they are: for a LoRA run,
    /// the adapter.
    static func weightsPath(in folder: String) -> String? {
        for name in ["model.bin", "model", adapterName] where FileManager.default.fileExists(atPath: folder + "/" + name) {
            return folder + "/" + name
        }
        return nil
    }

    /// A path from config.json: absolute as is, otherwise relative to the run directory.
    public func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : path + "/" + p }

    public func writeConfig(_ config: RunConfig) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(config)
        try writeFileAtomically(configPath) { try $0.write([UInt8](data) + [0x0A]) }
    }

    public func readConfig() throws -> RunConfig {
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw TrainingError.notARun(runDirectory: path, reason: "no config.json")
        }
        do { return try JSONDecoder().decode(RunConfig.self, from: data) } catch {
            throw TrainingError.notARun(runDirectory: path, reason: "config.json is not a run configuration")
        }
    }

    /// Whether `path` holds a training run (a config.json that reads as one).
    public static func isRun(_ path: String) -> Bool {
        (try? RunDirectory(path).readConfig()) != nil
    }

    /// The run's newest weights: the final ones once training finished, otherwise the latest checkpoint's.
    public func latestWeightsPath() throws -> String {
        if let final = Self.weightsPath(in: path) { return final }
        guard let latest = checkpoints().last, let weights = Self.weightsPath(in: latest.path) else {
            throw TrainingError.noCheckpoint(runDirectory: path)
        }
        return weights
    }

    /// Complete checkpoints, oldest first, as (step, folder).
    public func checkpoints() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsPath)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step_"), let step = Int(name.dropFirst(5)) else { return nil }
            return (step, checkpointsPath + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    /// Removes folders left by a checkpoint write that was interrupted.
    public func removeIncompleteCheckpoints() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsPath)) ?? []
        for name in names where name.hasPrefix(".tmp-") {
            try? FileManager.default.removeItem(atPath: checkpointsPath + "/" + name)
        }
    }

    /// Writes a checkpoint for `state.step` and keeps only the newest `keep`.
    func writeCheckpoint(model: Transformer, state: CheckpointState, keep: Int) throws {
        try FileManager.default.createDirectory(atPath: checkpointsPath, withIntermediateDirectories: true)
        let name = String(format: "step_%06d", state.step)
        let tmp = checkpointsPath + "/.tmp-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        if let adapter = model.weights.adapter {
            try adapter.write(folder: tmp + "/" + Self.adapterName)
        } else {
            try saveWeights(model.weights, to: tmp + "/" + Self.weightsName(model.config))
        }
        try model.writeOptimizerState(to: tmp + "/optimizer.bin")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(state)
        try writeFileAtomically(tmp + "/state.json") { try $0.write([UInt8](json) + [0x0A]) }
        let final = checkpointsPath + "/" + name
        try? FileManager.default.removeItem(atPath: final)
        guard rename(tmp, final) == 0 else {
            throw FormatError.writeFailed(path: final, reason: String(cString: strerror(errno)))
        }
        syncDirectory(checkpointsPath)
        for old in checkpoints().dropLast(keep) { try? FileManager.default.removeItem(atPath: old.path) }
    }

    func readCheckpointState(_ folder: String) throws -> CheckpointState {
        guard let data = FileManager.default.contents(atPath: folder + "/state.json"),
              let state = try? JSONDecoder().decode(CheckpointState.self, from: data) else {
            throw FormatError.malformed(path: folder + "/state.json", reason: "not a checkpoint state")
        }
        return state
    }
}

/// fsync a directory so a rename inside it is durable.
func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY)
    if fd >= 0 {
        fsync(fd)
        close(fd)
    }
}
