// Where the CUDA kernels run: on a GPU (CUDAKernelSet: the kernels NVRTC compiled for it, queued on one stream),
// or, in the tests, on the CPU emulator (Sources/CUDAEmulator), which runs the same .cu sources compiled as C++.
// The host side of every launch, its grid, block and shared memory and its scalar arguments, is written once in
// CUDAOps against this protocol, so the emulator tests check the very launches the GPU will get.

/// Something that runs kernels of Resources/cuda by entry-point name.
public protocol KernelLauncher: AnyObject {
    /// The storage precision the kernels were compiled for (`floatX`).
    var precision: CUDAPrecision { get }
    /// Queues `kernel` with a grid of `grid` blocks of `block` threads and `sharedMemory` bytes of dynamic shared
    /// memory per block; `arguments` are the kernel's parameters in order.
    func launch(_ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedMemory: Int,
                _ arguments: [KernelArgument]) throws(CUDAError)
}

/// The kernels loaded on a GPU, queued on one stream.
public final class CUDAKernelSet: KernelLauncher {
    public let precision: CUDAPrecision
    public let stream: CUDAStream
    public let device: CUDADevice
    let functions: [String: CUDAFunction]
    /// The dynamic shared memory each kernel has been allowed beyond the default 48 KiB.
    private var sharedMemoryAllowed: [String: Int] = [:]

    /// Without an opt-in, a launch may use at most this much dynamic shared memory.
    static let defaultSharedMemory = 48 * 1024

    public init(device: CUDADevice, precision: CUDAPrecision, nvrtc: NVRTC, stream: CUDAStream,
                cache: KernelCache = KernelCache()) throws(CUDAError) {
        self.device = device
        self.precision = precision
        self.stream = stream
        functions = try CUDAKernels.load(on: device, precision: precision, nvrtc: nvrtc, cache: cache)
    }

    public func launch(_ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedMemory: Int,
                       _ arguments: [KernelArgument]) throws(CUDAError) {
        guard let function = functions[kernel] else { throw .launch(kernel: kernel, reason: "not among the loaded kernels") }
        // Above 48 KiB a kernel must opt in (attention with large heads or long caches); the GPU's limit is
        // maxSharedMemoryPerBlock (227 KiB on an H100).
        if sharedMemory > Self.defaultSharedMemory && sharedMemory > sharedMemoryAllowed[kernel, default: 0] {
            guard sharedMemory <= device.maxSharedMemoryPerBlock else {
                throw .launch(kernel: kernel, reason: "needs \(sharedMemory) bytes of shared memory per block; \(device.name) allows \(device.maxSharedMemoryPerBlock)")
            }
            try function.setMaxDynamicSharedMemory(sharedMemory)
            sharedMemoryAllowed[kernel] = sharedMemory
        }
        try function.launch(grid: grid, block: block, sharedMemory: sharedMemory, stream: stream, arguments)
    }
}
