// The SFT data loader: conversations rendered in the chat format, packed whole into rows of T+1 tokens, served
// as (B, T) batches whose targets are -1 wherever the loss mask is off. The trainer reads it through the same
// `TrainingBatches` protocol as the token-shard `DataLoader`, so schedules, evals, checkpoints and resume work
// unchanged.
//
// Packing (one epoch): walk the conversations in the epoch's order and append each to the current row while
// the row stays within T+1 tokens; otherwise close the row (pad it) and start a new one. A conversation never
// spans two rows, so every supervised token sees its whole conversation before it; the `<|bos|>` that starts
// each conversation is never a supervised target, so nothing is learned across a boundary. A conversation
// longer than T+1 tokens is cut to its first T+1 (`ChatRenderer.render(_:maxTokens:)`'s rule). Padding inputs
// are `<|bos|>` and padding targets -1. An epoch's rows are padded to a multiple of B with rows that are all
// padding; they add nothing to the loss or the gradient.

/// A source of (B, T) training batches whose position can be saved and restored exactly.
public protocol TrainingBatches: AnyObject {
    var batch: Int { get }
    var seq: Int { get }
    /// Batches in one pass over the data.
    var batchesPerEpoch: Int { get }
    var state: DataLoaderState { get }
    /// Fills B·T inputs and targets (target -1: not supervised) and moves to the next batch.
    func next(into inputs: inout [Int32], targets: inout [Int32]) throws
    func restore(_ saved: DataLoaderState) throws
}

extension DataLoader: TrainingBatches {}

/// Serves packed, masked (B, T) batches of rendered conversations. Its position is a `DataLoaderState` with
/// shard 0 and `sample` the next step of the epoch; each epoch's packing is rebuilt from the order's seed and
/// the epoch number, so a restored loader continues with exactly the batches it would have produced. As with
/// `DataLoader`, a step's k·W batches of B rows (k micro-batches on each of W ranks) are cut from one run of
/// the epoch's rows: micro-batch m of rank r is batch (sample·k + m)·W + r, so W ranks × k micro-batches read
/// the rows one process reads with k·W. Batches past the epoch's last row are padding (no supervised token).
public final class ConversationLoader: TrainingBatches {
    public let batch: Int
    public let seq: Int
    public let order: DataOrder
    public let rank: Int
    public let worldSize: Int
    /// Micro-batches each rank reads per step (gradient accumulation steps).
    public let microBatches: Int
    public private(set) var state: DataLoaderState
    /// The rendered conversations (ids and loss mask, each at most T+1 tokens).
    public let rendered: [(ids: [Int32], mask: [Bool])]
    /// How many conversations were cut to fit T+1 tokens.
    public let truncatedCount: Int
    /// Supervised target tokens in one epoch (each conversation's masked-in tokens after the first).
    public let supervisedTokens: Int
    private let padding: Int32
    /// The current epoch's rows: each a list of conversation indices, in order.
    private var rows: [[Int]] = []
    /// The next micro-batch of the current step.
    private var micro = 0

    /// Renders `conversations` with `renderer`, cut to seq+1 tokens each. Throws if `batch` or `seq` is below 1
    /// or B·T is over `TrainingConfig.maxMicroBatchTokens`, if there are no conversations, or none has a
    /// supervised token, or a token is not below `vocabSize`.
    public init(conversations: [Conversation], renderer: any ChatFormat, batch: Int, seq: Int, order: DataOrder,
                vocabSize: Int, source: String, rank: Int = 0, worldSize: Int = 1,
                microBatches: Int = 1) throws(DataError) {
        guard batch >= 1 else { throw .invalidArgument("--batch \(batch) must be at least 1") }
        guard worldSize > 0, (0..<worldSize).contains(rank) else {
            throw .invalidArgument("rank \(rank) must be in 0..<\(worldSize) (the world size)")
        }
        guard microBatches > 0, microBatches <= Int.max / worldSize else {
            throw .invalidArgument("micro-batches per step \(microBatches) must be positive")
        }
        guard seq >= 1 else { throw .invalidArgument("--seq \(seq) must be at least 1") }
        let (bt, overflow) = batch.multipliedReportingOverflow(by: seq)
        guard !overflow, bt <= TrainingConfig.maxMicroBatchTokens else {
            throw .invalidArgument("--batch \(batch) × --seq \(seq) is more than 2^31 tokens per micro-batch")
        }
        guard !conversations.isEmpty else { throw .noConversations(path: source) }
        self.batch = batch
        self.seq = seq
        self.order = order
        self.rank = rank
        self.worldSize = worldSize
        self.microBatches = microBatches
        padding = renderer.paddingToken
        var truncated = 0, supervised = 0
        var rendered = [(ids: [Int32], mask: [Bool])]()
        rendered.reserveCapacity(conversations.count)
        for (i, c) in conversations.enumerated() {
            let full: (ids: [Int32], mask: [Bool])
            do { full = try renderer.render(c, maxTokens: .max) } catch {
                throw .unrenderableConversation(path: source, conversation: i, reason: "\(error)")
            }
            let r = full.ids.count > seq + 1 ? (Array(full.ids[...seq]), Array(full.mask[...seq])) : full
            if full.ids.count > seq + 1 { truncated += 1 }
            if let bad = r.0.first(where: { Int($0) >= vocabSize }) {
                throw .conversationTokenOutOfRange(path: source, conversation: i, token: Int64(bad), vocabSize: Int64(vocabSize))
            }
            supervised += r.1.dropFirst().filter { $0 }.count
            rendered.append(r)
        }
        guard supervised > 0 else { throw .noSupervisedTokens(path: source) }
        self.rendered = rendered
        truncatedCount = truncated
        supervisedTokens = supervised
        state = DataLoaderState(epoch: 0, shard: 0, sample: 0, order: order, sampleTokens: nil)
        rows = pack(epoch: 0)
        state.sampleTokens = chunksPerStep * bt
    }

