// Hostile files and absurd sizes: each is refused with a one-line typed error naming the file and the problem,
// before anything large is allocated (a test that allocated what the file asks for would abort or be killed).
import Foundation
import Testing
@testable import LLM

@Suite struct HostileFileTests {
    /// A safetensors file from a header JSON string and a data section.
    func safetensors(_ header: String, data: [UInt8]) -> [UInt8] {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + data
    }

    func expectMalformed(_ bytes: [UInt8], mentions: String) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.safetensors"
            try writeBytes(bytes, path)
            do {
                _ = try SafeTensorsFile.read(path)
                Issue.record("expected an error mentioning \(mentions)")
            } catch let error as FormatError {
                guard case .malformed = error else { Issue.record("unexpected error: \(error)"); return }
                #expect(error.description.hasPrefix(path + ": malformed: "), "\(error)")
                #expect(error.description.contains(mentions), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    // MARK: 1. SafeTensors sizes and offsets

    @Test func safetensorsShapeOverflowIsRefused() throws {
        // 2^61 floats: 2^63 bytes overflows an Int.
        try expectMalformed(safetensors(#"{"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}}"#,
                                        data: [UInt8](repeating: 0, count: 8)), mentions: "too large to address")
        // Products that overflow only together, and a product that wraps around to the right byte count.
        try expectMalformed(safetensors(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}}"#,
                                        data: [UInt8](repeating: 0, count: 8)), mentions: "too large to address")
        try expectMalformed(safetensors(#"{"w":{"dtype":"F32","shape":[4611686018427387904,2],"data_offsets":[0,8]}}"#,
                                        data: [UInt8](repeating: 0, count: 8)), mentions: "too large to address")
        // Numbers that are not sizes.
        try expectMalformed(safetensors(#"{"w":{"dtype":"F32","shape":[1e30],"data_offsets":[0,8]}}"#,
                                        data: [UInt8](repeating: 0, count: 8)), mentions: "not a list of non-negative integers")
        try expectMalformed(safetensors(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,1e300]}}"#,
                                        data: [UInt8](repeating: 0, count: 8)), mentions: "lies outside")
        try expectMalformed(safetensors(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}"#,
                                        data: [UInt8](repeating: 0, count: 8)), mentions: "lies outside")
        // A header length near 2^64.
        try expectMalformed([0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + Array("{}      ".utf8),
                            mentions: "header length")
    }

    @Test func safetensorsTensorsMustTileTheData() throws {
        let eight = [UInt8](repeating: 0, count: 8), twelve = [UInt8](repeating: 0, count: 12)
        // Two tensors sharing the same bytes.
        try expectMalformed(safetensors(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                                        data: eight), mentions: "overlaps another tensor")
        // Overlapping partly.
        try expectMalformed(safetensors(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                                        data: twelve), mentions: "overlaps another tensor")
        // A hole between tensors, and bytes after the last one.
        try expectMalformed(safetensors(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                                        data: twelve), mentions: "bytes 4..<8 of the data section belong to no tensor")
        try expectMalformed(safetensors(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: eight),
                            mentions: "bytes 4..<8 of the data section belong to no tensor")
        // Tensors listed out of offset order, tiling the data, are fine (JSON objects have no order).
        try withTemporaryDirectory { dir in
            let path = dir + "/ok.safetensors"
            let floats: [Float] = [1, 2, 3]
            let data = floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
            try writeBytes(safetensors(#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[12,12]}}"#,
                                       data: data), path)
            let file = try SafeTensorsFile.read(path)
            #expect(try file.floats("a") == [1])
            #expect(try file.floats("b") == [2, 3])
            #expect(try file.floats("e") == [])
        }
    }

    // MARK: 2. A large config.json is checked against the safetensors header and memory before allocating

    /// A llama config.json of `layers` layers of width `hidden`, written into `folder`.
    func writeLlamaConfig(_ folder: String, hidden: Int, heads: Int, layers: Int, intermediate: Int) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let json = """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": \(hidden),
             "num_attention_heads": \(heads), "num_key_value_heads": \(heads), "num_hidden_layers": \(layers),
             "intermediate_size": \(intermediate), "max_position_embeddings": 32, "vocab_size": 300,
             "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false, "hidden_act": "silu"}
            """
        try writeBytes(Array(json.utf8), folder + "/config.json")
    }

    @Test func hugeConfigWithSmallWeightsFileFailsBeforeAllocating() throws {
        try withTemporaryDirectory { dir in
            let folder = dir + "/model"
            // hidden 65536 and 1024 layers: hundreds of terabytes of weights, were they allocated.
            try writeLlamaConfig(folder, hidden: 65536, heads: 64, layers: 1024, intermediate: 4096)
            try writeBytes(safetensors(#"{"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                                       data: [UInt8](repeating: 0, count: 8)), folder + "/model.safetensors")
            let start = Date()
            #expect(throws: FormatError.missingTensor(path: folder + "/model.safetensors", name: "model.embed_tokens.weight")) {
                try HuggingFaceFolder.read(folder: folder)
            }
            // A tensor of the wrong shape is named before anything is read or allocated.
            try writeBytes(safetensors(#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[300,2],"data_offsets":[0,2400]}}"#,
                                       data: [UInt8](repeating: 0, count: 2400)), folder + "/model.safetensors")
            #expect(throws: FormatError.wrongShape(path: folder + "/model.safetensors", name: "model.embed_tokens.weight",
                                                   expected: [300, 65536], found: [300, 2])) {
                try HuggingFaceFolder.read(folder: folder)
            }
            #expect(Date().timeIntervalSince(start) < 20)
        }
    }

    @Test func hugeButCompleteWeightsFileIsRefusedByTheMemoryCheck() throws {
        try withTemporaryDirectory { dir in
            let folder = dir + "/model"
            // Enough 4096-wide layers to need more than this machine's memory (a 7B-class shape), every tensor
            // declared in BF16 with the right shape; the data section is a sparse file, so it costs no disk.
            let (C, H, F) = (4096, 32, 11008)
            let perLayer = 4 * (4 * C * C + 3 * C * F + 2 * C)
            let layers = min(1024, MemoryBudget.availableBytes / perLayer + 2)
            try writeLlamaConfig(folder, hidden: C, heads: H, layers: layers, intermediate: F)
            let config = try HuggingFaceFolder.readConfig(folder: folder)
            var parts = [String](), offset = 0
            for p in HuggingFaceFolder.placements(config) {
                let bytes = p.shape.reduce(2, *)
                parts.append("\"\(p.name)\":{\"dtype\":\"BF16\",\"shape\":[\(p.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
                offset += bytes
            }
            let path = folder + "/model.safetensors"
            try writeBytes(safetensors("{" + parts.joined(separator: ",") + "}", data: []), path)
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            try handle.truncate(atOffset: handle.seekToEnd() + UInt64(offset))
            try handle.close()
            do {
                _ = try HuggingFaceFolder.read(folder: folder)
                Issue.record("expected the memory check to refuse \(layers) layers")
            } catch let error as ModelError {
                guard case let .tooLarge(_, bytes, available) = error else { Issue.record("\(error)"); return }
                #expect(bytes > available)
                #expect(error.description.hasPrefix(folder + ": the model needs "), "\(error)")
                #expect(error.description.contains("; this machine has "), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    // MARK: 3. The central memory check

    @Test func requiredBytesMatchWhatIsAllocated() throws {
        let gpt2 = try LLMCCheckpoint.read(Fixtures.path("full-context", "model.bin"))
        let llama = try HuggingFaceFolder.read(folder: Fixtures.path("llama-gqa", "hf"))
        for weights in [gpt2, llama] {
            for (b, t) in [(1, 1), (2, 5), (3, weights.config.maxSeqLen)] {
                let net = try Transformer(weights: weights, batch: b, seq: t, parallel: ParallelFor(threads: 2))
                #expect(Transformer.requiredBytes(config: weights.config, batch: b, seq: t, parallel: ParallelFor(threads: 2))
                        == net.allocatedBytes)
            }
            let c = weights.config, p = ParallelFor(threads: 2)
            let threads = max(p.threads, ProcessInfoCores.count)
            for s in [1, 3, c.maxSeqLen + 7] {
                let layout = BatchedLayout(config: c, slots: s)
                #expect(BatchedGenerator.requiredBytes(config: c, slots: s, parallel: p)
                        == 4 * layout.totalCount + 8 * layout.rows + 8 * s + 4 * threads * MatmulScratch.floatsPerThread)
            }
        }
    }

    func expectTooLarge(_ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected ModelError.tooLarge")
        } catch let error as ModelError {
            guard case let .tooLarge(_, bytes, available) = error else { Issue.record("\(error)"); return }
            #expect(bytes > available)
            #expect(error.description.contains(" needs "), "\(error)")
            #expect(error.description.contains("; this machine has "), "\(error)")
            #expect(!error.description.contains("\n"))
        } catch {
            Issue.record("unexpected error: \(error)")
        }
    }

    @Test func absurdTrainingShapesAreRefusedBeforeAllocating() throws {
        let weights = try LLMCCheckpoint.read(Fixtures.path("full-context", "model.bin"))
        // --batch 10000000 on a small model: terabytes of activations.
        expectTooLarge { _ = try Transformer(weights: weights, batch: 10_000_000, seq: weights.config.maxSeqLen) }
        // A batch whose byte count overflows an Int.
        expectTooLarge { _ = try Transformer(weights: weights, batch: Int.max / 2, seq: 2) }
        // --layers 1024 --channels 65536 --heads 64: refused from the shape alone, before any weights exist.
        let huge = try ModelConfig.gpt2(maxSeqLen: 1024, vocabSize: 50257, numLayers: 1024, numHeads: 64, channels: 65536,
                                        paddedVocabSize: 50304)
        expectTooLarge { try MemoryBudget.checkTraining(config: huge, batch: 4, seq: 64) }
        expectTooLarge { try MemoryBudget.checkWeights(config: huge) }
        #expect(try ModelError.tooLarge(what: "the model", bytes: 38_700_000_000, available: 24_000_000_000).description
                == "the model needs 38.7 GB; this machine has 24.0 GB")
    }

    @Test func absurdConcurrencyIsRefusedBeforeAllocating() throws {
        let gpt2Small = try ModelConfig.gpt2(maxSeqLen: 1024, vocabSize: 50257, numLayers: 12, numHeads: 12, channels: 768,
                                             paddedVocabSize: 50304)
        // --max-concurrent 100000: 100000 caches of 75 MB.
        expectTooLarge { try InferenceEngine.checkMemory(config: gpt2Small, maxConcurrent: 100_000) }
        expectTooLarge { try InferenceEngine.checkMemory(config: gpt2Small, maxConcurrent: Int.max) }
        #expect(InferenceEngine.requiredBytes(config: gpt2Small, maxConcurrent: Int.max) == nil)
        #expect(throws: ModelError.self) { try InferenceEngine.checkMemory(config: gpt2Small, maxConcurrent: 0) }
        try InferenceEngine.checkMemory(config: gpt2Small, maxConcurrent: 1)
    }

    // MARK: 4. Tokenizer files

    func tokenizerFile(tokens: String, specials: [String]) -> String {
        (["llm-tokenizer 1", "pattern gpt4", "tokens \(tokens)"] + specials
            + (0..<256).map { Data([UInt8($0)]).base64EncodedString() }).joined(separator: "\n") + "\n"
    }

    func expectTokenizerError(_ text: String, mentions: String) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/t.tok"
            try writeBytes(Array(text.utf8), path)
            do {
                _ = try Tokenizer.load(path)
                Issue.record("expected an error mentioning \(mentions)")
            } catch let error as TokenizerError {
                guard case .malformed = error else { Issue.record("unexpected error: \(error)"); return }
                #expect(error.description.hasPrefix(path + ": malformed: line "), "\(error)")
                #expect(error.description.contains(mentions), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test func tokenizerCountsAreNotTrusted() throws {
        try expectTokenizerError(tokenizerFile(tokens: "9223372036854775807", specials: []), mentions: "tokens 9223372036854775807")
        try expectTokenizerError(tokenizerFile(tokens: "300", specials: []), mentions: "line 260: token 256 is not base64")
        try expectTokenizerError(tokenizerFile(tokens: "256", specials: ["special <|bos|> 2147483647"]),
                                 mentions: "special token id 2147483647 is outside the vocabulary")
        try expectTokenizerError(tokenizerFile(tokens: "256", specials: ["special <|bos|> 256", "special <|eos|> 256"]),
                                 mentions: "special token id 256 is already used on line 4")
        try expectTokenizerError(tokenizerFile(tokens: "256", specials: ["special <|bos|> 256", "special <|bos|> 257"]),
                                 mentions: "special token <|bos|> is listed twice")
        // Well-formed specials still load.
        try withTemporaryDirectory { dir in
            try writeBytes(Array(tokenizerFile(tokens: "256", specials: ["special <|eos|> 257", "special <|bos|> 256"]).utf8),
                           dir + "/ok.tok")
            let tok = try Tokenizer.load(dir + "/ok.tok")
            #expect(tok.vocabSize == 258)
        }
    }

    // MARK: 5. Resuming a run whose files were tampered with

    /// Replaces `"key":old` with `"key":new` in a JSON file (as text, so no other value is re-encoded).
    func editJSON(_ path: String, _ key: String, _ new: String) throws {
        let text = String(decoding: try readBytes(path), as: UTF8.self)
        let pattern = try NSRegularExpression(pattern: "\"\(key)\" ?: ?-?[0-9]+")
        let range = NSRange(text.startIndex..., in: text)
        #expect(pattern.numberOfMatches(in: text, range: range) == 1, "\(key) in \(path)")
        let edited = pattern.stringByReplacingMatches(in: text, range: range, withTemplate: "\"\(key)\":\(new)")
        try writeBytes(Array(edited.utf8), path)
    }

    @Test func resumeValidatesTheRunAndItsCheckpoint() throws {
        try withTemporaryDirectory { dir in
            let setup = try TrainerTests.Setup(dir)
            try setup.newRun("r", steps: 3).train()
            let run = RunDirectory(dir + "/r")
            let checkpoint = try #require(run.checkpoints().last).path
            let original = try readBytes(checkpoint + "/state.json"), config = try readBytes(run.configPath)
            func expectError(mentioning file: String, _ text: String) {
                do {
                    _ = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1))
                    Issue.record("expected an error naming \(file)")
                } catch let error as TrainingError {
                    guard case .invalidConfig = error else { Issue.record("unexpected error: \(error)"); return }
                    #expect(error.description.contains(file + ": "), "\(error)")
                    #expect(error.description.contains(text), "\(error)")
                    #expect(!error.description.contains("\n"))
                } catch {
                    Issue.record("unexpected error: \(error)")
                }
            }
            // A negative step, and one past the run's end.
            // (the manifest rewritten, so the edit is not caught as damage first)
            try editJSON(checkpoint + "/state.json", "step", "-5")
            try RunDirectory.writeChecksumManifest(in: checkpoint)
            expectError(mentioning: checkpoint + "/state.json", "step -5 is not between 0 and the run's 3 steps")
            try editJSON(checkpoint + "/state.json", "step", "4")
            try RunDirectory.writeChecksumManifest(in: checkpoint)
            expectError(mentioning: checkpoint + "/state.json", "step 4 is not between 0 and the run's 3 steps")
            try writeBytes(original, checkpoint + "/state.json")
            try RunDirectory.writeChecksumManifest(in: checkpoint)
            // A batch of a billion sequences: refused by the settings' own check.
            try editJSON(run.configPath, "batch", "1000000000")
            expectError(mentioning: run.configPath, "--batch 1000000000")
            // A batch that passes that check (10^8 sequences of 8 tokens) but not the memory check.
            try editJSON(run.configPath, "batch", "100000000")
            try editJSON(run.configPath, "totalBatchTokens", "800000000")
            expectError(mentioning: run.configPath, "; this machine has ")
            // Untouched files resume.
            try writeBytes(config, run.configPath)
            _ = try Trainer.resume(run: run, parallel: ParallelFor(threads: 1))
        }
    }

    // MARK: 6. Non-finite weights

    @Test func nonFiniteWeightsAreRefused() throws {
        try withTemporaryDirectory { dir in
            // llm.c checkpoint: a NaN in layer 0's attention projection.
            var bytes = try Fixtures.bytes("full-context", "model.bin")
            let weights = try LLMCCheckpoint.read(Fixtures.path("full-context", "model.bin"))
            let layout = weights.layout, L = weights.config.numLayers, perLayer = layout.count(.attprojw) / L
            let at = 1024 + 4 * (layout.offset(.attprojw) + (L - 1) * perLayer + 3)  // the last layer, element 3
            bytes.replaceSubrange(at..<at + 4, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Array($0) })
            try writeBytes(bytes, dir + "/nan.bin")
            do {
                _ = try LLMCCheckpoint.read(dir + "/nan.bin")
                Issue.record("expected a non-finite error")
            } catch let error as FormatError {
                #expect(error.description == "\(dir)/nan.bin: tensor attprojw (layer \(L - 1)) holds a non-finite value (nan) at element 3")
            }
            // Hugging Face folder: an infinity in one tensor.
            let llama = try HuggingFaceFolder.read(folder: Fixtures.path("llama-gqa", "hf"))
            llama.arena[llama.layout.offset(.lnfw) + 2] = -.infinity
            try HuggingFaceFolder.write(llama, to: dir + "/hf")
            #expect(throws: FormatError.nonFinite(path: dir + "/hf/model.safetensors", name: "model.norm.weight", index: 2,
                                                  value: -.infinity)) {
                try HuggingFaceFolder.read(folder: dir + "/hf")
            }
            // Gradients in a parity fixture may be anything: only weights are checked.
        }
    }

    // MARK: 7. Found by fuzzing (scripts/fuzz.sh): each input as the fuzzer found it, or cut down to its cause

    /// `body` reads `bytes` from a file named `name` and must throw exactly `expected` (given the file's path).
    func expectRefusal<E: Error & Equatable>(_ bytes: [UInt8], name: String, _ expected: (String) -> E,
                                             _ body: (String) throws -> Void) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/" + name
            try writeBytes(bytes, path)
            #expect(throws: expected(path)) { try body(path) }
        }
    }

    @Test func gemma3ConfigWithBillionsOfLayersIsRefusedBeforeListingThem() throws {
        // Without layer_types, the sliding layers were listed (2^31 Bools, minutes) before the layer count was checked.
        let json = #"{"model_type": "gemma3_text", "hidden_size": 48, "num_attention_heads": 3, "num_key_value_heads": 1, "#
            + #""head_dim": 32, "intermediate_size": 96, "vocab_size": 280, "max_position_embeddings": 32, "#
            + #""num_hidden_layers": 2147483647, "sliding_window": 5}"#
        try expectRefusal(Array(json.utf8), name: "config.json", {
            FormatError.inconsistentHeader(path: $0, reason: "num_hidden_layers 2147483647 is more than 1024")
        }) { _ = try HuggingFaceConfig.read($0) }
    }

    @Test func llmcTokenizerWithoutEveryByteIsRefused() throws {
        // Byte 0x41 ("A") has no token of its own: encoding "A" fell back to a byte token that was not there.
        func token(_ bytes: [UInt8]) -> [UInt8] { [UInt8(bytes.count)] + bytes }
        let header = [Int32(20_240_328), 2, 257, 256] + [Int32](repeating: 0, count: 252)
        let body = (0...255).flatMap { token($0 == 0x41 ? [0x41, 0x42] : [UInt8($0)]) } + token(Array("<|endoftext|>".utf8))
        try expectRefusal(header.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } } + body, name: "tok.bin", {
            TokenizerError.malformed(path: $0, reason: "the tokens before eot 256 do not include all 256 single bytes")
        }) { _ = try Tokenizer.llmcDecoder($0) }
    }
}
