// The one seam through which kernels use threads.
import Dispatch

/// Splits `0..<count` into at most `threads` contiguous chunks and runs them concurrently: the first on the
/// caller, the others on the process's persistent workers (WorkerPool), or on Dispatch's when those are busy;
/// never on the Swift concurrency pool. With one thread it runs inline on the caller, which is also what a tiny
/// loop gets. The body must only write memory its own chunk owns.
public struct ParallelFor: Sendable {
    public let threads: Int

    public init(threads: Int) { self.threads = max(1, threads) }

    /// One thread per core the system reports.
    public static var allCores: ParallelFor { ParallelFor(threads: ProcessInfoCores.count) }

    public func callAsFunction(_ count: Int, _ body: (Range<Int>) -> Void) {
        callAsFunction(count, minimumPerThread: 1, body)
    }

    /// Like the plain call, but no thread gets fewer than `minimumPerThread` items (a chunk of cheap work that
    /// would take less time than waking a worker runs on fewer threads, or inline).
    public func callAsFunction(_ count: Int, minimumPerThread: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threads, max(1, count / max(1, minimumPerThread)))
        if chunks == 1 {
            body(0..<count)
            return
        }
        // The persistent workers when they are free (see WorkerPool), else Dispatch's.
        if WorkerPool.shared.run(count: count, chunks: chunks, body) { return }
        // Dispatch wants a @Sendable closure; the chunks are disjoint by contract, so sharing `body` is safe.
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { i in
                shared.value(count * i / chunks..<count * (i + 1) / chunks)
            }
        }
    }
}

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

enum ProcessInfoCores {
    static var count: Int {
        #if os(Linux)
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        let n = Int(sysconf(_SC_NPROCESSORS_ONLN))
        #endif
        return max(1, n)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
