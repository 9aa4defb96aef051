// Which build of the vector micro-kernels runs: the generic Swift ones in this folder, or those of the
// KernelsAVX2 or KernelsAVX512 module, each built for its instruction set (see Package.swift). The choice is
// made once, when the program starts, from the flags the kernel reports for the CPU, so one binary is fast on
// an AVX2 machine and on an AVX-512 one. LLM_KERNELS=generic|avx2|avx512 overrides it (for measurements);
// tests pass a variant explicitly to compare every variant with the reference on any machine that has it.
import Foundation
import KernelsAVX2
import KernelsAVX512

/// A set of micro-kernels.
public enum KernelVariant: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Portable Swift SIMD: any CPU.
    case generic
    /// AVX2 + FMA (+ F16C): tiles for 16 registers of 256 bits.
    case avx2
    /// AVX-512 F/BW/VL with VNNI: tiles for 32 registers of 512 bits, 8-bit dot products.
    case avx512

    public var description: String { rawValue }

    /// The variant this process uses: the best the CPU supports, or LLM_KERNELS when it names one the CPU supports.
    public static let current: KernelVariant = {
        if let name = ProcessInfo.processInfo.environment["LLM_KERNELS"], let forced = KernelVariant(rawValue: name),
           forced.isSupported {
            return forced
        }
        return supported.last ?? .generic
    }()

    /// The variants this CPU can run, in increasing order of preference (generic is always first).
    public static var supported: [KernelVariant] { allCases.filter(\.isSupported) }

    /// Whether this CPU can run the variant. (A switch over flags read once: no allocation, so kernels may check it.)
    public var isSupported: Bool {
        switch self {
        case .generic: true
        case .avx2: Self.cpuHasAVX2
        case .avx512: Self.cpuHasAVX512
        }
    }

    private static let cpuHasAVX2 = kernelsAVX2Available
        && CPUFlags.current.isSuperset(of: ["avx2", "fma", "f16c"])
    private static let cpuHasAVX512 = kernelsAVX512Available && cpuHasAVX2
        && CPUFlags.current.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"])
}

/// The CPU's feature flags as Linux reports them (the `flags` line of /proc/cpuinfo: the features both the CPU
/// and the kernel support, so AVX-512 appears only where the OS saves its registers). Empty elsewhere.
enum CPUFlags {
    static let current: Set<String> = {
        #if os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
        #else
        return []
        #endif
    }()
}
