// `llm report`: what the report card says about runs and evaluations, and that it reads `llm eval --json` back.
import Foundation
import Testing
@testable import LLM

@Suite struct ReportCardTests {
    static func run(name: String, sft: Bool) throws -> ReportCard.Run {
        let model = try ModelPreset.llama(layers: 2, heads: 2, channels: 16, kvHeads: 1, vocabSize: 50, maxSeqLen: 8)
        var training = TrainingConfig(trainShards: "data/train_*.bin", valShards: nil, tokenizer: "tok.tok")
        training.steps = 3
        if sft { training.conversations = .init(train: "chat.jsonl", val: nil, valFraction: 0.1) }
        let records: [RunLogRecord] = [
            .init(kind: .eval, step: 0, valLoss: 4.0, bitsPerByte: 2.5, time: 100),
            .init(kind: .train, step: 1, loss: 3.9, tokensPerSecond: 100, time: 101),
            .init(kind: .train, step: 2, loss: 3.5, tokensPerSecond: 300, time: 102),
            .init(kind: .train, step: 3, loss: 3.25, tokensPerSecond: 200, time: 103),
            .init(kind: .eval, step: 3, valLoss: 3.5, bitsPerByte: 2.125, time: 170),
            .init(kind: .sample, step: 3, text: "line one\nline <two>", time: 171),
        ]
        return .init(name: name, path: "/runs/" + name,
                     config: RunConfig(model: model, training: training, initializedFrom: nil), records: records)
    }

    @Test func summarisesRunsAndEvaluations() throws {
        let score = TaskScore(task: "caps", kind: .multipleChoice, examples: 4, correct: 3, accuracy: 0.75, baseline: 0.25,
                              centered: TaskScore.centered(accuracy: 0.75, baseline: 0.25), seconds: 1, details: [])
        let eval = EvaluationReport(model: "m", tasks: [score], kernels: "avx2", quantized: false)
        let card = ReportCard(runs: [try Self.run(name: "base", sft: false), try Self.run(name: "chat", sft: true)],
                              evaluations: [("base-eval", eval)], machine: "Test CPU, 2 cores")
        let files = card.files(date: Date(timeIntervalSince1970: 0))
        #expect(files.map(\.name) == ["report.md", "loss-base.svg", "loss-chat.svg", "eval-base-eval.svg"])
        let md = files[0].contents
        #expect(md.contains("Made 1970-01-01T00:00:00Z on Test CPU, 2 cores."))
        // Last train step and loss, last val loss and bits per byte, mean tokens/s, first to last record.
        #expect(md.contains("| base | pretraining | llama L2 C16 | "))
        #expect(md.contains(" | 3 | 3.2500 | 3.5000 | 2.1250 | 200 | 1m 11s |"))
        #expect(md.contains("| chat | fine-tuning (SFT) |"))
        #expect(md.contains("> line one\n> line <two>"))
        #expect(md.contains("CORE 0.6667"))
        #expect(files[3].contents.contains("<text x=\"162.0\" y=\"55.0\" text-anchor=\"end\">caps</text>"))
        #expect(files[3].contents.contains("width=\"270.0\""))  // 0.75 of the 360-point bar
    }

    @Test func readsWhatLLMEvalWrites() throws {
        let score = TaskScore(task: "seq", kind: .languageModeling, examples: 2, correct: 1, accuracy: 0.5, baseline: 0,
                              centered: 0.5, seconds: 2,
                              details: [.init(index: 0, correct: true, losses: [0.25]), .init(index: 1, correct: false, losses: [.infinity])])
        let report = EvaluationReport(model: "m.gguf", tasks: [score],
                                      bitsPerByte: BitsPerByte(bitsPerByte: 1.5, tokens: 10, bytes: 40, seconds: 1),
                                      kernels: "avx512", quantized: true)
        try withTemporaryDirectory { dir in
            let path = dir + "/eval.json"
            try EvaluationReport.write(try report.json(), to: path)
            let card = try ReportCard.read(runs: [], evaluations: [path])
            #expect(card.evaluations.count == 1)
            #expect(card.evaluations[0].name == "eval")
            #expect(card.evaluations[0].report == report)
            try writeBytes(Array("{}".utf8), dir + "/bad.json")
            #expect(throws: RunLogError.self) { try ReportCard.read(runs: [], evaluations: [dir + "/bad.json"]) }
            #expect(throws: RunLogError.unreadable(path: dir, reason: "not a run directory (no config.json)")) {
                try ReportCard.read(runs: [dir], evaluations: [])
            }
        }
    }
}
