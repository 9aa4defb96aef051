// Running the CUDA kernels in the CPU emulator (Sources/CUDAEmulator) from tests: launches with the backend's own
// KernelArgument packing, and host arrays standing in for device memory, holding floatX values (Float, or
// bfloat16 bits) or plain floats and ints.

import CUDAEmulator
@testable import LLM

struct EmulatorError: Error, CustomStringConvertible {
    let description: String
}

/// A kernel's argument: a scalar or pointer, or a host array (kept alive for the launch: passing only its address
/// would let Swift free a temporary array before the kernel runs).
protocol LaunchArgument {
    var kernelArgument: KernelArgument { get }
}

extension KernelArgument: LaunchArgument {
    var kernelArgument: KernelArgument { self }
}

// Scalars pass as the C type of the same width: Int32 as int, UInt32 as unsigned int, Int64 as long long.
extension Int32: LaunchArgument {
    var kernelArgument: KernelArgument { .int32(self) }
}

extension UInt32: LaunchArgument {
    var kernelArgument: KernelArgument { .uint32(self) }
}

extension Int64: LaunchArgument {
    var kernelArgument: KernelArgument { .int64(self) }
}

extension Float: LaunchArgument {
    var kernelArgument: KernelArgument { .float(self) }
}

enum Emulator {
    /// Every kernel compiled into the emulator.
    static var kernelNames: [String] {
        (0..<emulator_kernel_count()).map { String(cString: emulator_kernel_name($0)) }
    }

    /// Runs `kernel` as CUDAFunction.launch would on a GPU, with host addresses for pointers.
    static func launch(_ kernel: String, _ precision: CUDAPrecision, grid: (Int, Int, Int), block: (Int, Int, Int),
                       sharedMemory: Int = 0, _ launchArguments: [any LaunchArgument]) throws {
        let arguments = launchArguments.map(\.kernelArgument)
        var slots = [UInt64](repeating: 0, count: max(arguments.count, 1))
        var message = [CChar](repeating: 0, count: 512)
        let status = slots.withUnsafeMutableBytes { raw -> Int32 in
            var parameters = [UnsafeMutableRawPointer?]()
            for (i, argument) in arguments.enumerated() {
                let slot = raw.baseAddress! + 8 * i
                switch argument {
                case .pointer(let v): slot.storeBytes(of: v, as: UInt64.self)
                case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
                case .uint32(let v): slot.storeBytes(of: v, as: UInt32.self)
                case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
                case .float(let v): slot.storeBytes(of: v, as: Float.self)
                }
                parameters.append(slot)
            }
            func dim(_ d: (Int, Int, Int)) -> EmulatorDim3 {
                EmulatorDim3(x: UInt32(clamping: d.0), y: UInt32(clamping: d.1), z: UInt32(clamping: d.2))
            }
            return parameters.withUnsafeMutableBufferPointer { p in
                emulator_launch(kernel, precision == .bf16 ? 1 : 0, dim(grid), dim(block), sharedMemory, p.baseAddress,
                                &message, message.count)
            }
        }
        withExtendedLifetime(launchArguments) {}
        if status != 0 { throw EmulatorError(description: String(cString: message)) }
    }

    /// Blocks of `size` threads covering `count` threads.
    static func blocks(_ count: Int, of size: Int) -> Int { (count + size - 1) / size }
}

/// Host memory standing in for a device array: `floatX` values in the kernels' storage precision, or plain
/// `float` / `int` arrays that do not depend on it.
final class HostArray: LaunchArgument {
    enum Element { case floatX(CUDAPrecision), float, int32 }

    let element: Element
    let count: Int
    let memory: UnsafeMutableRawPointer

    private init(element: Element, count: Int) {
        self.element = element
        self.count = count
        let stride = if case .floatX(.bf16) = element { 2 } else { 4 }
        memory = .allocate(byteCount: max(count * stride, 1), alignment: 16)
    }

    deinit { memory.deallocate() }

    /// floatX values (rounded to bfloat16 in that precision).
    convenience init(floatX values: [Float], _ precision: CUDAPrecision) {
        self.init(element: .floatX(precision), count: values.count)
        write(values)
    }

    convenience init(floats values: [Float]) {
        self.init(element: .float, count: values.count)
        write(values)
    }

    convenience init(ints values: [Int32]) {
        self.init(element: .int32, count: values.count)
        memory.copyMemory(from: values, byteCount: values.count * 4)
    }

    var kernelArgument: KernelArgument { .pointer(UInt64(UInt(bitPattern: memory))) }

    func write(_ values: [Float]) {
        precondition(values.count == count)
        switch element {
        case .floatX(.bf16):
            for (i, v) in values.enumerated() { memory.storeBytes(of: bfloat16Bits(v), toByteOffset: 2 * i, as: UInt16.self) }
        case .int32:
            preconditionFailure("an int array")
        default:
            memory.copyMemory(from: values, byteCount: values.count * 4)
        }
    }

    /// The values as floats.
    var floats: [Float] {
        switch element {
        case .floatX(.bf16):
            return (0..<count).map { Float(bitPattern: UInt32(memory.load(fromByteOffset: 2 * $0, as: UInt16.self)) << 16) }
        case .int32:
            return (0..<count).map { Float(memory.load(fromByteOffset: 4 * $0, as: Int32.self)) }
        default:
            return Array(UnsafeBufferPointer(start: memory.assumingMemoryBound(to: Float.self), count: count))
        }
    }
}

/// `x` as the kernels store it in `precision`.
func stored(_ x: Float, _ precision: CUDAPrecision) -> Float {
    precision == .bf16 ? Float(bitPattern: UInt32(bfloat16Bits(x)) << 16) : x
}

func stored(_ xs: [Float], _ precision: CUDAPrecision) -> [Float] { xs.map { stored($0, precision) } }

/// The largest |a - b| / (|b| + floor) over two arrays of the same length.
func maxRelativeError(_ a: [Float], _ b: [Float], floor: Float = 1e-3) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for (x, y) in zip(a, b) {
        if x.isNaN || y.isNaN { return .nan }
        worst = max(worst, abs(x - y) / (abs(y) + floor))
    }
    return worst
}

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

/// The agreement a kernel must reach with the CPU in each storage precision: float to rounding, bfloat16 to its
/// 8-bit significand (the inputs are rounded to bfloat16 for both sides first).
func tolerance(_ precision: CUDAPrecision) -> Float { precision == .bf16 ? 1e-2 : 1e-5 }
