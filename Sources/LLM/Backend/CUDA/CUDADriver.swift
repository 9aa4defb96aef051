// The CUDA driver API (libcuda.so.1) through function pointers looked up at run time, and small owning
// wrappers over what the backend needs from it: device memory, streams, events, modules and kernel launches.
// All raw pointers and handles stay inside these types.
import Foundation

/// What can go wrong finding, loading or using CUDA; `description` is a one-line message for the user
/// (a compilation error adds NVRTC's log on the lines after it).
public enum CUDAError: Error, Equatable, CustomStringConvertible {
    /// No file in the search list loaded. `what` is "CUDA driver", "NVRTC" or "cuBLASLt"; `files` the names looked for.
    case libraryNotFound(what: String, files: String, searched: [String], hint: String)
    /// The library loaded but lacks a function the backend needs (too old a version).
    case symbolNotFound(symbol: String, library: String)
    /// A driver call failed: the call, CUresult code, and the driver's name and text for it.
    case driver(call: String, code: Int32, message: String)
    /// The driver loaded but reports no GPU.
    case noDevice(reason: String)
    case nvrtc(call: String, code: Int32, message: String)
    case compilation(file: String, options: [String], log: String)
    case cublas(call: String, status: Int32, message: String)
    /// The `.cu` sources shipped with the package are missing.
    case kernelSourcesNotFound(searched: [String])
    case kernelCache(path: String, reason: String)
    /// The GPU or the request is outside what the kernels support (compute capability, head size).
    case unsupported(String)
    /// A GPU opened, but the model does not run on it yet.
    case modelNotImplemented(device: String)
    /// A kernel launch that could not run: no such kernel, or (under the CPU emulator) a fault in it.
    case launch(kernel: String, reason: String)

    public var description: String {
        switch self {
        case let .libraryNotFound(what, files, searched, hint):
            "no \(what): \(files) not found (searched: \(searched.joined(separator: ", "))); \(hint)"
        case let .symbolNotFound(symbol, library):
            "\(library) has no \(symbol): the library is too old or not the one expected"
        case let .driver(call, code, message): "CUDA driver: \(call) failed with \(code) (\(message))"
        case .noDevice(let reason): "no CUDA device: \(reason); use --device cpu"
        case let .nvrtc(call, code, message): "NVRTC: \(call) failed with \(code) (\(message))"
        case let .compilation(file, options, log):
            "NVRTC could not compile \(file) with \(options.joined(separator: " ")):\n\(log)"
        case let .cublas(call, status, message): "cuBLASLt: \(call) failed with status \(status) (\(message))"
        case .kernelSourcesNotFound(let searched):
            "the CUDA kernel sources are missing (searched: \(searched.joined(separator: ", "))); set LLM_RESOURCES to the package's Resources folder"
        case let .kernelCache(path, reason): "kernel cache \(path): \(reason)"
        case .unsupported(let why): "unsupported on CUDA: \(why)"
        case let .launch(kernel, reason): "kernel \(kernel): \(reason)"
        case .modelNotImplemented(let device):
            "found \(device), but training and inference do not run on CUDA yet (only the kernels and bindings exist); use --device cpu"
        }
    }
}

// MARK: - Driver API types

typealias CUresult = Int32
typealias CUdevice = Int32
/// A device address (CUdeviceptr).
public typealias CUdeviceptr = UInt64
/// CUcontext, CUmodule, CUfunction, CUstream and CUevent are all opaque pointers.
typealias CUhandle = OpaquePointer

