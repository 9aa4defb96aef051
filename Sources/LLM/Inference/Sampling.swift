// How the next token is chosen from the logits: the generation settings, and a seeded sampler that applies
// temperature, top-k and top-p (nucleus) filtering in that order, as Hugging Face's generate does.

/// Settings for `Generator.generate`.
public struct GenerateParameters: Sendable, Equatable {
    /// The most tokens to generate (a stop token is not counted). Generation also ends when the context fills.
    public var maxNewTokens: Int
    /// Divides the logits before the softmax. 0 means greedy: always the most likely token (the smallest id
    /// among equal logits, like torch.argmax), with no randomness.
    public var temperature: Float
    /// Sample only among the k most likely tokens; nil (or ≥ V) keeps all.
    public var topK: Int?
    /// Then keep only the most likely tokens whose probabilities (after top-k) first add up to at least topP;
    /// 1 keeps all.
    public var topP: Float
    /// Seeds the sampler's SplitMix64: the same seed, prompt and settings give the same tokens.
    public var seed: UInt64
    /// Tokens that end generation when sampled; the stop token itself is not emitted.
    public var stopTokens: Set<Int32>
    /// With the cache (the default), each new token costs one position's work; without it, every token
    /// recomputes the whole sequence, which gives the same tokens and is there to measure the difference.
    public var useKVCache: Bool

    public init(maxNewTokens: Int = 256, temperature: Float = 1, topK: Int? = nil, topP: Float = 1, seed: UInt64 = 1337,
                stopTokens: Set<Int32> = [], useKVCache: Bool = true) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.stopTokens = stopTokens
        self.useKVCache = useKVCache
    }

    /// Whether every setting is in range: maxNewTokens ≥ 0, a finite temperature ≥ 0, topK ≥ 1, 0 < topP ≤ 1.
    public var isValid: Bool {
        maxNewTokens >= 0 && temperature.isFinite && temperature >= 0 && (topK ?? 1) >= 1 && topP > 0 && topP <= 1
    }
}

/// Picks tokens from logits with the settings of one `GenerateParameters`. Its scratch memory (one id per
/// vocabulary entry) is allocated in `init`; `sample` allocates nothing.
struct Sampler {
    let temperature: Float
    let topK: Int
    let topP: Float
    var rng: SplitMix64
    /// Candidate ids: a max-heap in the front, the ids taken from it in the back, most likely last.
    private var ids: [Int32]

    init(parameters: GenerateParameters, vocabSize V: Int) {
        temperature = parameters.temperature
        topK = min(parameters.topK ?? V, V)
        topP = parameters.topP
        rng = SplitMix64(seed: parameters.seed)
        ids = [Int32](repeating: 0, count: V)
    }

    /// The next token for `logits` (V entries).
    mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        precondition(logits.count == ids.count, "logits has \(logits.count) entries for a vocabulary of \(ids.count)")
        let invT = 1 / temperature
        if !invT.isFinite { return argmax(logits) }  // temperature 0 (or so small that 1/T overflows)
        let u = rng.nextUniform(), topK = topK, topP = topP
        if topK == logits.count && topP >= 1 { return sampleSoftmax(logits, invT: invT, u: u) }
        return ids.withUnsafeMutableBufferPointer { ids in
            sampleNucleus(logits, ids: ids, topK: topK, topP: topP, invT: invT, u: u)
        }
    }
}

/// The first index of the largest logit (greedy decoding's token, as torch.argmax picks it).
public func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
    var best = 0
    for i in 1..<logits.count where logits[i] > logits[best] { best = i }
    return Int32(best)
}

/// Inverse-CDF sampling from softmax(logits · invT) over the whole vocabulary, in id order; u is uniform in [0,1).
private func sampleSoftmax(_ logits: UnsafeBufferPointer<Float>, invT: Float, u: Double) -> Int32 {
    let maxLogit = logits.max()!
    var total = 0.0
    for l in logits { total += Double(exp((l - maxLogit) * invT)) }
    let target = u * total
    var cumulative = 0.0
    for i in 0..<logits.count {
        cumulative += Double(exp((logits[i] - maxLogit) * invT))
        if cumulative > target { return Int32(i) }
    }
    return Int32(logits.count - 1)
}

/// Sampling from softmax(logits · invT) after top-k, then top-p: the fewest most likely tokens whose mass
/// reaches topP of the top k's (at least one). A binary max-heap over all ids (built in O(V)) hands out
/// candidates most likely first, so only the tokens the filters look at are ever ordered. ids is scratch (V).
private func sampleNucleus(_ logits: UnsafeBufferPointer<Float>, ids: UnsafeMutableBufferPointer<Int32>, topK: Int,
                           topP: Float, invT: Float, u: Double) -> Int32 {
    let V = ids.count
    for i in 0..<V { ids[i] = Int32(i) }
    for i in stride(from: V / 2 - 1, through: 0, by: -1) { siftDown(i, size: V, ids, logits) }
    let maxLogit = logits[Int(ids[0])]
    func weight(_ id: Int32) -> Double { Double(exp((logits[Int(id)] - maxLogit) * invT)) }
    // Popping moves the heap's top to ids[V - taken]: the taken ids sit at the back, most likely last.
    var taken = 0
    // The softmax's normaliser over the top k: all of V without a top-k, else the k most likely.
    var total = 0.0
    if topK == V {
        for i in 0..<V { total += weight(Int32(i)) }
    } else {
        while taken < topK {
            popMax(ids, size: V - taken, logits)
            taken += 1
            total += weight(ids[V - taken])
        }
    }
    var kept = 0, keptMass = 0.0
    while kept < topK && (kept == 0 || keptMass < Double(topP) * total) {
        if kept == taken {
            popMax(ids, size: V - taken, logits)
            taken += 1
        }
        kept += 1
        keptMass += weight(ids[V - kept])
    }
    let target = u * keptMass
    var cumulative = 0.0
    for r in 1...kept {
        cumulative += weight(ids[V - r])
        if cumulative > target { return ids[V - r] }
    }
    return ids[V - kept]
}

/// Moves the top of the max-heap ids[0..<size] to ids[size - 1] and restores the heap in ids[0..<size - 1].
private func popMax(_ ids: UnsafeMutableBufferPointer<Int32>, size: Int, _ logits: UnsafeBufferPointer<Float>) {
    ids.swapAt(0, size - 1)
    siftDown(0, size: size - 1, ids, logits)
}

/// Restores the max-heap property below `i` in ids[0..<size]: the larger logit first, the smaller id among equals.
private func siftDown(_ i: Int, size: Int, _ ids: UnsafeMutableBufferPointer<Int32>, _ logits: UnsafeBufferPointer<Float>) {
    var i = i
    while true {
        let left = 2 * i + 1, right = left + 1
        var top = i
        if left < size && ranksBefore(ids[left], ids[top], logits) { top = left }
        if right < size && ranksBefore(ids[right], ids[top], logits) { top = right }
        if top == i { return }
        ids.swapAt(i, top)
        i = top
    }
}

@inline(__always)
private func ranksBefore(_ a: Int32, _ b: Int32, _ logits: UnsafeBufferPointer<Float>) -> Bool {
    let la = logits[Int(a)], lb = logits[Int(b)]
    return la > lb || (la == lb && a < b)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
