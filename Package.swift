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
        .executable(name: "llm", targets: ["llm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "LLM", resources: [.copy("Resources/gpt2")], swiftSettings: kernelSettings),
        .executableTarget(
            name: "llm",
            dependencies: ["LLM", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Test-only: counts malloc calls on an armed thread, to prove a training step allocates nothing.
        .target(name: "MallocCounter"),
        .testTarget(
            name: "LLMTests",
            dependencies: ["LLM", "MallocCounter"],
            resources: [.copy("Fixtures")],
            swiftSettings: kernelSettings),
    ],
    swiftLanguageModes: [.v6]
)
