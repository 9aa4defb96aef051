// The generation engine: its cached forward against the training model's full forward, greedy decoding against
// Hugging Face's generate (reference/make_generate_fixture.py), the sampler's filters and determinism, its two
// kernels against naive references, the context limit, and a decode loop that allocates nothing.
import Foundation
import MallocCounter
import Testing
@testable import LLM

@Suite struct InferenceTests {
    /// deep-heads: maxT 24, V 300 (Vp 384), 4 layers, 6 heads of size 8.
    private static func deepHeads() throws -> ModelWeights { try LLMCCheckpoint.read(Fixtures.path("deep-heads", "model.bin")) }

    private static func randomTokens(_ count: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }

    // MARK: - Cached forward = full forward

    /// Logits at every position, from a prefill and then one token at a time, from two chunks, and from a
    /// rewind, equal the training model's full forward over the whole sequence.
    @Test(arguments: [1, 3])
    func cachedLogitsEqualAFullForward(threads: Int) throws {
        let weights = try Self.deepHeads()
        let c = weights.config, T = c.maxSeqLen, V = c.vocabSize, Vp = c.paddedVocabSize
        let tokens = Self.randomTokens(T, vocab: V, seed: 5)
        let full = try Transformer(weights: weights, batch: 1, seq: T, parallel: ParallelFor(threads: threads))
        try full.forward(inputs: tokens)
        let reference = full.logits()  // (T,Vp)

        let generator = Generator(weights: weights, parallel: ParallelFor(threads: threads))
        func expectPosition(_ t: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let logits = generator.logits()
            #expect(logits.count == V)
            let diff = (0..<V).reduce(Float(0)) { max($0, abs(logits[$1] - reference[t * Vp + $1])) }
            #expect(diff <= 1e-5, "\(what): position \(t) logits differ by \(diff)", sourceLocation: sourceLocation)
            #expect(generator.count == t + 1, sourceLocation: sourceLocation)
        }
        for prompt in [1, 5] {
            generator.reset()
            try generator.forward(tokens[0..<prompt])
            expectPosition(prompt - 1, "prefill of \(prompt)")
            for t in prompt..<T {
                try generator.forward(tokens[t...t])
                expectPosition(t, "decode after a prefill of \(prompt)")
            }
        }
        generator.reset()
        try generator.forward(tokens[0..<7])
        expectPosition(6, "first chunk")
        try generator.forward(tokens[7...])
        expectPosition(T - 1, "second chunk")
        try generator.forward(tokens[3..<11], at: 3)
        expectPosition(10, "rewind to position 3")
        try generator.forward(tokens[...], at: 0)
        expectPosition(T - 1, "recompute from 0")
    }

    // MARK: - Greedy decoding = Hugging Face

    private struct GreedyFixture: Decodable {
        struct Case: Decodable {
            let prompt: [Int32]
            let generated: [Int32]
        }
        let maxSeqLen: Int
        let cases: [Case]
    }

    private static func greedyFixture() throws -> GreedyFixture {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(GreedyFixture.self, from: Data(Fixtures.bytes("generate", "greedy.json")))
    }

    /// Hugging Face's greedy `generate` (with its KV cache) up to the context limit, from the HF folder of the
    /// same model: same tokens, then a stop because the context is full. Recomputing without the cache agrees.
    @Test(arguments: [true, false])
    func greedyMatchesHuggingFace(useKVCache: Bool) throws {
        let fixture = try Self.greedyFixture()
        let generator = Generator(weights: try HuggingFaceFolder.read(folder: Fixtures.path("deep-heads", "hf")),
                                  parallel: ParallelFor(threads: 2))
        #expect(generator.config.maxSeqLen == fixture.maxSeqLen)
        #expect(fixture.cases.count == 3)
        for c in fixture.cases {
            var streamed = [Int32]()
            let parameters = GenerateParameters(maxNewTokens: 100, temperature: 0, useKVCache: useKVCache)
            let result = try generator.generate(prompt: c.prompt, parameters: parameters) { streamed.append($0); return true }
            #expect(result.tokens == c.generated, "prompt \(c.prompt)")
            #expect(streamed == result.tokens)
            #expect(result.stopReason == .contextFull)
            #expect(result.promptTokens == c.prompt.count)
        }
    }

