// A training run on disk:
//   RUN/config.json                   model shape, training config, where the weights came from
//   RUN/log.jsonl                     one JSON line per step, eval and sample (RunLog)
//   RUN/loss.svg                      the loss curve, redrawn at each eval (LossPlot)
//   RUN/checkpoints/step_000100/      the weights, optimizer.bin (AdamW moments), state.json
//   RUN/model.bin or RUN/model/       the final weights
// Weights are an llm.c model.bin for GPT-2 and a Hugging Face folder model/ for the other architectures.
// A checkpoint is written into checkpoints/.tmp-… and renamed into place whole, so every step_* folder is
// complete; a run killed mid-write leaves only a .tmp- folder, which resume removes.
//
// Each checkpoint also holds checksums.json, written last before the rename: the size and SHA-256 of every
// other file in it (recursively, by path relative to the checkpoint, keys sorted):
//   {"algorithm":"sha256","files":{"model.bin":{"bytes":…,"sha256":"…"},"optimizer.bin":{…},"state.json":{…}}}
// and its state.json says it has one ("checksums":"checksums.json"). Resume takes the newest checkpoint whose
// files match (`latestIntactCheckpoint`), passing over damaged ones with the reason; a checkpoint written
// before checksums (neither the manifest nor the field) is accepted unverified.
import Foundation

/// What config.json holds.
public struct RunConfig: Codable, Sendable, Equatable {
    public var model: ModelConfig
    public var training: TrainingConfig
    public var initializedFrom: String?   // weights path, or nil for a seeded GPT-2 init
    /// A LoRA run trains only an adapter on a frozen base; nil when every weight trains.
    public var lora: LoRARun?
    /// Set for a reinforcement-learning run (`llm rl`): its settings; `training` is then the fine-tuning run's it
    /// started from.
    public var rl: RLConfig? = nil

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
    /// The checksum manifest's name (checksums.json) in checkpoints written since they have one; nil in older
    /// ones, which resume accepts unverified. A checkpoint that names one but lacks it is damaged.
    public var checksums: String? = nil
}

/// A checkpoint's checksums.json: the size and SHA-256 of each of its other files, by path relative to the
/// checkpoint folder ("model.bin", "model/model.safetensors", "adapter/adapter_config.json", …).
public struct ChecksumManifest: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var bytes: Int
        public var sha256: String   // 64 lowercase hex digits
    }

    public var algorithm = "sha256"
    public var files: [String: Entry]

    /// The manifest of every file under `folder` but checksums.json itself, each read in 1 MiB pieces.
    public static func make(folder: String) throws -> ChecksumManifest {
        var files = [String: Entry]()
        for name in RunDirectory.filesRecursively(in: folder) where name != RunDirectory.checksumsName {
            let path = folder + "/" + name
            guard let bytes = regularFileSize(path) else { throw FormatError.unreadable(path: path, reason: "vanished while hashing") }
            files[name] = Entry(bytes: bytes, sha256: try SHA256Hasher.hex(ofFile: path))
        }
        return ChecksumManifest(files: files)
    }
}

/// A checkpoint that resume (or `latestWeightsPath`) passed over: which, the file at fault, and what is wrong
/// with it.
public struct DamagedCheckpoint: Sendable, Equatable, CustomStringConvertible {
    public let step: Int
    /// The checkpoint folder.
    public let path: String
    /// The file at fault, relative to the checkpoint ("optimizer.bin", "model/model.safetensors").
    public let file: String
    public let problem: String

    /// "RUN/checkpoints/step_000006/optimizer.bin: SHA-256 3fa2… differs from the 9c01… checksums.json records".
    public var description: String { "\(path)/\(file): \(problem)" }
}

/// The checkpoint resume continues from (or whose weights `latestWeightsPath` gives), and the newer ones it
/// passed over.
public struct CheckpointChoice: Sendable, Equatable {
    public let step: Int
    public let path: String
    /// False for a checkpoint written before checksums (no checksums.json), accepted unverified.
    public let verified: Bool
    /// Newer checkpoints that are damaged, newest first.
    public let skipped: [DamagedCheckpoint]
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

