// GPT-2 for generation: a forward pass over only the new positions of one sequence, against a key/value cache
// of the earlier ones. Prefill is one call with the whole prompt; each decode step is one call with one token.

/// The generation engine: a GPT-2 that runs one growing sequence (`generate` is the sampling loop on top). It
/// keeps every layer's keys and values for the positions it has seen, so a forward pass of n new tokens costs
/// n positions' work (plus attention over the cache) and leaves the logits of the last one. It is a
/// `BatchedGenerator` with one slot, so `llm sample` and the server's engine run the same forward pass. The
/// cache and all scratch memory, for the model's whole context (maxT), are one allocation made here; `forward`
/// allocates nothing. The weights are only read.
public final class Generator {
    public let config: ModelConfig
    public let weights: ModelWeights
    /// How kernels split work across threads; change it freely between calls.
    public var parallel: ParallelFor {
        get { model.parallel }
        set { model.parallel = newValue }
    }
    /// When set, each operation's wall time is added to it.
    public var profile: OpProfile? {
        get { model.profile }
        set { model.profile = newValue }
    }
    /// Positions held in the cache; the next `forward` appends after them.
    public private(set) var count = 0

    private let model: BatchedGenerator

    public init(weights: ModelWeights, parallel: ParallelFor = .allCores) {
        config = weights.config
        self.weights = weights
        model = BatchedGenerator(weights: weights, slots: 1, parallel: parallel)
    }

    /// Forgets every cached position.
    public func reset() { count = 0 }

    /// Reads the logits of the last position of the last `forward`: V entries, the padded vocabulary left out.
    public func withLogits<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R { model.withLogits(row: 0, body) }

    /// The logits of the last position of the last `forward` (V entries, a copy).
    public func logits() -> [Float] { withLogits { Array($0) } }

    /// Runs `newTokens` at positions start..<start+n, adds their keys and values to the cache and leaves the
    /// last one's logits in `logits()`. `start` defaults to `count` (append); an earlier start drops the
    /// cached positions from there on, so `forward(sequence[...], at: 0)` recomputes a whole sequence. A model
    /// with sliding-window layers caches only their window, so its start is `count` or 0.
    /// Throws, leaving the cache as it was, if a token is not below V or the positions would pass maxT.
    /// Allocates nothing.
    public func forward(_ newTokens: ArraySlice<Int32>, at start: Int? = nil) throws(ModelError) {
        let t0 = start ?? count
        precondition(t0 >= 0 && t0 <= count, "start \(t0) is not within the \(count) cached positions")
        precondition(t0 == count || t0 == 0 || !config.hasSlidingLayers,
                     "a model with sliding-window layers keeps only their window: append, or start again at 0")
        precondition(!newTokens.isEmpty, "forward needs at least one token")
        try model.prefill(slot: 0, tokens: newTokens, at: t0)
        count = t0 + newTokens.count
    }
}
