// NCCL (libnccl.so.2) loaded at run time, for data parallel training on GPUs: the collectives of the Communicator
// protocol over device memory, on a CUDA stream. As llm.c does, the ranks are started by mpirun (one process per
// GPU) and agree on an NCCL id before NCCL connects them: rank 0 makes it, and it reaches the others through MPI
// (`NCCLUniqueID.exchange(through:)`) or, without MPI, through a file in a folder every rank can read
// (`NCCLUniqueID.exchange(file:rank:)`, e.g. on a shared file system).
//
// Only the binding, the id's exchange and the library's search are exercised without a GPU (NCCLTests); the
// collectives need one GPU per rank and join the CUDA backend's GPU checks.
import CNCCL
import Foundation

/// A loaded libnccl.
public final class NCCL: @unchecked Sendable {
    public let library: DynamicLibrary
    let api: API

    struct API {
        typealias Comm = OpaquePointer
        let ncclGetVersion: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
        let ncclGetUniqueId: @convention(c) (UnsafeMutableRawPointer?) -> Int32
        let ncclGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
        // ncclCommInitRank(comm*, nranks, ncclUniqueId by value, rank): the id is a C struct (CNCCL) so that it is
        // passed as C passes a 128-byte struct.
        let ncclCommInitRank: @convention(c) (UnsafeMutablePointer<Comm?>?, Int32, LLMNCCLUniqueID, Int32) -> Int32
        let ncclCommDestroy: @convention(c) (Comm?) -> Int32
        let ncclCommAbort: @convention(c) (Comm?) -> Int32
        let ncclCommGetAsyncError: @convention(c) (Comm?, UnsafeMutablePointer<Int32>?) -> Int32
        // (sendbuff, recvbuff, count, datatype, op, comm, stream)
        let ncclAllReduce: @convention(c) (UInt64, UInt64, Int, Int32, Int32, Comm?, OpaquePointer?) -> Int32
        let ncclReduceScatter: @convention(c) (UInt64, UInt64, Int, Int32, Int32, Comm?, OpaquePointer?) -> Int32
        // (sendbuff, recvbuff, sendcount, datatype, comm, stream)
        let ncclAllGather: @convention(c) (UInt64, UInt64, Int, Int32, Comm?, OpaquePointer?) -> Int32
        // (sendbuff, recvbuff, count, datatype, root, comm, stream)
        let ncclBroadcast: @convention(c) (UInt64, UInt64, Int, Int32, Int32, Comm?, OpaquePointer?) -> Int32
        let ncclGroupStart: @convention(c) () -> Int32
        let ncclGroupEnd: @convention(c) () -> Int32

        init(_ lib: DynamicLibrary) throws(CUDAError) {
            ncclGetVersion = try lib.function("ncclGetVersion")
            ncclGetUniqueId = try lib.function("ncclGetUniqueId")
            ncclGetErrorString = try lib.function("ncclGetErrorString")
            ncclCommInitRank = try lib.function("ncclCommInitRank")
            ncclCommDestroy = try lib.function("ncclCommDestroy")
            ncclCommAbort = try lib.function("ncclCommAbort")
            ncclCommGetAsyncError = try lib.function("ncclCommGetAsyncError")
            ncclAllReduce = try lib.function("ncclAllReduce")
            ncclReduceScatter = try lib.function("ncclReduceScatter")
            ncclAllGather = try lib.function("ncclAllGather")
            ncclBroadcast = try lib.function("ncclBroadcast")
            ncclGroupStart = try lib.function("ncclGroupStart")
            ncclGroupEnd = try lib.function("ncclGroupEnd")
        }
    }

    /// NCCL's ncclDataType_t and ncclRedOp_t values the collectives use.
    enum Constant {
        static let float: Int32 = 7      // ncclFloat32
        static let bfloat16: Int32 = 9   // ncclBfloat16
        static let sum: Int32 = 0        // ncclSum
    }

    /// Every path `load` tries: $LLM_NCCL_PATH, LD_LIBRARY_PATH, system folders, pip's nvidia/nccl/lib.
    public static func searchPaths() -> [String] {
        LibrarySearch.candidates(names: ["libnccl.so.2"], override: "LLM_NCCL_PATH", wheelFolders: ["nvidia/nccl/lib"])
    }

    public static func load() throws(CUDAError) -> NCCL {
        let lib = try DynamicLibrary.open(searchPaths(), what: "NCCL", files: "libnccl.so.2",
                                          hint: "install NCCL or `pip install nvidia-nccl-cu12`, or set LLM_NCCL_PATH to libnccl.so.2")
        return NCCL(library: lib, api: try API(lib))
    }

    init(library: DynamicLibrary, api: API) {
        self.library = library
        self.api = api
    }

    /// The library's version, e.g. 23203 for 2.32.3 (major·10000 + minor·100 + patch).
    public var version: Int {
        var v: Int32 = 0
        _ = api.ncclGetVersion(&v)
        return Int(v)
    }

    func check(_ result: Int32, _ call: @autoclosure () -> String) throws(DistributedError) {
        guard result != 0 else { return }
        let message = api.ncclGetErrorString(result).map { String(cString: $0) } ?? "unknown error"
        throw .nccl(call: call(), code: result, message: message)
    }

    /// A new id for a group of ranks (rank 0 makes it; the others receive it).
    public func uniqueID() throws(DistributedError) -> NCCLUniqueID {
        var id = NCCLUniqueID()
        let result = id.bytes.withUnsafeMutableBytes { api.ncclGetUniqueId($0.baseAddress) }
        try check(result, "ncclGetUniqueId")
        return id
    }
}

