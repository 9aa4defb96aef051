// Serving many conversations from one model: requests queue up, up to maxConcurrent of them hold a KV-cache
// slot each, and every step decodes one token for all of them together (BatchedGenerator), so the weights
// are read once per step whatever the number of conversations. One dedicated thread does all the compute;
// callers get their tokens as an AsyncThrowingStream (the HTTP server) or through a callback (the terminal).
import Dispatch
import Foundation

/// How one request ended, with its token counts and timings.
public struct EngineFinish: Sendable {
    /// `.maxNewTokens`, `.stopToken(id)`, `.contextFull`, or `.cancelled` (the consumer went away, or shutdown).
    public var stopReason: GenerationResult.StopReason
    public var promptTokens: Int
    /// Tokens delivered (a stop token is not counted).
    public var completionTokens: Int
    /// Seconds from submission to the first token, queue wait included; with no token, to the finish.
    public var timeToFirstToken: Double
    /// Seconds from submission to the finish.
    public var seconds: Double

    public init(stopReason: GenerationResult.StopReason, promptTokens: Int, completionTokens: Int,
                timeToFirstToken: Double, seconds: Double) {
        self.stopReason = stopReason
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.timeToFirstToken = timeToFirstToken
        self.seconds = seconds
    }
}

/// What a request's stream yields: its tokens as they are chosen, then one `.finished`.
public enum EngineEvent: Sendable {
    /// A generated token, as soon as it is chosen. A stop token is not emitted.
    case token(Int32)
    /// Always the last event of a stream that did not throw.
    case finished(EngineFinish)
}

/// Requests the engine refuses. Problems with the prompt itself are `ModelError`s, as the model reports them.
public enum InferenceEngineError: Error, Equatable, CustomStringConvertible {
    /// Some generation setting is out of range (see `GenerateParameters.isValid`).
    case invalidParameters(GenerateParameters)
    /// The engine was shut down.
    case shutDown

    public var description: String {
        switch self {
        case let .invalidParameters(p):
            "generation settings out of range (maxNewTokens \(p.maxNewTokens) must be ≥ 0, temperature \(p.temperature) ≥ 0, top-k \(p.topK.map(String.init) ?? "none") ≥ 1, top-p \(p.topP) in (0, 1])"
        case .shutDown: "the inference engine has been shut down"
        }
    }
}

/// Generation for many concurrent requests from one model.
///
/// Up to `maxConcurrent` requests generate together, each in its own KV-cache slot; more wait in a FIFO queue
/// and take the first slot that frees. A request joining is prefilled (its whole prompt in one forward pass,
/// as `Generator` does), then decodes in lockstep with the others: one batched forward per step, one token for
/// every active request. Each request samples with its own `Sampler` seeded from its parameters, and a row's
/// arithmetic does not depend on the other rows, so a seeded request gives the same tokens alone or among
/// others (and a Generator's, to float rounding). Prompt plus new tokens never pass the context (maxT):
/// generation stops there with `.contextFull`. `parameters.useKVCache` is ignored: the engine always caches.
/// A request with `tools` has its calculator calls answered, as `Generator.generate` does: the output tokens
/// are fed in its slot's next steps, one a step, and delivered as if sampled.
///
/// All compute runs on one thread of the engine's own (plus the kernels' Dispatch workers), never on the Swift
/// concurrency pool; callers on any thread only queue requests and read results. A new prompt is prefilled
/// whole before the next decode step, so a long prompt briefly stalls the others.
public final class InferenceEngine: Sendable {
    public let config: ModelConfig
    /// How many requests generate at once.
    public let maxConcurrent: Int
    private let core: EngineCore

    /// `maxConcurrent`: how many conversations decode together (batched); more requests wait in a FIFO queue.
    /// `threads`: compute threads for the kernels (default all cores). Allocates every slot's cache (maxT
    /// positions each: 2·L·maxT·C floats, 75 MB for GPT-2 124M) and all scratch memory here, and starts the
    /// engine thread.
    public convenience init(weights: ModelWeights, maxConcurrent: Int = 4, threads: Int? = nil) {
        self.init(weights: weights, maxConcurrent: maxConcurrent, threads: threads, beforeStep: nil)
    }

    /// `beforeStep` runs on the engine thread before each step that has work; tests block in it to pace the engine.
    init(weights: ModelWeights, maxConcurrent: Int, threads: Int?, beforeStep: (@Sendable () -> Void)?) {
        precondition(maxConcurrent >= 1, "maxConcurrent must be at least 1")
        precondition((threads ?? 1) >= 1, "threads must be at least 1")
        config = weights.config
        self.maxConcurrent = maxConcurrent
        let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
        core = EngineCore(model: BatchedGenerator(weights: weights, slots: maxConcurrent, parallel: parallel),
                          beforeStep: beforeStep)
    }

