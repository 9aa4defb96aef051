// SFT: packing conversations into masked rows, the held-out split, growing the vocabulary for the chat tokens,
// and whole fine-tuning runs (loss falls, resume is exact).
import Foundation
import Testing
@testable import LLM

@Suite struct SFTTests {
    /// A small tokenizer trained on the synthetic conversations' text, with only <|endoftext|> (as GPT-2's), so
    /// the chat tokens take the 8 ids after its vocabulary.
    static let tokenizer: Tokenizer = {
        let text = SyntheticConversations.generate(count: 200, seed: 9).flatMap(\.messages).map(\.content)
        return try! BPETrainer.train(texts: text, vocabSize: 300, pattern: .gpt4, specialTokens: ["<|endoftext|>"])
    }()
    static let vocab = ChatTokens(tokenizer: tokenizer).requiredVocabSize

    static func conversations(_ n: Int, seed: UInt64 = 1) -> [Conversation] {
        SyntheticConversations.generate(count: n, seed: seed)
    }

    @Test func packedRowsHoldWholeConversationsWithTheirMasks() throws {
        let renderer = ChatRenderer(tokenizer: Self.tokenizer)
        let convs = Self.conversations(30)
        let T = 64
        let loader = try ConversationLoader(conversations: convs, renderer: renderer, batch: 3, seq: T, order: .sequential,
                                            vocabSize: Self.vocab, source: "test")
        // Expected: each row, rebuilt independently from the renderer, greedily in file order.
        var expectedRows = [[Int]](), current = [Int](), used = 0
        for (i, c) in convs.enumerated() {
            let n = min(renderer.render(c).ids.count, T + 1)
            if used + n > T + 1 && !current.isEmpty { expectedRows.append(current); current = []; used = 0 }
            current.append(i)
            used += n
        }
        expectedRows.append(current)
        #expect(loader.rowSizes == expectedRows.map(\.count))
        #expect(loader.batchesPerEpoch == (expectedRows.count + 2) / 3)

        var inputs = [Int32](repeating: 0, count: 3 * T), targets = inputs
        var seen = 0, supervised = 0
        for batch in 0..<loader.batchesPerEpoch {
            try loader.next(into: &inputs, targets: &targets)
            for b in 0..<3 {
                let r = batch * 3 + b
                var ids = [Int32](), mask = [Bool]()
                if r < expectedRows.count {
                    for c in expectedRows[r] {
                        let x = renderer.render(convs[c], maxTokens: T + 1)
                        ids += x.ids
                        mask += x.mask
                        seen += 1
                    }
                }
                let row = ChatRenderer.trainingRow(ids: ids, mask: mask, length: T, padding: renderer.tokens.bos)
                #expect(Array(inputs[(b * T)..<((b + 1) * T)]) == row.inputs)
                #expect(Array(targets[(b * T)..<((b + 1) * T)]) == row.targets)
                supervised += row.targets.filter { $0 >= 0 }.count
            }
        }
        #expect(seen == convs.count)
        #expect(supervised == loader.supervisedTokens)
        #expect(loader.state == DataLoaderState(epoch: 1, shard: 0, sample: 0, order: .sequential, sampleTokens: 192))
    }

    @Test func longConversationsAreCutNotSplit() throws {
        let renderer = ChatRenderer(tokenizer: Self.tokenizer)
        let long = Conversation(messages: [.init(role: .user, content: "hello"),
                                           .init(role: .assistant, content: String(repeating: "the model says hi. ", count: 40))])
        let loader = try ConversationLoader(conversations: [long, Self.conversations(1)[0]], renderer: renderer, batch: 1,
                                            seq: 16, order: .sequential, vocabSize: Self.vocab, source: "t")
        let other = renderer.render(Self.conversations(1)[0]).ids.count
        #expect(loader.truncatedCount == (other > 17 ? 2 : 1))
        #expect(loader.rendered[0].ids.count == 17 && loader.rendered[0].mask.count == 17)
        #expect(loader.rendered[0].ids == Array(renderer.render(long).ids.prefix(17)))
        #expect(loader.rowSizes.first == 1)
    }

