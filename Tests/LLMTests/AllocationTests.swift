// A training step must allocate nothing: malloc and friends are interposed (Sources/MallocCounter) and
// counted on this thread while a whole step runs single-threaded, so every kernel runs here too.
import MallocCounter
import Testing
@testable import LLM

@Suite struct AllocationTests {
    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"))
    func theCounterSeesAllocations() {
        malloc_counter_arm()
        let array = [Int](repeating: 7, count: 1000)
        let count = malloc_counter_disarm()
        #expect(count >= 1, "an array allocation must be counted (got \(count))")
        #expect(array.count == 1000)
    }

    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"))
    func aTrainingStepAllocatesNothing() throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 50, numLayers: 2, numHeads: 2, channels: 16)
        let model = try Transformer(weights: .randomGPT2(config: config, seed: 3), batch: 2, seq: 8,
                             parallel: ParallelFor(threads: 1))
        let inputs = (0..<16).map { Int32($0 * 7 % 50) }, targets = (0..<16).map { Int32($0 * 3 % 50) }
        let opt = AdamWConfig(learningRate: 1e-3)

        func step(_ t: Int) throws {
            try model.forward(inputs: inputs, targets: targets)
            model.zeroGradients()
            try model.backward()
            try model.update(opt, step: t)
        }
        try step(1)  // nothing is lazily allocated, but a first step outside the count keeps the test honest
        malloc_counter_arm()
        try step(2)
        try step(3)
        let count = malloc_counter_disarm()
        #expect(count == 0, "a training step made \(count) heap allocations")
    }

    /// Muon's step too: the momentum, the Newton–Schulz products of every part (q, k, v, gate, up: tall, wide and
    /// square) and the AdamW groups, on a GQA Llama.
    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"))
    func aMuonStepAllocatesNothing() throws {
        let config = try ModelPreset.llama(layers: 2, heads: 2, channels: 16, kvHeads: 1, vocabSize: 50, maxSeqLen: 8)
        let model = try Transformer(weights: .random(config: config, seed: 3), batch: 2, seq: 8,
                                    parallel: ParallelFor(threads: 1), optimizer: .muon)
        let inputs = (0..<16).map { Int32($0 * 7 % 50) }, targets = (0..<16).map { Int32($0 * 3 % 50) }
        let adamW = AdamWConfig(learningRate: 1e-3, beta1: 0.8, eps: 1e-10, weightDecay: 0), muon = MuonConfig()

        func step(_ t: Int) throws {
            try model.forward(inputs: inputs, targets: targets)
            model.zeroGradients()
            try model.backward()
            try model.update(adamW, muon: muon, learningRateScale: 0.5, step: t)
        }
        try step(1)
        malloc_counter_arm()
        try step(2)
        try step(3)
        let count = malloc_counter_disarm()
        #expect(count == 0, "a Muon step made \(count) heap allocations")
    }
}

#if os(Linux)
let isLinux = true
#else
let isLinux = false
#endif
