// Data parallelism without MPI: the loaders' split of each step over ranks and micro-batches (W ranks × k
// micro-batches read what one process reads with W·k, in either order, and a position saved by one split
// restores into another), the parts ZeRO-1 cuts the parameters into, and ZeRO-1's update on one rank against
// the plain AdamW step. scripts/ci_mpi_check.sh runs the same training under mpirun.
import Foundation
import Testing
@testable import LLM

extension DataTests {
    /// Every step, rank r's micro-batch m is chunk m·W + r of the step's sample, so W ranks × k micro-batches
    /// read exactly the micro-batches one process reads with k·W, which tokens and in which slots alike.
    @Test(arguments: [DataOrder.sequential, .shuffled(seed: 4)], [(2, 1), (2, 2), (3, 1)])
    func ranksTimesMicroBatchesReadWhatOneProcessAccumulates(order: DataOrder, split: (ranks: Int, micro: Int)) throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [97, 61, 80])
            let W = split.ranks, k = split.micro
            let one = try DataLoader(files: files, batch: 2, seq: 3, microBatches: W * k, order: order)
            let ranks = try (0..<W).map {
                try DataLoader(files: files, batch: 2, seq: 3, rank: $0, worldSize: W, microBatches: k, order: order)
            }
            #expect(ranks.allSatisfy { $0.batchesPerEpoch == one.batchesPerEpoch })
            for step in 0..<one.batchesPerEpoch + 2 {
                let expected = try (0..<W * k).map { _ in try one.next() }
                var got = [(inputs: [Int32], targets: [Int32])?](repeating: nil, count: W * k)
                for m in 0..<k { for r in 0..<W { got[m * W + r] = try ranks[r].next() } }
                for c in 0..<W * k {
                    #expect(got[c]?.inputs == expected[c].inputs, "step \(step), micro-batch \(c)")
                    #expect(got[c]?.targets == expected[c].targets, "step \(step), micro-batch \(c)")
                }
                #expect(ranks.allSatisfy { $0.state == one.state })
            }
        }
    }

    /// A position saved by 2 ranks with one micro-batch each restores into one process with two, and the other
    /// way round: a run resumes on another number of ranks where it stopped. A different number of tokens per
    /// step is refused.
    @Test func aPositionRestoresIntoAnotherSplitOfTheSameStep() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [97, 61])
            let order = DataOrder.shuffled(seed: 11)
            let ranks = try (0..<2).map { try DataLoader(files: files, batch: 2, seq: 3, rank: $0, worldSize: 2, order: order) }
            for _ in 0..<5 { for r in ranks { _ = try r.next() } }
            let one = try DataLoader(files: files, batch: 2, seq: 3, microBatches: 2, order: order)
            try one.restore(ranks[0].state)
            let reference = try DataLoader(files: files, batch: 2, seq: 3, microBatches: 2, order: order)
            for _ in 0..<10 { _ = try reference.next() }
            for _ in 0..<6 { #expect(try one.next().inputs == reference.next().inputs) }
            let other = try DataLoader(files: files, batch: 2, seq: 3, order: order)
            #expect(throws: DataError.self) { try other.restore(ranks[0].state) }
        }
    }

    /// A state saved before samples were steps (no sampleTokens) counted micro-batches: sequential ones convert.
    @Test func aStateFromBeforeStepSamplesConvertsWhenSequential() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [97])
            let loader = try DataLoader(files: files, batch: 1, seq: 3, microBatches: 2)
            try loader.restore(DataLoaderState(epoch: 0, shard: 0, sample: 4, order: .sequential))
            #expect(loader.state.sample == 2)
            #expect(try loader.next().inputs == [12, 13, 14])
            let shuffled = try DataLoader(files: files, batch: 1, seq: 3, microBatches: 2, order: .shuffled(seed: 1))
            #expect(throws: DataError.self) {
                try shuffled.restore(DataLoaderState(epoch: 0, shard: 0, sample: 4, order: .shuffled(seed: 1)))
            }
        }
    }
}

extension SFTTests {
    /// The conversation loader splits a step the same way: W ranks × k micro-batches read the rows one process
    /// reads with k·W micro-batches.
    @Test(arguments: [(2, 1), (2, 3)])
    func conversationRanksReadWhatOneProcessAccumulates(split: (ranks: Int, micro: Int)) throws {
        let renderer = ChatRenderer(tokenizer: Self.tokenizer)
        let W = split.ranks, k = split.micro
        func make(rank: Int, worldSize: Int, micro: Int) throws -> ConversationLoader {
            try ConversationLoader(conversations: Self.conversations(40), renderer: renderer, batch: 2, seq: 48,
                                   order: .shuffled(seed: 5), vocabSize: Self.vocab, source: "t", rank: rank,
                                   worldSize: worldSize, microBatches: micro)
        }
        let one = try make(rank: 0, worldSize: 1, micro: W * k)
        let ranks = try (0..<W).map { try make(rank: $0, worldSize: W, micro: k) }
        var inputs = [Int32](repeating: 0, count: 96), targets = inputs
        for step in 0..<one.batchesPerEpoch + 1 {
            var expected = [[Int32]]()
            for _ in 0..<W * k {
                try one.next(into: &inputs, targets: &targets)
                expected.append(inputs + targets)
            }
            for m in 0..<k {
                for r in 0..<W {
                    try ranks[r].next(into: &inputs, targets: &targets)
                    #expect(inputs + targets == expected[m * W + r], "step \(step), rank \(r), micro-batch \(m)")
                }
            }
        }
    }
}

@Suite struct ZeROTests {
    @Test func evenPartsTileTheParameters() {
        for (count, size) in [(10, 3), (2, 4), (0, 2), (1_000_003, 8)] {
            let parts = evenParts(count: count, size: size)
            #expect(parts.count == size && parts.first?.lowerBound == 0 && parts.last?.upperBound == count)
            #expect(zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            #expect(parts.map(\.count).max()! - parts.map(\.count).min()! <= 1)
        }
    }

    /// On one rank, ZeRO-1's update (reduce-scatter, sharded norm and AdamW, all-gather) is AdamW's step:
    /// the same weights and moments, bit for bit, over a few steps with clipping.
    @Test func theShardedUpdateOnOneRankIsAdamW() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 50, numLayers: 1, numHeads: 2, channels: 8)
        let plain = try Transformer(weights: .random(config: config, seed: 3), batch: 2, seq: 8, parallel: ParallelFor(threads: 1))
        let sharded = try Transformer(weights: .random(config: config, seed: 3), batch: 2, seq: 8, parallel: ParallelFor(threads: 1),
                                      optimizerShard: 0..<ModelWeights.random(config: config, seed: 3).layout.totalCount)
        let inputs = (0..<16).map { Int32($0 * 7 % 50) }, targets = (0..<16).map { Int32($0 * 3 % 50) }
        let opt = AdamWConfig(learningRate: 1e-2, weightDecay: 0.1, gradClip: 0.5)
        for step in 1...3 {
            for model in [plain, sharded] {
                model.zeroGradients()
                _ = try model.forward(inputs: inputs, targets: targets)
                try model.backward()
            }
            let a = try plain.update(opt, step: step)
            let b = try sharded.updateSharded(opt, step: step, over: SingleProcess())
            #expect(a == b)
        }
        #expect((0..<plain.weights.arena.count).allSatisfy { plain.weights.arena[$0] == sharded.weights.arena[$0] })
        #expect((0..<plain.adamV.count).allSatisfy { plain.adamV[$0] == sharded.adamV[$0] })
    }
}
