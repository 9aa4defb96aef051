// One up-front allocation of Floats: parameters, gradients, moments and activations each live in one.

/// A fixed-size, 64-byte-aligned, zero-initialised buffer of Floats, freed when the arena goes away.
/// The pointer never escapes the library: kernels get it inside the model's own methods.
///
/// Arenas of a megabyte or more are anonymous memory maps, whose pages the kernel supplies zeroed on first
/// touch: only what is written or read counts in the process's resident memory. A generator's scratch sized for
/// the whole context costs only the rows a prompt uses, and float slots of weights kept quantized elsewhere
/// (QuantizedWeights) cost nothing.
public final class FloatArena: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    public let count: Int
    /// Bytes mapped, or 0 when the arena came from the allocator.
    private let mappedBytes: Int

    static let mapThreshold = 1 << 20

    public init(count: Int) {
        self.count = count
        let bytes = max(count, 1) * 4
        if bytes >= Self.mapThreshold,
           let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED {
            mappedBytes = bytes
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))  // zero pages: already initialised
        } else {
            mappedBytes = 0
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            base.initialize(repeating: 0, count: max(count, 1))
        }
    }

    deinit {
        if mappedBytes > 0 { munmap(base, mappedBytes) } else { base.deallocate() }
    }

    public func zero() { base.update(repeating: 0, count: count) }

    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count, "arena index out of range"); return base[i] }
        set { precondition(i >= 0 && i < count, "arena index out of range"); base[i] = newValue }
    }

    /// Read access to a contiguous range as a buffer (for formats and tests).
    public func withBuffer<R>(_ range: Range<Int>? = nil, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let r = range ?? 0..<count
        precondition(r.lowerBound >= 0 && r.upperBound <= count, "arena range out of bounds")
        return try body(UnsafeBufferPointer(start: base + r.lowerBound, count: r.count))
    }

    public func withMutableBuffer<R>(_ range: Range<Int>? = nil,
                                     _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        let r = range ?? 0..<count
        precondition(r.lowerBound >= 0 && r.upperBound <= count, "arena range out of bounds")
        return try body(UnsafeMutableBufferPointer(start: base + r.lowerBound, count: r.count))
    }

    /// A copy of a range as an array (allocates; not for hot paths).
    public func array(_ range: Range<Int>? = nil) -> [Float] { withBuffer(range) { Array($0) } }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
