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
        return SHA256.hash(bytes).map { String(format: "%02x", $0) }.joined()
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

/// SHA-256 (FIPS 180-4), for cache keys: Foundation on Linux has no CryptoKit.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        withUnsafeBytes(of: (UInt64(message.count) * 8).bigEndian) { data += $0 }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + 4 * i
                w[i] = UInt32(data[j]) << 24 | UInt32(data[j + 1]) << 16 | UInt32(data[j + 2]) << 8 | UInt32(data[j + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        return h.flatMap { v in [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    }

    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
}
