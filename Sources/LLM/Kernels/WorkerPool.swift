// Persistent worker threads for ParallelFor, for the many short parallel loops of a decode step.
//
// Generating one token runs a couple of hundred parallel loops of a few microseconds each (a linear layer of a
// 135M model reads ~0.5 MB of quantized weights). Waking Dispatch's workers for each costs about as much as the
// loop itself, so two threads decoded slower than one. Here the workers stay awake between loops, spinning on a
// job counter for a short while (`spinNanoseconds`, then yielding their core until `yieldNanoseconds`) before
// they sleep, as llama.cpp's thread pool does: a loop
// that follows another within that time starts on every thread at once.
//
// One job runs at a time. A loop started while the pool is busy (another thread's, or a loop inside a loop's
// body) runs on Dispatch's workers instead, so callers never wait for each other.
import Dispatch
import Foundation
import Synchronization

final class WorkerPool: @unchecked Sendable {
    /// The process's pool; it grows to the most workers any loop has asked for.
    static let shared = WorkerPool()

    /// How long an idle worker spins on the job counter alone, then how long it keeps checking between
    /// `sched_yield`s (so that on a busy machine it gives its core away), before it sleeps.
    static let spinNanoseconds: UInt64 = 50_000
    static let yieldNanoseconds: UInt64 = 1_000_000

    // The current job, written by the caller before it bumps `generation` (release), read by workers after they
    // see the new generation (acquire).
    private var body: ((Range<Int>) -> Void)?
    private var count = 0
    private var chunks = 0

    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)

    // Sleeping workers wait on `wake`; `sleepers` and the workers' count are guarded by its lock.
    private let wake = NSCondition()
    private var sleepers = 0
    private var workers = 0

    /// Runs body over `count` items split in `chunks` contiguous ranges, chunk 0 on the caller and the others on
    /// the pool's workers; returns false at once (running nothing) if the pool is busy with another job.
    func run(count: Int, chunks: Int, _ body: (Range<Int>) -> Void) -> Bool {
        precondition(chunks >= 2, "a pool job has at least two chunks")
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        let workers = ensureWorkers(chunks - 1)
        withoutActuallyEscaping(body) { body in
            self.body = body
            self.count = count
            self.chunks = chunks
            // Every worker acknowledges every job, those past `chunks` without work: so none can still be looking
            // at this job's fields when the next one writes them.
            remaining.store(workers, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            wake.lock()
            if sleepers > 0 { wake.broadcast() }
            wake.unlock()
            body(0..<count / chunks)
            var spins = 0
            while remaining.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins & 1023 == 0 { sched_yield() } else { pause() }
            }
            self.body = nil
        }
        return true
    }

    /// Starts workers until there are at least `n`; returns how many there are.
    private func ensureWorkers(_ n: Int) -> Int {
        wake.lock()
        defer { wake.unlock() }
        while workers < n {
            workers += 1
            let index = workers, start = generation.load(ordering: .acquiring)
            let thread = Thread { [unowned self] in self.work(index: index, seen: start) }
            thread.name = "llm-worker-\(index)"
            thread.start()
        }
        return workers
    }

    private func work(index: Int, seen start: Int) {
        var seen = start
        while true {
            // Wait for the next job: spin while jobs come often, then sleep.
            var spins = 0
            var idleSince: UInt64 = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 255 != 0 {
                    pause()
                    continue
                }
                let now = DispatchTime.now().uptimeNanoseconds
                if idleSince == 0 { idleSince = now }
                if now - idleSince < Self.spinNanoseconds { continue }
                if now - idleSince < Self.yieldNanoseconds {
                    sched_yield()
                    continue
                }
                wake.lock()
                sleepers += 1
                while generation.load(ordering: .acquiring) == seen { wake.wait() }
                sleepers -= 1
                wake.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            if index < chunks, let body { body(count * index / chunks..<count * (index + 1) / chunks) }
            remaining.subtract(1, ordering: .releasing)
        }
    }

    /// A spin loop's step. (x86's `pause` hint is not reachable from Swift: the atomic load alone paces the loop.)
    @inline(__always) private func pause() {}
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