    /// A path (or glob pattern) the user gave, made absolute against `directory` (the current one), for
    /// config.json: a relative one there would be read relative to the run directory.
    public static func absolute(_ p: String,
                                in directory: String = FileManager.default.currentDirectoryPath) -> String {
        p.hasPrefix("/") ? p : (directory.hasSuffix("/") ? directory : directory + "/") + p
    }

    public func writeConfig(_ config: RunConfig) throws {
        try writeJSON(config, to: configPath)
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

    /// The run's newest weights: the final ones once training finished, otherwise the newest checkpoint's whose
    /// weights match its checksums (the optimizer's moments are not read, so they are not checked). `status` is
    /// told of each newer checkpoint passed over, and why.
    public func latestWeightsPath(status: (String) -> Void = { _ in }) throws -> String {
        if let final = Self.weightsPath(in: path) { return final }
        let choice = try latestIntactCheckpoint(weightsOnly: true)
        for damaged in choice.skipped { status("skipping damaged checkpoint \(damaged)") }
        guard let weights = Self.weightsPath(in: choice.path) else { throw TrainingError.noCheckpoint(runDirectory: path) }
        return weights
    }

    /// Complete checkpoints, oldest first, as (step, folder). Complete means fully written (renamed into place),
    /// not checked: `latestIntactCheckpoint` checks them.
    public func checkpoints() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsPath)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step_"), let step = Int(name.dropFirst(5)) else { return nil }
            return (step, checkpointsPath + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    /// The newest checkpoint that is intact, with the newer damaged ones it passed over (see `checkpointDamage`).
    /// `weightsOnly` checks only what loading the weights reads (for chat and sampling), not the moments.
    /// Throws `noCheckpoint` when the run has none at all, `noIntactCheckpoint` when every one is damaged.
    public func latestIntactCheckpoint(weightsOnly: Bool = false) throws -> CheckpointChoice {
        let all = checkpoints()
        if all.isEmpty { throw TrainingError.noCheckpoint(runDirectory: path) }
        var skipped = [DamagedCheckpoint]()
        for c in all.reversed() {
            if let damage = checkpointDamage(c.path, step: c.step, weightsOnly: weightsOnly) {
                skipped.append(damage)
            } else {
                let verified = FileManager.default.fileExists(atPath: c.path + "/" + Self.checksumsName)
                return CheckpointChoice(step: c.step, path: c.path, verified: verified, skipped: skipped)
            }
        }
        throw TrainingError.noIntactCheckpoint(runDirectory: path, damaged: skipped)
    }

    /// What is wrong with a checkpoint, or nil if nothing is. Intact means: state.json reads as a checkpoint
    /// state; the folder holds weights and (unless `weightsOnly`) optimizer.bin; and every file checksums.json
    /// lists (under the weights only, with `weightsOnly`) has the size and SHA-256 it records. A checkpoint
    /// without checksums.json passes unverified if its state.json does not name one (written before
    /// checksums), and is damaged if it does.
    func checkpointDamage(_ folder: String, step: Int, weightsOnly: Bool = false) -> DamagedCheckpoint? {
        func damage(_ file: String, _ problem: String) -> DamagedCheckpoint {
            DamagedCheckpoint(step: step, path: folder, file: file, problem: problem)
        }
        guard FileManager.default.fileExists(atPath: folder + "/state.json") else { return damage("state.json", "missing") }
        guard let state = try? readCheckpointState(folder) else {
            return damage("state.json", "unreadable or not a checkpoint state")
        }
        let weightsName = state.config.lora == nil ? Self.weightsName(state.config.model) : Self.adapterName
        guard FileManager.default.fileExists(atPath: folder + "/" + weightsName) else {
            return damage(weightsName, "missing: the checkpoint holds no weights")
        }
        if !weightsOnly && !FileManager.default.fileExists(atPath: folder + "/optimizer.bin") {
            return damage("optimizer.bin", "missing")
        }
        let manifestPath = folder + "/" + Self.checksumsName
        guard FileManager.default.fileExists(atPath: manifestPath) else {
            return state.checksums == nil ? nil : damage(Self.checksumsName, "missing (state.json says the checkpoint has one)")
        }
        guard let data = FileManager.default.contents(atPath: manifestPath),
              let manifest = try? JSONDecoder().decode(ChecksumManifest.self, from: data) else {
            return damage(Self.checksumsName, "unreadable or not a checksum manifest")
        }
        guard manifest.algorithm == "sha256" else {
            return damage(Self.checksumsName, "unknown checksum algorithm \(manifest.algorithm) (expected sha256)")
        }
        for (name, entry) in manifest.files.sorted(by: { $0.key < $1.key }) {
            if weightsOnly && name != weightsName && !name.hasPrefix(weightsName + "/") { continue }
            guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                return damage(Self.checksumsName, "lists \(name), which is not a path inside the checkpoint")
            }
            let file = folder + "/" + name
            guard let bytes = regularFileSize(file) else { return damage(name, "missing (checksums.json lists it)") }
            guard bytes == entry.bytes else {
                return damage(name, "\(bytes) bytes, checksums.json records \(entry.bytes)")
            }
            let sha: String
            do { sha = try SHA256Hasher.hex(ofFile: file) } catch { return damage(name, "unreadable (\(error))") }
            guard sha == entry.sha256 else {
                return damage(name, "SHA-256 \(sha.prefix(12))… differs from the \(entry.sha256.prefix(12))… checksums.json records")
            }
        }
        return nil
    }