    @Test func stopTokensAndCancellingEndGeneration() throws {
        let fixture = try Self.greedyFixture()
        let c = fixture.cases[0]  // 263 eight times, then 241
        let generator = Generator(weights: try HuggingFaceFolder.read(folder: Fixtures.path("deep-heads", "hf")),
                                  parallel: ParallelFor(threads: 1))
        let stopAt = c.generated.first { $0 != c.generated[0] }!
        let stopped = try generator.generate(prompt: c.prompt, parameters: GenerateParameters(
            temperature: 0, stopTokens: [stopAt])) { _ in true }
        #expect(stopped.tokens == Array(c.generated.prefix { $0 != stopAt }))
        #expect(stopped.stopReason == .stopToken(stopAt))

        var calls = 0
        let cancelled = try generator.generate(prompt: c.prompt, parameters: GenerateParameters(temperature: 0)) { _ in
            calls += 1
            return calls < 3
        }
        #expect(cancelled.tokens == Array(c.generated.prefix(3)))
        #expect(cancelled.stopReason == .cancelled)

        let limited = try generator.generate(prompt: c.prompt, parameters: GenerateParameters(maxNewTokens: 4, temperature: 0)) { _ in true }
        #expect(limited.tokens == Array(c.generated.prefix(4)))
        #expect(limited.stopReason == .maxNewTokens)
        let none = try generator.generate(prompt: c.prompt, parameters: GenerateParameters(maxNewTokens: 0)) { _ in true }
        #expect(none.tokens.isEmpty && none.stopReason == .maxNewTokens)
    }

    // MARK: - Sampling

    @Test func aSeedFixesTheSample() throws {
        let generator = Generator(weights: try Self.deepHeads(), parallel: ParallelFor(threads: 1))
        let prompt: [Int32] = [1, 2, 3]
        func run(_ parameters: GenerateParameters) throws -> [Int32] {
            try generator.generate(prompt: prompt, parameters: parameters) { _ in true }.tokens
        }
        for filters in [(nil, 1), (40, 1), (nil, 0.9), (40, 0.8)] as [(Int?, Float)] {
            var p = GenerateParameters(maxNewTokens: 20, temperature: 1.5, topK: filters.0, topP: filters.1, seed: 7)
            let first = try run(p)
            #expect(first.count == 20)
            #expect(try run(p) == first, "same seed, top-k \(filters.0 ?? 0), top-p \(filters.1)")
            p.useKVCache = false
            #expect(try run(p) == first, "without the cache")
            p.useKVCache = true
            p.seed = 8
            #expect(try run(p) != first, "another seed, top-k \(filters.0 ?? 0), top-p \(filters.1)")
        }
        let greedy = try run(GenerateParameters(maxNewTokens: 20, temperature: 0))
        #expect(try run(GenerateParameters(maxNewTokens: 20, temperature: 1, topK: 1, seed: 3)) == greedy)
        #expect(try run(GenerateParameters(maxNewTokens: 20, temperature: 5, topP: 1e-6, seed: 4)) == greedy)
    }

