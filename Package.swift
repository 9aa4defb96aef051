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
    ],
    targets: [
        // Resources: GPT-2's vocabulary files, and the CUDA C kernel sources NVRTC compiles at run time.
        .target(name: "LLM", resources: [.copy("Resources/gpt2"), .copy("Resources/cuda")], swiftSettings: kernelSettings),
        // The HTTP server (chat page and OpenAI-compatible API). Its own target so that programs embedding the
        // LLM library for training or inference do not pull in SwiftNIO.
        .target(
            name: "LLMServer",
            dependencies: ["LLM", .product(name: "Hummingbird", package: "hummingbird")],
            resources: [.copy("Resources/chat.html")]),
        .executableTarget(
            name: "llm",
            dependencies: ["LLM", "LLMServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Test-only: counts malloc calls on an armed thread, to prove a training step allocates nothing.
        .target(name: "MallocCounter"),
        .testTarget(
            name: "LLMTests",
            dependencies: ["LLM", "MallocCounter"],
            resources: [.copy("Fixtures")],
            swiftSettings: kernelSettings),
        .testTarget(
            name: "LLMServerTests",
            dependencies: ["LLMServer", .product(name: "HummingbirdTesting", package: "hummingbird")]),
    ],
    swiftLanguageModes: [.v6]
)
