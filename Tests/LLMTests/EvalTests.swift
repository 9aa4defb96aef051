// `llm eval`'s scoring, checked against reference/eval_reference.py (transformers) on a committed tiny Llama, and
// its pieces (task files, few-shot draws, answer extraction, bits per byte) against independent computations.
import Foundation
import Testing
@testable import LLM

@Suite struct EvalTests {
    /// The reference script's results for the fixture's tasks (reference/make_eval_fixture.py).
    struct Expected: Decodable {
        var task: String
        var kind: String
        var correct: Int
        var details: [Detail]
        struct Detail: Decodable {
            var index: Int
            var correct: Bool
            var predicted: Int?
            var losses: [Double]?
            var reply: String?
        }
    }

    static func loadFixtureModel() throws -> LoadedModel {
        try LoadedModel.load(Fixtures.path("eval", "model"))
    }

    @Test func scoresMatchTransformersExampleByExample() throws {
        let model = try Self.loadFixtureModel()
        let expected = try JSONDecoder().decode([Expected].self,
                                                from: Data(Fixtures.bytes("eval", "expected.json")))
        #expect(expected.count == 8)
        let evaluator = Evaluator(model: model, parallel: ParallelFor(threads: 1))
        var worst = 0.0
        for reference in expected {
            let task = try EvalTask.read(path: Fixtures.path("eval", "tasks/\(reference.task).jsonl"))
            #expect(task.kind.rawValue == reference.kind)
            let score = try evaluator.evaluate(task)
            #expect(score.correct == reference.correct, "\(reference.task)")
            for (ours, theirs) in zip(score.details, reference.details) {
                #expect(ours.index == theirs.index)
                #expect(ours.correct == theirs.correct, "\(reference.task) example \(theirs.index)")
                if let losses = theirs.losses {
                    let mine = try #require(ours.losses)
                    #expect(mine.count == losses.count)
                    for (a, b) in zip(mine, losses) { worst = max(worst, abs(a - b)) }
                }
                #expect(ours.predicted == theirs.predicted, "\(reference.task) example \(theirs.index)")
                #expect(ours.reply == theirs.reply, "\(reference.task) example \(theirs.index)")
            }
        }
        #expect(worst < 2e-4, "mean losses differ from transformers' by up to \(worst)")
    }

    /// Scoring the same task twice gives the same numbers: the reuse of cached prefixes leaves nothing behind.
    @Test func cachedPrefixesChangeNothing() throws {
        let model = try Self.loadFixtureModel()
        let task = try EvalTask.read(path: Fixtures.path("eval", "tasks/capitals.jsonl"))
        let fresh = try Evaluator(model: model, parallel: ParallelFor(threads: 1)).evaluate(task)
        let evaluator = Evaluator(model: model, parallel: ParallelFor(threads: 1))
        _ = try evaluator.evaluate(try EvalTask.read(path: Fixtures.path("eval", "tasks/comparison.jsonl")))
        let again = try evaluator.evaluate(task)
        for (a, b) in zip(fresh.details, again.details) {
            for (x, y) in zip(a.losses!, b.losses!) { #expect(abs(x - y) < 1e-5) }
        }
    }

    /// Bits per byte from the generation path equals a direct computation over the training forward pass's logits.
    @Test func bitsPerByteMatchesTheTrainingForwardPass() throws {
        let model = try Self.loadFixtureModel()
        let text = Array("The capital of France is Paris. The opposite of hot is cold. 1, 2, 3, 4, 5.".utf8)
        let context = 16
        let bpb = try Evaluator(model: model, parallel: ParallelFor(threads: 1))
            .bitsPerByte(text: text, context: context)
        var tokens = text.withUnsafeBufferPointer { model.tokenizer.encode(utf8: $0) }
        tokens.insert(model.tokenizer.bos!, at: 0)
        let V = model.weights.config.vocabSize
        let byteCounts = model.tokenizer.textByteCounts()
        var nats = 0.0, bytes = 0, w = 0
        while w + 1 < tokens.count {
            let end = min(w + context, tokens.count)
            let window = Array(tokens[w..<end])
            let logits = try model.weights.logits(for: window, parallel: ParallelFor(threads: 1))
            for j in 0..<(window.count - 1) {
                let row = logits[j * V..<(j + 1) * V].map(Double.init)
                let m = row.max()!
                let logZ = m + log(row.reduce(0) { $0 + exp($1 - m) })
                nats += logZ - row[Int(window[j + 1])]
                bytes += byteCounts[Int(window[j + 1])]
            }
            w = end - 1
        }
        #expect(bpb.bytes == bytes)
        #expect(bpb.tokens == tokens.count - 1)
        #expect(abs(bpb.bitsPerByte - nats / Double(bytes) / M_LN2) < 1e-5)
    }

    /// The few-shot draws are the ones reference/eval_reference.py makes (values printed by its fewshot_indices).
    @Test func fewshotDrawsMatchThePythonReference() {
        #expect((0..<4).map { EvalPrompts.fewshotIndices(for: $0, count: 10, k: 3) }
                == [[5, 6, 1], [8, 5, 0], [9, 7, 0], [4, 2, 8]])
        for i in 0..<10 {
            let shots = EvalPrompts.fewshotIndices(for: i, count: 10, k: 9)
            #expect(Set(shots) == Set(0..<10).subtracting([i]))
        }
        #expect(EvalPrompts.fewshotIndices(for: 3, count: 10, k: 0).isEmpty)
    }