    /// Removes what interrupted writes left (and returns their paths): the .tmp- folders of checkpoint writes in
    /// checkpoints/, and the temporary files of atomic writes (`AtomicFileWriter`: NAME.tmp-PID, from a process
    /// no longer running) of the files a run writes in its folder, and of any file in its final model/ or
    /// adapter/ folder. Nothing else is touched.
    @discardableResult
    public func removeLeftovers() -> [String] {
        var removed = removeIncompleteCheckpoints()
        let runFiles: Set<String> = ["config.json", "log.jsonl", LossPlot.fileName, "model.bin", "tokenizer.tok",
                                     "tokenizer.gguf", "chat_template.jinja"]
        let folders: [(String, Set<String>?)] = [(path, runFiles), (path + "/model", nil), (path + "/" + Self.adapterName, nil)]
        for (folder, names) in folders {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                guard let temp = Self.atomicTempName(name), names?.contains(temp.base) ?? true,
                      !processIsRunning(temp.pid), regularFileSize(folder + "/" + name) != nil,
                      (try? FileManager.default.removeItem(atPath: folder + "/" + name)) != nil else { continue }
                removed.append(folder + "/" + name)
            }
        }
        return removed
    }

    /// Removes folders left by a checkpoint write that was interrupted, and returns their paths.
    @discardableResult
    public func removeIncompleteCheckpoints() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsPath)) ?? []
        return names.filter { $0.hasPrefix(".tmp-") }.compactMap { name in
            (try? FileManager.default.removeItem(atPath: checkpointsPath + "/" + name)).map { checkpointsPath + "/" + name }
        }
    }

    /// `NAME.tmp-PID` (an `AtomicFileWriter`'s temporary name) split into NAME and PID; nil for any other name.
    static func atomicTempName(_ name: String) -> (base: String, pid: Int32)? {
        guard let marker = name.range(of: ".tmp-", options: .backwards), marker.lowerBound > name.startIndex else { return nil }
        let digits = name[marker.upperBound...]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let pid = Int32(digits) else { return nil }
        return (String(name[..<marker.lowerBound]), pid)
    }

    // MARK: - Starting again

    /// Makes way for a fresh start in this folder. Nothing to do where no run is (but interrupted writes'
    /// leftovers are removed). A run that never reached a checkpoint and has no final weights (killed before its
    /// first checkpoint) is removed, if no trainer still holds it: the files a run writes (config.json,
    /// log.jsonl, loss.svg, its copied tokenizer.tok/tokenizer.gguf and chat_template.jinja, leftovers), never
    /// any other file; `status` says so. Any other run is refused: `runExists`, or `runInUse` while a trainer
    /// of it is running.
    public func prepareFreshStart(status: (String) -> Void = { _ in }) throws {
        guard FileManager.default.fileExists(atPath: configPath) else {
            removeLeftovers()
            return
        }
        guard let config = try? readConfig(), checkpoints().isEmpty, Self.weightsPath(in: path) == nil else {
            throw TrainingError.runExists(runDirectory: path)
        }
        guard let lock = RunLock(self) else { throw TrainingError.runInUse(runDirectory: path) }
        var files = ["config.json", "log.jsonl", LossPlot.fileName]
        // The copies the run made of its tokenizer and template: always these names, relative to the run (a
        // tokenizer file the user named is recorded by its absolute path and is not the run's to remove).
        if ["tokenizer.tok", "tokenizer.gguf"].contains(config.training.tokenizer) { files.append(config.training.tokenizer) }
        if config.training.chatTemplate?.path == "chat_template.jinja" { files.append("chat_template.jinja") }
        var removed = [String]()
        for name in files where FileManager.default.fileExists(atPath: path + "/" + name) {
            do { try FileManager.default.removeItem(atPath: path + "/" + name) } catch {
                throw FormatError.writeFailed(path: path + "/" + name, reason: "cannot remove it to start the run again (\(error.localizedDescription))")
            }
            removed.append(name)
        }
        removeLeftovers()
        rmdir(checkpointsPath)  // only if empty
        withExtendedLifetime(lock) {}  // held until the run's files are gone
        status("\(path): replacing a run that never reached a checkpoint (removed \(removed.joined(separator: ", ")))")
    }

    // MARK: - Writing and reading checkpoints

    /// The checksum manifest's name inside a checkpoint.
    static let checksumsName = "checksums.json"

    /// Writes a checkpoint for `state.step` and keeps only the newest `keep`. `superseding`: damaged checkpoints
    /// that resume passed over, removed once this one is in place (before counting the ones to keep).
    /// `writeOptimizer` writes optimizer.bin in place of `model.writeOptimizerState` (ZeRO-1 gathers it from the ranks).
    func writeCheckpoint(model: Transformer, state: CheckpointState, keep: Int, superseding damaged: [String] = [],
                         writeOptimizer: ((String) throws -> Void)? = nil) throws {
        try FileManager.default.createDirectory(atPath: checkpointsPath, withIntermediateDirectories: true)
        let name = String(format: "step_%06d", state.step)
        let tmp = checkpointsPath + "/.tmp-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let final = checkpointsPath + "/" + name
        do {
            if let adapter = model.weights.adapter {
                try adapter.write(folder: tmp + "/" + Self.adapterName)
            } else {
                try saveWeights(model.weights, to: tmp + "/" + Self.weightsName(model.config))
            }
            if let writeOptimizer { try writeOptimizer(tmp + "/optimizer.bin") } else {
                try model.writeOptimizerState(to: tmp + "/optimizer.bin")
            }
            var state = state
            state.checksums = Self.checksumsName
            try writeJSON(state, to: tmp + "/state.json")
            try Self.writeChecksumManifest(in: tmp)  // last: it covers every other file
            try? FileManager.default.removeItem(atPath: final)
            guard rename(tmp, final) == 0 else {
                throw FormatError.writeFailed(path: final, reason: String(cString: strerror(errno)))
            }
        } catch {
            // A failed write (a full disk) leaves nothing half-written behind, not even until the next resume.
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        syncDirectory(checkpointsPath)
        for path in damaged where path != final { try? FileManager.default.removeItem(atPath: path) }
        for old in checkpoints().dropLast(keep) { try? FileManager.default.removeItem(atPath: old.path) }
    }

    /// Writes `folder`'s checksums.json from the files it holds now.
    static func writeChecksumManifest(in folder: String) throws {
        try writeJSON(try ChecksumManifest.make(folder: folder), to: folder + "/" + checksumsName, plainSlashes: true)
    }

    func readCheckpointState(_ folder: String) throws -> CheckpointState {
        guard let data = FileManager.default.contents(atPath: folder + "/state.json"),
              let state = try? JSONDecoder().decode(CheckpointState.self, from: data) else {
            throw FormatError.malformed(path: folder + "/state.json", reason: "not a checkpoint state")
        }
        return state
    }

    /// The files under `folder`, recursively, as paths relative to it, sorted.
    static func filesRecursively(in folder: String) -> [String] {
        var out = [String]()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                out += filesRecursively(in: folder + "/" + name).map { name + "/" + $0 }
            } else {
                out.append(name)
            }
        }
        return out.sorted()
    }
}

