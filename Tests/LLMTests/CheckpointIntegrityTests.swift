// Checkpoint integrity: each checkpoint's checksums.json lists every file it holds with its size and SHA-256;
// resume passes over a damaged checkpoint for the newest intact older one (and the run still finishes bit for
// bit as an uninterrupted one), says which and why, fails clearly when none is intact, still accepts
// checkpoints written before checksums, removes what interrupted writes left, and a run killed before its first
// checkpoint can be started again in the same folder.
import Foundation
import Testing
@testable import LLM

@Suite struct CheckpointIntegrityTests {
    typealias Setup = TrainerTests.Setup

    /// An id above Linux's largest process id (2^22): never a running process.
    static let deadPID = "999999999"

    /// `Setup.newRun`'s run (9 steps, checkpoints every 3, 5 kept), with the start's status lines.
    func newRun(_ setup: Setup, _ name: String, steps: Int = 9, model: ModelConfig? = nil,
                status: (String) -> Void = { _ in }) throws -> Trainer {
        var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
        t.batch = 2
        t.seq = 8
        t.totalBatchTokens = 32
        t.steps = steps
        t.warmupSteps = 2
        t.evalEvery = 4
        t.evalBatches = 2
        t.sampleEvery = 4
        t.sampleTokens = 5
        t.checkpointEvery = 3
        t.keepCheckpoints = 5
        let shape = try model ?? .gpt2(maxSeqLen: 16, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16)
        return try NewRun(runDirectory: setup.dir + "/" + name, model: .fresh(shape), tokenizer: .file(setup.tokenizerPath),
                          input: nil, trainShards: setup.dir + "/d_train_*.bin", valShards: setup.dir + "/d_val_*.bin",
                          training: t).start(parallel: ParallelFor(threads: 1), status: status)
    }

    func readManifest(_ checkpoint: String) throws -> ChecksumManifest {
        try JSONDecoder().decode(ChecksumManifest.self, from: Data(try readBytes(checkpoint + "/checksums.json")))
    }

    /// Flips one bit of the byte at `offset` (from the end when negative).
    func flipByte(_ path: String, at offset: Int) throws {
        var bytes = try readBytes(path)
        bytes[offset < 0 ? bytes.count + offset : offset] ^= 0x10
        try writeBytes(bytes, path)
    }

    /// The error `body` throws, or nil.
    func thrownError(_ body: () throws -> Any) -> (any Error)? {
        do { _ = try body() } catch { return error }
        return nil
    }

    // MARK: - The manifest

