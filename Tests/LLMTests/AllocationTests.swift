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
}

#if os(Linux)
let isLinux = true
#else
let isLinux = false
#endif
