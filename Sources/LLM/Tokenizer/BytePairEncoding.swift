// Byte-pair encoding of one pre-tokenized piece: repeatedly merge the adjacent pair of parts whose
// concatenation has the lowest rank (leftmost on ties), as tiktoken does. Short pieces use a simple scan;
// long ones (a megabyte of one character is one piece) use a heap, so encoding stays O(n log n).

/// Appends the tokens of `piece` to `out`. Every single byte must have a rank.
func bytePairEncode(_ piece: UnsafeBufferPointer<UInt8>, ranks: ByteStringTable, into out: inout [Int32]) {
    let n = piece.count
    let base = piece.baseAddress!
    if n == 1 {
        out.append(ranks.lookup(base, 1)!)
        return
    }
    if let whole = ranks.lookup(base, n) {
        out.append(whole)
        return
    }
    if n <= 64 {
        bytePairMergeScan(base, n, ranks: ranks, into: &out)
    } else {
        bytePairMergeHeap(base, n, ranks: ranks, into: &out)
    }
}

private let noRank = Int32.max

/// O(n²) merge for short pieces: parts are start offsets; `rank[i]` is the rank of parts i and i+1 joined.
private func bytePairMergeScan(_ p: UnsafePointer<UInt8>, _ n: Int, ranks: ByteStringTable, into out: inout [Int32]) {
    withUnsafeTemporaryAllocation(of: Int.self, capacity: n + 1) { starts in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: n + 1) { rank in
            var count = n + 1  // parts 0..<n plus the end sentinel
            for i in 0...n { starts[i] = i }
            func pairRank(_ i: Int) -> Int32 {
                i + 2 < count ? (ranks.lookup(p + starts[i], starts[i + 2] - starts[i]) ?? noRank) : noRank
            }
            for i in 0..<n - 1 { rank[i] = ranks.lookup(p + i, 2) ?? noRank }
            rank[n - 1] = noRank
            rank[n] = noRank
            while true {
                var best = noRank, at = -1
                for i in 0..<count - 2 where rank[i] < best {
                    best = rank[i]
                    at = i
                }
                if at < 0 { break }
                // Merge parts `at` and `at+1`: drop start[at+1], then refresh the two affected pair ranks.
                for k in at + 1..<count - 1 {
                    starts[k] = starts[k + 1]
                    rank[k] = rank[k + 1]
                }
                count -= 1
                rank[at] = pairRank(at)
                if at > 0 { rank[at - 1] = pairRank(at - 1) }
            }
            for i in 0..<count - 1 { out.append(ranks.lookup(p + starts[i], starts[i + 1] - starts[i])!) }
        }
    }
}

/// O(n log n) merge for long pieces: a doubly linked list of parts and a min-heap of candidate pairs
/// keyed by (rank, start); entries made stale by earlier merges are skipped when popped.
private func bytePairMergeHeap(_ p: UnsafePointer<UInt8>, _ n: Int, ranks: ByteStringTable, into out: inout [Int32]) {
    var next = Array(1...n)           // next[i]: start of the part after the one starting at i (n = end)
    var prev = Array(-1..<n - 1)      // prev[i]: start of the part before i (-1 = none)
    var alive = [Bool](repeating: true, count: n)
    var heap = BinaryHeap<MergeCandidate>()
    func push(_ i: Int) {
        let j = next[i]
        guard j < n else { return }
        let end = next[j]
        if let r = ranks.lookup(p + i, end - i) { heap.push(MergeCandidate(rank: r, start: i, end: end)) }
    }
    for i in 0..<n - 1 { push(i) }
    while let candidate = heap.pop() {
        let (i, end) = (candidate.start, candidate.end)
        // Stale unless parts i and next[i] still exist and still end where the entry says.
        guard alive[i], next[i] < n, next[next[i]] == end else { continue }
        let j = next[i]
        alive[j] = false
        next[i] = end
        if end < n { prev[end] = i }
        if prev[i] >= 0 { push(prev[i]) }
        push(i)
    }
    var i = 0
    while i < n {
        out.append(ranks.lookup(p + i, next[i] - i)!)
        i = next[i]
    }
}

/// A merge candidate: parts from `start` to `end` join into a token of this rank. Lowest rank first, then
/// leftmost, as tiktoken merges.
private struct MergeCandidate: HeapOrdered {
    let rank: Int32, start: Int, end: Int

    static func before(_ a: MergeCandidate, _ b: MergeCandidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.start < b.start
    }
}
