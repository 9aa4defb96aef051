// The multi-conversation engine: batched decoding against the single-sequence Generator (logits and greedy
// tokens, with requests joining mid-decode), seeded sampling alone and batched, the stop conditions,
// cancellation by dropping a stream, bad requests, shutdown, and a decode step that allocates nothing.
import Dispatch
import Foundation
import MallocCounter
import Testing
@testable import LLM

@Suite struct InferenceEngineTests {
    /// A tiny model (maxT 64, V 300, 2 layers, 2 heads of 16) whose token embeddings are scaled up so its logits
    /// spread over a few units: float rounding between the two matmul kernels never turns a greedy choice.
    static let weights: ModelWeights = {
        let config = try! ModelConfig.gpt2(maxSeqLen: 64, vocabSize: 300, numLayers: 2, numHeads: 2, channels: 32)
        let w = ModelWeights.randomGPT2(config: config, seed: 42)
        w.setTensor(.wte, w.tensor(.wte).map { $0 * 30 })
        return w
    }()
    static var config: ModelConfig { weights.config }

    static func randomTokens(_ count: Int, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
    }

    /// What the single-sequence Generator makes of a request.
    static func reference(_ prompt: [Int32], _ parameters: GenerateParameters) throws -> GenerationResult {
        try Generator(weights: weights, parallel: ParallelFor(threads: 1)).generate(prompt: prompt, parameters: parameters) { _ in true }
    }

    /// Every token of a stream and its finish record.
    static func collect(_ stream: AsyncThrowingStream<EngineEvent, any Error>) async throws -> (tokens: [Int32], finish: EngineFinish?) {
        var tokens = [Int32](), finish: EngineFinish?
        for try await event in stream {
            #expect(finish == nil, "an event after .finished")
            switch event {
            case .token(let t): tokens.append(t)
            case .finished(let f): finish = f
            }
        }
        return (tokens, finish)
    }

    /// Polls `condition` for up to ten seconds.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<2000 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    // MARK: - Batched = single sequence

