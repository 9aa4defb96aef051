// The binary seeds of the fuzz corpus (Tests/Fuzz/corpus/), made by the project's own writers so that they are
// valid files of each format: `llm-fuzz --write-seeds DIR` writes them under DIR/<target>/. The text seeds
// (JSON, JSONL, templates) are written by hand and live only in the corpus.
import Foundation

extension FuzzHarness {
    /// Writes the binary seed files into `directory`/<target>/.
    public static func writeSeeds(to directory: String) throws {
        func path(_ target: String, _ file: String) throws -> String {
            let folder = (directory as NSString).appendingPathComponent(target)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return (folder as NSString).appendingPathComponent(file)
        }
        func bytes(_ values: [some FixedWidthInteger]) -> [UInt8] {
            values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        }

        // llm.c: a 300-parameter GPT-2 in fp32 (version 3) and bf16 (version 5), and a debug state for it.
        let weights = ModelWeights.randomGPT2(config: tinyGPT2, seed: 1)
        try LLMCCheckpoint.write(weights, to: try path("llmc-checkpoint", "tiny-v3.bin"))
        let floats = weights.arena.withBuffer { Array($0) }
        var header = [Int32](repeating: 0, count: LLMCCheckpoint.headerInts)
        header[0...7] = [LLMCCheckpoint.magic, 5, 4, 8, 1, 1, 4, 8]
        try Data(bytes(header) + bytes(floats.map { UInt16($0.bitPattern >> 16) }))
            .write(to: URL(fileURLWithPath: try path("llmc-checkpoint", "tiny-v5.bin")))
        var stateHeader = [Int32](repeating: 0, count: 256)
        stateHeader[0...3] = [DebugState.magic, 2, 1, 2]
        let state = bytes(stateHeader) + bytes([Int32(1), 2, 2, -1]) + bytes((0..<17).map { (Float($0) / 3).bitPattern })
            + bytes(floats.map { ($0 * 0.5).bitPattern })
        try Data(state).write(to: URL(fileURLWithPath: try path("llmc-debug-state", "tiny.bin")))

        // safetensors: floats and ints, and a Hugging Face GPT-2's weights.
        try SafeTensorsFile.write([.init(name: "a", shape: [2, 3], values: [1, -2, 3.5, 0, .pi, 1e-9]),
                                   .init(name: "tokens", shape: [2], ints: [7, -1])],
                                  to: try path("safetensors", "small.safetensors"))
        try SafeTensorsFile.write([.init(name: "wte", shape: [8, 4], values: Array(floats[0..<32])),
                                   .init(name: "empty", shape: [0, 4], values: [])],
                                  metadata: [:], to: try path("safetensors", "no-metadata.safetensors"))

        // Tokenizers: 256 bytes, four merges and an end-of-text token, in each of the project's own formats.
        let tokenizer = Tokenizer(tokens: (0...255).map { [UInt8($0)] } + ["th", "he", "in", " t"].map { Array($0.utf8) },
                                  pattern: .gpt2, specialTokens: ["<|endoftext|>": 260])
        try tokenizer.save(to: try path("tokenizer-file", "tiny.tok"))
        try tokenizer.writeLLMCDecoder(to: try path("llmc-tokenizer", "tiny.bin"))

        // GGUF: a tiny Llama with that tokenizer, and one tensor of every type this package dequantizes.
        var llama = try ModelPreset.llama(layers: 1, heads: 2, channels: 4, kvHeads: 1, vocabSize: 261, maxSeqLen: 8)
        (llama.paddedVocabSize, llama.hiddenSize) = (261, 8)
        try GGUFModel.write(ModelWeights.random(config: llama, seed: 2), tokenizer: tokenizer, chatTemplate: "{{ messages }}",
                            name: "tiny", type: .f16, to: try path("gguf", "tiny-llama.gguf"))
        // (Built by hand: the writer quantizes to a few types only. Each tensor is one block of random bytes.)
        func string(_ s: String) -> [UInt8] { bytes([UInt64(s.utf8.count)]) + Array(s.utf8) }
        func padding(_ n: Int) -> [UInt8] { [UInt8](repeating: 0, count: (32 - n % 32) % 32) }
        let types = GGMLType.allCases.filter(\.canDequantize)
        var gguf = Array("GGUF".utf8) + bytes([UInt32(3)]) + bytes([UInt64(types.count), 1])
        gguf += string("general.alignment") + bytes([UInt32(4), 32])  // value type 4: u32
        var random = SplitMix64(seed: 3), tensorData = [UInt8]()
        for type in types {
            gguf += string(type.description) + bytes([UInt32(1)]) + bytes([UInt64(type.blockSize)])
                + bytes([type.rawValue]) + bytes([UInt64(tensorData.count)])
            tensorData += (0..<type.bytesPerBlock).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            tensorData += padding(tensorData.count)
        }
        gguf += padding(gguf.count) + tensorData
        try Data(gguf).write(to: URL(fileURLWithPath: try path("gguf", "types.gguf")))

        // Token shards, 16- and 32-bit.
        try TokenShard.write([Int32](0..<20), to: try path("token-shard", "u16.bin"), width: .uint16)
        try TokenShard.write([0, 70_000, Int32.max], to: try path("token-shard", "u32.bin"), width: .uint32)
    }
}