    deinit { core.shutdown() }

    /// Bytes an engine of `maxConcurrent` slots allocates for a model of `config` (every slot's cache and the
    /// scratch; not the weights), overflow-checked: nil when it overflows or the config is invalid.
    public static func requiredBytes(config: ModelConfig, maxConcurrent: Int, threads: Int? = nil) -> Int? {
        let parallel = threads.map { ParallelFor(threads: max($0, 1)) } ?? .allCores
        return BatchedGenerator.requiredBytes(config: config, slots: maxConcurrent, parallel: parallel)
    }

    /// Throws `ModelError.tooLarge` when the weights plus an engine of `maxConcurrent` slots do not fit in this
    /// machine's memory, or `.invalidConfig` when `maxConcurrent` is not positive. Call it before `init`, whose
    /// only answer to an engine that cannot fit is to stop the process.
    public static func checkMemory(config: ModelConfig, maxConcurrent: Int, threads: Int? = nil,
                                   available: Int = MemoryBudget.availableBytes) throws(ModelError) {
        guard maxConcurrent >= 1 else { throw .invalidConfig("--max-concurrent \(maxConcurrent) must be at least 1") }
        try MemoryBudget.check(MemoryBudget.add(MemoryBudget.weightBytes(config: config),
                                                requiredBytes(config: config, maxConcurrent: maxConcurrent, threads: threads)),
                               for: "serving \(maxConcurrent) conversations at once (the weights and a \(config.maxSeqLen)-token cache each)",
                               available: available)
    }

    /// Queues a generation. The stream yields `.token` events, then `.finished`. If the consumer stops
    /// iterating (its task is cancelled, or the stream and its iterator are dropped), the generation is
    /// cancelled and its slot freed within a step. A prompt that is empty, longer than maxT or holds a token
    /// not below V ends the stream by throwing the `ModelError`; invalid parameters or a shut-down engine throw
    /// `InferenceEngineError`. The engine keeps serving others either way.
    public func generate(prompt: [Int32],
                         parameters: GenerateParameters) -> AsyncThrowingStream<EngineEvent, any Error> {
        generate(prompt: prompt, parameters: parameters, tools: nil)
    }

    /// `generate(prompt:parameters:)` with the calculator answering the model's calls when `tools` is given
    /// (their output tokens are `.token` events like the others). A tool token not below V throws.
    public func generate(prompt: [Int32], parameters: GenerateParameters,
                         tools: ToolCalls?) -> AsyncThrowingStream<EngineEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: EngineEvent.self)
        do { try check(prompt: prompt, parameters: parameters, tools: tools) } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let request = Request(prompt: prompt, parameters: parameters, tools: tools, deliver: { token in
            if case .terminated = continuation.yield(.token(token)) { return false }
            return true
        }, complete: { result in
            switch result {
            case .success(let finish):
                continuation.yield(.finished(finish))
                continuation.finish()
            case .failure(let error):
                continuation.finish(throwing: error)
            }
        })
        continuation.onTermination = { [weak core] termination in
            if case .cancelled = termination { core?.cancel(request) }
        }
        do { try core.submit(request) } catch { continuation.finish(throwing: error) }
        return stream
    }

    /// Blocking form for the terminal REPL: queues the generation and waits for it. `onToken` is called on the
    /// engine's thread with each token; return false to cancel. Returns the finish record; throws as the
    /// stream does. Blocks the calling thread, so not for the Swift concurrency pool, and never from `onToken`.
    public func generate(prompt: [Int32], parameters: GenerateParameters, tools: ToolCalls? = nil,
                         onToken: @escaping @Sendable (Int32) -> Bool) throws -> EngineFinish {
        precondition(!core.isEngineThread, "the blocking generate would wait for itself on the engine thread")
        try check(prompt: prompt, parameters: parameters, tools: tools)
        let outcome = Outcome()
        let request = Request(prompt: prompt, parameters: parameters, tools: tools, deliver: onToken,
                              complete: outcome.set)
        try core.submit(request)
        return try outcome.wait().get()
    }

    /// Requests that hold a slot (being prefilled or generating).
    public var activeCount: Int { core.counts.active }
    /// Requests waiting for a slot.
    public var queuedCount: Int { core.counts.queued }

    /// Cancels everything (each stream ends with `.finished` whose reason is `.cancelled`; each blocking call
    /// returns such a record) and stops the engine thread; returns once it has stopped (at once when called
    /// on the engine thread). Later requests throw `InferenceEngineError.shutDown`. Calling it again does nothing.
    public func shutdown() { core.shutdown() }

    /// Whether `shutdown` has been called (tests wait for it).
    var isShuttingDown: Bool { core.isStopping }

    /// Throws what is wrong with a request before it is queued, so the engine only ever sees valid ones.
    private func check(prompt: [Int32], parameters: GenerateParameters, tools: ToolCalls?) throws {
        guard parameters.isValid else { throw InferenceEngineError.invalidParameters(parameters) }
        try tools?.check(vocabSize: config.vocabSize)
        guard !prompt.isEmpty else { throw ModelError.tokenCountMismatch(what: "the prompt", count: 0, expected: 1) }
        guard prompt.count <= config.maxSeqLen else {
            throw ModelError.sequenceTooLong(seq: prompt.count, maxSeqLen: config.maxSeqLen)
        }
        for (i, token) in prompt.enumerated() where token < 0 || Int(token) >= config.vocabSize {
            throw ModelError.tokenOutOfRange(what: "prompt", index: i, token: token, vocabSize: config.vocabSize)
        }
    }
}

