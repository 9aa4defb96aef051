// Which hardware runs the model, and the one entry point to an NVIDIA GPU: `CUDADevice.open()` loads the
// driver at run time, picks the GPU, and makes its primary context current, or says plainly why it cannot.

/// Where the model runs: the CPU kernels, or an NVIDIA GPU through CUDA.
public enum Device: String, CaseIterable, Sendable {
    case cpu, cuda
}

/// One NVIDIA GPU with its primary context: what the kernels are compiled for and where buffers live.
public final class CUDADevice: CustomStringConvertible {
    public let driver: CUDADriver
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int
    public let totalMemory: Int
    /// Most dynamic shared memory one block may ask for (after opting in).
    public let maxSharedMemoryPerBlock: Int
    let handle: CUdevice
    let context: CUhandle?

    /// The NVRTC architecture of this GPU, e.g. "sm_90": kernels are compiled for exactly it.
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }

    public var description: String {
        "\(name) (\(architecture), \(multiprocessors) SMs, \(totalMemory >> 20) MiB)"
    }

    /// Opens GPU `ordinal`: loads libcuda.so.1, initializes the driver, and retains the device's primary context.
    /// Throws `CUDAError.libraryNotFound` without a driver, `.noDevice` without a GPU, and `.unsupported`
    /// for GPUs older than compute capability 8.0 (the kernels use bfloat16 conversions from sm_80).
    public static func open(ordinal: Int = 0) throws(CUDAError) -> CUDADevice {
        try CUDADevice(driver: try CUDADriver(), ordinal: ordinal)
    }

    init(driver: CUDADriver, ordinal: Int) throws(CUDAError) {
        let api = driver.api
        var count: Int32 = 0
        try driver.check(api.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal < Int(count) else {
            throw .noDevice(reason: count == 0 ? "the driver found no NVIDIA GPU" : "GPU \(ordinal) asked for, but only \(count) found")
        }
        var device: CUdevice = 0
        try driver.check(api.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        func attribute(_ a: CUDeviceAttribute) throws(CUDAError) -> Int {
            var v: Int32 = 0
            try driver.check(api.cuDeviceGetAttribute(&v, a.rawValue, device), "cuDeviceGetAttribute(\(a))")
            return Int(v)
        }
        var nameBytes = [CChar](repeating: 0, count: 256)
        try driver.check(api.cuDeviceGetName(&nameBytes, Int32(nameBytes.count), device), "cuDeviceGetName")
        var bytes = 0
        try driver.check(api.cuDeviceTotalMem(&bytes, device), "cuDeviceTotalMem")
        let major = try attribute(.computeCapabilityMajor), minor = try attribute(.computeCapabilityMinor)
        let name = String(decoding: nameBytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard major >= 8 else {
            throw .unsupported("\(name) has compute capability \(major).\(minor); the kernels need 8.0 (Ampere) or newer")
        }
        let multiprocessors = try attribute(.multiprocessorCount)
        let maxShared = try attribute(.maxSharedMemoryPerBlockOptin)
        var context: CUhandle?
        try driver.check(api.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.driver = driver
        self.ordinal = ordinal
        self.handle = device
        self.context = context
        self.name = name
        self.computeCapability = (major, minor)
        self.multiprocessors = multiprocessors
        self.maxSharedMemoryPerBlock = maxShared
        self.totalMemory = bytes
        try makeCurrent()
    }

    deinit { _ = driver.api.cuDevicePrimaryCtxRelease(handle) }

    /// Makes this GPU's context current on the calling thread (driver calls act on the current context).
    public func makeCurrent() throws(CUDAError) {
        try driver.check(driver.api.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// Waits for all work on this GPU.
    public func synchronize() throws(CUDAError) {
        try makeCurrent()
        try driver.check(driver.api.cuCtxSynchronize(), "cuCtxSynchronize")
    }

    /// `byteCount` bytes of device memory.
    public func allocate(byteCount: Int) throws(CUDAError) -> DeviceBuffer {
        try DeviceBuffer(device: self, byteCount: byteCount)
    }
}