    /// Batches of B rows one step reads, over all ranks.
    private var chunksPerStep: Int { microBatches * worldSize }

    /// Steps in one pass over the data (the last may be partly padding).
    public var batchesPerEpoch: Int { Self.steps(rows: rows.count, batch: batch, chunks: chunksPerStep) }

    private static func steps(rows: Int, batch: Int, chunks: Int) -> Int {
        let batches = (rows + batch - 1) / batch
        return (batches + chunks - 1) / chunks
    }

    /// Rows of T+1 tokens for one epoch, packed from the conversations in that epoch's order.
    private func pack(epoch: Int) -> [[Int]] {
        var indices = Array(rendered.indices)
        if case .shuffled(let seed) = order {
            var rng = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
            for i in stride(from: indices.count - 1, to: 0, by: -1) {
                indices.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
        }
        var rows = [[Int]](), current = [Int](), used = 0
        for i in indices {
            let n = rendered[i].ids.count
            if used + n > seq + 1 && !current.isEmpty {
                rows.append(current)
                current = []
                used = 0
            }
            current.append(i)
            used += n
        }
        if !current.isEmpty { rows.append(current) }
        return rows
    }

    /// How many conversations each row of the current epoch holds (for tests and reports).
    public var rowSizes: [Int] { rows.map(\.count) }

    public func next(into inputs: inout [Int32], targets: inout [Int32]) throws {
        let T = seq
        precondition(inputs.count == batch * T && targets.count == batch * T, "inputs and targets must hold B·T tokens")
        let chunk = (state.sample * microBatches + micro) * worldSize + rank
        for b in 0..<batch {
            let r = chunk * batch + b
            var pos = 0  // tokens of the packed row written so far (row token p is input p and target p-1)
            if r < rows.count {
                for c in rows[r] {
                    let (ids, mask) = rendered[c]
                    for j in 0..<ids.count {
                        if pos < T { inputs[b * T + pos] = ids[j] }
                        if pos > 0 { targets[b * T + pos - 1] = mask[j] ? ids[j] : -1 }
                        pos += 1
                    }
                }
            }
            // Pad from the row's last token on: it has no next token, so it is no input either.
            for p in min(max(pos - 1, 0), T)..<T {
                inputs[b * T + p] = padding
                targets[b * T + p] = -1
            }
        }
        micro += 1
        guard micro == microBatches else { return }
        micro = 0
        state.sample += 1
        if state.sample == batchesPerEpoch {
            state.sample = 0
            state.epoch += 1
            rows = pack(epoch: state.epoch)
        }
    }

    public func restore(_ saved: DataLoaderState) throws {
        guard saved.order == order else {
            throw DataError.stateMismatch("it is for \(saved.order) order, this loader's is \(order)")
        }
        let stepTokens = chunksPerStep * batch * seq
        var saved = saved
        if saved.sampleTokens == nil, microBatches > 1 {
            // Saved before samples were steps: each sample was one micro-batch of every rank.
            guard saved.sample % microBatches == 0 else {
                throw DataError.stateMismatch("it was saved by an older llm mid-step; start the run again")
            }
            saved.sample /= microBatches
        }
        if let tokens = saved.sampleTokens, tokens != stepTokens {
            throw DataError.stateMismatch("its steps were \(tokens) tokens, this loader's are \(stepTokens) (ranks × micro-batches × B × T); keep the tokens per step when resuming")
        }
        saved.sampleTokens = stepTokens
        let rows = pack(epoch: saved.epoch)
        guard saved.epoch >= 0, saved.shard == 0,
              (0..<Self.steps(rows: rows.count, batch: batch, chunks: chunksPerStep)).contains(saved.sample) else {
            throw DataError.stateMismatch("epoch \(saved.epoch), batch \(saved.sample) is not a position in these conversations")
        }
        self.rows = rows
        micro = 0
        state = saved
    }

    /// Throws unless `fraction` is a valid held-out fraction for `split`: finite, 0 ≤ fraction < 1 (`llm sft
    /// --val-fraction`). Check a fraction from a user with this before calling `split`.
    public static func checkHeldOutFraction(_ fraction: Double) throws(DataError) {
        guard fraction.isFinite, (0..<1).contains(fraction) else {
            throw .invalidArgument("--val-fraction \(fraction) must be in [0, 1)")
        }
    }

    /// Splits conversations into (train, held-out): a seeded random `fraction` of them (rounded; at least one
    /// when the fraction is above 0, and never all of them) is held out, each side keeping the file's order.
    /// The split depends only on the seed and the number of conversations. `fraction` must be within 0...1
    /// (a programming error otherwise; `checkHeldOutFraction` checks a user's value first).
    public static func split(_ conversations: [Conversation], heldOutFraction fraction: Double,
                             seed: UInt64) -> (train: [Conversation], heldOut: [Conversation]) {
        precondition((0...1).contains(fraction), "held-out fraction \(fraction) must be within 0...1")
        var rng = SplitMix64(seed: seed ^ 0x5346_545F_5641_4C21)
        let want = conversations.count < 2 ? 0 : min(max(Int((Double(conversations.count) * fraction).rounded()), fraction > 0 ? 1 : 0),
                                                     conversations.count - 1)
        var indices = Array(conversations.indices)
        for i in stride(from: indices.count - 1, to: 0, by: -1) { indices.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let heldOut = Set(indices.prefix(want))
        var train = [Conversation](), held = [Conversation]()
        for (i, c) in conversations.enumerated() {
            if heldOut.contains(i) { held.append(c) } else { train.append(c) }
        }
        return (train, held)
    }
}
