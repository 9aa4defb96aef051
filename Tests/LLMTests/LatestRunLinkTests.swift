// runs/latest: `llm train` and `llm sft` point it at each run they start in their default folder
// (`NewRun.linksLatest`, `NewSFTRun.linksLatest`), as a relative link replaced in one rename; and a run started
// from `runs/latest` records the real run it came from, so moving the link on does not change what it names.
import Foundation
import Testing
@testable import LLM

@Suite struct TrainerLatestLinkTests {
    /// The link's target, or nil if `path` is not a link.
    static func target(_ path: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: path) }

    /// `path` with its links resolved.
    static func real(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    @Test func linkAsLatestPointsRelativelyAtTheNewestRunAndLeavesNoTemporaryLink() throws {
        try withTemporaryDirectory { dir in
            for name in ["a-1", "b-2"] { try FileManager.default.createDirectory(atPath: dir + "/runs/" + name, withIntermediateDirectories: true) }
            try RunDirectory(dir + "/runs/a-1").linkAsLatest()
            #expect(Self.target(dir + "/runs/latest") == "a-1")
            try RunDirectory(dir + "/runs/b-2/").linkAsLatest()  // a trailing slash names the same run
            #expect(Self.target(dir + "/runs/latest") == "b-2")
            #expect(Self.real(dir + "/runs/latest") == Self.real(dir + "/runs/b-2"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/runs").sorted() == ["a-1", "b-2", "latest"])
        }
    }

    @Test func aFolderNamedLatestIsLeftAloneAndTheFailureSaysSo() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/runs/latest", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/runs/a-1", withIntermediateDirectories: true)
            #expect(throws: FormatError.self) { try RunDirectory(dir + "/runs/a-1").linkAsLatest() }
            var isDirectory: ObjCBool = false
            #expect(Self.target(dir + "/runs/latest") == nil)
            #expect(FileManager.default.fileExists(atPath: dir + "/runs/latest", isDirectory: &isDirectory) && isDirectory.boolValue)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/runs").sorted() == ["a-1", "latest"])
            var said = [String]()
            RunDirectory(dir + "/runs/a-1").linkAsLatestReporting { said.append($0) }
            #expect(said.count == 1 && said[0].contains("runs/latest"), "\(said)")
        }
    }

    @Test func resolvingLinksChangesOnlyPathsThroughALink() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/runs/a-1", withIntermediateDirectories: true)
            #expect(RunDirectory.resolvingLinks(dir + "/runs/a-1") == dir + "/runs/a-1")
            #expect(RunDirectory.resolvingLinks(dir + "/nothing/here") == dir + "/nothing/here")
            try RunDirectory(dir + "/runs/a-1").linkAsLatest()
            #expect(RunDirectory.resolvingLinks(dir + "/runs/latest") == Self.real(dir + "/runs/a-1"))
            #expect(RunDirectory.resolvingLinks(dir + "/runs/latest/") == Self.real(dir + "/runs/a-1"))
        }
    }

    /// The chat section's sequence: a run, then `llm sft --init runs/latest`. The SFT run fine-tunes the run
    /// `latest` named when it started, records that run's real path (not runs/latest), and then `latest` is it.
    @Test func sftFromLatestRecordsTheRealRunThenBecomesLatest() throws {
        try withTemporaryDirectory { dir in
            let setup = try SFTTests.Setup(dir)
            func start(_ name: String, from model: String, tokenizer: String?) throws -> Trainer {
                var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
                t.batch = 2
                t.steps = 2
                t.warmupSteps = 0
                t.evalEvery = 0
                t.sampleEvery = 0
                t.checkpointEvery = 0
                var job = NewSFTRun(runDirectory: dir + "/runs/" + name, initFrom: model, tokenizer: tokenizer,
                                    data: setup.data, valData: nil, training: t)
                job.valFraction = 0.1
                job.seq = 48
                job.linksLatest = true
                return try job.start(parallel: ParallelFor(threads: 1))
            }
            let first = try start("sft-a", from: setup.model, tokenizer: setup.tokenizerPath)
            #expect(Self.target(dir + "/runs/latest") == "sft-a")
            try first.train()

            let second = try start("sft-b", from: dir + "/runs/latest", tokenizer: nil)
            #expect(Self.target(dir + "/runs/latest") == "sft-b")
            let config = try RunDirectory(dir + "/runs/sft-b").readConfig()
            #expect(config.initializedFrom == Self.real(dir + "/runs/sft-a") + "/model.bin")
            #expect(config.initializedFrom?.contains("latest") == false)
            #expect(second.config.model.vocabSize == first.config.model.vocabSize)
            try second.train()
            #expect(Self.real(dir + "/runs/latest") == Self.real(dir + "/runs/sft-b"))
        }
    }

    /// `llm train`'s path: a NewRun with `linksLatest` moves the link; one without (`--out`) leaves it.
    @Test func newRunMovesLatestOnlyWhenAsked() throws {
        try withTemporaryDirectory { dir in
            let setup = try TrainerTests.Setup(dir)
            func start(_ name: String, links: Bool, from initFrom: String? = nil) throws -> Trainer {
                var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
                t.batch = 2
                t.seq = 8
                t.steps = 1
                t.warmupSteps = 0
                t.evalEvery = 0
                t.sampleEvery = 0
                t.checkpointEvery = 0
                let model: NewRun.Model = try initFrom.map { .initFrom($0) }
                    ?? .fresh(try .gpt2(maxSeqLen: 16, vocabSize: 1, numLayers: 1, numHeads: 2, channels: 16))
                var job = NewRun(runDirectory: dir + "/runs/" + name, model: model, tokenizer: .file(setup.tokenizerPath),
                                 input: nil, trainShards: dir + "/d_train_*.bin", valShards: dir + "/d_val_*.bin", training: t)
                job.linksLatest = links
                return try job.start(parallel: ParallelFor(threads: 1))
            }
            try start("first", links: true).train()
            #expect(Self.target(dir + "/runs/latest") == "first")
            _ = try start("elsewhere", links: false)
            #expect(Self.target(dir + "/runs/latest") == "first")
            let next = try start("second", links: true, from: dir + "/runs/latest/model.bin")
            #expect(Self.target(dir + "/runs/latest") == "second")
            #expect(next.config.initializedFrom == Self.real(dir + "/runs/first/model.bin"))
        }
    }
}
