// llm.c's distributed data loader (llmc/dataloader.h): token shards found by a glob pattern, read straight
// from disk a batch at a time into B×T inputs and the same tokens shifted by one as targets, in order or
// shuffled, and sliced across ranks. Its position is a small Codable value, so training can stop and resume
// on exactly the batch it would have read next.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a `DataLoader` walks its shards.
public enum DataOrder: Codable, Equatable, Sendable, CustomStringConvertible {
    /// The shards in path order, each read front to back.
    case sequential
    /// Every epoch permutes the shards, and each shard its samples, with generators derived from `seed`.
    case shuffled(seed: UInt64)

    public var description: String {
        switch self {
        case .sequential: "sequential"
        case .shuffled(let seed): "shuffled with seed \(seed)"
        }
    }
}

/// Where a loader is: all it needs, with its files and shapes, to go on with exactly the batches it would
/// have produced next. Permutations are not stored: each is rebuilt from the order's seed, the epoch and
/// the shard.
public struct DataLoaderState: Codable, Equatable, Sendable {
    /// Full passes over the data completed.
    public var epoch: Int
    /// The current shard's place in this epoch's shard order.
    public var shard: Int
    /// The next sample's place in the current shard's sample order.
    public var sample: Int
    /// The order the positions refer to; restoring into a loader with another order is an error.
    public var order: DataOrder
    /// Tokens per sample (worldSize × micro-batches × B × T) of the loader that saved it, so a sample index means
    /// the same tokens whatever the number of processes: a run resumed on another number of ranks (same tokens per
    /// step) continues on the same batch. Nil in states saved before it was recorded, whose samples were one
    /// micro-batch of every rank.
    public var sampleTokens: Int?

    public init(epoch: Int, shard: Int, sample: Int, order: DataOrder, sampleTokens: Int? = nil) {
        self.epoch = epoch
        self.shard = shard
        self.sample = sample
        self.order = order
        self.sampleTokens = sampleTokens
    }
}

/// Serves (B, T) batches of tokens from llm.c token shards.
///
/// Layout: a *sample* is one optimizer step's tokens: k·W·B·T (k micro-batches on each of W ranks), starting at
/// a multiple of that in its shard. It is cut into k·W *chunks* of B·T; micro-batch m of rank r reads chunk
/// m·W + r, that is the B·T+1 tokens starting there: inputs are the first B·T, targets the last B·T, so
/// targets[i] is the token after inputs[i], and row b of either is tokens b·T..<(b+1)·T of that slice. So at
/// every step the ranks read adjacent, disjoint slices of one sample, and together the same tokens as one
/// process accumulating k·W micro-batches: W ranks × k micro-batches and one process × k·W micro-batches see
/// the same data, in sequential and shuffled order alike. A shard of n tokens has ⌊(n − 1) / (k·W·B·T)⌋
/// samples; the tail shorter than a sample is not read, as in llm.c.
///
/// Unlike llm.c, which seeds its shuffle with 42 + rank, every rank shares one seed: that is what keeps the
/// ranks on the same global batch at every step, and so the union of their batches equal to the unsharded
/// stream. Only the headers are read when the loader is made; each batch then reads exactly its own B·T+1
/// tokens from disk into a buffer allocated once, so neither the corpus nor a shard is ever held in memory.
public final class DataLoader {
    public let files: [String]
    public let batch: Int
    public let seq: Int
    public let rank: Int
    public let worldSize: Int
    /// Micro-batches each rank reads per sample (gradient accumulation steps).
    public let microBatches: Int
    public let order: DataOrder
    /// When set, every token read must be below it.
    public let vocabSize: Int?
    /// Tokens in all the shards.
    public let tokenCount: Int
    /// Samples (optimizer steps) in an epoch, over all the shards.
    public let batchesPerEpoch: Int
    /// The position of the next batch; `state.epoch` counts the epochs completed.
    public private(set) var state: DataLoaderState

    private let shardTokens: [Int]       // by index into `files`
    private let samplesPerShard: [Int]   // by index into `files`
    private var shardOrder: [Int] = []   // this epoch's order of `files` indices
    private var sampleOrder: [Int32] = []  // the current shard's samples in reading order, when shuffled
    private var reader: (file: Int, shard: TokenShardReader)?
    private var window: [Int32]          // the B·T+1 tokens of the batch being read
    private var micro = 0                // the next micro-batch of the current sample

    /// Reads the shards that match a glob pattern (say `data/fineweb_train_*.bin`), in sorted order.
    public convenience init(pattern: String, batch: Int, seq: Int, rank: Int = 0, worldSize: Int = 1,
                            microBatches: Int = 1, order: DataOrder = .sequential, vocabSize: Int? = nil) throws(DataError) {
        try self.init(files: try Self.files(matching: pattern), batch: batch, seq: seq, rank: rank,
                      worldSize: worldSize, microBatches: microBatches, order: order, vocabSize: vocabSize)
    }

