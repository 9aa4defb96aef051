// Reading files into memory we own and writing them atomically (temp file, fsync, rename), over POSIX.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func errnoString() -> String { String(cString: strerror(errno)) }

/// A file opened for reading, read sequentially into caller-provided memory.
struct FileReader: ~Copyable {
    let path: String
    let size: Int
    private let fd: Int32
    private(set) var position = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FormatError.unreadable(path: path, reason: errnoString()) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = errnoString()
            close(fd)
            throw FormatError.unreadable(path: path, reason: reason)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw FormatError.unreadable(path: path, reason: "is a directory")
        }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    var remaining: Int { size - position }

    /// Moves to byte `offset` (within the file) for the next read.
    mutating func seek(to offset: Int) throws {
        guard (0...size).contains(offset), lseek(fd, off_t(offset), SEEK_SET) == off_t(offset) else {
            throw FormatError.truncated(path: path, expectedBytes: offset, actualBytes: size)
        }
        position = offset
    }

    /// Reads exactly `count` bytes or throws `truncated` (reporting `expectedTotal` if given).
    mutating func read(into buffer: UnsafeMutableRawPointer, count: Int, expectedTotal: Int? = nil) throws {
        var done = 0
        while done < count {
            let n = Glibc_read(fd, buffer + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.unreadable(path: path, reason: errnoString())
            }
            if n == 0 {
                throw FormatError.truncated(path: path, expectedBytes: expectedTotal ?? position + count,
                                            actualBytes: size)
            }
            done += n
            position += n
        }
    }

    mutating func readBytes(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: count) }
        return bytes
    }

    /// Reads `count` little-endian Int32 values.
    mutating func readInt32s(_ count: Int, expectedTotal: Int? = nil) throws -> [Int32] {
        var values = [Int32](repeating: 0, count: count)
        try values.withUnsafeMutableBytes {
            try read(into: $0.baseAddress!, count: count * 4, expectedTotal: expectedTotal)
        }
        return values.map { Int32(littleEndian: $0) }
    }

    /// Reads `count` little-endian Float32 values straight into `dst`.
    mutating func readFloats(into dst: UnsafeMutablePointer<Float>, count: Int, expectedTotal: Int? = nil) throws {
        try read(into: dst, count: count * 4, expectedTotal: expectedTotal)
    }
}

private func Glibc_read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.read(fd, buf, n)
    #else
    return Darwin.read(fd, buf, n)
    #endif
}

/// Writes a file so that it either appears complete or not at all: the bytes go to a temporary file
/// beside the destination, which is fsynced and then renamed over it. On any failure the temporary file
/// is removed and the destination is left as it was.
struct AtomicFileWriter: ~Copyable {
    let path: String
    let tempPath: String
    private let fd: Int32
    private var finished = false

    init(path: String) throws {
        self.path = path
        tempPath = "\(path).tmp-\(getpid())"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FormatError.writeFailed(path: path, reason: errnoString()) }
    }

    deinit {
        if !finished {
            close(fd)
            unlink(tempPath)
        }
    }

    func write(_ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = Glibc_write(fd, buffer.baseAddress! + done, min(buffer.count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.writeFailed(path: path, reason: errnoString())
            }
            done += n
        }
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func write(int32s: [Int32]) throws {
        try int32s.map { $0.littleEndian }.withUnsafeBytes { try write($0) }
    }

    func write(floats: UnsafeBufferPointer<Float>) throws { try write(UnsafeRawBufferPointer(floats)) }

    /// Flushes to disk and renames into place.
    consuming func commit() throws {
        finished = true
        if fsync(fd) != 0 {
            let reason = errnoString()
            close(fd)
            unlink(tempPath)
            throw FormatError.writeFailed(path: path, reason: reason)
        }
        close(fd)
        if rename(tempPath, path) != 0 {
            let reason = errnoString()
            unlink(tempPath)
            throw FormatError.writeFailed(path: path, reason: reason)
        }
    }
}

private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buf, n)
    #else
    return Darwin.write(fd, buf, n)
    #endif
}

/// Writes a whole file atomically.
func writeFileAtomically(_ path: String, _ body: (borrowing AtomicFileWriter) throws -> Void) throws {
    let writer = try AtomicFileWriter(path: path)
    try body(writer)
    try writer.commit()
}

/// Reads a whole (small) file.
func readWholeFile(_ path: String) throws -> [UInt8] {
    var reader = try FileReader(path: path)
    return try reader.readBytes(reader.size)
}

/// Float32 from IEEE half and bfloat16 bit patterns.
@inline(__always) func floatFromBFloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

@inline(__always) func floatFromFloat16(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exp = Int((h >> 10) & 0x1F), mant = UInt32(h & 0x3FF)
    if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }  // inf / nan
    if exp == 0 {  // zero or subnormal: mant · 2^-24
        let v = Float(mant) * 0x1p-24
        return sign != 0 ? -v : v
    }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}
