// swift-tools-version: 6.0
// The LLM package: a from-scratch GPT-2 training and inference stack in Swift.
//
// Kernels need a target CPU with FMA, or `SIMD.addProduct` becomes a library call and runs ~100x slower.
// By default the package builds for the machine it is built on (`-target-cpu native`); set
// LLM_TARGET_CPU to another LLVM CPU name (for example `haswell`, or `x86-64` for no FMA at all) for a
// portable build: `LLM_TARGET_CPU=haswell swift build -c release`.
import Foundation
import PackageDescription

let targetCPU = ProcessInfo.processInfo.environment["LLM_TARGET_CPU"] ?? "native"
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", targetCPU])]

// The micro-kernels that depend on the vector unit live in one module per x86 instruction set, each built for
// that set whatever the build machine is, and the library picks one when the program starts (Kernels/
// KernelVariant.swift reads the CPU's flags). So one build runs at full speed on an AVX2 machine (Zen 3,
// Haswell and later) and on an AVX-512 one with VNNI (Zen 4, Ice Lake and later); with
// LLM_TARGET_CPU=haswell the rest of the library runs on both. On other architectures these modules are
// empty and the library's generic Swift kernels run.
#if arch(x86_64)
let avx2Settings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
let avx512Settings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "icelake-server"])]
#else
let avx2Settings: [SwiftSetting] = []
let avx512Settings: [SwiftSetting] = []
#endif

let package = Package(
    name: "LLM",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LLM", targets: ["LLM"]),
        .library(name: "LLMServer", targets: ["LLMServer"]),
        .executable(name: "llm", targets: ["llm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        // Hummingbird's own transport; named for its HTTP/1 parser errors (a malformed request is a 400) and for the
        // channel handler that ends connections when HTTP/1 says they end (Sources/LLMServer/HTTPConnection.swift).
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        // Hummingbird's logging; named for the Logger its channel setup takes (HTTPConnection.swift).
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // Resources: GPT-2's vocabulary files, and the CUDA C kernel sources NVRTC compiles at run time.
        .target(
            name: "LLM", dependencies: ["KernelsAVX2", "KernelsAVX512", "CNCCL"],
            resources: [.copy("Resources/gpt2"), .copy("Resources/cuda")], swiftSettings: kernelSettings),
        // NCCL's id type as a C struct, so it passes by value through the C calling convention (Distributed/NCCL.swift).
        .target(name: "CNCCL"),
        // Micro-kernels for AVX2 + FMA (16 × 256-bit registers) and for AVX-512 with VNNI (32 × 512-bit).
        .target(name: "KernelsAVX2", swiftSettings: avx2Settings),
        .target(name: "KernelsAVX512", swiftSettings: avx512Settings),
        // The HTTP server (chat page and OpenAI-compatible API). Its own target so that programs embedding the
        // LLM library for training or inference do not pull in SwiftNIO.
        .target(
            name: "LLMServer",
            dependencies: ["LLM", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdCore", package: "hummingbird"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            resources: [.copy("Resources/chat.html")]),
        .executableTarget(
            name: "llm",
            dependencies: ["LLM", "LLMServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The fuzz harnesses as one program: replays files, or, built by scripts/fuzz.sh with libFuzzer, fuzzes.
        .executableTarget(name: "llm-fuzz", dependencies: ["LLM", "LLMServer"]),
        // Test-only: the CUDA kernels of Sources/LLM/Resources/cuda compiled as C++ and run on the CPU, block by block
        // and thread by thread, so that their numerics are checked on machines without a GPU (CUDAEmulatorTests).
        .target(name: "CUDAEmulator"),
        // Test-only: counts malloc calls on an armed thread, to prove a training step allocates nothing.
        .target(name: "MallocCounter"),
        .testTarget(
            name: "LLMTests",
            dependencies: ["LLM", "MallocCounter", "CUDAEmulator"],
            resources: [.copy("Fixtures")],
            swiftSettings: kernelSettings),
        // The README's commands against the `llm` executable's own argument parser (a test target may import an
        // executable target), and the command-line rules that live only there.
        .testTarget(
            name: "LLMCommandTests",
            dependencies: ["llm", "LLM", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(
            name: "LLMServerTests",
            dependencies: ["LLMServer", .product(name: "HummingbirdTesting", package: "hummingbird")]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
