// Bad files and bad tokens: each gives a typed error whose message names the file and the problem,
// and nothing is left half-written.
import Foundation
import Testing
@testable import LLM

@Suite struct BadInputTests {
    /// A valid checkpoint's bytes with its header ints replaced.
    func checkpoint(header edits: [Int: Int32], truncate: Int = 0, append: Int = 0) throws -> [UInt8] {
        var bytes = try Fixtures.bytes("full-context", "model.bin")
        for (i, v) in edits { bytes.replaceSubrange(i * 4..<i * 4 + 4, with: int32Bytes([v])) }
        bytes.removeLast(truncate)
        bytes += [UInt8](repeating: 0, count: append)
        return bytes
    }

    func expectCheckpointError(_ bytes: [UInt8], _ matches: (FormatError) -> Bool, mentions: String) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/bad.bin"
            try writeBytes(bytes, path)
            do {
                _ = try LLMCCheckpoint.read(path)
                Issue.record("expected an error mentioning \(mentions)")
            } catch let error as FormatError {
                #expect(matches(error), "unexpected error: \(error)")
                #expect(error.description.hasPrefix(path), "message must name the file: \(error)")
                #expect(error.description.contains(mentions), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test func checkpointHeaderProblems() throws {
        try expectCheckpointError(try checkpoint(header: [0: 1234]), { if case .badMagic = $0 { true } else { false } },
                                  mentions: "bad magic number 1234")
        try expectCheckpointError(try checkpoint(header: [1: 4]),
                                  { if case .unsupportedVersion = $0 { true } else { false } }, mentions: "version 4")
        try expectCheckpointError(try checkpoint(header: [5: 3]),  // C=16, NH=3
                                  { if case .inconsistentHeader = $0 { true } else { false } }, mentions: "not divisible")
        try expectCheckpointError(try checkpoint(header: [7: 100]),  // Vp < V=128
                                  { if case .inconsistentHeader = $0 { true } else { false } }, mentions: "smaller than vocab")
        try expectCheckpointError(try checkpoint(header: [4: 0]),
                                  { if case .inconsistentHeader = $0 { true } else { false } }, mentions: "positive")
        // An absurd size must be refused before anything is allocated.
        try expectCheckpointError(try checkpoint(header: [4: 1000, 6: 60000, 5: 1]),
                                  { if case .truncated = $0 { true } else { false } }, mentions: "truncated")
    }

    @Test func checkpointSizeProblems() throws {
        try expectCheckpointError(try checkpoint(header: [:], truncate: 10),
                                  { if case .truncated = $0 { true } else { false } }, mentions: "truncated")
        try expectCheckpointError(Array(try checkpoint(header: [:]).prefix(100)),
                                  { if case .truncated = $0 { true } else { false } }, mentions: "truncated")
        try expectCheckpointError(try checkpoint(header: [:], append: 8),
                                  { if case .trailingBytes = $0 { true } else { false } }, mentions: "8 unexpected bytes")
    }

