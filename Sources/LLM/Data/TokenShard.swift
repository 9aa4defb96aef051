// llm.c's token shards, byte for byte: a 256 × int32 little-endian header [magic, version, ntok, 0, …],
// then ntok little-endian tokens, uint16 (magic 20240520, version 1: GPT-2's 50,257 tokens) or uint32
// (magic 20240801, version 7: vocabularies over 65,536 tokens, such as Llama 3's). Shards are written
// atomically (temp file, fsync, rename) and read a range at a time with pread, so no corpus has to fit in memory.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many bytes each token takes on disk, and the header that says so.
public enum TokenWidth: Sendable, Equatable, CaseIterable {
    case uint16, uint32

    /// The narrowest width that stores every id below `vocabSize`: uint16 up to 65,536 tokens.
    public init(vocabSize: Int) {
        precondition(vocabSize > 0, "vocab size \(vocabSize) must be positive")
        self = vocabSize <= 1 << 16 ? .uint16 : .uint32
    }

    var bytes: Int { self == .uint16 ? 2 : 4 }
    var magic: Int32 { self == .uint16 ? 20_240_520 : 20_240_801 }
    var version: Int32 { self == .uint16 ? 1 : 7 }
    /// One past the largest id this width stores that is also an Int32 (tokens are Int32 in memory).
    var limit: Int64 { self == .uint16 ? 1 << 16 : 1 << 31 }
}

/// Writing whole shards. Reading is `TokenShardReader`; streaming a corpus into many shards is `ShardWriter`.
public enum TokenShard {
    static let headerInts = 256
    static let headerBytes = headerInts * 4

    /// Writes `tokens` as one shard in the narrowest width for `vocabSize`; every token must be in
    /// 0..<vocabSize, or nothing is written.
    public static func write(_ tokens: some Collection<Int32>, to path: String, vocabSize: Int) throws(DataError) {
        try write(tokens, to: path, encoder: TokenEncoder(width: TokenWidth(vocabSize: vocabSize),
                                                          vocabSize: Int64(vocabSize)))
    }

    /// Writes `tokens` as one shard of the given width; every token must fit it, or nothing is written.
    public static func write(_ tokens: some Collection<Int32>, to path: String, width: TokenWidth) throws(DataError) {
        try write(tokens, to: path, encoder: TokenEncoder(width: width, vocabSize: width.limit))
    }

    private static func write(_ tokens: some Collection<Int32>, to path: String,
                              encoder: TokenEncoder) throws(DataError) {
        guard tokens.count <= Int32.max else { throw .tooManyTokens(path: path, count: tokens.count) }
        var payload: [UInt8] = []
        payload.reserveCapacity(tokens.count * encoder.width.bytes)
        for (position, token) in tokens.enumerated() where !encoder.append(token, to: &payload) {
            throw encoder.outOfRange(token, position: position, path: path)
        }
        try writeEncoded(payload, count: tokens.count, width: encoder.width, to: path)
    }

    /// Writes a header and `count` tokens already encoded (and checked) by a `TokenEncoder`.
    static func writeEncoded(_ payload: [UInt8], count: Int, width: TokenWidth, to path: String) throws(DataError) {
        var header = [Int32](repeating: 0, count: headerInts)
        header[0] = width.magic
        header[1] = width.version
        header[2] = Int32(count)
        do {
            try writeFileAtomically(path) { out in
                try out.write(int32s: header)
                try out.write(payload)
            }
        } catch FormatError.writeFailed(_, let reason) {
            throw .writeFailed(path: path, reason: reason)
        } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
    }
}

/// Checks tokens against a vocabulary and appends them in a shard's little-endian encoding.
struct TokenEncoder {
    let width: TokenWidth
    /// Every token must be below this (the vocab size, or the width's limit).
    let vocabSize: Int64

