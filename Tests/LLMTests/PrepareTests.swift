// `llm prepare`'s library side: shards whose token stream is exactly [eot] + encode(text), JSONL and
// folder inputs, and bad input that leaves nothing behind.
import Foundation
import Testing
@testable import LLM

@Suite struct PrepareTests {
    let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"

    func allTokens(_ files: [String]) throws -> [Int32] {
        try files.flatMap { path -> [Int32] in
            let r = try TokenShardReader(path: path)
            return try r.tokens(in: 0..<r.count)
        }
    }

    @Test func oneTextFileGivesEndOfTextThenItsTokens() throws {
        let gpt2 = try Tokenizer.gpt2()
        try withTemporaryDirectory { dir in
            try writeBytes(Array(text.utf8), dir + "/play.txt")
            var job = DatasetPreparation(inputs: [dir + "/play.txt"], outputDirectory: dir + "/out", name: "play")
            job.valFraction = 0.25
            job.shardTokens = 7
            let result = try job.run(tokenizer: gpt2)
            let expected = [Tokenizer.gpt2EndOfText] + gpt2.encode(text)
            let written = try allTokens(result.files)
            #expect(written == expected)
            #expect(result.valTokens == expected.count / 4)
            #expect(result.files.first!.hasSuffix("/play_val_000000.bin"))
            #expect(result.files[1].hasSuffix("/play_train_000001.bin"))
            let firstTrain = try TokenShardReader(path: result.files[1])
            #expect(firstTrain.count == 7)
            let entries = try FileManager.default.contentsOfDirectory(atPath: dir + "/out")
            #expect(entries.count == result.files.count, "no staging folder or temp files left: \(entries)")
        }
    }

    @Test func jsonlAndFoldersGiveOneDocumentPerEntry() throws {
        let gpt2 = try Tokenizer.gpt2()
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
            try writeBytes(Array(#"{"text": "one"}"#.utf8 + [0x0A, 0x0A] + #"{"text": "two", "id": 2}"#.utf8 + [0x0A]), dir + "/in/b.jsonl")
            try writeBytes(Array("zero".utf8), dir + "/in/a.txt")
            try writeBytes(Array("ignored".utf8), dir + "/in/c.md")
            let result = try DatasetPreparation(inputs: [dir + "/in"], outputDirectory: dir + "/out", name: "d").run(tokenizer: gpt2)
            #expect(result.documents == 3)
            let eot = Tokenizer.gpt2EndOfText
            let written = try allTokens(result.files)
            #expect(written == [eot] + gpt2.encode("zero") + [eot] + gpt2.encode("one") + [eot] + gpt2.encode("two"))
        }
    }

    func expectFailure(_ job: DatasetPreparation, mentions: String) throws {
        do {
            _ = try job.run(tokenizer: try Tokenizer.gpt2())
            Issue.record("expected an error mentioning \(mentions)")
        } catch let error as DataError {
            #expect(error.description.contains(mentions), "\(error)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: job.outputDirectory)) ?? []
            #expect(left.isEmpty, "nothing may be left behind: \(left)")
        }
    }

    @Test func badInputFailsCleanly() throws {
        try withTemporaryDirectory { dir in
            try writeBytes(Array("ok ".utf8) + [0xFF, 0xFE] + Array(" more".utf8), dir + "/bad.txt")
            try expectFailure(DatasetPreparation(inputs: [dir + "/bad.txt"], outputDirectory: dir + "/o1", name: "x"),
                              mentions: "bad.txt: invalid UTF-8 at byte offset 3")
            try writeBytes([], dir + "/empty.txt")
            try expectFailure(DatasetPreparation(inputs: [dir + "/empty.txt"], outputDirectory: dir + "/o2", name: "x"),
                              mentions: "no text to tokenize")
            try writeBytes(Array("{\"text\": 1}\n".utf8), dir + "/bad.jsonl")
            try expectFailure(DatasetPreparation(inputs: [dir + "/bad.jsonl"], outputDirectory: dir + "/o3", name: "x"),
                              mentions: "bad.jsonl: line 1: no string field \"text\"")
            var job = DatasetPreparation(inputs: [dir + "/bad.txt"], outputDirectory: dir + "/o4", name: "x")
            job.valFraction = 1
            try expectFailure(job, mentions: "--val-fraction 1.0 must be between 0 and 1")
            try expectFailure(DatasetPreparation(inputs: [dir + "/missing.txt"], outputDirectory: dir + "/o5", name: "x"),
                              mentions: "missing.txt: cannot read")
        }
    }

    @Test func lossyReplacesInvalidUTF8() throws {
        try withTemporaryDirectory { dir in
            try writeBytes(Array("ok ".utf8) + [0xFF] + Array(" more".utf8), dir + "/bad.txt")
            var job = DatasetPreparation(inputs: [dir + "/bad.txt"], outputDirectory: dir + "/out", name: "x")
            job.lossy = true
            let gpt2 = try Tokenizer.gpt2()
            let written = try allTokens(try job.run(tokenizer: gpt2).files)
            #expect(written == [Tokenizer.gpt2EndOfText] + gpt2.encode("ok \u{FFFD} more"))
        }
    }

    @Test func existingShardsAreKeptUnlessOverwriting() throws {
        let gpt2 = try Tokenizer.gpt2()
        try withTemporaryDirectory { dir in
            try writeBytes(Array(text.utf8), dir + "/play.txt")
            var job = DatasetPreparation(inputs: [dir + "/play.txt"], outputDirectory: dir + "/out", name: "play")
            job.shardTokens = 5
            let first = try job.run(tokenizer: gpt2)
            #expect(throws: DataError.existingShards(directory: dir + "/out", name: "play")) { try job.run(tokenizer: gpt2) }
            job.overwrite = true
            job.shardTokens = 1000
            let second = try job.run(tokenizer: gpt2)
            #expect(first.files.count > 2 && second.files.count == 2)
            let left = try FileManager.default.contentsOfDirectory(atPath: dir + "/out").sorted()
            #expect(left == second.files.map { ($0 as NSString).lastPathComponent }.sorted())
        }
    }
}
