// Compiled kernels on disk, so NVRTC runs once per (source, options, compiler) rather than at every start.
// Entries are named by a SHA-256 of everything that affects the output, and written to a temporary file then
// renamed into place, so a reader sees a whole entry or none, even with several processes compiling at once.
import Foundation

/// A folder of compiled kernel images keyed by content hash.
public struct KernelCache: Sendable {
    public let directory: String

    public init(directory: String = KernelCache.defaultDirectory) {
        self.directory = directory
    }

    /// $XDG_CACHE_HOME/llm/cuda, or ~/.cache/llm/cuda.
    public static var defaultDirectory: String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (env["HOME"] ?? NSHomeDirectory()) + "/.cache"
        return base + "/llm/cuda"
    }

    /// The key for an output determined by `parts` (source, headers, options, compiler version): their SHA-256
    /// in hex, each part length-prefixed so that no two different lists collide by concatenation.
    public static func key(_ parts: [String]) -> String {
        var bytes = [UInt8]()
        for part in parts {
            let utf8 = Array(part.utf8)
            withUnsafeBytes(of: UInt64(utf8.count).littleEndian) { bytes += $0 }
            bytes += utf8
        }
        return SHA256Hasher.hex(bytes)
    }

    public func path(forKey key: String) -> String { directory + "/" + key + ".bin" }

    /// The cached bytes for `key`, or nil.
    public func load(key: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path(forKey: key)).map { [UInt8]($0) }
    }

    /// Stores `bytes` under `key`: written to a temporary file in the same folder, then renamed over the entry.
    public func store(_ bytes: [UInt8], key: String) throws(CUDAError) {
        let final = path(forKey: key)
        let temporary = directory + "/.\(key).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw .kernelCache(path: final, reason: "cannot write (\(error.localizedDescription))")
        }
        guard rename(temporary, final) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw .kernelCache(path: final, reason: "cannot rename into place (\(reason))")
        }
    }

    /// The cached bytes for `key`, or `produce()`'s, stored for next time.
    public func bytes(key: String, orProduce produce: () throws(CUDAError) -> [UInt8]) throws(CUDAError) -> [UInt8] {
        if let cached = load(key: key) { return cached }
        let bytes = try produce()
        try store(bytes, key: key)
        return bytes
    }
}

