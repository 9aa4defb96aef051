// The CUDA kernels on the CPU emulator (Sources/CUDAEmulator), for tests: an EmulatedDevice is a KernelLauncher, so
// CUDAOps queues on it exactly the launches it queues on a GPU, and it owns "device" memory (host memory holding
// floatX values: Float, or bfloat16 bits) that lives as long as the device does.

import CUDAEmulator
@testable import LLM

final class EmulatedDevice: KernelLauncher {
    enum Element { case floatX, float, int32 }

    let precision: CUDAPrecision
    private var allocations: [CUdeviceptr: (memory: UnsafeMutableRawPointer, count: Int, element: Element)] = [:]

    init(_ precision: CUDAPrecision) { self.precision = precision }

    deinit { for a in allocations.values { a.memory.deallocate() } }

    /// Every kernel compiled into the emulator.
    static var kernelNames: [String] {
        (0..<emulator_kernel_count()).map { String(cString: emulator_kernel_name($0)) }
    }

    func launch(_ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedMemory: Int = 0,
                _ arguments: [KernelArgument]) throws(CUDAError) {
        var message = [CChar](repeating: 0, count: 512)
        func dim(_ d: (Int, Int, Int)) -> EmulatorDim3 {
            EmulatorDim3(x: UInt32(clamping: d.0), y: UInt32(clamping: d.1), z: UInt32(clamping: d.2))
        }
        let status = KernelArgument.withParameters(arguments) { params in
            emulator_launch(kernel, precision == .bf16 ? 1 : 0, dim(grid), dim(block), sharedMemory, params, &message,
                            message.count)
        }
        guard status == 0 else {
            let text = String(cString: message)
            throw .launch(kernel: kernel, reason: String(text.dropFirst(kernel.count + 2)))
        }
    }

    private func allocate(_ count: Int, _ element: Element) -> CUdeviceptr {
        let stride = element == .floatX && precision == .bf16 ? 2 : 4
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(count * stride, 1), alignment: 16)
        let address = CUdeviceptr(UInt(bitPattern: memory))
        allocations[address] = (memory, count, element)
        return address
    }

    /// floatX values (rounded to bfloat16 in that precision).
    func floatX(_ values: [Float]) -> CUdeviceptr {
        let address = allocate(values.count, .floatX)
        write(values, to: address)
        return address
    }

    func floats(_ values: [Float]) -> CUdeviceptr {
        let address = allocate(values.count, .float)
        write(values, to: address)
        return address
    }

    func ints(_ values: [Int32]) -> CUdeviceptr {
        let address = allocate(values.count, .int32)
        allocations[address]!.memory.copyMemory(from: values, byteCount: values.count * 4)
        return address
    }

    func write(_ values: [Float], to address: CUdeviceptr) {
        let a = allocations[address]!
        precondition(values.count == a.count && a.element != .int32)
        if a.element == .floatX && precision == .bf16 {
            for (i, v) in values.enumerated() { a.memory.storeBytes(of: bfloat16Bits(v), toByteOffset: 2 * i, as: UInt16.self) }
        } else {
            a.memory.copyMemory(from: values, byteCount: values.count * 4)
        }
    }

    /// The values of an allocation, as floats.
    func read(_ address: CUdeviceptr) -> [Float] {
        let a = allocations[address]!
        switch a.element {
        case .floatX where precision == .bf16:
            return (0..<a.count).map { Float(bitPattern: UInt32(a.memory.load(fromByteOffset: 2 * $0, as: UInt16.self)) << 16) }
        case .int32:
            return (0..<a.count).map { Float(a.memory.load(fromByteOffset: 4 * $0, as: Int32.self)) }
        default:
            return Array(UnsafeBufferPointer(start: a.memory.assumingMemoryBound(to: Float.self), count: a.count))
        }
    }
}

/// cuBLAS's matrix product as a plain loop over the emulated device's memory (the GPU runs cuBLASLt): column-major,
/// float accumulation, the result rounded to the storage type.
extension EmulatedDevice: DeviceGEMM {
    private func load(_ address: CUdeviceptr, _ i: Int) -> Float {
        let p = UnsafeRawPointer(bitPattern: UInt(address))!
        return precision == .bf16 ? Float(bitPattern: UInt32(p.load(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            : p.load(fromByteOffset: 4 * i, as: Float.self)
    }

    private func store(_ value: Float, _ address: CUdeviceptr, _ i: Int) {
        let p = UnsafeMutableRawPointer(bitPattern: UInt(address))!
        if precision == .bf16 {
            p.storeBytes(of: bfloat16Bits(value), toByteOffset: 2 * i, as: UInt16.self)
        } else {
            p.storeBytes(of: value, toByteOffset: 4 * i, as: Float.self)
        }
    }

    func gemm(m: Int, n: Int, k: Int, a: CUdeviceptr, lda: Int, transA: Bool, b: CUdeviceptr, ldb: Int, transB: Bool,
              d: CUdeviceptr, ldd: Int, accumulate: Bool, bias: CUdeviceptr?) throws(CUDAError) {
        for j in 0..<n {
            for i in 0..<m {
                var sum: Float = 0
                for l in 0..<k {
                    let x = load(a, transA ? l + i * lda : i + l * lda), y = load(b, transB ? j + l * ldb : l + j * ldb)
                    sum += x * y
                }
                if accumulate { sum += load(d, i + j * ldd) }
                if let bias { sum += load(bias, i) }
                store(sum, d, i + j * ldd)
            }
        }
    }
}

/// `x` as the kernels store it in `precision`.
func stored(_ x: Float, _ precision: CUDAPrecision) -> Float {
    precision == .bf16 ? Float(bitPattern: UInt32(bfloat16Bits(x)) << 16) : x
}

func stored(_ xs: [Float], _ precision: CUDAPrecision) -> [Float] { xs.map { stored($0, precision) } }

/// The largest |a - b| / (|b| + floor) over two arrays of the same length (NaN if either has a NaN).
func maxRelativeError(_ a: [Float], _ b: [Float], floor: Float = 1e-2) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for (x, y) in zip(a, b) {
        if x.isNaN || y.isNaN { return .nan }
        worst = max(worst, abs(x - y) / (abs(y) + floor))
    }
    return worst
}

/// The agreement a kernel must reach with the CPU in each storage precision: float to the rounding of sums taken in
/// another order (a few hundred terms: 1e-5 to 2e-5 seen), bfloat16 to its 8-bit significand (the inputs are
/// rounded to bfloat16 for both sides first).
func tolerance(_ precision: CUDAPrecision) -> Float { precision == .bf16 ? 1e-2 : 5e-5 }

/// Host arrays for the CPU kernels, freed with the value.
final class CPUArrays {
    private var allocations: [UnsafeMutableRawPointer] = []

    func floats(_ values: [Float]) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func zeros(_ count: Int) -> UnsafeMutablePointer<Float> { floats([Float](repeating: 0, count: count)) }

    func ints(_ values: [Int32]) -> UnsafeMutablePointer<Int32> {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    deinit { for p in allocations { p.deallocate() } }
}

func array(_ p: UnsafePointer<Float>, _ count: Int) -> [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }

/// `count` uniform values in [-scale, scale], the same for the same seed.
func randomValues(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float(generator.nextUniform() * 2 - 1) * scale }
}