    /// A checkpoint's checksums.json lists every file in it, nested folders too (a Llama run's weights are a
    /// Hugging Face folder), each with its size and SHA-256, keys sorted; state.json says it has one.
    @Test func everyCheckpointListsItsFilesWithTheirSizesAndSHA256() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let llama = try ModelPreset.llama(layers: 1, heads: 2, channels: 16, kvHeads: 1, vocabSize: 1, maxSeqLen: 16)
            try newRun(setup, "r", steps: 4, model: llama).train()  // checkpoints at 3 and 4
            let run = RunDirectory(dir + "/r")
            #expect(run.checkpoints().map(\.step) == [3, 4])
            for c in run.checkpoints() {
                let manifest = try readManifest(c.path)
                let files = RunDirectory.filesRecursively(in: c.path).filter { $0 != "checksums.json" }
                #expect(files.contains("optimizer.bin") && files.contains("state.json"))
                #expect(files.contains("model/model.safetensors") && files.contains("model/config.json"))
                #expect(manifest.algorithm == "sha256")
                #expect(manifest.files.keys.sorted() == files)
                for name in files {
                    let bytes = try readBytes(c.path + "/" + name)
                    #expect(manifest.files[name] == .init(bytes: bytes.count, sha256: SHA256Hasher.hex(bytes)), "\(name)")
                }
                let text = String(decoding: try readBytes(c.path + "/checksums.json"), as: UTF8.self)
                let order = ["\"algorithm\"", "\"files\"", "\"model/config.json\"", "\"model/model.safetensors\"",
                             "\"optimizer.bin\"", "\"state.json\""].map { text.range(of: $0)?.lowerBound }
                #expect(order.allSatisfy { $0 != nil } && order.map { $0! } == order.map { $0! }.sorted(), "keys sorted")
                #expect(try run.readCheckpointState(c.path).checksums == "checksums.json")
                #expect(run.checkpointDamage(c.path, step: c.step) == nil)
            }
            #expect(try run.latestIntactCheckpoint() == CheckpointChoice(step: 4, path: run.checkpointsPath + "/step_000004",
                                                                         verified: true, skipped: []))
        }
    }

    // MARK: - Falling back past a damaged checkpoint

    /// A flipped byte in the newest checkpoint's optimizer.bin, or its weights deleted: resume says so, continues
    /// from the checkpoint before, and the run ends with exactly the weights and moments of an uninterrupted
    /// one. The damaged checkpoint is removed once the next is written.
    @Test func aDamagedNewestCheckpointIsPassedOverAndTheRunStillFinishesExactly() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            try newRun(setup, "whole").train()
            let damages: [(name: String, file: String, problem: String, damage: (String) throws -> Void)] = [
                ("flipped", "optimizer.bin", "SHA-256 ", { try flipByte($0 + "/optimizer.bin", at: -7) }),
                ("deleted", "model.bin", "missing", { try FileManager.default.removeItem(atPath: $0 + "/model.bin") }),
            ]
            for d in damages {
                try newRun(setup, d.name).train(stopAfter: 7)  // checkpoints at 3, 6 and 7
                let run = RunDirectory(dir + "/" + d.name)
                #expect(run.checkpoints().map(\.step) == [3, 6, 7])
                let newest = run.checkpointsPath + "/step_000007"
                try d.damage(newest)

                var lines = [String]()
                let resumed = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1)) { lines.append($0) }
                #expect(resumed.step == 6)
                #expect(lines.count == 1, "\(lines)")
                #expect(lines.first?.hasPrefix("skipping damaged checkpoint \(newest)/\(d.file): \(d.problem)") == true,
                        "\(lines)")
                try resumed.train()

                for file in ["model.bin", "checkpoints/step_000009/model.bin", "checkpoints/step_000009/optimizer.bin"] {
                    #expect(try readBytes(run.path + "/" + file) == readBytes(dir + "/whole/" + file), "\(d.name): \(file)")
                }
                #expect(run.checkpoints().map(\.step) == [3, 6, 9], "the damaged step 7 goes when step 9 is written")
                #expect(try RunLog.read(run.logPath).filter { $0.kind == .train }.map(\.step) == Array(1...9))
            }
        }
    }

    /// A missing checksums.json (in a checkpoint whose state.json names one) or a file of the wrong size
    /// makes a checkpoint damaged; with every one damaged, resume fails with one line naming the run and each
    /// checkpoint's file. `latestWeightsPath` (chat, sample) checks the weights alone.
    @Test func whenEveryCheckpointIsDamagedResumeFailsClearly() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            try newRun(setup, "r").train(stopAfter: 6)  // checkpoints at 3 and 6
            let run = RunDirectory(dir + "/r")
            let (three, six) = (run.checkpointsPath + "/step_000003", run.checkpointsPath + "/step_000006")

            try FileManager.default.removeItem(atPath: six + "/checksums.json")
            var lines = [String]()
            #expect(try Trainer.resume(run: run, parallel: ParallelFor(threads: 1)) { lines.append($0) }.step == 3)
            #expect(lines == ["skipping damaged checkpoint \(six)/checksums.json: missing (state.json says the checkpoint has one) (it is removed when the next checkpoint is written)"])

            // One byte more in step 3's moments: no intact checkpoint is left.
            try writeBytes(try readBytes(three + "/optimizer.bin") + [0], three + "/optimizer.bin")
            let size = try readManifest(three).files["optimizer.bin"]!.bytes
            let failure = thrownError { try Trainer.resume(run: run, parallel: ParallelFor(threads: 1)) }
            guard case let .noIntactCheckpoint(runDirectory, damaged)? = failure as? TrainingError else {
                Issue.record("expected noIntactCheckpoint, got \(String(describing: failure))")
                return
            }
            #expect(runDirectory == run.path)
            #expect(damaged.map(\.step) == [6, 3])
            #expect(damaged.map(\.file) == ["checksums.json", "optimizer.bin"])
            let message = "\(failure!)"
            #expect(message == "\(run.path): no intact checkpoint to resume from: \(six)/checksums.json: missing (state.json says the checkpoint has one); \(three)/optimizer.bin: \(size + 1) bytes, checksums.json records \(size)")
            #expect(!message.contains("\n"))

            // The weights alone: step 3's are intact (its moments are not read); step 6 lacks its manifest.
            lines = []
            #expect(try run.latestWeightsPath { lines.append($0) } == three + "/model.bin")
            #expect(lines.count == 1 && lines[0].hasPrefix("skipping damaged checkpoint \(six)/checksums.json: missing"))
            try flipByte(three + "/model.bin", at: 2000)
            #expect(throws: TrainingError.self) { try run.latestWeightsPath() }
            #expect((thrownError { try run.latestWeightsPath() }).map { "\($0)".contains("\(three)/model.bin: SHA-256 ") } == true)
        }
    }

    /// A run that never reached a checkpoint: resume says so and how to restart it.
    @Test func resumingARunWithoutCheckpointsSaysHowToRestartIt() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            _ = try newRun(setup, "r")
            let failure = thrownError { try Trainer.resume(run: RunDirectory(dir + "/r"), parallel: ParallelFor(threads: 1)) }
            #expect(failure as? TrainingError == .noCheckpoint(runDirectory: dir + "/r"))
            #expect(failure.map { "\($0)" } == "\(dir)/r: no checkpoint to resume from: the run never reached one; start it again with the same --out to restart it")
        }
    }

    // MARK: - Checkpoints written before checksums

    /// Checkpoints without checksums.json whose state.json names none (as written before checksums) still
    /// resume, unverified and said so; the run finishes exactly, and its new checkpoints have manifests.
    @Test func checkpointsWrittenBeforeChecksumsStillResume() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            try newRun(setup, "whole").train()
            try newRun(setup, "old").train(stopAfter: 5)  // checkpoints at 3 and 5
            let run = RunDirectory(dir + "/old")
            for c in run.checkpoints() {
                try FileManager.default.removeItem(atPath: c.path + "/checksums.json")
                var state = try run.readCheckpointState(c.path)
                state.checksums = nil
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeBytes(Array(try encoder.encode(state)) + [0x0A], c.path + "/state.json")
                #expect(!String(decoding: try readBytes(c.path + "/state.json"), as: UTF8.self).contains("checksums"))
            }
            #expect(try run.latestIntactCheckpoint().verified == false)
            var lines = [String]()
            let resumed = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1)) { lines.append($0) }
            #expect(resumed.step == 5)
            #expect(lines == ["\(run.checkpointsPath)/step_000005 has no checksums.json (written before checkpoints had one): resuming from it unverified"])
            try resumed.train()
            #expect(try readBytes(run.path + "/model.bin") == readBytes(dir + "/whole/model.bin"))
            #expect(run.checkpoints().map(\.step) == [3, 5, 6, 9])
            #expect(FileManager.default.fileExists(atPath: run.checkpointsPath + "/step_000009/checksums.json"))
            #expect(try run.latestIntactCheckpoint().verified)
        }
    }

    // MARK: - Leftovers

    /// Resume removes what interrupted writes left, and says so: a checkpoint's .tmp- folder and the temporary
    /// files of atomic writes (NAME.tmp-PID) of the files a run writes. Files of other names, other suffixes,
    /// or whose process still runs, stay.
    @Test func resumeRemovesInterruptedWritesLeftovers() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            try newRun(setup, "r").train(stopAfter: 3)
            let run = RunDirectory(dir + "/r"), dead = Self.deadPID
            try FileManager.default.createDirectory(atPath: run.checkpointsPath + "/.tmp-step_000006-\(dead)",
                                                    withIntermediateDirectories: true)
            try writeBytes([1, 2, 3], run.checkpointsPath + "/.tmp-step_000006-\(dead)/model.bin")
            let leftovers = ["model.bin.tmp-\(dead)", "config.json.tmp-\(dead)", "log.jsonl.tmp-\(dead)", "loss.svg.tmp-\(dead)"]
            let others = ["notes.txt", "notes.txt.tmp-\(dead)", "model.bin.tmp-12a", "model.bin.tmp-", "model.bin.tmp",
                          "model.bin.tmp-\(getpid())"]
            for name in leftovers + others { try writeBytes([7], run.path + "/" + name) }

            var lines = [String]()
            #expect(try Trainer.resume(run: run, parallel: ParallelFor(threads: 1)) { lines.append($0) }.step == 3)
            let removed = [run.checkpointsPath + "/.tmp-step_000006-\(dead)"] + leftovers.map { run.path + "/" + $0 }
            #expect(Set(lines) == Set(removed.map { "removed \($0), left by an interrupted write" }))
            for path in removed { #expect(!FileManager.default.fileExists(atPath: path), "\(path)") }
            for name in others { #expect(FileManager.default.fileExists(atPath: run.path + "/" + name), "\(name)") }

            // In a final model/ or adapter/ folder, any file's temporary; the final weights themselves stay.
            let other = RunDirectory(dir + "/other")
            for folder in ["model", "adapter"] {
                try FileManager.default.createDirectory(atPath: other.path + "/" + folder, withIntermediateDirectories: true)
                for name in ["model.safetensors", "model.safetensors.tmp-\(dead)", "config.json.tmp-\(dead)"] {
                    try writeBytes([1], other.path + "/\(folder)/\(name)")
                }
            }
            #expect(Set(other.removeLeftovers()) == Set(["model", "adapter"].flatMap { f in
                ["model.safetensors.tmp-\(dead)", "config.json.tmp-\(dead)"].map { other.path + "/\(f)/\($0)" }
            }))
            #expect(RunDirectory.filesRecursively(in: other.path) == ["adapter/model.safetensors", "model/model.safetensors"])
        }
    }

    // MARK: - Starting again

    /// A run killed before its first checkpoint (here: two steps trained, no checkpoint) blocks nothing: a fresh
    /// start with the same folder replaces it, says so, keeps files that are not the run's, and trains exactly
    /// as a first start would. While its trainer is alive, and once a run has a checkpoint, a fresh start is
    /// refused.
    @Test func aRunKilledBeforeItsFirstCheckpointCanBeStartedAgain() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            try newRun(setup, "whole").train()
            let run = RunDirectory(dir + "/r")
            do {
                let killed = try newRun(setup, "r")
                _ = try killed.trainStep()
                _ = try killed.trainStep()
                try writeBytes(Array("<svg/>".utf8), run.path + "/loss.svg")
                try writeBytes([1], run.path + "/config.json.tmp-\(Self.deadPID)")
                try writeBytes(Array("mine".utf8), run.path + "/notes.txt")
                #expect(throws: TrainingError.runInUse(runDirectory: run.path)) { try newRun(setup, "r") }
                #expect(killed.step == 2)
            }
            #expect(throws: TrainingError.noCheckpoint(runDirectory: run.path)) {
                try Trainer.resume(run: run, parallel: ParallelFor(threads: 1))
            }

            var lines = [String]()
            let again = try newRun(setup, "r") { lines.append($0) }
            #expect(lines == ["\(run.path): replacing a run that never reached a checkpoint (removed config.json, log.jsonl, loss.svg)"])
            #expect(try readBytes(run.path + "/notes.txt") == Array("mine".utf8))
            #expect(FileManager.default.fileExists(atPath: setup.tokenizerPath), "the tokenizer the run named is not its own")
            #expect(!FileManager.default.fileExists(atPath: run.path + "/config.json.tmp-\(Self.deadPID)"))
            #expect(!FileManager.default.fileExists(atPath: run.path + "/loss.svg"))
            try again.train()
            #expect(try readBytes(run.path + "/model.bin") == readBytes(dir + "/whole/model.bin"))
            #expect(try RunLog.read(run.logPath).filter { $0.kind == .train }.map(\.step) == Array(1...9))
            #expect(throws: TrainingError.runExists(runDirectory: run.path)) { try newRun(setup, "r") }
            #expect(try readBytes(run.path + "/notes.txt") == Array("mine".utf8))
        }
    }

    /// What a fresh start removes of an SFT run that never reached a checkpoint: the tokenizer and chat
    /// template it copied in (by the names it gives them), besides config.json and log.jsonl; nothing else.
    @Test func aFreshStartRemovesOnlyTheFilesTheRunWrote() throws {
        try withTemporaryDirectory { dir in
            let run = RunDirectory(dir + "/sft")
            try FileManager.default.createDirectory(atPath: run.checkpointsPath, withIntermediateDirectories: true)
            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "tokenizer.gguf")
            t.chatTemplate = .init(path: "chat_template.jinja", eos: [1])
            try run.writeConfig(RunConfig(model: try .gpt2(maxSeqLen: 8, vocabSize: 16, numLayers: 1, numHeads: 1, channels: 8),
                                          training: t, initializedFrom: nil))
            let own = ["log.jsonl", "tokenizer.gguf", "chat_template.jinja"]
            let others = ["tokenizer.tok", "conversations.jsonl", "chat_template.jinja.bak"]
            for name in own + others { try writeBytes([1], run.path + "/" + name) }
            var lines = [String]()
            try run.prepareFreshStart { lines.append($0) }
            #expect(lines == ["\(run.path): replacing a run that never reached a checkpoint (removed config.json, log.jsonl, tokenizer.gguf, chat_template.jinja)"])
            #expect(RunDirectory.filesRecursively(in: run.path) == others.sorted())
            #expect(!FileManager.default.fileExists(atPath: run.checkpointsPath), "the empty checkpoints/ goes too")

            // A config.json that is not a run's, or a run with final weights, is left alone.
            try writeBytes(Array("{}".utf8), run.configPath)
            #expect(throws: TrainingError.runExists(runDirectory: run.path)) { try run.prepareFreshStart() }
            #expect(FileManager.default.fileExists(atPath: run.configPath))
        }
    }

    // MARK: - LoRA

    /// A LoRA run's checkpoints (the adapter in PEFT's format) have manifests too; a flipped byte in the newest
    /// one's adapter weights falls back to the one before, and the run still ends with the uninterrupted
    /// run's adapter.
    @Test func aLoRARunsDamagedCheckpointFallsBackExactly() throws {
        try withTemporaryDirectory { dir in
            let model = try LoRASFTTests.writeModel(in: dir, type: .q8_0)
            let data = dir + "/conv.jsonl"
            try Conversation.writeJSONL(SyntheticConversations.generate(count: 16, seed: 3), to: data)
            func job(_ name: String) -> NewSFTRun {
                LoRASFTTests.job(dir + "/" + name, model: model, data: data, targets: ["q_proj", "v_proj"], keep: 3)
            }
            try job("straight").start(parallel: ParallelFor(threads: 1)).train()
            let interrupted = try job("interrupted").start(parallel: ParallelFor(threads: 1))
            try interrupted.train(stopAfter: 2)
            let run = interrupted.run
            #expect(run.checkpoints().map(\.step) == [1, 2])
            let newest = run.checkpointsPath + "/step_000002"
            let manifest = try readManifest(newest)
            #expect(manifest.files.keys.sorted() == ["adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                                                     "optimizer.bin", "state.json"])
            try flipByte(newest + "/adapter/adapter_model.safetensors", at: -3)
            var lines = [String]()
            let resumed = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1)) { lines.append($0) }
            #expect(resumed.step == 1)
            #expect(lines.count == 1 && lines[0].hasPrefix("skipping damaged checkpoint \(newest)/adapter/adapter_model.safetensors: SHA-256 "),
                    "\(lines)")
            try resumed.train()
            let a = try LoRAAdapter.read(folder: dir + "/straight/adapter", model: resumed.config.model)
            let b = try LoRAAdapter.read(folder: dir + "/interrupted/adapter", model: resumed.config.model)
            #expect(a.arena.array() == b.arena.array(), "falling back changed the trained adapter")
            #expect(run.checkpointDamage(run.checkpointsPath + "/step_000002", step: 2) == nil, "step 2 was written again")
        }
    }
}