    /// Appends `token`, or returns false (appending nothing) if it is outside 0..<vocabSize.
    @inline(__always)
    func append(_ token: Int32, to bytes: inout [UInt8]) -> Bool {
        guard token >= 0, Int64(token) < vocabSize else { return false }
        let v = UInt32(token)
        bytes.append(UInt8(truncatingIfNeeded: v))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        if width == .uint32 {
            bytes.append(UInt8(truncatingIfNeeded: v >> 16))
            bytes.append(UInt8(truncatingIfNeeded: v >> 24))
        }
        return true
    }

    func outOfRange(_ token: Int32, position: Int, path: String) -> DataError {
        .tokenOutOfRange(path: path, token: Int64(token), position: position, vocabSize: vocabSize)
    }
}

/// One shard opened for reading. Opening checks the header and that the file's size is exactly what it
/// describes; tokens are then read on demand, a range at a time, with pread (no file position, so one
/// reader may serve several threads).
public final class TokenShardReader: Sendable {
    public let path: String
    /// Tokens in the shard (the header's ntok).
    public let count: Int
    public let width: TokenWidth
    private let fd: Int32

    public init(path: String) throws(DataError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadable(path: path, reason: errnoDescription()) }
        do throws(DataError) {
            (count, width) = try Self.readHeader(fd: fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    private static func readHeader(fd: Int32, path: String) throws(DataError) -> (count: Int, width: TokenWidth) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .unreadable(path: path, reason: errnoDescription()) }
        guard (st.st_mode & S_IFMT) != S_IFDIR else { throw .unreadable(path: path, reason: "is a directory") }
        let size = Int(st.st_size)
        guard size >= TokenShard.headerBytes else { throw .headerTooShort(path: path, bytes: size) }
        var header = [Int32](repeating: 0, count: TokenShard.headerInts)
        try header.withUnsafeMutableBufferPointer { (buffer) throws(DataError) in
            try preadFully(fd, buffer.baseAddress!, count: TokenShard.headerBytes, offset: 0, path: path)
        }
        let magic = Int32(littleEndian: header[0]), version = Int32(littleEndian: header[1])
        let count = Int32(littleEndian: header[2])
        guard let width = TokenWidth.allCases.first(where: { $0.magic == magic }) else {
            throw .badMagic(path: path, found: magic)
        }
        guard version == width.version else {
            throw .unsupportedVersion(path: path, magic: magic, version: version, expected: width.version)
        }
        guard count >= 0 else { throw .negativeTokenCount(path: path, count: count) }
        let expected = TokenShard.headerBytes + Int(count) * width.bytes
        guard size == expected else {
            throw .sizeMismatch(path: path, bytes: size, tokens: Int(count), expectedBytes: expected)
        }
        return (Int(count), width)
    }

    /// The tokens at positions `range` (0-based, after the header).
    public func tokens(in range: Range<Int>) throws(DataError) -> [Int32] {
        var tokens = [Int32](repeating: 0, count: range.count)
        try tokens.withUnsafeMutableBufferPointer { (buffer) throws(DataError) in try read(range, into: buffer) }
        return tokens
    }

    /// Reads the tokens at positions `range` into the front of `out`, widened to Int32. Tokens that do not
    /// fit an Int32 (uint32 ids from 2^31) are an error, so every value read is a non-negative id.
    func read(_ range: Range<Int>, into out: UnsafeMutableBufferPointer<Int32>) throws(DataError) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "\(range) is outside 0..<\(count)")
        precondition(out.count >= range.count, "\(range.count) tokens do not fit in \(out.count)")
        let n = range.count
        guard n > 0 else { return }
        let raw = UnsafeMutableRawPointer(out.baseAddress!)
        let offset = TokenShard.headerBytes + range.lowerBound * width.bytes
        switch width {
        case .uint16:
            // Read the 2n bytes into the back half of the 4n-byte output and widen from the front: writing
            // token i (bytes 4i..<4i+4) never reaches an unread token j > i (bytes 2n+2j..<2n+2j+2).
            try preadFully(fd, raw + 2 * n, count: 2 * n, offset: offset, path: path)
            for i in 0..<n {
                out[i] = Int32(UInt16(littleEndian: raw.load(fromByteOffset: 2 * n + 2 * i, as: UInt16.self)))
            }
        case .uint32:
            try preadFully(fd, raw, count: 4 * n, offset: offset, path: path)
            for i in 0..<n {
                let v = UInt32(littleEndian: raw.load(fromByteOffset: 4 * i, as: UInt32.self))
                guard v <= UInt32(Int32.max) else {
                    throw .tokenOutOfRange(path: path, token: Int64(v), position: range.lowerBound + i,
                                           vocabSize: TokenWidth.uint32.limit)
                }
                out[i] = Int32(bitPattern: v)
            }
        }
    }
}