/// An exclusive advisory lock (flock) on a run's config.json, held by the trainer that started the run for as
/// long as it lives, so a fresh start into the same folder can tell a run still training before its first
/// checkpoint from one that was killed (the kernel drops a dead process's lock). Nil only when another holds
/// it; where locks are not to be had (no config.json, a file system without flock) it holds nothing.
final class RunLock {
    private let fd: Int32

    init?(_ run: RunDirectory) {
        fd = open(run.configPath, O_RDONLY | O_CLOEXEC)
        if fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK {
            close(fd)
            return nil
        }
    }

    deinit { if fd >= 0 { close(fd) } }
}

/// Pretty-printed JSON with sorted keys and a final newline, written atomically; `plainSlashes` writes "/" as
/// is rather than as "\/".
private func writeJSON(_ value: some Encodable, to path: String, plainSlashes: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = plainSlashes ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.prettyPrinted, .sortedKeys]
    let json = try encoder.encode(value)
    try writeFileAtomically(path) { try $0.write([UInt8](json) + [0x0A]) }
}

/// A regular file's size in bytes, or nil if there is none at `path`.
private func regularFileSize(_ path: String) -> Int? {
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    return Int(st.st_size)
}

/// Whether a process with this id exists (a signal 0 reaches it, or it exists but is another user's).
private func processIsRunning(_ pid: Int32) -> Bool {
    pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
}

