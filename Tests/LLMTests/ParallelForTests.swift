// ParallelFor over the persistent WorkerPool: every index runs exactly once, in the chunks the split promises,
// whatever the thread count; loops started from several threads at once, or inside another loop's body, fall
// back to Dispatch and still cover everything; a tiny loop with a minimum per thread runs inline.
import Dispatch
import Foundation
import Synchronization
import Testing
@testable import LLM

@Suite struct ParallelForTests {
    /// Runs a loop of `count` items on `threads` threads and returns how often each index ran.
    static func visits(count: Int, threads: Int) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
        hits.initialize(repeating: 0, count: max(count, 1))
        defer { hits.deallocate() }
        ParallelFor(threads: threads)(count) { range in
            for i in range { hits[i] += 1 }  // chunks are disjoint: no two threads write one index
        }
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    @Test(arguments: [1, 2, 3, 4, 8])
    func everyIndexRunsOnce(threads: Int) {
        for count in [0, 1, 2, 3, 7, 64, 1000] {
            for _ in 0..<50 {  // many jobs in a row: the workers stay awake between them
                #expect(Self.visits(count: count, threads: threads) == [Int](repeating: 1, count: count))
            }
        }
    }

    @Test func chunksAreTheContiguousSplit() {
        let starts = Mutex<[Int]>([])
        ParallelFor(threads: 3)(10) { range in starts.withLock { $0.append(range.lowerBound) } }
        #expect(starts.withLock { $0.sorted() } == [0, 3, 6])
    }

    @Test func loopsFromManyThreadsAndNestedLoopsAllComplete() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<20 {
                ParallelFor(threads: 2)(4) { outer in
                    for _ in outer {
                        ParallelFor(threads: 2)(5) { inner in total.add(inner.count, ordering: .relaxed) }
                    }
                }
            }
        }
        #expect(total.load(ordering: .relaxed) == 8 * 20 * 4 * 5)
    }

    @Test func aMinimumPerThreadKeepsTinyLoopsOnTheCaller() {
        let caller = Thread.current
        var onCaller = true
        ParallelFor(threads: 4)(100, minimumPerThread: 1000) { _ in onCaller = onCaller && Thread.current == caller }
        #expect(onCaller)
        #expect(Self.visits(count: 5000, threads: 4).allSatisfy { $0 == 1 })
    }
}