    /// Three sequences in three slots, fed the same tokens as three Generators: the prefill logits and every
    /// decode row's logits agree: exactly with two threads, where a Generator decodes with
    /// matmulForwardByOutputs, which the decode kernel reproduces bit for bit; to rounding with one, where it
    /// uses matmulForward. The third sequence joins after four steps, and the rows are shuffled over slots.
    @Test(arguments: [1, 2])
    func batchedLogitsMatchTheGenerator(threads: Int) throws {
        let parallel = ParallelFor(threads: threads), V = Self.config.vocabSize
        let model = BatchedGenerator(weights: Self.weights, slots: 3, parallel: parallel)
        let prompts = [Self.randomTokens(1, seed: 1), Self.randomTokens(7, seed: 2), Self.randomTokens(12, seed: 3)]
        let generators = prompts.map { _ in Generator(weights: Self.weights, parallel: parallel) }
        var maxRelative: Float = 0
        func compare(_ slot: Int, row: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let batched = model.withLogits(row: row) { Array($0) }, single = generators[slot].logits()
            #expect(batched.count == V, sourceLocation: sourceLocation)
            for v in 0..<V {
                let relative = abs(batched[v] - single[v]) / max(1, abs(single[v]))
                maxRelative = max(maxRelative, relative)
                if relative > 1e-5 {
                    Issue.record("\(what): logit \(v) is \(batched[v]), alone \(single[v])", sourceLocation: sourceLocation)
                    return
                }
            }
        }
        func prefill(_ slot: Int) throws {
            try model.prefill(slot: slot, tokens: prompts[slot][...])
            try generators[slot].forward(prompts[slot][...])
            compare(slot, row: 0, "prefill of slot \(slot)")
        }
        var feed = SplitMix64(seed: 9)
        func step(_ slots: [Int]) throws {
            for (row, slot) in slots.enumerated() {
                let token = Int32(feed.next() % UInt64(V)), position = generators[slot].count
                model.setRow(row, slot: slot, token: token, position: position)
                try generators[slot].forward([token][...])
            }
            model.decode(rows: slots.count)
            for (row, slot) in slots.enumerated() { compare(slot, row: row, "slot \(slot) at row \(row)") }
        }
        try prefill(0)
        try prefill(1)
        for _ in 0..<4 { try step([0, 1]) }
        try prefill(2)  // joins while the others are mid-decode
        for _ in 0..<4 { try step([2, 0, 1]) }
        for _ in 0..<3 { try step([1, 2]) }  // slot 0 has finished
        if threads > 1 { #expect(maxRelative == 0, "the decode kernel is matmulForwardByOutputs to the bit") }
    }

    /// The decode kernel against matmulForwardByOutputs, bit for bit, for row counts on both sides of its
    /// 4-row tile, an odd number of outputs and channels that are not a multiple of 16.
    @Test(arguments: [1, 3])
    func theDecodeKernelEqualsMatmulByOutputs(threads: Int) {
        let C = 37, OC = 29
        var rng = SplitMix64(seed: 17)
        let weight = (0..<OC * C).map { _ in Float(rng.nextGaussian()) }
        let bias = (0..<OC).map { _ in Float(rng.nextGaussian()) }
        for N in 1...9 {
            let inp = (0..<N * C).map { _ in Float(rng.nextGaussian()) }
            for withBias in [true, false] {
                var reference = [Float](repeating: .nan, count: N * OC), out = reference
                bias.withUnsafeBufferPointer { b in
                    let b = withBias ? b.baseAddress : nil
                    matmulForwardByOutputs(out: &reference, inp: inp, weight: weight, bias: b, N: N, C: C, OC: OC,
                                           parallel: ParallelFor(threads: threads))
                    matmulForwardDecode(out: &out, inp: inp, weight: weight, bias: b, N: N, C: C, OC: OC,
                                        parallel: ParallelFor(threads: threads))
                }
                #expect(out == reference, "\(N) rows, bias \(withBias)")
            }
        }
    }

    /// Seven greedy requests of different prompt lengths and budgets through three slots: two wait and join as
    /// others finish, and two more arrive while the first three are mid-decode (the engine pauses before its
    /// first step until five are queued, and before its fourth until the other two are). Each gets the Generator's tokens and stop reason.
    @Test(.timeLimit(.minutes(2)))
    func batchedGreedyEqualsTheGenerator() async throws {
        let steps = StepCounter(), earlyQueued = DispatchSemaphore(value: 0), lateQueued = DispatchSemaphore(value: 0)
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 3, threads: 2, beforeStep: {
            switch steps.next() {
            case 1: earlyQueued.wait()
            case 4: lateQueued.wait()
            default: break
            }
        })
        defer { engine.shutdown() }
        let requests: [([Int32], GenerateParameters)] = [
            (Self.randomTokens(1, seed: 11), GenerateParameters(maxNewTokens: 12, temperature: 0)),
            (Self.randomTokens(5, seed: 12), GenerateParameters(maxNewTokens: 30, temperature: 0)),
            (Self.randomTokens(20, seed: 13), GenerateParameters(maxNewTokens: 100, temperature: 0)),  // context full
            (Self.randomTokens(3, seed: 14), GenerateParameters(maxNewTokens: 7, temperature: 0)),
            (Self.randomTokens(9, seed: 15), GenerateParameters(maxNewTokens: 25, temperature: 0)),
            (Self.randomTokens(2, seed: 16), GenerateParameters(maxNewTokens: 18, temperature: 0)),
            (Self.randomTokens(40, seed: 17), GenerateParameters(maxNewTokens: 10, temperature: 0)),
        ]
        let early = requests.prefix(5).map { engine.generate(prompt: $0.0, parameters: $0.1) }
        earlyQueued.signal()
        var results = [(tokens: [Int32], finish: EngineFinish?)]()
        try await withThrowingTaskGroup(of: (Int, [Int32], EngineFinish?).self) { group in
            for (i, stream) in early.enumerated() {
                group.addTask { let r = try await Self.collect(stream); return (i, r.tokens, r.finish) }
            }
            #expect(await Self.eventually { steps.count == 4 })
            #expect(engine.activeCount == 3 && engine.queuedCount == 2)
            for i in 5..<requests.count {
                let stream = engine.generate(prompt: requests[i].0, parameters: requests[i].1)
                group.addTask { let r = try await Self.collect(stream); return (i, r.tokens, r.finish) }
            }
            lateQueued.signal()
            var byIndex = [Int: ([Int32], EngineFinish?)]()
            for try await (i, tokens, finish) in group { byIndex[i] = (tokens, finish) }
            results = (0..<requests.count).map { byIndex[$0]! }
        }
        for (i, (prompt, parameters)) in requests.enumerated() {
            let expected = try Self.reference(prompt, parameters)
            #expect(results[i].tokens == expected.tokens, "request \(i)")
            #expect(results[i].finish?.stopReason == expected.stopReason, "request \(i)")
            #expect(results[i].finish?.completionTokens == expected.tokens.count)
            #expect(results[i].finish?.promptTokens == prompt.count)
        }
        #expect(results[2].finish?.stopReason == .contextFull)
        #expect(engine.activeCount == 0 && engine.queuedCount == 0)
    }

