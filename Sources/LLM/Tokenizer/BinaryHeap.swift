// A binary heap, shared by BPE encoding (merge candidates, lowest rank first) and BPE training (pairs, most
// frequent first). Elements say their own order, so each use is specialized with no closure calls.

protocol HeapOrdered {
    /// Whether `a` must come out of the heap before `b`.
    static func before(_ a: Self, _ b: Self) -> Bool
}

struct BinaryHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func reserveCapacity(_ n: Int) { items.reserveCapacity(n) }

    mutating func push(_ element: Element) {
        items.append(element)
        var c = items.count - 1
        while c > 0 {
            let parent = (c - 1) / 2
            guard Element.before(items[c], items[parent]) else { break }
            items.swapAt(c, parent)
            c = parent
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var c = 0
            while true {
                let l = 2 * c + 1, r = l + 1
                var m = c
                if l < items.count && Element.before(items[l], items[m]) { m = l }
                if r < items.count && Element.before(items[r], items[m]) { m = r }
                if m == c { break }
                items.swapAt(c, m)
                c = m
            }
        }
        return top
    }
}
