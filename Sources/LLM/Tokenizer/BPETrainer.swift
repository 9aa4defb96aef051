// Training a byte-level BPE vocabulary (nanochat's tokenizer step): split the text with the pattern, count
// each distinct piece once, then repeatedly merge the most frequent adjacent pair of tokens, updating the
// pair counts only in the pieces that contain it.
import Foundation

public enum BPETrainer {
    /// nanochat's chat special tokens, in id order after the merges.
    public static let chatSpecialTokens = [
        "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
        "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>",
    ]

    /// Trains a tokenizer with `vocabSize` ids in all: 256 bytes, then `vocabSize - 256 - specials.count`
    /// merges, then the special tokens. Ties between equally frequent pairs go to the smaller (left, right)
    /// id pair, so training is deterministic. `progress` is called with (merges done, merges wanted).
    public static func train(texts: [String], vocabSize: Int, pattern: SplitPattern, specialTokens: [String],
                             progress: ((Int, Int) -> Void)? = nil) throws -> Tokenizer {
        let merges = vocabSize - 256 - specialTokens.count
        guard merges >= 0 else {
            throw TokenizerError.malformed(path: "vocab size", reason: "\(vocabSize) is smaller than 256 bytes + \(specialTokens.count) special tokens")
        }
        // 1. Distinct pieces and how often each occurs.
        var pieceIndex = ByteStringTable(capacity: 1 << 16)
        var words = [[Int32]](), counts = [Int]()
        for var text in texts {
            text.withUTF8 { utf8 in
                guard !utf8.isEmpty else { return }
                SplitScanner(text: utf8, pattern: pattern).forEachPiece { start, end in
                    let p = utf8.baseAddress! + start, n = end - start
                    if let w = pieceIndex.lookup(p, n) {
                        counts[Int(w)] += 1
                    } else {
                        pieceIndex.insert(p, n, value: Int32(words.count))
                        words.append((0..<n).map { Int32(p[$0]) })
                        counts.append(1)
                    }
                }
            }
        }
        // 2. Pair counts weighted by piece counts, and which pieces hold each pair.
        var pairCount = [UInt64: Int](), pairWords = [UInt64: [Int32]]()
        for (w, word) in words.enumerated() where word.count > 1 {
            for i in 0..<word.count - 1 {
                let pair = pack(word[i], word[i + 1])
                pairCount[pair, default: 0] += counts[w]
                pairWords[pair, default: []].append(Int32(w))
            }
        }
        var heap = BinaryHeap<PairCount>()
        for (pair, count) in pairCount { heap.push(PairCount(count: count, pair: pair)) }
        var tokens: [[UInt8]] = (0..<256).map { [UInt8($0)] }
        // 3. Merge.
        while tokens.count < 256 + merges, let top = heap.pop() {
            let (count, pair) = (top.count, top.pair)
            let current = pairCount[pair] ?? 0
            if current != count {  // stale entry: re-queue with the true count
                if current > 0 { heap.push(PairCount(count: current, pair: pair)) }
                continue
            }
            let (a, b) = unpack(pair)
            let new = Int32(tokens.count)
            tokens.append(tokens[Int(a)] + tokens[Int(b)])
            var changed = Set<UInt64>()
            for w32 in pairWords.removeValue(forKey: pair) ?? [] {
                let w = Int(w32), word = words[w], c = counts[w]
                var merged = [Int32](), i = 0
                merged.reserveCapacity(word.count)
                var found = false
                while i < word.count {
                    if i + 1 < word.count && word[i] == a && word[i + 1] == b {
                        merged.append(new)
                        i += 2
                        found = true
                    } else {
                        merged.append(word[i])
                        i += 1
                    }
                }
                guard found else { continue }  // listed earlier, but an earlier merge already consumed it
                for i in 0..<word.count - 1 {
                    let p = pack(word[i], word[i + 1])
                    pairCount[p, default: 0] -= c
                    changed.insert(p)
                }
                for i in 0..<max(merged.count - 1, 0) {
                    let p = pack(merged[i], merged[i + 1])
                    pairCount[p, default: 0] += c
                    changed.insert(p)
                    if merged[i] == new || merged[i + 1] == new { pairWords[p, default: []].append(w32) }
                }
                words[w] = merged
            }
            pairCount[pair] = nil
            for p in changed where p != pair {
                if let n = pairCount[p], n > 0 { heap.push(PairCount(count: n, pair: p)) } else { pairCount[p] = nil }
            }
            progress?(tokens.count - 256, merges)
        }
        var specials = [String: Int32]()
        for name in specialTokens { specials[name] = Int32(tokens.count + specials.count) }
        return Tokenizer(tokens: tokens, pattern: pattern, specialTokens: specials)
    }

    private static func pack(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
    private static func unpack(_ p: UInt64) -> (Int32, Int32) { (Int32(truncatingIfNeeded: p >> 32), Int32(truncatingIfNeeded: p)) }
}

/// A pair and its count: most frequent first, then the smaller pair (left id, then right id).
private struct PairCount: HeapOrdered {
    let count: Int, pair: UInt64

    static func before(_ a: PairCount, _ b: PairCount) -> Bool {
        a.count != b.count ? a.count > b.count : a.pair < b.pair
    }
}