/// Streams tokens into a numbered sequence of shards of `tokensPerShard` tokens each, the last one possibly
/// shorter, as llm.c's data scripts do: shard i is written to `path(i)`. A shard's tokens wait in memory in
/// their on-disk encoding (2 or 4 bytes each) until it is full, and it is then written atomically, so each
/// shard appears whole or not at all. After an error the writer is spent: the shards already written stay
/// (each is complete and valid) and the unfinished one's tokens are dropped, as they are if the writer is
/// discarded without `finish()`.
public final class ShardWriter {
    public let tokensPerShard: Int
    public let width: TokenWidth
    /// The shards written so far, in order.
    public private(set) var paths: [String] = []
    private let encoder: TokenEncoder
    private let shardPath: (Int) -> String
    private var pending: [UInt8] = []
    private var pendingCount = 0
    private var isOpen = true

    /// Tokens must be in 0..<vocabSize; the width is the narrowest that holds them.
    public init(vocabSize: Int, tokensPerShard: Int, path: @escaping (Int) -> String) {
        precondition(tokensPerShard > 0 && tokensPerShard <= Int32.max,
                     "tokensPerShard \(tokensPerShard) must be in 1...\(Int32.max)")
        self.tokensPerShard = tokensPerShard
        width = TokenWidth(vocabSize: vocabSize)
        encoder = TokenEncoder(width: width, vocabSize: Int64(vocabSize))
        shardPath = path
        pending.reserveCapacity(tokensPerShard * width.bytes)
    }

    /// Adds tokens, writing out each shard as it fills.
    public func append(_ tokens: some Sequence<Int32>) throws(DataError) {
        precondition(isOpen, "ShardWriter used after finish() or an error")
        do throws(DataError) {
            for token in tokens {
                guard encoder.append(token, to: &pending) else {
                    throw encoder.outOfRange(token, position: pendingCount, path: shardPath(paths.count))
                }
                pendingCount += 1
                if pendingCount == tokensPerShard { try flush() }
            }
        } catch {
            isOpen = false
            throw error
        }
    }

    /// Writes the last, partly filled shard (if any tokens are waiting) and returns every shard's path.
    @discardableResult
    public func finish() throws(DataError) -> [String] {
        precondition(isOpen, "ShardWriter used after finish() or an error")
        isOpen = false
        if pendingCount > 0 { try flush() }
        return paths
    }

    private func flush() throws(DataError) {
        let path = shardPath(paths.count)
        try TokenShard.writeEncoded(pending, count: pendingCount, width: width, to: path)
        paths.append(path)
        pending.removeAll(keepingCapacity: true)
        pendingCount = 0
    }
}

/// Reads exactly `count` bytes at `offset`, retrying short and interrupted reads.
func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, count: Int, offset: Int,
                path: String) throws(DataError) {
    var done = 0
    while done < count {
        let n = pread(fd, buffer + done, min(count - done, 1 << 30), off_t(offset + done))
        if n < 0 {
            if errno == EINTR { continue }
            throw .unreadable(path: path, reason: errnoDescription())
        }
        if n == 0 { throw .unreadable(path: path, reason: "the file ended at byte \(offset + done) while reading") }
        done += n
    }
}

func errnoDescription() -> String { String(cString: strerror(errno)) }