    @Test func shuffledLoaderResumesExactly() throws {
        let renderer = ChatRenderer(tokenizer: Self.tokenizer)
        func make() throws -> ConversationLoader {
            try ConversationLoader(conversations: Self.conversations(40), renderer: renderer, batch: 2, seq: 48,
                                   order: .shuffled(seed: 5), vocabSize: Self.vocab, source: "t")
        }
        let a = try make()
        var inputs = [Int32](repeating: 0, count: 96), targets = inputs
        var stream = [[Int32]]()
        var saved: DataLoaderState?
        for i in 0..<(2 * a.batchesPerEpoch + 3) {  // across two epoch boundaries
            if i == a.batchesPerEpoch + 1 { saved = a.state }
            try a.next(into: &inputs, targets: &targets)
            stream.append(inputs + targets)
        }
        // Epochs are shuffled differently.
        #expect(stream[0] != stream[a.batchesPerEpoch])
        let b = try make()
        try b.restore(saved!)
        for i in (a.batchesPerEpoch + 1)..<stream.count {
            try b.next(into: &inputs, targets: &targets)
            #expect(inputs + targets == stream[i])
        }
        #expect(throws: DataError.self) {
            try b.restore(DataLoaderState(epoch: 0, shard: 0, sample: 0, order: .sequential))
        }
    }

    @Test func heldOutSplitIsDisjointAndSeeded() {
        let convs = Self.conversations(100)
        let (train, held) = ConversationLoader.split(convs, heldOutFraction: 0.1, seed: 7)
        #expect(held.count == 10 && train.count == 90)
        #expect(Set(train.map { "\($0)" }).isDisjoint(with: held.map { "\($0)" }) || convs.count != Set(convs.map { "\($0)" }).count)
        #expect(ConversationLoader.split(convs, heldOutFraction: 0.1, seed: 7).heldOut == held)
        #expect(ConversationLoader.split(convs, heldOutFraction: 0.1, seed: 8).heldOut != held)
        #expect(ConversationLoader.split(Array(convs.prefix(2)), heldOutFraction: 0.01, seed: 7).heldOut.count == 1)
        #expect(ConversationLoader.split(Array(convs.prefix(1)), heldOutFraction: 0.5, seed: 7).heldOut.isEmpty)
    }

    @Test func badConversationDataFailsClearly() throws {
        let renderer = ChatRenderer(tokenizer: Self.tokenizer)
        #expect(throws: DataError.noConversations(path: "x.jsonl")) {
            try ConversationLoader(conversations: [], renderer: renderer, batch: 1, seq: 8, order: .sequential,
                                   vocabSize: Self.vocab, source: "x.jsonl")
        }
        let noReply = Conversation(messages: [.init(role: .user, content: "hi")])
        #expect(throws: DataError.noSupervisedTokens(path: "x.jsonl")) {
            try ConversationLoader(conversations: [noReply], renderer: renderer, batch: 1, seq: 8, order: .sequential,
                                   vocabSize: Self.vocab, source: "x.jsonl")
        }
        #expect(throws: DataError.self) {
            try ConversationLoader(conversations: Self.conversations(3), renderer: renderer, batch: 1, seq: 8,
                                   order: .sequential, vocabSize: 100, source: "x.jsonl")
        }
    }

    @Test func growingTheVocabularyKeepsEveryOldWeight() throws {
        let c = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 250, numLayers: 1, numHeads: 2, channels: 8)
        let w = ModelWeights.randomGPT2(config: c, seed: 3)
        // Within the padding (Vp 256) and past it (Vp grows to 384).
        for newV in [258, 300] {
            let g = try w.growingVocabulary(to: newV, seed: 1)
            #expect(g.config.vocabSize == newV && g.config.paddedVocabSize == ModelConfig.pad(newV))
            for t in w.layout.present where t != .wte { #expect(g.tensor(t) == w.tensor(t)) }
            let old = w.tensor(.wte), new = g.tensor(.wte), C = 8
            #expect(Array(new[..<(250 * C)]) == Array(old[..<(250 * C)]))
            #expect(new[(newV * C)...].allSatisfy { $0 == 0 })
            let rows = (250..<newV).map { Array(new[($0 * C)..<(($0 + 1) * C)]) }
            #expect(Set(rows.map { $0.map(\.bitPattern) }).count == rows.count)
            // Near the mean of the old rows.
            let mean0 = (0..<250).map { Double(old[$0 * C]) }.reduce(0, +) / 250
            #expect(rows.allSatisfy { abs(Double($0[0]) - mean0) < 0.15 })
        }
        #expect(try w.growingVocabulary(to: 250, seed: 1) === w)
    }

    /// Writes conversations and a tokenizer, and a small pretrained-shaped model without the chat tokens.
    struct Setup {
        let dir: String, data: String, model: String, tokenizerPath: String
        init(_ dir: String) throws {
            self.dir = dir
            data = dir + "/conv.jsonl"
            try Conversation.writeJSONL(SFTTests.conversations(60), to: data)
            tokenizerPath = dir + "/tok.tok"
            try SFTTests.tokenizer.save(to: tokenizerPath)
            // A model of the tokenizer's vocabulary, without the chat tokens: SFT must grow it.
            let c = try ModelConfig.gpt2(maxSeqLen: 64, vocabSize: 300, numLayers: 1, numHeads: 2, channels: 16)
            model = dir + "/model.bin"
            try LLMCCheckpoint.write(ModelWeights.randomGPT2(config: c, seed: 2), to: model)
        }

        func newRun(_ name: String, steps: Int = 8) throws -> Trainer {
            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
            t.batch = 2
            t.steps = steps
            t.learningRate = 3e-3
            t.warmupSteps = 0
            t.evalEvery = 4
            t.evalBatches = 2
            t.sampleEvery = 4
            t.sampleTokens = 6
            t.checkpointEvery = 3
            var job = NewSFTRun(runDirectory: dir + "/" + name, initFrom: model, tokenizer: tokenizerPath, data: data,
                                valData: nil, training: t)
            job.valFraction = 0.1
            job.seq = 48
            return try job.start(parallel: ParallelFor(threads: 1))
        }
    }

    @Test func fineTuningLearnsAndResumesExactly() throws {
        try withTemporaryDirectory { dir in
            let setup = try Setup(dir)
            let trainer = try setup.newRun("whole", steps: 8)
            #expect(SFTTests.vocab == 308 && trainer.config.model.vocabSize == 308)
            #expect(trainer.config.training.tokenizer == "tokenizer.tok")
            var losses = [Float](), evals = [Float](), samples = [String]()
            try trainer.train { event in
                switch event {
                case .step(let r): losses.append(r.loss)
                case .eval(let e): evals.append(e.loss)
                case let .sample(_, text): samples.append(text)
                case .checkpoint: break
                }
            }
            #expect(losses.count == 8 && evals.count == 3)
            #expect(evals.last! < evals.first!)
            #expect(samples.allSatisfy { $0.hasPrefix("user: ") && $0.contains("\nassistant: ") })

            // Stopped after 5 steps and resumed, the run ends with the same weights, bit for bit.
            _ = try { let t = try setup.newRun("split", steps: 8); try t.train(stopAfter: 5) }()
            let resumed = try Trainer.resume(run: RunDirectory(dir + "/split"), parallel: ParallelFor(threads: 2))
            #expect(resumed.step == 5)
            try resumed.train()
            #expect(try readBytes(dir + "/split/model.bin") == (try readBytes(dir + "/whole/model.bin")))

            // The fine-tuned run loads for chat with its own tokenizer and the chat tokens in its vocabulary.
            let loaded = try LoadedModel.load(dir + "/whole")
            #expect(loaded.weights.config.vocabSize >= ChatTokens(tokenizer: loaded.tokenizer).requiredVocabSize)
        }
    }
}
