// Token shards byte for byte against llm.c's layout, and the data loader's batches: exact windows in order,
// reproducible shuffles that cover each sample once, disjoint ranks, exact resumption, and clear errors.
import Foundation
import MallocCounter
import Testing
@testable import LLM

@Suite struct DataTests {
    /// A shard built by hand: the header ints zero-padded to 256, then each token in `tokenBytes` bytes,
    /// little-endian.
    func handMadeShard(_ header: [Int32], _ tokens: [UInt32], tokenBytes: Int) -> [UInt8] {
        int32Bytes(header + [Int32](repeating: 0, count: 256 - header.count))
            + tokens.flatMap { t in (0..<tokenBytes).map { UInt8(truncatingIfNeeded: t >> (8 * $0)) } }
    }

    /// Shards `train_0.bin`, `train_1.bin`, … in `dir`; shard k holds the tokens 1000·k + 0, 1, 2, …, so every
    /// token says where it came from.
    func writeShards(_ dir: String, sizes: [Int]) throws -> [String] {
        try sizes.enumerated().map { k, size in
            let path = "\(dir)/train_\(k).bin"
            try TokenShard.write((0..<size).map { Int32(1000 * k + $0) }, to: path, vocabSize: 50257)
            return path
        }
    }

    func batches(_ loader: DataLoader, _ count: Int) throws -> [[Int32]] {
        try (0..<count).map { _ in
            let (inputs, targets) = try loader.next()
            return inputs + targets
        }
    }

    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
    }

    // MARK: Shards

    @Test func uint16ShardRoundTripIsByteExact() throws {
        try withTemporaryDirectory { dir in
            let tokens: [Int32] = [0, 1, 50256, 300, 7, 12345]
            let path = dir + "/gpt2.bin"
            try TokenShard.write(tokens, to: path, vocabSize: 50257)
            #expect(try readBytes(path)
                        == handMadeShard([20240520, 1, 6], tokens.map { UInt32($0) }, tokenBytes: 2))
            let shard = try TokenShardReader(path: path)
            #expect(shard.count == 6 && shard.width == .uint16)
            #expect(try shard.tokens(in: 0..<6) == tokens)
            #expect(try shard.tokens(in: 2..<4) == [50256, 300])
            #expect(try shard.tokens(in: 6..<6) == [])
            // A vocabulary of exactly 65,536 ids still fits uint16.
            try TokenShard.write([65535], to: path, vocabSize: 65536)
            #expect(try readBytes(path) == handMadeShard([20240520, 1, 1], [65535], tokenBytes: 2))
        }
    }

    @Test func uint32ShardRoundTripIsByteExact() throws {
        try withTemporaryDirectory { dir in
            let tokens: [Int32] = [0, 65536, 70000, 128_255, 5]
            let path = dir + "/llama3.bin"
            try TokenShard.write(tokens, to: path, vocabSize: 128_256)
            #expect(try readBytes(path)
                        == handMadeShard([20240801, 7, 5], tokens.map { UInt32($0) }, tokenBytes: 4))
            let shard = try TokenShardReader(path: path)
            #expect(shard.count == 5 && shard.width == .uint32)
            #expect(try shard.tokens(in: 1..<5) == Array(tokens[1...]))
            // An explicit width overrides the choice the vocab size would make.
            try TokenShard.write([1, 2], to: path, width: .uint32)
            #expect(try readBytes(path) == handMadeShard([20240801, 7, 2], [1, 2], tokenBytes: 4))
        }
    }

    @Test func writingRejectsTokensOutsideTheVocabAndLeavesNothing() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.bin"
            #expect(throws: DataError.tokenOutOfRange(path: path, token: 100, position: 3, vocabSize: 100)) {
                try TokenShard.write([1, 2, 3, 100, 4], to: path, vocabSize: 100)
            }
            #expect(throws: DataError.tokenOutOfRange(path: path, token: 65536, position: 1, vocabSize: 65536)) {
                try TokenShard.write([1, 65536], to: path, width: .uint16)
            }
            let negative = DataError.tokenOutOfRange(path: path, token: -1, position: 0, vocabSize: 100)
            #expect(negative.description == "\(path): token -1 at position 0 is negative")
            #expect(throws: negative) { try TokenShard.write([-1], to: path, vocabSize: 100) }
            #expect(throws: DataError.self) { try TokenShard.write([1], to: dir + "/no/such/dir/x.bin", vocabSize: 100) }
            let written = try FileManager.default.contentsOfDirectory(atPath: dir)
            #expect(written.isEmpty)
        }
    }

    @Test func badShardFilesGiveOneLineErrorsNamingTheFile() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.bin"
            func expectError(_ bytes: [UInt8], _ expected: DataError, message: String) throws {
                try writeBytes(bytes, path)
                #expect(throws: expected) { try TokenShardReader(path: path) }
                #expect(expected.description == "\(path): \(message)")
            }
            let ten = [UInt32](0..<10)
            try expectError(handMadeShard([7, 1, 10], ten, tokenBytes: 2), .badMagic(path: path, found: 7),
                            message: "bad magic number 7 (expected 20240520 or 20240801)")
            try expectError(handMadeShard([20240520, 2, 10], ten, tokenBytes: 2),
                            .unsupportedVersion(path: path, magic: 20240520, version: 2, expected: 1),
                            message: "unsupported version 2 for magic number 20240520 (expected 1)")
            try expectError(handMadeShard([20240801, 1, 10], ten, tokenBytes: 4),
                            .unsupportedVersion(path: path, magic: 20240801, version: 1, expected: 7),
                            message: "unsupported version 1 for magic number 20240801 (expected 7)")
            try expectError(handMadeShard([20240520, 1, 10], Array(ten[..<8]), tokenBytes: 2),
                            .sizeMismatch(path: path, bytes: 1040, tokens: 10, expectedBytes: 1044),
                            message: "1040 bytes but the header says 10 tokens (1044 bytes)")
            try expectError(handMadeShard([20240520, 1, 10], ten + [1, 2], tokenBytes: 2),
                            .sizeMismatch(path: path, bytes: 1048, tokens: 10, expectedBytes: 1044),
                            message: "1048 bytes but the header says 10 tokens (1044 bytes)")
            try expectError(handMadeShard([20240801, 7, 10], ten, tokenBytes: 2),  // uint16 payload, uint32 header
                            .sizeMismatch(path: path, bytes: 1044, tokens: 10, expectedBytes: 1064),
                            message: "1044 bytes but the header says 10 tokens (1064 bytes)")
            try expectError([UInt8](repeating: 0, count: 100), .headerTooShort(path: path, bytes: 100),
                            message: "100 bytes, too short for the 1024-byte header")
            try expectError(handMadeShard([20240520, 1, -5], [], tokenBytes: 2),
                            .negativeTokenCount(path: path, count: -5), message: "the header says -5 tokens")

            // uint32 ids from 2^31 are not Int32 tokens.
            try writeBytes(handMadeShard([20240801, 7, 2], [3, 1 << 31], tokenBytes: 4), path)
            let shard = try TokenShardReader(path: path)
            #expect(throws: DataError.tokenOutOfRange(path: path, token: 1 << 31, position: 1, vocabSize: 1 << 31)) {
                try shard.tokens(in: 0..<2)
            }
            #expect(throws: DataError.self) { try TokenShardReader(path: dir + "/missing.bin") }
            #expect(throws: DataError.unreadable(path: dir, reason: "is a directory")) { try TokenShardReader(path: dir) }
        }
    }

    // MARK: Shard writer

    @Test func shardWriterSplitsAtTheLimitAndNamesFilesAsGiven() throws {
        try withTemporaryDirectory { dir in
            let writer = ShardWriter(vocabSize: 50257, tokensPerShard: 5) { "\(dir)/part_\($0).bin" }
            try writer.append([0, 1, 2])
            try writer.append([3, 4, 5, 6])
            #expect(writer.paths == ["\(dir)/part_0.bin"])
            try writer.append(7..<12)
            let paths = try writer.finish()
            #expect(paths == (0..<3).map { "\(dir)/part_\($0).bin" })
            #expect(try paths.map { try TokenShardReader(path: $0).count } == [5, 5, 2])
            for (k, expected) in [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]].enumerated() {
                #expect(try readBytes(paths[k]) == handMadeShard([20240520, 1, Int32(expected.count)],
                                                                 expected.map { UInt32($0) }, tokenBytes: 2))
            }
            #expect(try leftovers(dir).isEmpty)

            // An exact multiple of the limit makes no empty last shard; no tokens make no shard.
            let exact = ShardWriter(vocabSize: 50257, tokensPerShard: 5) { "\(dir)/exact_\($0).bin" }
            try exact.append(0..<10)
            #expect(try exact.finish().count == 2)
            #expect(try ShardWriter(vocabSize: 50257, tokensPerShard: 5) { "\(dir)/none_\($0).bin" }.finish() == [])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
                        == ["exact_0.bin", "exact_1.bin", "part_0.bin", "part_1.bin", "part_2.bin"])
        }
    }

    @Test func shardWriterErrorLeavesOnlyCompleteShards() throws {
        try withTemporaryDirectory { dir in
            let writer = ShardWriter(vocabSize: 100_000, tokensPerShard: 4) { "\(dir)/part_\($0).bin" }
            #expect(writer.width == .uint32)
            #expect(throws: DataError.tokenOutOfRange(path: "\(dir)/part_1.bin", token: 100_000, position: 1,
                                                      vocabSize: 100_000)) {
                try writer.append([1, 2, 3, 4, 5, 100_000, 6])
            }
            let written = try FileManager.default.contentsOfDirectory(atPath: dir)
            #expect(written == ["part_0.bin"])
            #expect(try TokenShardReader(path: "\(dir)/part_0.bin").tokens(in: 0..<4) == [1, 2, 3, 4])

            let unwritable = ShardWriter(vocabSize: 100, tokensPerShard: 2) { "\(dir)/missing/part_\($0).bin" }
            #expect(throws: DataError.self) { try unwritable.append([1, 2]) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["part_0.bin"])
        }
    }

    // MARK: Loader

    /// Shards of 20 and 17 tokens with B=2, T=3: samples of 6 tokens, 19/6 = 3 in the first shard and
    /// 16/6 = 2 in the second; each batch reads 7 tokens.
    @Test func sequentialLoaderYieldsTheExpectedWindows() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [20, 17])
            let loader = try DataLoader(files: files, batch: 2, seq: 3)
            #expect(loader.batchesPerEpoch == 5 && loader.tokenCount == 37)
            let expected: [(inputs: [Int32], targets: [Int32])] = [
                ([0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]),
                ([6, 7, 8, 9, 10, 11], [7, 8, 9, 10, 11, 12]),
                ([12, 13, 14, 15, 16, 17], [13, 14, 15, 16, 17, 18]),
                ([1000, 1001, 1002, 1003, 1004, 1005], [1001, 1002, 1003, 1004, 1005, 1006]),
                ([1006, 1007, 1008, 1009, 1010, 1011], [1007, 1008, 1009, 1010, 1011, 1012]),
                ([0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]),  // epoch 2
            ]
            var inputs = [Int32](repeating: 0, count: 6), targets = inputs
            for (i, batch) in expected.enumerated() {
                #expect(loader.state.epoch == (i < 5 ? 0 : 1))
                try loader.next(into: &inputs, targets: &targets)
                #expect(inputs == batch.inputs, "batch \(i)")
                #expect(targets == batch.targets, "batch \(i)")
            }
            #expect(loader.state == DataLoaderState(epoch: 1, shard: 0, sample: 1, order: .sequential, sampleTokens: 6))
        }
    }

    @Test func patternFindsShardsInSortedOrder() throws {
        try withTemporaryDirectory { dir in
            for name in ["train_000010.bin", "train_000002.bin", "val_000000.bin"] {
                try TokenShard.write(Array(repeating: 1, count: 9), to: "\(dir)/\(name)", vocabSize: 50257)
            }
            let loader = try DataLoader(pattern: dir + "/train_*.bin", batch: 2, seq: 4)
            #expect(loader.files == ["\(dir)/train_000002.bin", "\(dir)/train_000010.bin"])
            #expect(throws: DataError.noMatch(pattern: dir + "/test_*.bin")) {
                try DataLoader(pattern: dir + "/test_*.bin", batch: 2, seq: 4)
            }
            #expect(DataError.noMatch(pattern: "train_*.bin").description == "train_*.bin: no files match")
        }
    }

    @Test func shuffledLoaderIsReproducibleAndCoversEverySampleOncePerEpoch() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [20, 17, 30, 25])
            func make(_ order: DataOrder) throws -> DataLoader { try DataLoader(files: files, batch: 1, seq: 4, order: order) }
            let epoch = try make(.sequential).batchesPerEpoch
            #expect(epoch == 4 + 4 + 7 + 6)
            let sequential = try batches(make(.sequential), epoch)
            let shuffled = try make(.shuffled(seed: 1))
            let run = try batches(shuffled, 2 * epoch)
            #expect(shuffled.state.epoch == 2)
            #expect(try batches(make(.shuffled(seed: 1)), 2 * epoch) == run)
            #expect(try batches(make(.shuffled(seed: 2)), 2 * epoch) != run)
            for e in 0..<2 {
                let thisEpoch = Array(run[e * epoch..<(e + 1) * epoch])
                #expect(thisEpoch != sequential)
                #expect(thisEpoch.sorted { $0[0] < $1[0] } == sequential, "epoch \(e) must hold every sample once")
            }
            #expect(run[..<epoch] != run[epoch...], "each epoch has its own permutation")
        }
    }

    /// Three ranks with B=1 read, at every step, the three adjacent slices of the batch that one rank with
    /// B=3 reads: disjoint, and together the whole unsharded stream.
    @Test(arguments: [DataOrder.sequential, .shuffled(seed: 9)])
    func ranksReadDisjointSlicesThatTogetherCoverTheStream(order: DataOrder) throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [40, 29, 33])
            let whole = try DataLoader(files: files, batch: 3, seq: 2, order: order)
            let ranks = try (0..<3).map { try DataLoader(files: files, batch: 1, seq: 2, rank: $0, worldSize: 3, order: order) }
            #expect(ranks.allSatisfy { $0.batchesPerEpoch == whole.batchesPerEpoch })
            var seen = Set<Int32>()
            for step in 0..<whole.batchesPerEpoch + 3 {
                let expected = try whole.next()
                let parts = try ranks.map { try $0.next() }
                #expect(parts.flatMap(\.inputs) == expected.inputs, "step \(step)")
                #expect(parts.flatMap(\.targets) == expected.targets, "step \(step)")
                if step < whole.batchesPerEpoch {
                    for input in parts.flatMap(\.inputs) { #expect(seen.insert(input).inserted, "\(input) read twice") }
                }
            }
        }
    }

    /// Saving after k batches and restoring into a fresh loader gives exactly the batches an uninterrupted run
    /// reads next: mid-shard, at a shard boundary, on the last batch of an epoch, at and past an epoch boundary.
    @Test(arguments: [DataOrder.sequential, .shuffled(seed: 42)])
    func restoredLoaderContinuesExactly(order: DataOrder) throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [20, 17, 30])  // B=1, T=4: 4 + 4 + 7 = 15 samples
            func make() throws -> DataLoader { try DataLoader(files: files, batch: 1, seq: 4, order: order) }
            let reference = try batches(make(), 50)
            for k in [0, 3, 4, 8, 14, 15, 17, 29, 30] {
                let first = try make()
                _ = try batches(first, k)
                let saved = try JSONDecoder().decode(DataLoaderState.self, from: JSONEncoder().encode(first.state))
                #expect(saved == first.state)
                let resumed = try make()
                try resumed.restore(saved)
                #expect(resumed.state == saved)
                #expect(try batches(resumed, 20) == Array(reference[k..<k + 20]), "resumed after \(k) batches")
                #expect(resumed.state.epoch == (k + 20) / 15)
            }
        }
    }

    @Test func restoreRejectsStatesFromAnotherOrderOrOutOfRange() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [20, 17])
            let loader = try DataLoader(files: files, batch: 1, seq: 4, order: .shuffled(seed: 1))
            let before = loader.state
            for bad in [DataLoaderState(epoch: 0, shard: 0, sample: 0, order: .shuffled(seed: 2)),
                        DataLoaderState(epoch: 0, shard: 2, sample: 0, order: .shuffled(seed: 1)),
                        DataLoaderState(epoch: 0, shard: 0, sample: 4, order: .shuffled(seed: 1)),
                        DataLoaderState(epoch: -1, shard: 0, sample: 0, order: .shuffled(seed: 1))] {
                #expect(throws: DataError.self) { try loader.restore(bad) }
            }
            #expect(loader.state == before)
        }
    }

    @Test func shardTooSmallForOneBatchSaysHowManyTokensItHasAndNeeds() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [100, 37])
            let error = DataError.shardTooSmall(path: files[1], tokens: 37, batch: 4, seq: 16, chunks: 1)
            #expect(throws: error) { try DataLoader(files: files, batch: 4, seq: 16) }
            #expect(error.description == "\(files[1]): 37 tokens, but one batch of B=4 x T=16 needs 65")
            let sharded = DataError.shardTooSmall(path: files[0], tokens: 100, batch: 4, seq: 16, chunks: 2)
            #expect(throws: sharded) { try DataLoader(files: files, batch: 4, seq: 16, rank: 1, worldSize: 2) }
            #expect(sharded.description.hasSuffix("100 tokens, but one batch of B=4 x T=16 for each of 2 micro-batches (ranks × accumulation steps) needs 129"))
            #expect(throws: DataError.self) { try DataLoader(files: files, batch: 1, seq: 4, rank: 2, worldSize: 2) }
            #expect(throws: DataError.self) { try DataLoader(files: [], batch: 1, seq: 4) }
        }
    }

    @Test func tokensOutsideTheVocabAreReportedWithFileAndPosition() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.bin"
            var tokens = (0..<40).map { Int32($0) }
            tokens[12] = 700
            try TokenShard.write(tokens, to: path, vocabSize: 50257)
            let loader = try DataLoader(files: [path], batch: 1, seq: 8, vocabSize: 500)
            #expect(try loader.next().inputs == Array(0..<8))
            let error = DataError.tokenOutOfRange(path: path, token: 700, position: 12, vocabSize: 500)
            #expect(throws: error) { try loader.next() }
            #expect(error.description == "\(path): token 700 at position 12 is not below the vocab size 500")
            #expect(loader.state.sample == 1, "a failed read must not move the loader")
        }
    }

    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"))
    func readingABatchAllocatesNothing() throws {
        try withTemporaryDirectory { dir in
            let files = try writeShards(dir, sizes: [200])
            let loader = try DataLoader(files: files, batch: 2, seq: 8, order: .shuffled(seed: 3), vocabSize: 50257)
            var inputs = [Int32](repeating: 0, count: 16), targets = inputs
            try loader.next(into: &inputs, targets: &targets)  // opens the shard
            malloc_counter_arm()
            for _ in 0..<5 { try loader.next(into: &inputs, targets: &targets) }
            let count = malloc_counter_disarm()
            #expect(count == 0, "reading 5 batches made \(count) heap allocations")
        }
    }
}
