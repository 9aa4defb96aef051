// A fine-tuning start that fails after making its run folder removes the folder again, so the retry is not
// blocked and nothing half-made is left.
import Foundation
import Testing
@testable import LLM

@Test func aFailedSFTStartLeavesNoRunFolder() throws {
    try withTemporaryDirectory { dir in
        let c = try ModelConfig.gpt2(maxSeqLen: 64, vocabSize: 50257, numLayers: 1, numHeads: 2, channels: 16)
        try saveWeights(.randomGPT2(config: c, seed: 1), to: dir + "/gpt2.bin")
        var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
        t.steps = 1
        t.warmupSteps = 0
        let job = NewSFTRun(runDirectory: dir + "/run", initFrom: dir + "/gpt2.bin", tokenizer: nil, data: dir,
                            valData: nil, training: t)
        #expect(throws: ChatFormatError.unreadable(path: dir, reason: "a directory, not a JSONL file of conversations")) {
            try job.start(parallel: ParallelFor(threads: 1))
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/run"))
    }
}