    /// Draws from the sampler on fixed logits: top-k and top-p keep exactly the tokens they should, and the
    /// frequencies follow the softmax renormalised over them.
    @Test func samplerFiltersAndFrequencies() {
        // Probabilities at temperature 1: 0.4, 0.3, 0.2, 0.1 (ids 3, 0, 2, 1), then six tokens of nearly none.
        let probs: [Double] = [0.3, 0.1, 0.2, 0.4] + [Double](repeating: 1e-9, count: 6)
        let logits = probs.map { Float(log($0)) }
        func frequencies(_ parameters: GenerateParameters, draws: Int = 20000) -> [Double] {
            var sampler = Sampler(parameters: parameters, vocabSize: logits.count)
            var counts = [Double](repeating: 0, count: logits.count)
            logits.withUnsafeBufferPointer { l in
                for _ in 0..<draws { counts[Int(sampler.sample(l))] += 1 }
            }
            return counts.map { $0 / Double(draws) }
        }
        func expectFrequencies(_ parameters: GenerateParameters, _ expected: [Int: Double],
                               sourceLocation: SourceLocation = #_sourceLocation) {
            let f = frequencies(parameters)
            for (id, share) in f.enumerated() {
                let want = expected[id] ?? 0
                // 20000 draws: the standard error is at most 0.0036; 0.015 is four of them.
                #expect(abs(share - want) < (want == 0 ? 1e-9 : 0.015), "token \(id): \(share), expected \(want)",
                        sourceLocation: sourceLocation)
            }
        }
        expectFrequencies(GenerateParameters(), [3: 0.4, 0: 0.3, 2: 0.2, 1: 0.1])
        expectFrequencies(GenerateParameters(topK: 2), [3: 0.4 / 0.7, 0: 0.3 / 0.7])
        expectFrequencies(GenerateParameters(topP: 0.65), [3: 0.4 / 0.7, 0: 0.3 / 0.7])
        expectFrequencies(GenerateParameters(topP: 0.75), [3: 0.4 / 0.9, 0: 0.3 / 0.9, 2: 0.2 / 0.9])
        expectFrequencies(GenerateParameters(topK: 3, topP: 0.5), [3: 0.4 / 0.7, 0: 0.3 / 0.7])  // 0.5 of 0.9
        expectFrequencies(GenerateParameters(topP: 0.3), [3: 1])
        expectFrequencies(GenerateParameters(temperature: 0), [3: 1])
        // Temperature 2 turns probabilities p into √p / Σ√p.
        let roots = [0.3, 0.1, 0.2, 0.4].map { $0.squareRoot() }, z = roots.reduce(0, +)
        expectFrequencies(GenerateParameters(temperature: 2, topK: 4),
                          [0: roots[0] / z, 1: roots[1] / z, 2: roots[2] / z, 3: roots[3] / z])
    }

    @Test func greedyTakesTheFirstOfEqualLogits() {
        let logits: [Float] = [0.5, 2, -1, 2, 2]
        for parameters in [GenerateParameters(temperature: 0), GenerateParameters(topK: 1)] {
            var sampler = Sampler(parameters: parameters, vocabSize: logits.count)
            #expect(logits.withUnsafeBufferPointer { sampler.sample($0) } == 1)
        }
    }

    // MARK: - Kernels against naive references

    /// New positions arrive in chunks of 3, 1 and 5 (prefill and decode shapes) and each chunk's output equals
    /// Double causal attention over the whole sequence so far.
    @Test(arguments: [1, 3])
    func cachedAttentionMatchesANaiveReference(threads: Int) {
        let C = 12, NH = 3, hs = C / NH, maxT = 10, chunks = [3, 1, 5]
        let T = chunks.reduce(0, +)
        var rng = SplitMix64(seed: 11)
        let qkv = (0..<T * 3 * C).map { _ in Float(rng.nextGaussian()) }  // (T,3C) for every position
        var kCache = [Float](repeating: .nan, count: NH * maxT * hs), vCache = kCache
        var scores = [Float](repeating: 0, count: NH * maxT)
        var t0 = 0
        for n in chunks {
            var out = [Float](repeating: .nan, count: n * C)
            attentionCachedForward(out: &out, kCache: &kCache, vCache: &vCache, scores: &scores,
                                   qkv: Array(qkv[t0 * 3 * C..<(t0 + n) * 3 * C]), t0: t0, n: n,
                                   shape: AttentionShape(heads: NH, kvHeads: NH, headSize: hs), capacity: maxT,
                                   parallel: ParallelFor(threads: threads))
            let reference = naiveAttention(qkv.map(Double.init), positions: t0..<t0 + n, C: C, NH: NH)
            let diff = zip(out, reference).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) }
            #expect(diff < 1e-5, "positions \(t0)..<\(t0 + n): max |Δ| \(diff)")
            t0 += n
        }
        // The cache holds every position's keys and values, head by head.
        for t in 0..<T {
            for h in 0..<NH {
                for i in 0..<hs {
                    #expect(kCache[(h * maxT + t) * hs + i] == qkv[t * 3 * C + C + h * hs + i])
                    #expect(vCache[(h * maxT + t) * hs + i] == qkv[t * 3 * C + 2 * C + h * hs + i])
                }
            }
        }
    }

    @Test(arguments: [1, 2, 5], [true, false])
    func matmulByOutputsMatchesANaiveReference(rows N: Int, withBias: Bool) {
        let C = 37, OC = 29  // neither a multiple of 16 (the SIMD width) nor of the 3 threads
        var rng = SplitMix64(seed: 13)
        let inp = (0..<N * C).map { _ in Float(rng.nextGaussian()) }
        let weight = (0..<OC * C).map { _ in Float(rng.nextGaussian()) }
        let bias = withBias ? (0..<OC).map { _ in Float(rng.nextGaussian()) } : nil
        typealias Kernel = (FloatPointer, ConstFloatPointer, ConstFloatPointer, ConstFloatPointer?, Int, Int, Int,
                            ParallelFor) -> Void
        func run(_ kernel: Kernel) -> [Float] {
            var out = [Float](repeating: .nan, count: N * OC)
            (bias ?? [0]).withUnsafeBufferPointer { b in
                kernel(&out, inp, weight, bias == nil ? nil : b.baseAddress, N, C, OC, ParallelFor(threads: 3))
            }
            return out
        }
        let out = run(matmulForwardByOutputs)
        for n in 0..<N {
            for o in 0..<OC {
                var sum = Double(bias?[o] ?? 0)
                for c in 0..<C { sum += Double(inp[n * C + c]) * Double(weight[o * C + c]) }
                #expect(abs(Double(out[n * OC + o]) - sum) < 1e-5 * max(1, abs(sum)), "out[\(n),\(o)]")
            }
        }
        let scratch = MatmulScratch(threads: 3)
        let blocked = run { matmulForward(out: $0, inp: $1, weight: $2, bias: $3, N: $4, C: $5, OC: $6, parallel: $7,
                                          scratch: scratch) }
        let diff = zip(out, blocked).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        #expect(diff < 1e-4, "matmulForward (register-tiled) agrees to rounding: \(diff)")
    }

    // MARK: - The context limit

    @Test func promptsLongerThanTheContextAreRejected() throws {
        let generator = Generator(weights: try Self.deepHeads(), parallel: ParallelFor(threads: 1))
        let T = generator.config.maxSeqLen
        let long = Self.randomTokens(T + 1, vocab: generator.config.vocabSize, seed: 9)
        #expect(throws: ModelError.sequenceTooLong(seq: T + 1, maxSeqLen: T)) {
            try generator.generate(prompt: long, parameters: GenerateParameters()) { _ in true }
        }
        try generator.forward(long[0..<T - 1])
        #expect(throws: ModelError.sequenceTooLong(seq: T + 1, maxSeqLen: T)) { try generator.forward(long[0..<2]) }
        #expect(generator.count == T - 1, "a rejected forward leaves the cache as it was")
        #expect(throws: ModelError.tokenOutOfRange(what: "input", index: T - 1, token: 300, vocabSize: 300)) {
            try generator.forward([300][...])
        }

        // A full-length prompt leaves no room; a cropped one leaves room for the new tokens.
        let full = try generator.generate(prompt: Array(long[0..<T]), parameters: GenerateParameters()) { _ in true }
        #expect(full.tokens.isEmpty && full.stopReason == .contextFull)
        let cropped = croppedPrompt(long, maxNewTokens: 5, maxSeqLen: T)
        #expect(cropped == Array(long.suffix(T - 5)))
        let result = try generator.generate(prompt: cropped, parameters: GenerateParameters(maxNewTokens: 5)) { _ in true }
        #expect(result.tokens.count == 5 && result.stopReason == .maxNewTokens)
        #expect(croppedPrompt(long, maxNewTokens: 100, maxSeqLen: T) == [long.last!])
        #expect(croppedPrompt([1, 2], maxNewTokens: 5, maxSeqLen: T) == [1, 2])
    }

    // MARK: - No allocation

    /// Everything between the first and the last token (decode steps, sampling, the stop-token check, the
    /// callback) runs with the malloc hook armed, single-threaded, for each way of choosing tokens.
    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"),
          arguments: [GenerateParameters(maxNewTokens: 12, temperature: 0),
                      GenerateParameters(maxNewTokens: 12, temperature: 0.8),
                      GenerateParameters(maxNewTokens: 12, topK: 5, topP: 0.9, stopTokens: [1, 2]),
                      GenerateParameters(maxNewTokens: 12, topP: 0.5),
                      GenerateParameters(maxNewTokens: 12, temperature: 0, useKVCache: false)])
    func theDecodeLoopAllocatesNothing(parameters: GenerateParameters) throws {
        let config = try ModelConfig.gpt2(maxSeqLen: 16, vocabSize: 50, numLayers: 2, numHeads: 2, channels: 16)
        let generator = Generator(weights: .randomGPT2(config: config, seed: 3), parallel: ParallelFor(threads: 1))
        var calls = 0, allocations = -1
        let result = try generator.generate(prompt: [1, 2, 3], parameters: parameters) { _ in
            calls += 1
            if calls == 1 { malloc_counter_arm() }
            if calls == parameters.maxNewTokens { allocations = malloc_counter_disarm() }
            return true
        }
        #expect(result.tokens.count == parameters.maxNewTokens, "\(result.stopReason)")
        #expect(allocations == 0, "\(parameters.maxNewTokens - 1) decode steps made \(allocations) heap allocations")
    }
}

/// Causal multi-head attention in Double for the query `positions` over every position up to each;
/// qkv is (T,3C) laid out [q | k | v]. Returns (positions.count, C).
private func naiveAttention(_ qkv: [Double], positions: Range<Int>, C: Int, NH: Int) -> [Double] {
    let hs = C / NH
    func at(_ t: Int, _ part: Int, _ h: Int, _ i: Int) -> Double { qkv[t * 3 * C + part * C + h * hs + i] }
    var out = [Double]()
    for t in positions {
        var row = [Double](repeating: 0, count: C)
        for h in 0..<NH {
            let scores = (0...t).map { t2 in
                (0..<hs).reduce(0) { $0 + at(t, 0, h, $1) * at(t2, 1, h, $1) } / Double(hs).squareRoot()
            }
            let top = scores.max()!, e = scores.map { exp($0 - top) }, z = e.reduce(0, +)
            for t2 in 0...t {
                for i in 0..<hs { row[h * hs + i] += e[t2] / z * at(t2, 2, h, i) }
            }
        }
        out += row
    }
    return out
}