    /// Reads the given shards; sequential order follows the array. Every shard's header and size are
    /// checked here, so a bad or too small shard fails now rather than hours into training.
    public init(files: [String], batch: Int, seq: Int, rank: Int = 0, worldSize: Int = 1, microBatches: Int = 1,
                order: DataOrder = .sequential, vocabSize: Int? = nil) throws(DataError) {
        guard batch > 0, seq > 0 else { throw .invalidArgument("B=\(batch) and T=\(seq) must be positive") }
        guard worldSize > 0, (0..<worldSize).contains(rank) else {
            throw .invalidArgument("rank \(rank) must be in 0..<\(worldSize) (the world size)")
        }
        guard microBatches > 0 else { throw .invalidArgument("micro-batches per step \(microBatches) must be positive") }
        if let vocabSize, vocabSize <= 0 { throw .invalidArgument("vocab size \(vocabSize) must be positive") }
        guard !files.isEmpty else { throw .invalidArgument("no shard files") }
        let stride = [worldSize, microBatches, batch, seq].reduce(Int?(1)) { product, n in
            product.flatMap { p in
                let (r, overflow) = p.multipliedReportingOverflow(by: n)
                return overflow ? nil : r
            }
        }
        guard let stride, stride < Int.max / 2 else {
            throw .invalidArgument("\(worldSize) ranks × \(microBatches) micro-batches × B=\(batch) × T=\(seq) tokens per step is too many")
        }
        var tokens: [Int] = [], samples: [Int] = []
        for path in files {
            let shard = try TokenShardReader(path: path)
            guard shard.count > stride else {
                throw .shardTooSmall(path: path, tokens: shard.count, batch: batch, seq: seq,
                                     chunks: worldSize * microBatches)
            }
            tokens.append(shard.count)
            samples.append((shard.count - 1) / stride)
        }
        self.files = files
        self.batch = batch
        self.seq = seq
        self.rank = rank
        self.worldSize = worldSize
        self.microBatches = microBatches
        self.order = order
        self.vocabSize = vocabSize
        tokenCount = tokens.reduce(0, +)
        shardTokens = tokens
        samplesPerShard = samples
        batchesPerEpoch = samples.reduce(0, +)
        state = DataLoaderState(epoch: 0, shard: 0, sample: 0, order: order, sampleTokens: stride)
        window = [Int32](repeating: 0, count: batch * seq + 1)
        Self.fillShardOrder(&shardOrder, count: files.count, order: order, epoch: 0)
        fillSampleOrder()
    }

    /// The files matching a glob pattern, sorted (bytewise for ASCII names, whatever the locale).
    public static func files(matching pattern: String) throws(DataError) -> [String] {
        var matches = glob_t()
        defer { globfree(&matches) }
        let status = glob(pattern, 0, nil, &matches)
        if status == GLOB_NOMATCH { throw .noMatch(pattern: pattern) }
        guard status == 0 else { throw .unreadable(path: pattern, reason: "glob failed with status \(status)") }
        return (0..<Int(matches.gl_pathc)).compactMap { matches.gl_pathv[$0].map { String(cString: $0) } }.sorted()
    }

    /// Reads the next micro-batch into `inputs` and `targets` (B·T each, row-major (B, T)), reusing their
    /// storage: nothing is allocated. On an error the position does not move.
    public func next(into inputs: inout [Int32], targets: inout [Int32]) throws(DataError) {
        let n = batch * seq
        precondition(inputs.count == n && targets.count == n, "inputs and targets must hold B·T = \(n) tokens")
        let file = shardOrder[state.shard]
        let sample = sampleOrder.isEmpty ? state.sample : Int(sampleOrder[state.sample])
        let start = ((sample * microBatches + micro) * worldSize + rank) * n
        let shard = try openShard(file)
        try window.withUnsafeMutableBufferPointer { (window) throws(DataError) in
            try shard.read(start..<start + n + 1, into: window)
        }
        if let vocabSize {
            for i in 0...n where Int(window[i]) >= vocabSize {
                throw .tokenOutOfRange(path: files[file], token: Int64(window[i]), position: start + i,
                                       vocabSize: Int64(vocabSize))
            }
        }
        for i in 0..<n {
            inputs[i] = window[i]
            targets[i] = window[i + 1]
        }
        advance()
    }

    /// The next batch in new arrays, B·T tokens each, row-major (B, T).
    public func next() throws(DataError) -> (inputs: [Int32], targets: [Int32]) {
        var inputs = [Int32](repeating: 0, count: batch * seq)
        var targets = [Int32](repeating: 0, count: batch * seq)
        try next(into: &inputs, targets: &targets)
        return (inputs, targets)
    }

