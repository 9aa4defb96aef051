// Hugging Face's BPE model (tokenizer.json's "BPE", and GGUF vocabularies): a piece starts as one symbol per
// byte (byte-level) or per character (SentencePiece-style, with byte fallback for characters the vocabulary
// lacks), then the adjacent pair with the best merge rank is merged, leftmost first, until no pair has a merge.
// Unlike tiktoken's ranks, a merge is a pair of ids with its own priority, so ids need not follow merge order.

/// Merges keyed by the pair of ids they join: (left, right) → (rank, merged id). Open addressing in one flat
/// array, each key beside its value (a lookup is one cache miss in Gemma's 16 MB table), so lookups never allocate.
struct PairTable {
    private var slots: [UInt64]   // per slot: key (left << 32 | right; `empty` if free), value (rank << 32 | merged)
    private var mask: Int         // slot count - 1
    private(set) var count = 0
    private static let empty = UInt64.max  // ids are < 2^31, so no key is all ones

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = PairTable.emptySlots(size)
        mask = size - 1
    }

    private static func emptySlots(_ size: Int) -> [UInt64] {
        var s = [UInt64](repeating: 0, count: 2 * size)
        for i in stride(from: 0, to: s.count, by: 2) { s[i] = empty }
        return s
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    /// Adds a merge; a later merge of the same pair replaces an earlier one (as Hugging Face's map does).
    mutating func insert(left: Int32, right: Int32, rank: Int32, merged: Int32) {
        if (count + 1) * 4 > slots.count { grow() }  // half full at most
        let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
        var i = PairTable.slot(key, mask)
        while slots[2 * i] != PairTable.empty && slots[2 * i] != key { i = (i + 1) & mask }
        if slots[2 * i] == PairTable.empty { count += 1 }
        slots[2 * i] = key
        slots[2 * i + 1] = UInt64(UInt32(rank)) << 32 | UInt64(UInt32(merged))
    }

    /// The merge of `left` then `right` as rank << 32 | merged id, or nil.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> UInt64? {
        let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
        return slots.withUnsafeBufferPointer { slots in
            var i = PairTable.slot(key, mask)
            while true {
                let k = slots[2 * i]
                if k == key { return slots[2 * i + 1] }
                if k == PairTable.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Every merge as (left, right, rank, merged id), in no particular order.
    func forEach(_ body: (Int32, Int32, Int32, Int32) -> Void) {
        for e in stride(from: 0, to: slots.count, by: 2) where slots[e] != PairTable.empty {
            let k = slots[e], v = slots[e + 1]
            body(Int32(truncatingIfNeeded: k >> 32), Int32(truncatingIfNeeded: k), Int32(truncatingIfNeeded: v >> 32),
                 Int32(truncatingIfNeeded: v))
        }
    }

    private mutating func grow() {
        let old = slots
        slots = PairTable.emptySlots(old.count)  // twice the slots
        mask = old.count - 1
        for e in stride(from: 0, to: old.count, by: 2) where old[e] != PairTable.empty {
            var i = PairTable.slot(old[e], mask)
            while slots[2 * i] != PairTable.empty { i = (i + 1) & mask }
            slots[2 * i] = old[e]
            slots[2 * i + 1] = old[e + 1]
        }
    }
}

/// A Hugging Face BPE model over pieces of bytes: for byte-level models the piece's raw bytes, for
/// SentencePiece-style ones its normalized UTF-8 ("▁" for spaces). A class, so that encoding a piece passes one
/// reference rather than copying (and retaining) every table.
final class MergeModel: @unchecked Sendable {  // immutable after init
    /// Every token as the bytes it stands for in a piece → its id (byte-level: raw bytes; otherwise the
    /// UTF-8 of the token's string).
    let vocab: ByteStringTable
    let merges: PairTable
    /// Byte-level: the id of each single byte, -1 where the vocabulary lacks it (SmolLM2's lacks a few control
    /// bytes; such a byte becomes the unknown token, or nothing). Nil for character-level models.
    let byteTokens: [Int32]?
    /// Character-level with byte fallback: the ids of "<0x00>"…"<0xFF>" (nil where the vocabulary lacks one).
    let byteFallback: [Int32?]?
    let unknown: Int32?
    let fuseUnknown: Bool
    /// Llama 3: a piece that is itself a token is taken whole, without merging.
    let ignoreMerges: Bool
    /// Byte-level with a token for every byte: symbols need no unknown-token handling.
    let hasEveryByte: Bool

    init(vocab: ByteStringTable, merges: PairTable, byteTokens: [Int32]?, byteFallback: [Int32?]?, unknown: Int32?,
         fuseUnknown: Bool, ignoreMerges: Bool) {
        self.vocab = vocab
        self.merges = merges
        self.byteTokens = byteTokens
        self.byteFallback = byteFallback
        self.unknown = unknown
        self.fuseUnknown = fuseUnknown
        self.ignoreMerges = ignoreMerges
        hasEveryByte = byteTokens?.allSatisfy { $0 >= 0 } ?? false
    }

    /// Appends the ids of one piece.
    func encode(_ piece: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let n = piece.count
        guard n > 0 else { return }
        if ignoreMerges, let id = vocab.lookup(piece.baseAddress!, n) {
            out.append(id)
            return
        }
        // At most one symbol per byte (byte fallback gives one per byte of a character).
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: n) { symbols in
            var count = 0
            if let table = byteTokens, hasEveryByte {
                for i in 0..<n { symbols[i] = table[Int(piece[i])] }
                count = n
            } else {
                count = initialSymbols(piece, into: symbols)
            }
            let merged = count <= 64 ? mergeByScan(symbols.baseAddress!, count) : mergeByHeap(symbols.baseAddress!, count)
            out.append(contentsOf: UnsafeBufferPointer(start: symbols.baseAddress!, count: merged))
        }
    }

    /// One symbol per character (per byte for byte-level models), as Hugging Face's BPE starts a word: the
    /// character's token, else its bytes' "<0xXX>" tokens (byte fallback), else the unknown token (consecutive
    /// ones fused if `fuseUnknown`), else nothing. Returns the number of symbols.
    private func initialSymbols(_ piece: UnsafeBufferPointer<UInt8>, into symbols: UnsafeMutableBufferPointer<Int32>) -> Int {
        var count = 0, i = 0
        var pendingUnknown = false
        let base = piece.baseAddress!
        while i < piece.count {
            let n: Int, known: Int32?
            if let table = byteTokens {
                n = 1
                known = table[Int(piece[i])] >= 0 ? table[Int(piece[i])] : nil
            } else {
                n = min(utf8Length(lead: piece[i]), piece.count - i)
                known = vocab.lookup(base + i, n)
            }
            if let id = known {
                if pendingUnknown, let unknown {
                    symbols[count] = unknown
                    count += 1
                    pendingUnknown = false
                }
                symbols[count] = id
                count += 1
            } else if let fallback = byteFallback, (i..<i + n).allSatisfy({ fallback[Int(piece[$0])] != nil }) {
                // Hugging Face leaves a pending unknown token in place across byte-fallback characters.
                for k in i..<i + n {
                    symbols[count] = fallback[Int(piece[k])]!
                    count += 1
                }
            } else if let unknown {
                if pendingUnknown && !fuseUnknown {
                    symbols[count] = unknown
                    count += 1
                }
                pendingUnknown = true
            }
            i += n
        }
        if pendingUnknown, let unknown {
            symbols[count] = unknown
            count += 1
        }
        return count
    }

    /// O(n²) merging for short pieces: repeatedly merge the adjacent pair with the lowest rank, leftmost on
    /// ties. Returns the new symbol count.
    private func mergeByScan(_ s: UnsafeMutablePointer<Int32>, _ n: Int) -> Int {
        guard n > 1 else { return n }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { pair in
            // pair[i]: the merge of symbols i and i+1 (rank << 32 | merged id), UInt64.max if none.
            for i in 0..<n - 1 { pair[i] = merges.lookup(s[i], s[i + 1]) ?? .max }
            pair[n - 1] = .max  // read by the shift below, never chosen
            var count = n
            while count > 1 {
                var best = UInt64.max, at = -1
                // Rank is the high half, so this is lowest rank, then leftmost (one pair, one merged id).
                for i in 0..<count - 1 where pair[i] < best {
                    best = pair[i]
                    at = i
                }
                if at < 0 { break }
                s[at] = Int32(truncatingIfNeeded: best)
                for k in at + 1..<count - 1 {
                    s[k] = s[k + 1]
                    pair[k] = pair[k + 1]
                }
                count -= 1
                if at + 1 < count { pair[at] = merges.lookup(s[at], s[at + 1]) ?? .max }
                if at > 0 { pair[at - 1] = merges.lookup(s[at - 1], s[at]) ?? .max }
            }
            return count
        }
    }

    /// O(n log n) merging for long pieces, as Hugging Face's `Word::merge_all`: a linked list of symbols and a
    /// min-heap of candidate merges by (rank, position); an entry is stale if its pair no longer merges into
    /// the same id. Returns the new symbol count.
    private func mergeByHeap(_ s: UnsafeMutablePointer<Int32>, _ n: Int) -> Int {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * n) { links in
            let next = links.baseAddress!, prev = next + n  // next[i] = n: none; prev[i] = -1: none, -2: merged away
            for i in 0..<n {
                next[i] = i + 1
                prev[i] = i - 1
            }
            var heap = BinaryHeap<PairMerge>()
            heap.reserveCapacity(n)
            func push(_ i: Int) {
                let j = next[i]
                guard j < n, let m = merges.lookup(s[i], s[j]) else { return }
                heap.push(PairMerge(rank: Int32(truncatingIfNeeded: m >> 32), position: i, merged: Int32(truncatingIfNeeded: m)))
            }
            for i in 0..<n - 1 { push(i) }
            while let top = heap.pop() {
                let i = top.position
                guard prev[i] != -2, next[i] < n else { continue }
                let j = next[i]
                guard let m = merges.lookup(s[i], s[j]), Int32(truncatingIfNeeded: m) == top.merged else { continue }
                s[i] = top.merged
                prev[j] = -2
                next[i] = next[j]
                if next[j] < n { prev[next[j]] = i }
                if prev[i] >= 0 { push(prev[i]) }
                push(i)
            }
            var count = 0, i = 0
            while i < n {
                s[count] = s[i]
                count += 1
                i = next[i]
            }
            return count
        }
    }
}

/// A candidate merge: lowest rank first, then leftmost.
private struct PairMerge: HeapOrdered {
    let rank: Int32, position: Int, merged: Int32

    static func before(_ a: PairMerge, _ b: PairMerge) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.position < b.position
    }
}

/// The length of the UTF-8 sequence a lead byte starts (1 for bytes that cannot lead one).
@inline(__always)
func utf8Length(lead b: UInt8) -> Int {
    b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
}
