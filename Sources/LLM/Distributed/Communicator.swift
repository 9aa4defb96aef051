// The collective operations data-parallel training needs, behind one protocol: MPI's (`MPICommunicator`, for
// `mpirun -np N llm train …`) and a single process's (`SingleProcess`, where every collective is the identity).
// The trainer calls them at the same points on every rank, in the same order, as MPI requires.

/// What can go wrong between processes; each one line for the user.
public enum DistributedError: Error, Equatable, CustomStringConvertible {
    /// The MPI library could not be loaded (or lacks a function).
    case libraryUnavailable(String)
    /// An MPI call returned an error code.
    case mpi(call: String, code: Int32, message: String)
    /// A size or setting that cannot be split across the ranks.
    case invalid(String)
    /// An NCCL call returned an error code.
    case nccl(call: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .libraryUnavailable(let why): "MPI: \(why)"
        case let .mpi(call, code, message): "MPI: \(call) failed with \(code) (\(message))"
        case .invalid(let why): why
        case let .nccl(call, code, message): "NCCL: \(call) failed with \(code) (\(message))"
        }
    }
}

/// A group of processes training one model: `size` ranks numbered from 0. Every rank must call the same
/// collectives in the same order with the same sizes.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Replaces `buffer` on every rank by its elementwise sum over the ranks.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws(DistributedError)
    /// Replaces `buffer` on every rank by its elementwise sum over the ranks.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws(DistributedError)
    /// Copies rank `root`'s `buffer` to every rank's.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws(DistributedError)
    /// Sums `buffer` over the ranks, leaving in each rank's `parts[rank]` the sum of that part; the rest of
    /// `buffer` is left undefined. `parts` cut `buffer` into `size` contiguous ranges in rank order.
    func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws(DistributedError)
    /// Gives every rank every rank's part: part r of `buffer` on rank r is copied into part r on all ranks.
    func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws(DistributedError)
    /// Returns when every rank has called it.
    func barrier() throws(DistributedError)
}

extension Communicator {
    public var isMain: Bool { rank == 0 }

    /// The sum of one number over the ranks.
    public func sum(_ value: Double) throws(DistributedError) -> Double {
        var v = value
        try withUnsafeMutablePointer(to: &v) { (p) throws(DistributedError) in
            try allReduceSum(UnsafeMutableBufferPointer(start: p, count: 1))
        }
        return v
    }

    /// Whether any rank says yes (a stop request, say), agreed on by all.
    public func any(_ flag: Bool) throws(DistributedError) -> Bool { try sum(flag ? 1 : 0) > 0 }

    /// Rank `root`'s text (a run directory's path, say), on every rank.
    public func broadcast(_ text: String, root: Int) throws(DistributedError) -> String {
        var bytes = Array(text.utf8)
        var count = Int64(bytes.count)
        try withUnsafeMutableBytes(of: &count) { (raw) throws(DistributedError) in try broadcast(raw, root: root) }
        guard (0..<(1 << 20)).contains(count) else { throw .invalid("a broadcast text of \(count) bytes") }
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
        var failure: DistributedError?
        bytes.withUnsafeMutableBytes { raw in
            do throws(DistributedError) { try broadcast(raw, root: root) } catch { failure = error }
        }
        if let failure { throw failure }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The `size` contiguous parts ZeRO-1 and the collectives cut `count` elements into: the first `count % size`
/// parts hold one element more than the others.
public func evenParts(count: Int, size: Int) -> [Range<Int>] {
    precondition(count >= 0 && size > 0)
    let base = count / size, extra = count % size
    var parts = [Range<Int>](), start = 0
    for r in 0..<size {
        let n = base + (r < extra ? 1 : 0)
        parts.append(start..<start + n)
        start += n
    }
    return parts
}

/// One process on its own: every collective leaves the data as it is.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {}
    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {}
    public func barrier() {}
}
