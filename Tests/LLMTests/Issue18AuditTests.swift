// Issue 18's failure cases that had no test of their own, in the library: a checkpoint write that fails (a full
// disk) leaves no .tmp- folder behind; a relative --train glob means the working directory's files; absurd
// training shapes are refused by a new run's start, not only by the memory check called alone; a token budget of
// Int.max steps trains (the WSD schedule's decay no longer overflows); fractional safetensors sizes are refused; a
// Hugging Face folder that cannot be written leaves no folder; a config.json whose batch is the literal 1e9 is a
// one-line error on resume.
import Foundation
import Testing
@testable import LLM

@Suite struct Issue18AuditTests {
    typealias Setup = TrainerTests.Setup

    // MARK: - Leftovers

    /// "A .tmp-step_* folder is left after a full disk, until the next resume": a checkpoint write that fails
    /// after its weights are written (here its optimizer state, as ENOSPC would) removes its .tmp- folder at once,
    /// writes no step folder, and leaves the older checkpoints as they were.
    @Test func aFailedCheckpointWriteRemovesItsTemporaryFolder() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let trainer = try setup.newRun("r", steps: 9)
            try trainer.train(stopAfter: 3)  // the checkpoint at 3
            let run = RunDirectory(dir + "/r")
            let three = try #require(run.checkpoints().last)
            #expect(three.step == 3)
            var state = try run.readCheckpointState(three.path)
            state.step = 4
            #expect(throws: FormatError.writeFailed(path: run.checkpointsPath + "/optimizer.bin", reason: "No space left on device")) {
                try run.writeCheckpoint(model: trainer.model, state: state, keep: 5, writeOptimizer: { _ in
                    throw FormatError.writeFailed(path: run.checkpointsPath + "/optimizer.bin", reason: "No space left on device")
                })
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: run.checkpointsPath).sorted()
            #expect(names == ["step_000003"], "left behind: \(names)")
            #expect(run.checkpointDamage(three.path, step: 3) == nil)
            // And the run goes on: the next write succeeds.
            try run.writeCheckpoint(model: trainer.model, state: state, keep: 5)
            #expect(run.checkpoints().map(\.step) == [3, 4])
        }
    }

    // MARK: - Unclear errors

    /// "A relative --train glob is resolved against the run folder, not the current directory": a glob relative
    /// to the working directory finds its shards, is recorded absolute, and resume finds them again.
    @Test func aRelativeTrainGlobIsTheWorkingDirectorys() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            // `dir` as a path relative to the working directory, without changing it (tests run in parallel).
            let cwd = FileManager.default.currentDirectoryPath
            let relative = String(repeating: "../", count: cwd.split(separator: "/").count) + dir.drop { $0 == "/" }
            #expect(!relative.hasPrefix("/"))
            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
            t.batch = 2
            t.seq = 8
            t.steps = 4
            t.warmupSteps = 0
            t.evalEvery = 2
            t.evalBatches = 1
            t.sampleEvery = 0
            t.checkpointEvery = 2
            let trainer = try NewRun(runDirectory: dir + "/r",
                                     model: .fresh(try .gpt2(maxSeqLen: 16, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16)),
                                     tokenizer: .file(setup.tokenizerPath), input: nil,
                                     trainShards: relative + "/d_train_*.bin", valShards: relative + "/d_val_*.bin",
                                     training: t).start(parallel: ParallelFor(threads: 1))
            #expect(trainer.config.training.trainShards == cwd + "/" + relative + "/d_train_*.bin")
            #expect(trainer.config.training.valShards == cwd + "/" + relative + "/d_val_*.bin")
            try trainer.train(stopAfter: 2)
            let resumed = try Trainer.resume(run: RunDirectory(dir + "/r"), parallel: ParallelFor(threads: 1))
            #expect(resumed.step == 2)
            try resumed.train()
            #expect(resumed.step == 4)
        }
    }

    /// "A run whose config.json says batch 1e9, on --resume": the literal `1e9` (not only 1000000000) is a
    /// one-line error naming config.json, before anything is allocated.
    @Test func aConfigBatchOf1e9IsAOneLineErrorOnResume() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            try setup.newRun("r", steps: 3).train()
            let run = RunDirectory(dir + "/r")
            let text = String(decoding: try readBytes(run.configPath), as: UTF8.self)
            let pattern = try NSRegularExpression(pattern: "\"batch\" ?: ?[0-9]+")
            let range = NSRange(text.startIndex..., in: text)
            #expect(pattern.numberOfMatches(in: text, range: range) == 1)
            try writeBytes(Array(pattern.stringByReplacingMatches(in: text, range: range, withTemplate: "\"batch\": 1e9").utf8),
                           run.configPath)
            do {
                _ = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1))
                Issue.record("a batch of 1e9 was accepted")
            } catch let error as TrainingError {
                #expect(error.description.contains(run.configPath) || error.description.contains("config.json"), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    // MARK: - Allocation aborts, through a new run's start

    /// `llm train --batch 10000000` and `--layers 1024 --channels 65536 --heads 64`: `NewRun.start` refuses them
    /// with "needs … this machine has …" before the weights or activations exist, and leaves no run behind.
    @Test func absurdShapesAreRefusedByANewRunsStart() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let small = try ModelConfig.gpt2(maxSeqLen: 128, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16)
            let huge = try ModelConfig.gpt2(maxSeqLen: 256, vocabSize: 1, numLayers: 1024, numHeads: 64, channels: 65536)
            for (name, shape, batch, seq) in [("batch", small, 10_000_000, 128), ("shape", huge, 16, 128)] {
                var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
                t.batch = batch
                t.seq = seq
                t.steps = 10
                t.warmupSteps = 0
                try t.validate()  // the flags themselves are in range: only the memory check can refuse them
                let start = Date()
                do {
                    _ = try NewRun(runDirectory: dir + "/" + name, model: .fresh(shape), tokenizer: .file(setup.tokenizerPath),
                                   input: nil, trainShards: dir + "/d_train_*.bin", valShards: nil, training: t)
                        .start(parallel: ParallelFor(threads: 1))
                    Issue.record("\(name): accepted")
                } catch let error as ModelError {
                    guard case let .tooLarge(_, bytes, available) = error else { Issue.record("\(name): \(error)"); continue }
                    #expect(bytes > available)
                    #expect(error.description.contains(" needs ") && error.description.contains("; this machine has "), "\(error)")
                    #expect(!error.description.contains("\n"))
                }
                #expect(Date().timeIntervalSince(start) < 30, "\(name): refused only after allocating?")
                #expect(!RunDirectory.isRun(dir + "/" + name), "\(name): a failed start left a run")
            }
        }
    }

    // MARK: - Arithmetic overflow

    /// `llm train --batch 1 --seq 1 --tokens 9223372036854775807` is a run of Int.max steps: its schedule (WSD
    /// decaying over the whole run included) and its first steps and checkpoint work without overflow.
    @Test func aRunOfIntMaxStepsTrains() throws {
        for kind in LearningRateSchedule.Kind.allCases {
            let schedule = try LearningRateSchedule(kind: kind, maxLR: 1e-3, warmupSteps: 20, totalSteps: .max,
                                                    finalFraction: 0.1, decayFraction: 1)
            #expect(schedule.decayStart == 20)
            for step in [0, 19, 20, 1 << 40, Int.max - 1] { #expect(schedule.learningRate(at: step).isFinite, "\(kind) \(step)") }
        }
        let nearlyAll = try LearningRateSchedule(kind: .wsd, maxLR: 1, totalSteps: .max, decayFraction: 0.999999)
        #expect(nearlyAll.decayStart > 0 && nearlyAll.decayStart < Int.max / 1000)

        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
            t.batch = 1
            t.seq = 8
            t.steps = TrainingConfig.steps(forTokens: .max, stepTokens: 1)
            #expect(t.steps == .max)
            t.warmupSteps = 20
            t.schedule = .wsd
            t.decayFraction = 1
            t.evalEvery = 1
            t.evalBatches = 1
            t.sampleEvery = 1
            t.sampleTokens = 2
            t.checkpointEvery = 2
            let trainer = try NewRun(runDirectory: dir + "/r",
                                     model: .fresh(try .gpt2(maxSeqLen: 16, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16)),
                                     tokenizer: .file(setup.tokenizerPath), input: nil, trainShards: dir + "/d_train_*.bin",
                                     valShards: dir + "/d_val_*.bin", training: t).start(parallel: ParallelFor(threads: 1))
            try trainer.train(stopAfter: 2)
            #expect(trainer.step == 2)
            #expect(RunDirectory(dir + "/r").checkpoints().map(\.step) == [2])
            let resumed = try Trainer.resume(run: RunDirectory(dir + "/r"), parallel: ParallelFor(threads: 1))
            try resumed.train(stopAfter: 3)  // a step number, not a count
            #expect(resumed.step == 3)
        }
    }

    // MARK: - Silently accepted

    /// "Overlapping or fractional safetensors offsets": fractional offsets and sizes are refused (overlaps:
    /// HostileFileTests.safetensorsTensorsMustTileTheData).
    @Test func fractionalSafetensorsOffsetsAndShapesAreRefused() throws {
        func file(_ header: String, data: Int) -> [UInt8] {
            var h = Array(header.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [UInt8](repeating: 0, count: data)
        }
        let cases: [(String, Int, String)] = [
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,7.5]}}"#, 8, "lies outside"),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0.5,8.5]}}"#, 9, "lies outside"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[3.5,7.5]}}"#, 8,
             "lies outside"),
            (#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}}"#, 10, "not a list of non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, 8, "not a list of non-negative integers"),
        ]
        try withTemporaryDirectory { dir in
            for (header, data, mentions) in cases {
                let path = dir + "/x.safetensors"
                try writeBytes(file(header, data: data), path)
                do {
                    _ = try SafeTensorsFile.read(path)
                    Issue.record("accepted: \(header)")
                } catch let error as FormatError {
                    guard case .malformed = error else { Issue.record("unexpected \(error)"); continue }
                    #expect(error.description.hasPrefix(path + ": malformed: ") && error.description.contains(mentions), "\(error)")
                    #expect(!error.description.contains("\n"))
                }
            }
        }
    }

    // MARK: - Leftovers of a failed conversion

    /// "An empty folder is left when a conversion to an HF folder fails": a model the architecture's config.json
    /// cannot express (Llama with q/k/v biases but no output bias) fails before the folder exists.
    @Test func aFailedConversionToAHuggingFaceFolderLeavesNoFolder() throws {
        var config = try ModelPreset.llama(layers: 1, heads: 2, channels: 16, kvHeads: 1, vocabSize: 32, maxSeqLen: 8)
        config.qkvBias = true
        config.attnOutBias = false
        try config.validate()
        let weights = ModelWeights.random(config: config, seed: 1)
        try withTemporaryDirectory { dir in
            do {
                try HuggingFaceFolder.write(weights, to: dir + "/hf")
                Issue.record("written")
            } catch let error as FormatError {
                #expect(error.description.contains("Llama's attention biases are all or none"), "\(error)")
                #expect(!error.description.contains("\n"))
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/hf"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        }
    }
}