    @Test func missingFileAndDirectory() throws {
        #expect(throws: FormatError.unreadable(path: "/nonexistent/m.bin", reason: "No such file or directory")) {
            try LLMCCheckpoint.read("/nonexistent/m.bin")
        }
        try withTemporaryDirectory { dir in
            #expect(throws: FormatError.self) { try LLMCCheckpoint.read(dir) }
        }
    }

    @Test func stateWithOutOfRangeTokens() throws {
        let config = try LLMCCheckpoint.read(Fixtures.path("full-context", "model.bin")).config
        var bytes = try Fixtures.bytes("full-context", "state.bin")
        bytes.replaceSubrange(1024 + 4 * 5..<1024 + 4 * 6, with: int32Bytes([Int32(config.vocabSize)]))
        try withTemporaryDirectory { dir in
            try writeBytes(bytes, dir + "/state.bin")
            #expect(throws: FormatError.mismatch(path: dir + "/state.bin",
                                                 reason: "input token 128 at position 5 is out of range for vocab size 128")) {
                try DebugState.read(dir + "/state.bin", config: config)
            }
            try writeBytes(Array(bytes.dropLast(4)), dir + "/short.bin")
            #expect(throws: FormatError.self) { try DebugState.read(dir + "/short.bin", config: config) }
        }
    }

    /// A safetensors file from a header string and a data section.
    func safetensors(_ header: String, data: [UInt8] = []) -> [UInt8] {
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8) + data
    }

    func expectSafetensorsError(_ bytes: [UInt8], mentions: String) throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.copyItem(atPath: Fixtures.path("full-context", "hf/config.json"),
                                             toPath: dir + "/config.json")
            try writeBytes(bytes, dir + "/model.safetensors")
            do {
                _ = try HuggingFaceFolder.read(folder: dir)
                Issue.record("expected an error mentioning \(mentions)")
            } catch let error as FormatError {
                #expect(error.description.hasPrefix(dir + "/model.safetensors"), "\(error)")
                #expect(error.description.contains(mentions), "\(error)")
            }
        }
    }

    @Test func malformedSafetensors() throws {
        try expectSafetensorsError([1, 2, 3], mentions: "truncated")
        try expectSafetensorsError(withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) } + [0x7B],
                                   mentions: "header length")
        try expectSafetensorsError(safetensors("{not json"), mentions: "not a JSON object")
        try expectSafetensorsError(safetensors(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [0, 0]),
                                   mentions: "outside")
        try expectSafetensorsError(safetensors(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)),
                                   mentions: "8 bytes for shape [3]")
    }

    @Test func missingWrongShapeAndWrongDtypeTensors() throws {
        let original = try SafeTensorsFile.read(Fixtures.path("full-context", "hf/model.safetensors"))
        func tensors(dropping drop: String? = nil, reshaping: String? = nil) throws -> [SafeTensorsFile.Tensor] {
            try original.entries.values.filter { $0.name != drop }.map {
                let values = try original.floats($0.name)
                let shape = $0.name == reshaping ? [values.count] : $0.shape
                return SafeTensorsFile.Tensor(name: $0.name, shape: shape, values: values)
            }
        }
        try withTemporaryDirectory { dir in
            try FileManager.default.copyItem(atPath: Fixtures.path("full-context", "hf/config.json"),
                                             toPath: dir + "/config.json")
            let path = dir + "/model.safetensors"
            try SafeTensorsFile.write(try tensors(dropping: "transformer.h.0.mlp.c_fc.bias"), to: path)
            #expect(throws: FormatError.missingTensor(path: path, name: "transformer.h.0.mlp.c_fc.bias")) {
                try HuggingFaceFolder.read(folder: dir)
            }
            try SafeTensorsFile.write(try tensors(reshaping: "transformer.wpe.weight"), to: path)
            #expect(throws: FormatError.wrongShape(path: path, name: "transformer.wpe.weight", expected: [12, 16], found: [192])) {
                try HuggingFaceFolder.read(folder: dir)
            }
            var extra = try tensors()
            extra.append(.init(name: "transformer.h.0.mlp.gate.weight", shape: [2], values: [1, 2]))
            try SafeTensorsFile.write(extra, to: path)
            #expect(throws: FormatError.unexpectedTensor(path: path, name: "transformer.h.0.mlp.gate.weight")) {
                try HuggingFaceFolder.read(folder: dir)
            }
        }
    }

    @Test func configProblems() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/config.json"
            try writeBytes(Array(#"{"model_type": "gpt2", "n_embd": 16, "n_head": 3, "n_layer": 1, "n_positions": 8, "vocab_size": 10}"#.utf8), path)
            #expect(throws: FormatError.self) { try HuggingFaceFolder.readConfig(folder: dir) }
            try writeBytes(Array(#"{"model_type": "mixtral"}"#.utf8), path)
            #expect(throws: FormatError.mismatch(path: path, reason: "model_type mixtral is not supported (supported: gpt2, llama, qwen2, gemma3_text, nanochat)")) {
                try HuggingFaceFolder.readConfig(folder: dir)
            }
            try writeBytes(Array(#"{"model_type": "llama"}"#.utf8), path)
            #expect(throws: FormatError.malformed(path: path, reason: "missing hidden_size")) {
                try HuggingFaceFolder.readConfig(folder: dir)
            }
            // Fields the engine cannot honour are named, never ignored.
            let llama = #""model_type": "llama", "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 32, "max_position_embeddings": 8, "vocab_size": 10"#
            for (extra, field) in [(#""rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#, "rope_scaling"),
                                   (#""num_local_experts": 8"#, "num_local_experts"),
                                   (#""hidden_act": "gelu""#, "hidden_act"),
                                   (#""rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0}"#, "rope_parameters.rope_type")] {
                try writeBytes(Array("{\(llama), \(extra)}".utf8), path)
                do {
                    _ = try HuggingFaceFolder.readConfig(folder: dir)
                    Issue.record("\(field) was accepted")
                } catch let error as FormatError {
                    #expect("\(error)".contains(field), "\(error)")
                }
            }
            try writeBytes(Array("{\(llama), \"num_key_value_heads\": 3}".utf8), path)
            #expect(throws: FormatError.self) { try HuggingFaceFolder.readConfig(folder: dir) }
            try writeBytes(Array("{\(llama)}".utf8), path)
            let config = try HuggingFaceFolder.readConfig(folder: dir)
            #expect(config.architecture == .llama && config.ropeTheta == 10_000 && !config.tiedEmbeddings)
            try writeBytes(Array(#"{"model_type": "gpt2", "n_head": 2}"#.utf8), path)
            #expect(throws: FormatError.malformed(path: path, reason: "missing n_positions")) {
                try HuggingFaceFolder.readConfig(folder: dir)
            }
        }
    }

    @Test func failedWritesLeaveNothingBehind() throws {
        let weights = try LLMCCheckpoint.read(Fixtures.path("full-context", "model.bin"))
        try withTemporaryDirectory { dir in
            let target = dir + "/missing-folder/out.bin"
            #expect(throws: FormatError.self) { try LLMCCheckpoint.write(weights, to: target) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
            // Overwriting replaces the old file only once the new one is complete.
            try writeBytes([1, 2, 3], dir + "/out.bin")
            try LLMCCheckpoint.write(weights, to: dir + "/out.bin")
            #expect(try readBytes(dir + "/out.bin") == Fixtures.bytes("full-context", "model.bin"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.bin"])
        }
    }

    @Test func modelRejectsBadTokensAndShapes() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 4, vocabSize: 10, numLayers: 1, numHeads: 1, channels: 4)
        let model = try Transformer(weights: .randomGPT2(config: config, seed: 1), batch: 1, seq: 4, parallel: ParallelFor(threads: 1))
        #expect(throws: ModelError.tokenOutOfRange(what: "input", index: 2, token: 10, vocabSize: 10)) {
            try model.forward(inputs: [1, 2, 10, 3])
        }
        #expect(throws: ModelError.tokenOutOfRange(what: "target", index: 0, token: -2, vocabSize: 10)) {
            try model.forward(inputs: [1, 2, 3, 4], targets: [-2, 0, 0, 0])  // -1 means "ignored"; -2 is an error
        }
        #expect(throws: ModelError.tokenCountMismatch(what: "input", count: 3, expected: 4)) {
            try model.forward(inputs: [1, 2, 3])
        }
        #expect(throws: ModelError.self) { try model.forward(inputs: [1, 2, 3, 4, 5, 6, 7, 8], batch: 2, seq: 4) }
        try model.forward(inputs: [1, 2, 3, 4])
        #expect(throws: ModelError.backwardWithoutTargets) { try model.backward() }
        #expect(throws: ModelError.sequenceTooLong(seq: 5, maxSeqLen: 4)) {
            _ = try Transformer(weights: .randomGPT2(config: config, seed: 1), batch: 1, seq: 5)
        }
        #expect(throws: ModelError.self) {
            _ = try ModelConfig.gpt2(maxSeqLen: 4, vocabSize: 10, numLayers: 1, numHeads: 3, channels: 4)
        }
    }

    /// A non-finite gradient stops the update before any weight changes.
    @Test func nonFiniteGradientsDoNotTouchTheWeights() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 4, vocabSize: 10, numLayers: 1, numHeads: 1, channels: 4)
        let weights = ModelWeights.randomGPT2(config: config, seed: 1)
        weights.arena[weights.layout.offset(.lnfw)] = .nan
        let model = try Transformer(weights: weights, batch: 1, seq: 4, parallel: ParallelFor(threads: 1))
        try model.forward(inputs: [1, 2, 3, 4], targets: [2, 3, 4, 5])
        model.zeroGradients()
        try model.backward()
        let before = weights.tensor(.fcw)
        #expect(throws: ModelError.self) { try model.update(AdamWConfig(), step: 1) }
        #expect(weights.tensor(.fcw) == before)
    }
}