/// fsync a directory so a rename inside it is durable.
func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY)
    if fd >= 0 {
        fsync(fd)
        close(fd)
    }
}

// MARK: - runs/latest

extension RunDirectory {
    /// The link, beside the runs in the default folder, to the newest run started there: `runs/latest`.
    public static let latestLinkName = "latest"

    /// Points `latest` in this run's parent folder at this run: a relative link (`latest -> NAME`), made under a
    /// temporary name and renamed over the old one, so `latest` is never missing or half-made. Throws, leaving
    /// any old link as it was, where that cannot be done (`latest` is a folder of its own, say).
    public func linkAsLatest() throws {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let name = (trimmed as NSString).lastPathComponent
        guard !name.isEmpty, name != ".", name != "..", name != Self.latestLinkName else { return }
        let parent = (trimmed as NSString).deletingLastPathComponent
        let link = (parent.isEmpty ? "" : parent + "/") + Self.latestLinkName
        let temp = (parent.isEmpty ? "" : parent + "/") + ".\(Self.latestLinkName).tmp-\(getpid())"
        unlink(temp)
        guard symlink(name, temp) == 0 else {
            throw FormatError.writeFailed(path: link, reason: String(cString: strerror(errno)))
        }
        guard rename(temp, link) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw FormatError.writeFailed(path: link, reason: reason)
        }
        syncDirectory(parent.isEmpty ? "." : parent)
    }

    /// `linkAsLatest`, telling `status` (and nothing else) if it failed: the run itself is fine without the link.
    func linkAsLatestReporting(status: (String) -> Void) {
        do { try linkAsLatest() } catch {
            status("could not point \((path as NSString).deletingLastPathComponent)/\(Self.latestLinkName) at \(path): \(error)")
        }
    }

    /// `path` with the symbolic links in it resolved, for what a run records and keeps writing to: a run started
    /// from `runs/latest` must name the run that link points at now, not whichever run it points at later.
    /// A path without links, or one that does not exist, comes back as given; a resolved one comes back relative
    /// to the working directory if `path` was relative and it lies below it, otherwise absolute.
    public static func resolvingLinks(_ path: String) -> String {
        guard !path.isEmpty, let resolved = realpath(path, nil) else { return path }
        let real = String(cString: resolved)
        free(resolved)
        let cwd = realpath(".", nil).map { p in defer { free(p) }; return String(cString: p) }
            ?? FileManager.default.currentDirectoryPath
        if real == lexicallyNormalized(path.hasPrefix("/") ? path : cwd + "/" + path) { return path }
        if !path.hasPrefix("/") && real.hasPrefix(cwd + "/") { return String(real.dropFirst(cwd.count + 1)) }
        return real
    }

    /// An absolute path with `.`, `..` and repeated slashes removed, without looking at the file system.
    private static func lexicallyNormalized(_ absolute: String) -> String {
        var parts = [Substring]()
        for part in absolute.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }
}
