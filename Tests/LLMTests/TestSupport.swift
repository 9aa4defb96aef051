// Shared helpers for the tests: where the committed fixtures are, and scratch folders.
import Foundation
@testable import LLM

enum Fixtures {
    /// The committed parity fixtures (made by reference/make_all_fixtures.sh).
    static let names = ["odd-vocab", "full-context", "deep-heads", "masked-loss"]
    /// The committed fixtures in the generic format, one per architecture (reference/make_arch_fixtures.sh).
    static let architectureNames = ["llama-gqa", "qwen2-mqa", "gemma3-window", "nanochat-tiny"]

    static func path(_ name: String, _ file: String = "") -> String {
        let root = Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(name)
        return file.isEmpty ? root.path : root.appendingPathComponent(file).path
    }

    static func bytes(_ name: String, _ file: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name, file))))
    }
}

/// A fresh temporary folder, removed when the closure returns.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llm-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
func writeBytes(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

/// Little-endian Int32 values as bytes.
func int32Bytes(_ values: [Int32]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } } }
