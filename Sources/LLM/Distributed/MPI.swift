// MPI (Open MPI or MPICH) through function pointers looked up at run time, like the CUDA libraries: the
// package links nothing from MPI, builds and runs without it, and loads libmpi only when `mpirun` started the
// process. Only what data-parallel training needs is bound: rank and size, all-reduce, broadcast,
// reduce-scatter, all-gather and barrier on MPI_COMM_WORLD, in fp32 and fp64.
//
// The two implementations differ in their handles: Open MPI's are addresses of global objects (found with
// dlsym), MPICH's are fixed integers (mpi.h). Both are passed as pointer-sized arguments, which the C calling
// conventions of x86-64 and arm64 accept for MPICH's int handles.
import Foundation

/// MPI_COMM_WORLD of the process's MPI library. Made once (`MPICommunicator.world()`), which initialises MPI;
/// `finalize()` ends it before the process exits.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// The file the library was loaded from, and which implementation it is.
    public let libraryPath: String
    public let implementation: String

    private let api: API
    private let library: DynamicLibrary
    private var finalized = false

    nonisolated(unsafe) private static var shared: MPICommunicator?
    private static let lock = NSLock()

    /// The number of processes `mpirun` (Open MPI, or MPICH's hydra) started this one among, from the environment
    /// they set; nil when the process was not started by an MPI launcher.
    public static func launchedWorldSize(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"] {
            if let value = environment[key], let n = Int(value), n > 0 { return n }
        }
        return nil
    }

    /// How many ranks of the job run on this machine (Open MPI's and MPICH's launchers say), or nil outside one.
    public static func localRanks(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"] {
            if let value = environment[key], let n = Int(value), n > 0 { return n }
        }
        return nil
    }

    /// MPI_COMM_WORLD, initialising MPI (thread level MPI_THREAD_SERIALIZED: one thread at a time calls it) on
    /// the first call. The library is `LLM_MPI_LIBRARY` when set, else the one the launcher belongs to: Open
    /// MPI's libmpi.so.40 under Open MPI's mpirun, MPICH's libmpi.so.12 (or libmpich.so.12) under another
    /// (hydra), found by the system loader. A library that sees another number of ranks than the launcher
    /// started (one implementation's library under the other's launcher: each rank alone) is refused.
    public static func world() throws(DistributedError) -> MPICommunicator {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        let made = try MPICommunicator()
        shared = made
        return made
    }

    private init() throws(DistributedError) {
        let environment = ProcessInfo.processInfo.environment
        let openMPILaunch = environment.keys.contains { $0.hasPrefix("OMPI_COMM_WORLD_") }
        var candidates = openMPILaunch ? ["libmpi.so.40", "libmpi.so"] : ["libmpi.so.12", "libmpich.so.12", "libmpi.so"]
        if let path = environment["LLM_MPI_LIBRARY"], !path.isEmpty { candidates = [path] }
        do {
            library = try DynamicLibrary.open(candidates, what: "MPI library", files: "libmpi",
                                              hint: "install Open MPI (Debian: apt install openmpi-bin) or MPICH, or set LLM_MPI_LIBRARY to its libmpi.so",
                                              global: true)
            api = try API(library)
        } catch {
            throw .libraryUnavailable("\(error)")
        }
        libraryPath = library.path
        implementation = api.openMPI ? "Open MPI" : "MPICH"
        var initialized: Int32 = 0
        try api.check("MPI_Initialized", api.initialized(&initialized))
        if initialized == 0 {
            var provided: Int32 = 0
            try api.check("MPI_Init_thread", api.initThread(nil, nil, API.threadSerialized, &provided))
        }
        var r: Int32 = 0, n: Int32 = 0
        try api.check("MPI_Comm_rank", api.commRank(api.commWorld, &r))
        try api.check("MPI_Comm_size", api.commSize(api.commWorld, &n))
        rank = Int(r)
        size = Int(n)
        if let launched = Self.launchedWorldSize(environment: environment), launched != size {
            throw .libraryUnavailable("\(library.path) (\(implementation)) sees \(size) rank(s), but the launcher started \(launched): it is not the launcher's MPI; set LLM_MPI_LIBRARY to the libmpi.so of the mpirun you use")
        }
    }

    /// Ends MPI (every rank must call it). Later collectives are errors.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = api.finalize()
    }

    /// Ends every process of the job at once with `code` (after a fatal error on this rank), so none waits
    /// for a rank that will never call the next collective.
    public func abort(code: Int32) -> Never {
        _ = api.abort(api.commWorld, code)
        exit(code)
    }

    /// The most elements one MPI call moves (its counts are C ints); bigger buffers go in pieces.
    static let maxCount = 1 << 30

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws(DistributedError) {
        try allReduceSum(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, type: api.float, width: 4)
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws(DistributedError) {
        try allReduceSum(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, type: api.double, width: 8)
    }

    private func allReduceSum(_ base: UnsafeMutableRawPointer?, count: Int, type: API.Handle,
                              width: Int) throws(DistributedError) {
        guard let base else { return }
        var done = 0
        while done < count {
            let n = min(count - done, Self.maxCount)
            try api.check("MPI_Allreduce", api.allreduce(api.inPlace, base + done * width, Int32(n), type, api.sum,
                                                         api.commWorld))
            done += n
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws(DistributedError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = min(buffer.count - done, Self.maxCount)
            try api.check("MPI_Bcast", api.bcast(base + done, Int32(n), api.byte, Int32(root), api.commWorld))
            done += n
        }
    }

    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>,
                                 parts: [Range<Int>]) throws(DistributedError) {
        let counts = try intCounts(parts, total: buffer.count)
        guard let base = buffer.baseAddress else { return }
        // In place, MPI leaves this rank's sum at the start of the buffer; move it to its part.
        try api.check("MPI_Reduce_scatter", api.reduceScatter(api.inPlace, base, counts, api.float, api.sum, api.commWorld))
        let mine = parts[rank]
        if mine.lowerBound > 0 && !mine.isEmpty { memmove(base + mine.lowerBound, base, mine.count * 4) }
    }

    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws(DistributedError) {
        let counts = try intCounts(parts, total: buffer.count)
        let displacements = parts.map { Int32($0.lowerBound) }
        guard let base = buffer.baseAddress else { return }
        try api.check("MPI_Allgatherv", api.allgatherv(api.inPlace, 0, api.float, base, counts, displacements, api.float,
                                                       api.commWorld))
    }

    public func barrier() throws(DistributedError) {
        try api.check("MPI_Barrier", api.barrier(api.commWorld))
    }

    /// The parts' sizes as C ints, checking that they tile the buffer and fit MPI's counts and displacements.
    private func intCounts(_ parts: [Range<Int>], total: Int) throws(DistributedError) -> [Int32] {
        guard parts.count == size, parts.first?.lowerBound == 0, parts.last?.upperBound == total,
              zip(parts, parts.dropFirst()).allSatisfy({ $0.upperBound == $1.lowerBound }) else {
            throw .invalid("the parts of a collective must tile its buffer in rank order")
        }
        guard total <= Int(Int32.max) else {
            throw .invalid("\(total) elements are more than MPI's counts can address in one collective (2^31 − 1)")
        }
        return parts.map { Int32($0.count) }
    }

    /// The MPI functions and handles, resolved once.
    struct API {
        typealias Handle = UnsafeMutableRawPointer?
        typealias IntOut = UnsafeMutablePointer<Int32>?
        static let threadSerialized: Int32 = 2   // the same in Open MPI and MPICH

        let openMPI: Bool
        let commWorld, float, double, byte, sum, inPlace: Handle
        let initialized: @convention(c) (IntOut) -> Int32
        let initThread: @convention(c) (IntOut, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?,
                                        Int32, IntOut) -> Int32
        let commRank: @convention(c) (Handle, IntOut) -> Int32
        let commSize: @convention(c) (Handle, IntOut) -> Int32
        let allreduce: @convention(c) (Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
        let bcast: @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Int32
        let reduceScatter: @convention(c) (Handle, UnsafeMutableRawPointer?, UnsafePointer<Int32>?, Handle, Handle,
                                           Handle) -> Int32
        let allgatherv: @convention(c) (Handle, Int32, Handle, UnsafeMutableRawPointer?, UnsafePointer<Int32>?,
                                        UnsafePointer<Int32>?, Handle, Handle) -> Int32
        let barrier: @convention(c) (Handle) -> Int32
        let abort: @convention(c) (Handle, Int32) -> Int32
        let finalize: @convention(c) () -> Int32
        let errorString: @convention(c) (Int32, UnsafeMutablePointer<CChar>?, IntOut) -> Int32

        init(_ lib: DynamicLibrary) throws(CUDAError) {
            // Open MPI exports its predefined objects; MPICH's handles are constants of its ABI.
            if let world = try? lib.address(of: "ompi_mpi_comm_world") {
                openMPI = true
                commWorld = world
                float = try lib.address(of: "ompi_mpi_float")
                double = try lib.address(of: "ompi_mpi_double")
                byte = try lib.address(of: "ompi_mpi_byte")
                sum = try lib.address(of: "ompi_mpi_op_sum")
                inPlace = UnsafeMutableRawPointer(bitPattern: 1)
            } else {
                openMPI = false
                commWorld = UnsafeMutableRawPointer(bitPattern: 0x4400_0000)
                float = UnsafeMutableRawPointer(bitPattern: 0x4c00_040a)
                double = UnsafeMutableRawPointer(bitPattern: 0x4c00_080b)
                byte = UnsafeMutableRawPointer(bitPattern: 0x4c00_010d)
                sum = UnsafeMutableRawPointer(bitPattern: 0x5800_0003)
                inPlace = UnsafeMutableRawPointer(bitPattern: -1)
            }
            initialized = try lib.function("MPI_Initialized")
            initThread = try lib.function("MPI_Init_thread")
            commRank = try lib.function("MPI_Comm_rank")
            commSize = try lib.function("MPI_Comm_size")
            allreduce = try lib.function("MPI_Allreduce")
            bcast = try lib.function("MPI_Bcast")
            reduceScatter = try lib.function("MPI_Reduce_scatter")
            allgatherv = try lib.function("MPI_Allgatherv")
            barrier = try lib.function("MPI_Barrier")
            abort = try lib.function("MPI_Abort")
            finalize = try lib.function("MPI_Finalize")
            errorString = try lib.function("MPI_Error_string")
        }

        /// Throws `DistributedError.mpi` with MPI's text for a code other than MPI_SUCCESS (0).
        func check(_ call: String, _ code: Int32) throws(DistributedError) {
            guard code != 0 else { return }
            var text = [CChar](repeating: 0, count: 512)  // MPI_MAX_ERROR_STRING is 256 in both
            var length: Int32 = 0
            _ = errorString(code, &text, &length)
            throw .mpi(call: call, code: code, message: String(cString: text))
        }
    }
}