/// The driver functions the backend uses, resolved once from libcuda.
struct CUDADriverAPI {
    typealias Out<T> = UnsafeMutablePointer<T>?
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (Out<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (Out<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (Out<CUdevice>, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (Out<Int32>, Int32, CUdevice) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (Out<Int>, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (Out<CUhandle?>, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRelease: @convention(c) (CUdevice) -> CUresult
    let cuCtxSetCurrent: @convention(c) (CUhandle?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemAlloc: @convention(c) (Out<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> CUresult
    let cuStreamCreate: @convention(c) (Out<CUhandle?>, UInt32) -> CUresult
    let cuStreamDestroy: @convention(c) (CUhandle?) -> CUresult
    let cuStreamSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuEventCreate: @convention(c) (Out<CUhandle?>, UInt32) -> CUresult
    let cuEventDestroy: @convention(c) (CUhandle?) -> CUresult
    let cuEventRecord: @convention(c) (CUhandle?, CUhandle?) -> CUresult
    let cuEventSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuEventElapsedTime: @convention(c) (Out<Float>, CUhandle?, CUhandle?) -> CUresult
    let cuModuleLoadData: @convention(c) (Out<CUhandle?>, UnsafeRawPointer?) -> CUresult
    let cuModuleUnload: @convention(c) (CUhandle?) -> CUresult
    let cuModuleGetFunction: @convention(c) (Out<CUhandle?>, CUhandle?, UnsafePointer<CChar>?) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult

    /// Resolves every function; the versioned names (`_v2`) are the ones current drivers export for the
    /// 64-bit API.
    init(_ lib: DynamicLibrary) throws(CUDAError) {
        cuInit = try lib.function("cuInit")
        cuDriverGetVersion = try lib.function("cuDriverGetVersion")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try lib.function("cuDevicePrimaryCtxRelease_v2")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.function("cuCtxSynchronize")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemcpyHtoD = try lib.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try lib.function("cuMemcpyDtoH_v2")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try lib.function("cuMemsetD8Async")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamDestroy = try lib.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventDestroy = try lib.function("cuEventDestroy_v2")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        cuEventElapsedTime = try lib.function("cuEventElapsedTime")
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleUnload = try lib.function("cuModuleUnload")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuFuncSetAttribute = try lib.function("cuFuncSetAttribute")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuGetErrorName = try lib.function("cuGetErrorName")
        cuGetErrorString = try lib.function("cuGetErrorString")
    }
}

/// CUdevice_attribute values the backend reads.
enum CUDeviceAttribute: Int32 {
    case multiprocessorCount = 16
    case computeCapabilityMajor = 75
    case computeCapabilityMinor = 76
    case maxSharedMemoryPerBlockOptin = 97
}

/// The loaded driver: its library, its function table, and error checking.
public final class CUDADriver: @unchecked Sendable {
    public let library: DynamicLibrary
    let api: CUDADriverAPI
    /// The driver's CUDA version, e.g. 12040 for 12.4.
    public let version: Int

    /// Loads libcuda.so.1 (or $LLM_CUDA_DRIVER_PATH) and calls cuInit.
    public init() throws(CUDAError) {
        let candidates = LibrarySearch.candidates(names: ["libcuda.so.1"], override: "LLM_CUDA_DRIVER_PATH",
                                                  wheelFolders: [])
        library = try DynamicLibrary.open(candidates, what: "CUDA driver", files: "libcuda.so.1",
                                          hint: "install the NVIDIA driver or use --device cpu")
        api = try CUDADriverAPI(library)
        var v: Int32 = 0
        let initResult = api.cuInit(0)
        version = api.cuDriverGetVersion(&v) == 0 ? Int(v) : 0
        if initResult == 100 {  // CUDA_ERROR_NO_DEVICE
            throw .noDevice(reason: "the driver at \(library.path) found no NVIDIA GPU")
        }
        try check(initResult, "cuInit")
    }

    /// Throws `CUDAError.driver` for a failed call, with the driver's name and text for the code.
    func check(_ result: CUresult, _ call: @autoclosure () -> String) throws(CUDAError) {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?
        _ = api.cuGetErrorName(result, &name)
        _ = api.cuGetErrorString(result, &text)
        let message = [name, text].compactMap { $0.map { String(cString: $0) } }.joined(separator: ": ")
        throw .driver(call: call(), code: result, message: message.isEmpty ? "unknown error" : message)
    }
}

// MARK: - Memory

/// Device memory, freed when the buffer goes away.
public final class DeviceBuffer {
    public let device: CUDADevice
    /// The device address of the first byte.
    public let address: CUdeviceptr
    public let byteCount: Int

    init(device: CUDADevice, byteCount: Int) throws(CUDAError) {
        self.device = device
        self.byteCount = byteCount
        var p: CUdeviceptr = 0
        try device.makeCurrent()
        try device.driver.check(device.driver.api.cuMemAlloc(&p, max(byteCount, 1)), "cuMemAlloc(\(byteCount) bytes)")
        address = p
    }

    deinit {
        try? device.makeCurrent()
        _ = device.driver.api.cuMemFree(address)
    }

    /// Copies host bytes to the start of the buffer, on `stream` (asynchronous: keep `bytes` alive and
    /// unchanged until the stream is synchronized) or, without a stream, synchronously.
    public func copy(from bytes: UnsafeRawBufferPointer, stream: CUDAStream? = nil) throws(CUDAError) {
        precondition(bytes.count <= byteCount, "copy of \(bytes.count) bytes into a \(byteCount)-byte buffer")
        let api = device.driver.api
        try device.makeCurrent()
        if let stream {
            try device.driver.check(api.cuMemcpyHtoDAsync(address, bytes.baseAddress, bytes.count, stream.handle),
                                    "cuMemcpyHtoDAsync")
        } else {
            try device.driver.check(api.cuMemcpyHtoD(address, bytes.baseAddress, bytes.count), "cuMemcpyHtoD")
        }
    }

    /// Copies the start of the buffer to host memory; asynchronous on `stream` as `copy(from:)`.
    public func copy(to bytes: UnsafeMutableRawBufferPointer, stream: CUDAStream? = nil) throws(CUDAError) {
        precondition(bytes.count <= byteCount, "copy of \(bytes.count) bytes out of a \(byteCount)-byte buffer")
        let api = device.driver.api
        try device.makeCurrent()
        if let stream {
            try device.driver.check(api.cuMemcpyDtoHAsync(bytes.baseAddress, address, bytes.count, stream.handle),
                                    "cuMemcpyDtoHAsync")
        } else {
            try device.driver.check(api.cuMemcpyDtoH(bytes.baseAddress, address, bytes.count), "cuMemcpyDtoH")
        }
    }

    /// Sets `count` bytes from `offset` to zero, on `stream`.
    public func zero(offset: Int = 0, count: Int? = nil, stream: CUDAStream) throws(CUDAError) {
        let n = count ?? byteCount - offset
        precondition(offset >= 0 && offset + n <= byteCount, "zeroing past the end of a buffer")
        try device.makeCurrent()
        try device.driver.check(device.driver.api.cuMemsetD8Async(address + CUdeviceptr(offset), 0, n, stream.handle),
                                "cuMemsetD8Async")
    }
}

// MARK: - Streams and events

/// An ordered queue of device work.
public final class CUDAStream {
    public let device: CUDADevice
    let handle: CUhandle?

    public init(device: CUDADevice) throws(CUDAError) {
        self.device = device
        var h: CUhandle?
        try device.makeCurrent()
        try device.driver.check(device.driver.api.cuStreamCreate(&h, 1), "cuStreamCreate")  // CU_STREAM_NON_BLOCKING
        handle = h
    }

    deinit { _ = device.driver.api.cuStreamDestroy(handle) }

    /// Waits until all work queued on the stream is done.
    public func synchronize() throws(CUDAError) {
        try device.driver.check(device.driver.api.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }
}

/// A marker in a stream, for timing device work.
public final class CUDAEvent {
    public let device: CUDADevice
    let handle: CUhandle?

    public init(device: CUDADevice) throws(CUDAError) {
        self.device = device
        var h: CUhandle?
        try device.makeCurrent()
        try device.driver.check(device.driver.api.cuEventCreate(&h, 0), "cuEventCreate")
        handle = h
    }

    deinit { _ = device.driver.api.cuEventDestroy(handle) }

    public func record(on stream: CUDAStream) throws(CUDAError) {
        try device.driver.check(device.driver.api.cuEventRecord(handle, stream.handle), "cuEventRecord")
    }

    public func synchronize() throws(CUDAError) {
        try device.driver.check(device.driver.api.cuEventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds from `start` to this event (both recorded and complete).
    public func milliseconds(since start: CUDAEvent) throws(CUDAError) -> Float {
        var ms: Float = 0
        try device.driver.check(device.driver.api.cuEventElapsedTime(&ms, start.handle, handle), "cuEventElapsedTime")
        return ms
    }
}

// MARK: - Modules and kernels

/// Compiled device code (a CUBIN from NVRTC) loaded into the device's context.
public final class CUDAModule {
    public let device: CUDADevice
    let handle: CUhandle?

    public init(device: CUDADevice, image: [UInt8]) throws(CUDAError) {
        self.device = device
        var h: CUhandle?
        try device.makeCurrent()
        let result = image.withUnsafeBytes { device.driver.api.cuModuleLoadData(&h, $0.baseAddress) }
        try device.driver.check(result, "cuModuleLoadData")
        handle = h
    }

    deinit { _ = device.driver.api.cuModuleUnload(handle) }

    /// The kernel `name` (an `extern "C" __global__` entry point).
    public func function(_ name: String) throws(CUDAError) -> CUDAFunction {
        var f: CUhandle?
        try device.driver.check(device.driver.api.cuModuleGetFunction(&f, handle, name), "cuModuleGetFunction(\(name))")
        return CUDAFunction(module: self, name: name, handle: f)
    }
}

/// One argument of a kernel launch, passed by value as the kernel's C parameter type.
public enum KernelArgument {
    case pointer(CUdeviceptr)  // T*
    case int32(Int32)          // int
    case uint32(UInt32)        // unsigned int
    case int64(Int64)          // long long
    case float(Float)          // float

    public static func buffer(_ b: DeviceBuffer, offset: Int = 0) -> KernelArgument {
        .pointer(b.address + CUdeviceptr(offset))
    }
}

extension KernelArgument {
    /// The arguments as cuLaunchKernel (and the CPU emulator) take them: each value in its own 8-byte slot, and an
    /// array of pointers to the slots, valid during `body`.
    static func withParameters<R>(_ arguments: [KernelArgument],
                                  _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: 8 * max(arguments.count, 1), alignment: 8) { slots in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(arguments.count, 1)) { params in
                for (i, argument) in arguments.enumerated() {
                    let slot = slots.baseAddress! + 8 * i
                    switch argument {
                    case .pointer(let v): slot.storeBytes(of: v, as: CUdeviceptr.self)
                    case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
                    case .uint32(let v): slot.storeBytes(of: v, as: UInt32.self)
                    case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
                    case .float(let v): slot.storeBytes(of: v, as: Float.self)
                    }
                    params[i] = slot
                }
                return body(params.baseAddress!)
            }
        }
    }
}

/// A kernel of a loaded module.
public final class CUDAFunction {
    public let module: CUDAModule
    public let name: String
    let handle: CUhandle?

    init(module: CUDAModule, name: String, handle: CUhandle?) {
        self.module = module
        self.name = name
        self.handle = handle
    }

    /// Allows `bytes` of dynamic shared memory per block (needed above 48 KiB).
    public func setMaxDynamicSharedMemory(_ bytes: Int) throws(CUDAError) {
        let driver = module.device.driver
        // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        try driver.check(driver.api.cuFuncSetAttribute(handle, 8, Int32(bytes)), "cuFuncSetAttribute(\(name))")
    }

    /// Queues the kernel on `stream` with a grid of `grid` blocks of `block` threads.
    public func launch(grid: (Int, Int, Int), block: (Int, Int, Int), sharedMemory: Int = 0, stream: CUDAStream,
                       _ arguments: [KernelArgument]) throws(CUDAError) {
        let driver = module.device.driver
        let result = KernelArgument.withParameters(arguments) { params in
            driver.api.cuLaunchKernel(handle, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block.0),
                                      UInt32(block.1), UInt32(block.2), UInt32(sharedMemory), stream.handle, params, nil)
        }
        try driver.check(result, "cuLaunchKernel(\(name))")
    }
}