// MARK: - The engine thread

/// One queued or running generation. `deliver` and `complete` are only called on the engine thread.
private final class Request: @unchecked Sendable {
    let prompt: [Int32]
    let parameters: GenerateParameters
    let tools: ToolCalls?
    let submitted = DispatchTime.now().uptimeNanoseconds
    /// Hands over a token; false when its consumer is gone, which cancels the generation.
    let deliver: @Sendable (Int32) -> Bool
    /// Hands over the outcome: called exactly once, last.
    let complete: @Sendable (Result<EngineFinish, any Error>) -> Void
    /// Set by the consumer's side when it goes away. Guarded by the engine's lock.
    var cancelled = false

    init(prompt: [Int32], parameters: GenerateParameters, tools: ToolCalls?, deliver: @escaping @Sendable (Int32) -> Bool,
         complete: @escaping @Sendable (Result<EngineFinish, any Error>) -> Void) {
        self.prompt = prompt
        self.parameters = parameters
        self.tools = tools
        self.deliver = deliver
        self.complete = complete
    }
}

/// The outcome of a blocking request, handed from the engine thread to the waiting caller.
private final class Outcome: @unchecked Sendable {
    private var result: Result<EngineFinish, any Error>?
    private let done = DispatchSemaphore(value: 0)

    func set(_ result: Result<EngineFinish, any Error>) {
        self.result = result
        done.signal()  // the semaphore orders the write before the waiter's read
    }

    func wait() -> Result<EngineFinish, any Error> {
        done.wait()
        return result!
    }
}

/// A request holding a slot. Engine thread only.
private struct Slot {
    enum Phase { case prefill, decode }
    let request: Request
    var phase = Phase.prefill
    var sampler: Sampler
    /// Where the request is in a calculator call, when it has tools.
    var toolState: ToolCallState?
    /// Tokens delivered so far; the last one is fed to the model in the next decode step.
    var generated = 0
    var last: Int32 = 0
    var firstToken: UInt64?
    /// The consumer went away (copied from the request under the lock).
    var cancelled = false
}