    /// Moves to a position saved from `state`, by this loader or another over the same files and tokens per
    /// sample (any split of them into ranks and micro-batches), at the start of a sample.
    public func restore(_ saved: DataLoaderState) throws(DataError) {
        guard saved.order == order else {
            throw .stateMismatch("it is for \(saved.order) order, this loader's is \(order)")
        }
        let stride = worldSize * microBatches * batch * seq
        var saved = saved
        if saved.sampleTokens == nil, microBatches > 1 {
            // Saved before samples were steps: each sample was one micro-batch of every rank.
            guard order == .sequential, saved.sample % microBatches == 0 else {
                throw .stateMismatch("it was saved by an older llm whose shuffled batches with gradient accumulation were drawn differently; resume it with --total-batch-tokens equal to batch × seq, or start the run again")
            }
            saved.sample /= microBatches
        }
        if let tokens = saved.sampleTokens, tokens != stride {
            throw .stateMismatch("its steps were \(tokens) tokens, this loader's are \(stride) (ranks × micro-batches × B × T); keep the tokens per step when resuming")
        }
        saved.sampleTokens = stride
        guard saved.epoch >= 0, (0..<files.count).contains(saved.shard) else {
            throw .stateMismatch("epoch \(saved.epoch), shard \(saved.shard) is not a position in \(files.count) shards")
        }
        var newShardOrder: [Int] = []
        Self.fillShardOrder(&newShardOrder, count: files.count, order: order, epoch: saved.epoch)
        let file = newShardOrder[saved.shard]
        guard (0..<samplesPerShard[file]).contains(saved.sample) else {
            throw .stateMismatch("sample \(saved.sample) is not below \(files[file])'s \(samplesPerShard[file]) samples")
        }
        state = saved
        micro = 0
        shardOrder = newShardOrder
        fillSampleOrder()
    }

    private func advance() {
        micro += 1
        guard micro == microBatches else { return }
        micro = 0
        state.sample += 1
        guard state.sample == samplesPerShard[shardOrder[state.shard]] else { return }
        state.sample = 0
        state.shard += 1
        if state.shard == files.count {
            state.shard = 0
            state.epoch += 1
            Self.fillShardOrder(&shardOrder, count: files.count, order: order, epoch: state.epoch)
        }
        fillSampleOrder()
    }

    /// The current shard's reader, opening it (and closing the previous one) when the shard changes.
    private func openShard(_ file: Int) throws(DataError) -> TokenShardReader {
        if let reader, reader.file == file { return reader.shard }
        reader = nil
        let shard = try TokenShardReader(path: files[file])
        // Samples and positions were computed from the token count when the loader was made.
        guard shard.count == shardTokens[file] else {
            throw .unreadable(path: files[file], reason: "it had \(shardTokens[file]) tokens when the loader was made, "
                              + "now \(shard.count)")
        }
        reader = (file, shard)
        return shard
    }

    /// Sets this epoch's order of the shards: their array order, or a permutation drawn for the epoch.
    private static func fillShardOrder(_ shardOrder: inout [Int], count: Int, order: DataOrder, epoch: Int) {
        shardOrder.removeAll(keepingCapacity: true)
        shardOrder.append(contentsOf: 0..<count)
        if case .shuffled(let seed) = order {
            var rng = generator(seed: seed, epoch: epoch, stream: 0)
            shuffle(&shardOrder, using: &rng)
        }
    }

    /// Sets the current shard's sample order: empty (meaning 0, 1, 2, …) when sequential, else a
    /// permutation drawn for this epoch and shard.
    private func fillSampleOrder() {
        sampleOrder.removeAll(keepingCapacity: true)
        guard case .shuffled(let seed) = order else { return }
        let file = shardOrder[state.shard]
        sampleOrder.append(contentsOf: (0..<samplesPerShard[file]).lazy.map { Int32($0) })
        var rng = Self.generator(seed: seed, epoch: state.epoch, stream: file + 1)
        Self.shuffle(&sampleOrder, using: &rng)
    }

    /// A generator for one permutation, keyed by hashing (seed, epoch, stream) through SplitMix64's mixer
    /// rather than drawn from one running generator, so a restored loader rebuilds its current
    /// permutations directly, without replaying the epoch. Stream 0 orders the shards; stream f + 1 orders
    /// the samples of file f.
    static func generator(seed: UInt64, epoch: Int, stream: Int) -> SplitMix64 {
        func mix(_ x: UInt64) -> UInt64 {
            var rng = SplitMix64(seed: x)
            return rng.next()
        }
        return SplitMix64(seed: mix(mix(mix(seed) ^ UInt64(epoch)) ^ UInt64(stream)))
    }

    /// Fisher–Yates. Each index is the high word of a 64×64-bit product (Lemire's method without the
    /// rejection step: a bias below n / 2^64), spelled out so that the permutation for a seed cannot change
    /// with the standard library's `shuffle`.
    static func shuffle<T>(_ values: inout [T], using rng: inout SplitMix64) {
        for i in values.indices.reversed() where i > 0 {
            let j = Int(UInt64(i + 1).multipliedFullWidth(by: rng.next()).high)
            values.swapAt(i, j)
        }
    }
}