/// The 128 bytes that let NCCL's ranks find each other.
public struct NCCLUniqueID: Equatable, Sendable {
    public static let byteCount = 128
    public var bytes = [UInt8](repeating: 0, count: byteCount)

    public init() {}

    /// Rank 0's id on every rank, sent with the bootstrap communicator (MPI) every rank already has.
    public static func exchange(through communicator: any Communicator,
                                make: () throws(DistributedError) -> NCCLUniqueID) throws(DistributedError) -> NCCLUniqueID {
        var id = communicator.isMain ? try make() : NCCLUniqueID()
        var failure: DistributedError?
        id.bytes.withUnsafeMutableBytes { raw in
            do throws(DistributedError) { try communicator.broadcast(raw, root: 0) } catch { failure = error }
        }
        if let failure { throw failure }
        return id
    }

    /// Rank 0's id on every rank, through `file` (a folder every rank sees): rank 0 writes it (atomically, so a
    /// reader never sees half of it), the others wait up to `timeout` seconds for it. Start each run with a new
    /// file name, or remove the old file first: a stale id would connect nobody.
    public static func exchange(file: String, rank: Int, timeout: Double = 120,
                                make: () throws(DistributedError) -> NCCLUniqueID) throws(DistributedError) -> NCCLUniqueID {
        if rank == 0 {
            let id = try make()
            do {
                let writer = try AtomicFileWriter(path: file)
                try writer.write(id.bytes)
                try writer.commit()
            } catch {
                throw .invalid("could not write the NCCL id to \(file): \(error)")
            }
            return id
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let data = FileManager.default.contents(atPath: file), data.count == byteCount {
                var id = NCCLUniqueID()
                id.bytes = [UInt8](data)
                return id
            }
            guard Date() < deadline else {
                let seconds = timeout.rounded() == timeout ? "\(Int(timeout))" : "\(timeout)"
                throw .invalid("rank \(rank): no NCCL id appeared in \(file) within \(seconds) s (is rank 0 running, and is the folder shared?)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}

/// The collectives over device memory for one rank (one GPU per process), on a CUDA stream: what data-parallel
/// training on GPUs calls where MPICommunicator works on host memory. Needs a GPU; untested without one.
public final class NCCLCommunicator {
    public let nccl: NCCL
    public let rank: Int
    public let size: Int
    let comm: OpaquePointer?

    /// Joins the group of `size` ranks that share `id` (see NCCLUniqueID.exchange), on `device`.
    public init(nccl: NCCL, device: CUDADevice, id: NCCLUniqueID, rank: Int, size: Int) throws(DistributedError) {
        guard size > 0, (0..<size).contains(rank) else { throw .invalid("NCCL rank \(rank) of \(size)") }
        self.nccl = nccl
        self.rank = rank
        self.size = size
        do { try device.makeCurrent() } catch { throw .invalid("NCCL rank \(rank): \(error)") }
        var cId = LLMNCCLUniqueID()
        withUnsafeMutableBytes(of: &cId) { $0.copyBytes(from: id.bytes) }
        var c: OpaquePointer?
        try nccl.check(nccl.api.ncclCommInitRank(&c, Int32(size), cId, Int32(rank)), "ncclCommInitRank(rank \(rank) of \(size))")
        comm = c
    }

    deinit { _ = nccl.api.ncclCommDestroy(comm) }

    /// Ends the communicator at once, for a rank that must exit while others may be waiting in a collective.
    public func abort() { _ = nccl.api.ncclCommAbort(comm) }

    private static func type(_ precision: CUDAPrecision) -> Int32 {
        precision == .bf16 ? NCCL.Constant.bfloat16 : NCCL.Constant.float
    }

    /// buffer (count elements) = its sum over the ranks, in place.
    public func allReduceSum(_ buffer: CUdeviceptr, count: Int, precision: CUDAPrecision,
                             stream: CUDAStream) throws(DistributedError) {
        try nccl.check(nccl.api.ncclAllReduce(buffer, buffer, count, Self.type(precision), NCCL.Constant.sum, comm,
                                              stream.handle), "ncclAllReduce(\(count))")
    }

    /// receive (countPerRank elements) = the sum over the ranks of this rank's part of send (size·countPerRank).
    public func reduceScatterSum(send: CUdeviceptr, receive: CUdeviceptr, countPerRank: Int, precision: CUDAPrecision,
                                 stream: CUDAStream) throws(DistributedError) {
        try nccl.check(nccl.api.ncclReduceScatter(send, receive, countPerRank, Self.type(precision), NCCL.Constant.sum,
                                                  comm, stream.handle), "ncclReduceScatter(\(countPerRank))")
    }

    /// receive (size·countPerRank elements) = every rank's send (countPerRank), in rank order.
    public func allGather(send: CUdeviceptr, receive: CUdeviceptr, countPerRank: Int, precision: CUDAPrecision,
                          stream: CUDAStream) throws(DistributedError) {
        try nccl.check(nccl.api.ncclAllGather(send, receive, countPerRank, Self.type(precision), comm, stream.handle),
                       "ncclAllGather(\(countPerRank))")
    }

    /// buffer (count elements) = rank `root`'s, in place.
    public func broadcast(_ buffer: CUdeviceptr, count: Int, precision: CUDAPrecision, root: Int,
                          stream: CUDAStream) throws(DistributedError) {
        try nccl.check(nccl.api.ncclBroadcast(buffer, buffer, count, Self.type(precision), Int32(root), comm,
                                              stream.handle), "ncclBroadcast(\(count))")
    }
}