/// The engine's state and its thread. What callers touch (the queue, the counts, the stop flag and each
/// request's `cancelled`) is guarded by `condition`; the slots and the model belong to the engine thread.
private final class EngineCore: @unchecked Sendable {
    private let model: BatchedGenerator
    private let beforeStep: (@Sendable () -> Void)?
    /// Weak: the running thread keeps itself (and, through its block, this core) alive until `run` returns.
    private weak var thread: Thread?

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Request] = []
    private var active = 0
    private var stopping = false
    private var exited = false

    // Engine thread only.
    private var slots: [Slot?]
    private var rowSlots: [Int]  // decode row → slot, for one step

    init(model: BatchedGenerator, beforeStep: (@Sendable () -> Void)?) {
        self.model = model
        self.beforeStep = beforeStep
        slots = Array(repeating: nil, count: model.slots)
        rowSlots = Array(repeating: 0, count: model.slots)
        let thread = Thread { self.run() }
        thread.name = "llm-inference-engine"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    var isEngineThread: Bool { Thread.current == thread }

    var counts: (active: Int, queued: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (active, queue.count)
    }

    var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    func submit(_ request: Request) throws(InferenceEngineError) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw .shutDown }
        queue.append(request)
        condition.signal()
    }

    /// The consumer of `request` went away: a waiting request leaves the queue now, a running one at the next step.
    func cancel(_ request: Request) {
        condition.lock()
        defer { condition.unlock() }
        request.cancelled = true
        if let i = queue.firstIndex(where: { $0 === request }) {
            queue.remove(at: i)
        }
        condition.signal()
    }

    func shutdown() {
        condition.lock()
        defer { condition.unlock() }
        stopping = true
        condition.broadcast()
        if isEngineThread { return }  // the loop ends after the current step
        while !exited { condition.wait() }
    }

    // MARK: The loop

    private func run() {
        while true {
            condition.lock()
            while !stopping && queue.isEmpty && active == 0 { condition.wait() }
            let stop = stopping
            condition.unlock()
            if stop { break }
            beforeStep?()
            step()
        }
        // Shut down: whatever is running or waiting ends as cancelled.
        condition.lock()
        let waiting = queue
        queue.removeAll()
        condition.unlock()
        for i in slots.indices where slots[i] != nil { finish(i, .cancelled) }
        let now = DispatchTime.now().uptimeNanoseconds
        for request in waiting {
            let seconds = Double(now - request.submitted) / 1e9
            request.complete(.success(EngineFinish(stopReason: .cancelled, promptTokens: request.prompt.count,
                                                   completionTokens: 0, timeToFirstToken: seconds, seconds: seconds)))
        }
        condition.lock()
        exited = true
        condition.broadcast()
        condition.unlock()
    }

    /// One step: drop cancelled requests, admit waiting ones into free slots and prefill them, then decode one
    /// token for every request that needs one.
    private func step() {
        var admitted = false
        condition.lock()
        for i in slots.indices {
            if let request = slots[i]?.request {
                slots[i]!.cancelled = request.cancelled
            } else if !queue.isEmpty {
                let request = queue.removeFirst()
                active += 1
                slots[i] = Slot(request: request, sampler: Sampler(parameters: request.parameters,
                                                                   vocabSize: model.config.vocabSize),
                                toolState: request.tools.map { _ in ToolCallState() })
                admitted = true
            }
        }
        condition.unlock()

        for i in slots.indices where slots[i]?.cancelled == true { finish(i, .cancelled) }
        if admitted {
            for i in slots.indices where slots[i]?.phase == .prefill { prefill(i) }
        }

        var rows = 0
        for i in slots.indices where slots[i]?.phase == .decode {
            let s = slots[i]!
            model.setRow(rows, slot: i, token: s.last, position: s.request.prompt.count + s.generated - 1)
            rowSlots[rows] = i
            rows += 1
        }
        guard rows > 0 else { return }
        model.decode(rows: rows)
        for row in 0..<rows { next(rowSlots[row], row: row) }
    }

    /// Runs slot i's prompt and takes its first token, unless there is no room for one.
    private func prefill(_ i: Int) {
        let request = slots[i]!.request, maxT = model.config.maxSeqLen
        // The order of Generator.generate's checks: the token budget first, then the context.
        if request.parameters.maxNewTokens == 0 { return finish(i, .maxNewTokens) }
        if request.prompt.count == maxT { return finish(i, .contextFull) }
        do { try model.prefill(slot: i, tokens: request.prompt[...]) } catch {
            return complete(i, .failure(error))  // not reached: requests are checked when queued
        }
        next(i, row: 0)
    }

    /// Slot i's next token: a calculator output's next token if one is pending, else sampled from logits row `row`.
    private func next(_ i: Int, row: Int) {
        if let forced = slots[i]!.toolState?.takeForced() { return accept(i, forced, sampled: false) }
        accept(i, model.withLogits(row: row) { slots[i]!.sampler.sample($0) }, sampled: true)
    }

    /// Slot i's request chose `token`: stop there (a sampled stop token), or deliver it and decide whether to
    /// continue.
    private func accept(_ i: Int, _ token: Int32, sampled: Bool) {
        let request = slots[i]!.request, p = request.parameters
        if sampled && p.stopTokens.contains(token) { return finish(i, .stopToken(token)) }
        if let tools = request.tools { slots[i]!.toolState?.observe(token, tools: tools) }
        slots[i]!.generated += 1
        slots[i]!.last = token
        if slots[i]!.firstToken == nil { slots[i]!.firstToken = DispatchTime.now().uptimeNanoseconds }
        if !request.deliver(token) { return finish(i, .cancelled) }
        let generated = slots[i]!.generated
        if generated == p.maxNewTokens { return finish(i, .maxNewTokens) }
        if request.prompt.count + generated == model.config.maxSeqLen { return finish(i, .contextFull) }
        slots[i]!.phase = .decode
    }

    private func finish(_ i: Int, _ reason: GenerationResult.StopReason) {
        let s = slots[i]!
        let now = DispatchTime.now().uptimeNanoseconds
        func seconds(_ t: UInt64) -> Double { Double(t - s.request.submitted) / 1e9 }
        complete(i, .success(EngineFinish(stopReason: reason, promptTokens: s.request.prompt.count,
                                        completionTokens: s.generated, timeToFirstToken: seconds(s.firstToken ?? now),
                                        seconds: seconds(now))))
    }

    /// Frees slot i, then hands its request the outcome (so a consumer that sees the finish also sees the slot free).
    private func complete(_ i: Int, _ outcome: Result<EngineFinish, any Error>) {
        let request = slots[i]!.request
        slots[i] = nil
        condition.lock()
        active -= 1
        condition.unlock()
        request.complete(outcome)
    }
}