    @Test func answersAreReadAsGSM8KGradesThem() {
        #expect(EvalPrompts.extractAnswer("so #### 1,234.5 and 7") == "1234.5")
        #expect(EvalPrompts.extractAnswer("The answer is -12.") == "-12")
        #expect(EvalPrompts.extractAnswer("3-5") == "-5")
        #expect(EvalPrompts.extractAnswer("no number here") == nil)
        #expect(EvalPrompts.extractAnswer("4 came before #### none") == nil)
        #expect(EvalPrompts.answersMatch("5.0", "5"))
        #expect(EvalPrompts.answersMatch("1000", "1,000"))
        #expect(!EvalPrompts.answersMatch("51", "5"))
    }

    @Test func promptsFollowCOREsLayout() throws {
        let task = try EvalTask(header: .init(task: "t", kind: .multipleChoice, fewshot: 1, delimiter: " A: "),
                                examples: [.init(query: "Q1", choices: ["x", "y"], gold: 1),
                                           .init(query: "Q2", choices: ["u", "v"], gold: 0)])
        #expect(EvalPrompts.texts(for: task.examples[1], shots: [task.examples[0]], task: task)
                == ["Q1 A: y\n\nQ2 A: u", "Q1 A: y\n\nQ2 A: v"])
        let lm = try EvalTask(header: .init(task: "t", kind: .languageModeling, delimiter: " "),
                              examples: [.init(context: " 1, 2, ", continuation: "3")])
        #expect(EvalPrompts.texts(for: lm.examples[0], shots: [], task: lm) == ["1, 2,", "1, 2, 3"])
        #expect(EvalPrompts.chatQuestion("Why?", choices: ["a", "b"])
                == "Multiple Choice question: Why?\n- a=A\n- b=B\n\nRespond only with the letter of the correct answer.")
        // Baselines: the mean of 1/options, 0 for the open kinds.
        #expect(task.baseline == 0.5)
        #expect(lm.baseline == 0)
    }

    @Test func spansAreTheContinuationsTokens() {
        #expect(EvalPrompts.commonLength([[1, 2, 3], [1, 2, 4], [1, 2]], fromEnd: false) == 2)
        #expect(EvalPrompts.commonLength([[9, 2, 3], [1, 2, 3]], fromEnd: true) == 2)
        #expect(EvalPrompts.commonLength([[1, 2], [1, 2]], fromEnd: false) == 2)
    }

    @Test func badTaskFilesNameTheFileAndLine() throws {
        func error(_ text: String) -> String {
            do {
                _ = try EvalTask.parse(Data(text.utf8), path: "t.jsonl")
                return "no error"
            } catch { return error.description }
        }
        #expect(error("") == "t.jsonl: cannot read the task: empty: no header line")
        #expect(error("{\"task\": \"a\", \"kind\": \"guess\"}\n").hasPrefix("t.jsonl:1: not the header"))
        #expect(error("{\"task\": \"a\", \"kind\": \"schema\"}\n") == "t.jsonl: task a: no examples")
        let header = "{\"task\": \"a\", \"kind\": \"multiple_choice\"}\n"
        #expect(error(header + "{\"query\": \"q\", \"choices\": [\"x\", \"y\"], \"gold\": 2}")
                == "t.jsonl: task a, example 1: \"gold\" 2 is not an index of \"choices\" (0..<2)")
        #expect(error(header + "\n{\"query\": \"q\", \"choices\": [\"x\"], \"gold\": 0}")
                == "t.jsonl: task a, example 1: \"choices\" needs 2 to 26 entries, not 1")
        #expect(error(header + "{\"query\": \"q\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\nnot json").hasPrefix("t.jsonl:3: not an example"))
        #expect(error(header + "{\"query\": 5, \"choices\": [\"x\", \"y\"], \"gold\": 0}").hasPrefix("t.jsonl:2: not an example: \"query\""))
        let fewshot = "{\"task\": \"a\", \"kind\": \"multiple_choice\", \"fewshot\": 2}\n{\"query\": \"q\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\n"
        #expect(error(fewshot) == "t.jsonl: task a: fewshot 2 needs more than 2 examples; the task has 1")
        let chat = "{\"task\": \"a\", \"kind\": \"chat_answer\", \"max_tokens\": 0}\n{\"question\": \"q\", \"answer\": \"1\"}\n"
        #expect(error(chat) == "t.jsonl: task a: max_tokens 0 is not in 1...4096")
        #expect(error("{\"task\": \"a\", \"kind\": \"schema\", \"baseline\": 1.5}\n{\"context_options\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": 0}")
                == "t.jsonl: task a: baseline 1.5 is not in [0, 1)")
        try withTemporaryDirectory { dir in
            #expect(throws: EvalError.unreadable(path: dir, reason: "a directory with no .jsonl task files")) {
                try EvalTask.files([dir])
            }
            #expect(throws: EvalError.unreadable(path: dir + "/none.jsonl", reason: "no such file")) {
                try EvalTask.read(path: dir + "/none.jsonl")
            }
        }
    }

    /// Every shipped task file (tasks/) parses and validates.
    @Test func shippedTasksAreValid() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../tasks").standardized.path
        let files = try EvalTask.files([dir])
        #expect(files.count >= 8)
        var kinds = Set<EvalTask.Kind>()
        for file in files { kinds.insert(try EvalTask.read(path: file).kind) }
        #expect(kinds == Set(EvalTask.Kind.allCases))
    }

    @Test func reportSummarisesCOREAndChatCORE() throws {
        func score(_ kind: EvalTask.Kind, _ accuracy: Double, _ baseline: Double) -> TaskScore {
            TaskScore(task: kind.rawValue, kind: kind, examples: 4, correct: Int(accuracy * 4), accuracy: accuracy,
                      baseline: baseline, centered: TaskScore.centered(accuracy: accuracy, baseline: baseline),
                      seconds: 0, details: [])
        }
        let report = EvaluationReport(model: "m", tasks: [score(.multipleChoice, 0.5, 0.25), score(.languageModeling, 0.25, 0),
                                                          score(.chatChoice, 1, 0.25)],
                                      kernels: "generic", quantized: false)
        #expect(abs(report.core! - (1.0 / 3 + 0.25) / 2) < 1e-12)
        #expect(report.chatCore == 1)
        #expect(report.markdown.contains("CORE 0.2917 · ChatCORE 1.0000"))
        let json = try JSONSerialization.jsonObject(with: report.json()) as! [String: Any]
        #expect(json["chat_core"] as? Double == 1)
        #expect((json["tasks"] as? [[String: Any]])?.first?["kind"] as? String == "multiple_choice")
    }
}