    /// A seeded request samples the same tokens alone, among three others, and in the Generator.
    @Test(.timeLimit(.minutes(1)), arguments: [1, 2])
    func seededSamplingIsTheSameAloneOrBatched(threads: Int) async throws {
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 4, threads: threads)
        defer { engine.shutdown() }
        let prompt = Self.randomTokens(4, seed: 21)
        let parameters = GenerateParameters(maxNewTokens: 30, temperature: 3, topK: 50, topP: 0.95, seed: 7)
        let alone = try await Self.collect(engine.generate(prompt: prompt, parameters: parameters))
        let others = (0..<3).map { i in
            engine.generate(prompt: Self.randomTokens(2 + 3 * i, seed: 30 + UInt64(i)),
                            parameters: GenerateParameters(maxNewTokens: 40, temperature: 1, seed: UInt64(100 + i)))
        }
        let batched = engine.generate(prompt: prompt, parameters: parameters)
        let batchedResult = try await Self.collect(batched)
        for stream in others { _ = try await Self.collect(stream) }
        #expect(alone.tokens.count == 30)
        #expect(batchedResult.tokens == alone.tokens)
        #expect(alone.tokens == (try Self.reference(prompt, parameters)).tokens)
        var other = parameters
        other.seed = 8
        #expect(try await Self.collect(engine.generate(prompt: prompt, parameters: other)).tokens != alone.tokens)
    }

    // MARK: - Stopping

    @Test(.timeLimit(.minutes(1)))
    func stopTokensBudgetsAndTheContextEndGeneration() async throws {
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 2, threads: 1)
        defer { engine.shutdown() }
        let prompt = Self.randomTokens(5, seed: 41), T = Self.config.maxSeqLen
        let greedy = try Self.reference(prompt, GenerateParameters(maxNewTokens: 20, temperature: 0)).tokens
        func run(_ prompt: [Int32], _ parameters: GenerateParameters) async throws -> ([Int32], EngineFinish) {
            let r = try await Self.collect(engine.generate(prompt: prompt, parameters: parameters))
            return (r.tokens, try #require(r.finish))
        }

        let stopAt = greedy[3]
        let (stopped, stopFinish) = try await run(prompt, GenerateParameters(temperature: 0, stopTokens: [stopAt, 299]))
        #expect(stopped == Array(greedy.prefix { $0 != stopAt }))
        #expect(stopFinish.stopReason == .stopToken(stopAt))
        #expect(stopFinish.completionTokens == stopped.count)

        let (limited, limitFinish) = try await run(prompt, GenerateParameters(maxNewTokens: 4, temperature: 0))
        #expect(limited == Array(greedy.prefix(4)) && limitFinish.stopReason == .maxNewTokens)
        #expect(limitFinish.promptTokens == 5 && limitFinish.completionTokens == 4)
        #expect(limitFinish.timeToFirstToken > 0 && limitFinish.timeToFirstToken <= limitFinish.seconds)

        let (none, noneFinish) = try await run(prompt, GenerateParameters(maxNewTokens: 0))
        #expect(none.isEmpty && noneFinish.stopReason == .maxNewTokens)

        let long = Self.randomTokens(T - 3, seed: 42)
        let (filled, fillFinish) = try await run(long, GenerateParameters(maxNewTokens: 50, temperature: 0))
        #expect(filled.count == 3 && fillFinish.stopReason == .contextFull)
        let (full, fullFinish) = try await run(Self.randomTokens(T, seed: 43), GenerateParameters())
        #expect(full.isEmpty && fullFinish.stopReason == .contextFull)
    }

    /// The blocking form: tokens arrive on the callback, returning false cancels, and it agrees with the stream.
    @Test(.timeLimit(.minutes(1)))
    func theBlockingFormStreamsToACallback() throws {
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 2, threads: 1)
        defer { engine.shutdown() }
        let prompt = Self.randomTokens(6, seed: 51)
        let greedy = try Self.reference(prompt, GenerateParameters(maxNewTokens: 10, temperature: 0)).tokens
        let seen = TokenLog()
        let finish = try engine.generate(prompt: prompt, parameters: GenerateParameters(maxNewTokens: 10, temperature: 0)) {
            seen.append($0)
            return seen.count < 3
        }
        #expect(seen.tokens == Array(greedy.prefix(3)))
        #expect(finish.stopReason == .cancelled && finish.completionTokens == 3)
        #expect(engine.activeCount == 0)
    }

    // MARK: - Cancellation, bad requests, shutdown

    /// One slot, held by a long request; a second waits. The engine is paced one step at a time. Dropping the
    /// first stream (or cancelling the task that reads it) after its first token frees the slot within a step,
    /// and the waiting request runs and completes.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func droppingAStreamFreesItsSlot(byCancellingTheTask: Bool) async throws {
        let gate = DispatchSemaphore(value: 0)
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 1, threads: 1, beforeStep: { gate.wait() })
        defer {
            for _ in 0..<1000 { gate.signal() }
            engine.shutdown()
        }
        let long = GenerateParameters(maxNewTokens: 1000, temperature: 0)  // would run to the context's end
        let short = GenerateParameters(maxNewTokens: 3, temperature: 0)
        let waiting: AsyncThrowingStream<EngineEvent, any Error>
        if byCancellingTheTask {
            let first = engine.generate(prompt: [1, 2, 3], parameters: long)
            waiting = engine.generate(prompt: [4, 5], parameters: short)
            #expect(engine.queuedCount == 2)
            let (tokenSeen, seen) = AsyncStream.makeStream(of: Void.self)
            let reader = Task {
                for try await event in first { if case .token = event { seen.yield() } }
            }
            gate.signal()  // one step: the first request is admitted, prefilled and gets two tokens
            for await _ in tokenSeen { break }
            reader.cancel()
        } else {
            // The stream and its iterator live only in here.
            func startAndReadOneToken() async throws -> AsyncThrowingStream<EngineEvent, any Error> {
                let first = engine.generate(prompt: [1, 2, 3], parameters: long)
                let second = engine.generate(prompt: [4, 5], parameters: short)
                #expect(engine.queuedCount == 2)
                gate.signal()
                var iterator = first.makeAsyncIterator()
                guard case .token = try await iterator.next() else {
                    Issue.record("the first event is not a token")
                    return second
                }
                return second
            }
            waiting = try await startAndReadOneToken()
        }
        #expect(engine.activeCount == 1 && engine.queuedCount == 1)
        for _ in 0..<4 { gate.signal() }  // far fewer steps than the long request needs
        #expect(await Self.eventually { engine.activeCount == 0 && engine.queuedCount == 0 },
                "the cancelled request still holds the slot")
        let result = try await Self.collect(waiting)
        #expect(result.tokens == (try Self.reference([4, 5], short)).tokens)
        #expect(result.finish?.stopReason == .maxNewTokens)
    }

    @Test(.timeLimit(.minutes(1)))
    func badRequestsThrowAndTheEngineKeepsServing() async throws {
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 2, threads: 1)
        defer { engine.shutdown() }
        let T = Self.config.maxSeqLen, V = Self.config.vocabSize
        let ok = GenerateParameters(maxNewTokens: 5, temperature: 0)
        let cases: [([Int32], GenerateParameters, any Error & Equatable)] = [
            ([], ok, ModelError.tokenCountMismatch(what: "the prompt", count: 0, expected: 1)),
            (Self.randomTokens(T + 1, seed: 61), ok, ModelError.sequenceTooLong(seq: T + 1, maxSeqLen: T)),
            ([1, 2, Int32(V)], ok, ModelError.tokenOutOfRange(what: "prompt", index: 2, token: Int32(V), vocabSize: V)),
            ([1, -1], ok, ModelError.tokenOutOfRange(what: "prompt", index: 1, token: -1, vocabSize: V)),
            ([1], GenerateParameters(temperature: -1), InferenceEngineError.invalidParameters(GenerateParameters(temperature: -1))),
            ([1], GenerateParameters(topP: 0), InferenceEngineError.invalidParameters(GenerateParameters(topP: 0))),
        ]
        for (prompt, parameters, expected) in cases {
            do {
                _ = try await Self.collect(engine.generate(prompt: prompt, parameters: parameters))
                Issue.record("no error for \(expected)")
            } catch {
                #expect(String(describing: error) == String(describing: expected))
                #expect(type(of: error) == type(of: expected))
            }
            #expect(throws: (any Error).self) { try engine.generate(prompt: prompt, parameters: parameters) { _ in true } }
        }
        let served = try await Self.collect(engine.generate(prompt: [1, 2], parameters: ok))
        #expect(served.tokens.count == 5 && served.finish?.stopReason == .maxNewTokens)
    }

    /// Shutdown while one request runs and one waits: both end with a cancelled finish, later requests throw.
    @Test(.timeLimit(.minutes(1)))
    func shutdownCancelsEverything() async throws {
        let gate = DispatchSemaphore(value: 0)
        let engine = InferenceEngine(weights: Self.weights, maxConcurrent: 1, threads: 1, beforeStep: { gate.wait() })
        let long = GenerateParameters(maxNewTokens: 1000, temperature: 0)
        let running = Task { [s = engine.generate(prompt: [1, 2, 3], parameters: long)] in try await Self.collect(s) }
        let waiting = Task { [s = engine.generate(prompt: [4], parameters: long)] in try await Self.collect(s) }
        gate.signal()
        #expect(await Self.eventually { engine.activeCount == 1 && engine.queuedCount == 1 })
        let stopped = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            engine.shutdown()  // waits for the engine thread, which is paused in the gate
            stopped.signal()
        }
        #expect(await Self.eventually { engine.isShuttingDown })
        gate.signal()  // the step under way finishes; then the loop sees the stop
        stopped.wait()
        let r = try await running.value, w = try await waiting.value
        #expect(r.finish?.stopReason == .cancelled && r.tokens.count >= 1 && r.tokens.count < 10)
        #expect(w.finish?.stopReason == .cancelled && w.tokens.isEmpty)
        #expect(engine.activeCount == 0 && engine.queuedCount == 0)
        do {
            _ = try await Self.collect(engine.generate(prompt: [1], parameters: long))
            Issue.record("a request after shutdown did not throw")
        } catch {
            #expect(error as? InferenceEngineError == .shutDown)
        }
        #expect(throws: InferenceEngineError.shutDown) { try engine.generate(prompt: [1], parameters: long) { _ in true } }
        engine.shutdown()  // again: nothing happens
    }

    // MARK: - No allocation

    /// A decode step of three rows, single-threaded, with the malloc hook armed.
    @Test(.enabled(if: isLinux, "the malloc hook is Linux-only"))
    func aDecodeStepAllocatesNothing() throws {
        let model = BatchedGenerator(weights: Self.weights, slots: 3, parallel: ParallelFor(threads: 1))
        for slot in 0..<3 { try model.prefill(slot: slot, tokens: Self.randomTokens(2 + slot, seed: UInt64(slot))[...]) }
        var sampler = Sampler(parameters: GenerateParameters(topK: 20), vocabSize: Self.config.vocabSize)
        for step in 0..<5 {
            if step == 1 { malloc_counter_arm() }  // after a first step, which may set up the runtime's metadata
            for row in 0..<3 { model.setRow(row, slot: row, token: Int32(step + row), position: 2 + row + step) }
            model.decode(rows: 3)
            for row in 0..<3 { _ = model.withLogits(row: row) { sampler.sample($0) } }
        }
        let allocations = malloc_counter_disarm()
        #expect(allocations == 0, "4 decode steps made \(allocations) heap allocations")
    }
}

/// Counts the engine's steps (from its thread), read by the test.
private final class StepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var steps = 0
    /// Counts one more step and returns the new count.
    func next() -> Int { lock.withLock { steps += 1; return steps } }
    var count: Int { lock.withLock { steps } }
}

/// Tokens a callback on the engine thread records, read by the test after the call returns.
private final class TokenLog: @unchecked Sendable {
    private let lock = NSLock()
    private var log: [Int32] = []
    func append(_ t: Int32) { lock.withLock { log.append(t) } }
    var tokens: [Int32] { lock.withLock { log } }
    var count: Int { lock.withLock { log.count } }
}
