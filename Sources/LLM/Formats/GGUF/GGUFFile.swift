// Reading GGUF, llama.cpp's model file: a header, then the tensors' bytes. The file is memory-mapped (read-only,
// private), so opening a multi-gigabyte model reads only its header; tensor bytes are paged in when used.
//
// Layout (all integers little-endian; a string is a u64 byte count then that many UTF-8 bytes, no terminator):
//
//     magic            "GGUF" (u32 0x46554747)
//     version          u32: 2 or 3 (same layout; 1 used 32-bit counts and is refused, as are big-endian files)
//     tensor_count     u64
//     kv_count         u64
//     kv × kv_count    key string, value type u32, value
//                      types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (one byte), 8 string,
//                      9 array (element type u32, count u64, elements: arrays of arrays nest), 10 u64, 11 i64, 12 f64
//     tensor_info × tensor_count
//                      name string, n_dims u32 (≤ 4), dims u64 × n_dims (ggml order: dims[0] = ne[0] is the
//                      innermost, fastest-varying dimension; a PyTorch shape reversed), ggml type u32, offset u64
//                      (from the data section's start, a multiple of the alignment)
//     padding          zeros up to a multiple of `general.alignment` (a u32 key, a power of two, default 32)
//     data section     each tensor's bytes at its offset, each padded to the alignment
//
// API:
//
//     let file = try GGUFFile.open(path)                 // maps the file, validates the whole header
//     file.version, file.metadata["general.architecture"]?.string, file.metadataKeys (file order)
//     file.tensors                                        // [GGUFFile.TensorInfo], file order
//     file.tensor(named: "token_embd.weight")            // TensorInfo? (name, dims, type, offset, byteCount, elementCount)
//     try file.withTensorBytes(info) { raw in ... }      // the tensor's bytes in the mapping, valid inside the closure
//     try file.dequantize("output_norm.weight")          // [Float]
//     try file.dequantize(info, into: buffer)            // straight into caller memory (e.g. a weight arena)
//
// Hostile files never crash or allocate what they claim: every count, length, dimension and offset is checked
// (overflow included) against the bytes that remain before it is used, and errors are one-line FormatErrors
// naming the file. Strings are decoded as UTF-8 with invalid sequences replaced by U+FFFD. (As with any mapping, a
// file truncated by another process while it is open faults when the lost pages are read.)
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class GGUFFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    /// One tensor's header entry, validated: its bytes lie inside the file and overlap no other tensor's.
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        /// Dimensions in ggml order: dims[0] is the innermost (a row's length).
        public let dims: [Int]
        public let type: GGMLType
        /// Offset of the tensor's bytes from the start of the data section.
        public let offset: Int
        public let byteCount: Int
        public let elementCount: Int
    }

    public let path: String
    public let version: Int
    public let metadata: GGUFMetadata
    /// The metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [TensorInfo]
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// File offset of the data section.
    public let dataOffset: Int

    static let magic: UInt32 = 0x4655_4747  // "GGUF" read as a little-endian u32
    static let defaultAlignment = 32
    static let maxDims = 4
    /// Arrays of arrays nest at most this deep (deep nesting would only serve to exhaust the stack).
    static let maxArrayDepth = 8

    private let base: UnsafeRawPointer
    private let size: Int
    private let tensorIndex: [String: Int]

    private init(path: String, base: UnsafeRawPointer, size: Int, header: Header) {
        self.path = path
        self.base = base
        self.size = size
        version = header.version
        metadata = header.metadata
        metadataKeys = header.metadataKeys
        tensors = header.tensors
        alignment = header.alignment
        dataOffset = header.dataOffset
        tensorIndex = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    /// Maps the file and validates its header (see the file comment).
    public static func open(_ path: String) throws -> GGUFFile {
        let fd = Glibc_open(path)
        guard fd >= 0 else { throw FormatError.unreadable(path: path, reason: errnoDescription()) }
        defer { close(fd) }  // the mapping outlives the descriptor
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.unreadable(path: path, reason: errnoDescription()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError.unreadable(path: path, reason: (st.st_mode & S_IFMT) == S_IFDIR ? "is a directory" : "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 24 else { throw FormatError.truncated(path: path, expectedBytes: 24, actualBytes: size) }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw FormatError.unreadable(path: path, reason: "mmap: \(errnoDescription())")
        }
        do {
            var parser = HeaderParser(path: path, bytes: UnsafeRawBufferPointer(start: mapped, count: size))
            let header = try parser.parse()
            return GGUFFile(path: path, base: UnsafeRawPointer(mapped), size: size, header: header)
        } catch {
            munmap(mapped, size)
            throw error
        }
    }

    public func tensor(named name: String) -> TensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// Calls `body` with the tensor's bytes inside the mapping (valid only during the call). `info` must be one of
    /// this file's tensors.
    public func withTensorBytes<R>(_ info: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(tensorIndex[info.name].map { tensors[$0] == info } == true,
                     "tensor \(info.name) is not a tensor of \(path)")
        return try body(UnsafeRawBufferPointer(start: base + dataOffset + info.offset, count: info.byteCount))
    }

    /// The start of the tensor's bytes in the mapping: valid as long as this object lives (QuantizedWeights keeps
    /// the file for that). `info` must be one of this file's tensors.
    func tensorBase(_ info: TensorInfo) -> UnsafeRawPointer {
        precondition(tensorIndex[info.name].map { tensors[$0] == info } == true,
                     "tensor \(info.name) is not a tensor of \(path)")
        return base + dataOffset + info.offset
    }

    /// The named tensor's elements as Floats.
    public func dequantize(_ name: String) throws -> [Float] {
        guard let info = tensor(named: name) else { throw FormatError.missingTensor(path: path, name: name) }
        return try dequantize(info)
    }

    /// The tensor's elements as Floats.
    public func dequantize(_ info: TensorInfo, parallel: ParallelFor = .allCores) throws -> [Float] {
        try checkDequantizable(info)
        return [Float](unsafeUninitializedCapacity: info.elementCount) { dst, initialized in
            withTensorBytes(info) { info.type.dequantize($0, into: dst, parallel: parallel) }
            initialized = info.elementCount
        }
    }

    /// Writes the tensor's elements as Floats into `dst`, which must hold exactly `info.elementCount` of them.
    public func dequantize(_ info: TensorInfo, into dst: UnsafeMutableBufferPointer<Float>,
                           parallel: ParallelFor = .allCores) throws {
        try checkDequantizable(info)
        guard dst.count == info.elementCount else {
            throw FormatError.mismatch(path: path, reason: "tensor \(info.name) has \(info.elementCount) elements, the destination holds \(dst.count)")
        }
        withTensorBytes(info) { info.type.dequantize($0, into: dst, parallel: parallel) }
    }

    private func checkDequantizable(_ info: TensorInfo) throws {
        guard info.type.canDequantize else {
            throw FormatError.unsupportedDType(path: path, name: info.name, dtype: info.type.description)
        }
    }
}

// MARK: - Header parsing

/// GGUF's metadata value types, as numbered in the file.
enum GGUFValueType: UInt32 {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8
    case array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The fewest bytes a value of this type takes (an empty string, an empty array's header).
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }

    init(of value: GGUFValue) {
        self = switch value {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }
}

extension GGUFFile {
    struct Header {
        var version = 0
        var metadata = GGUFMetadata()
        var metadataKeys = [String]()
        var alignment = GGUFFile.defaultAlignment
        var tensors = [TensorInfo]()
        var dataOffset = 0
    }

    /// Reads the header from the mapped bytes front to back; every read checks the bytes that remain.
    struct HeaderParser {
        let path: String
        let bytes: UnsafeRawBufferPointer
        var position = 0

        init(path: String, bytes: UnsafeRawBufferPointer) {
            self.path = path
            self.bytes = bytes
        }

        var remaining: Int { bytes.count - position }

        mutating func parse() throws -> Header {
            var header = Header()
            let magic = try read(UInt32.self)
            guard magic == GGUFFile.magic else {
                throw FormatError.badMagic(path: path, found: Int32(bitPattern: magic), expected: Int32(bitPattern: GGUFFile.magic))
            }
            let version = try read(UInt32.self)
            if version & 0xFFFF == 0, version != 0 {  // 2 or 3 written big-endian reads as 0x02000000 or 0x03000000
                throw FormatError.malformed(path: path, reason: "big-endian GGUF (version \(version.byteSwapped) byte-swapped); only little-endian files are supported")
            }
            guard version == 2 || version == 3 else {
                throw FormatError.unsupportedVersion(path: path, version: Int32(truncatingIfNeeded: version), supported: [2, 3])
            }
            header.version = Int(version)
            let tensorCount = try count(of: "tensors", minimumSize: 24)  // name length, n_dims, type, offset
            let kvCount = try count(of: "metadata entries", minimumSize: 13)  // key length, type, a byte

            header.metadataKeys.reserveCapacity(kvCount)
            for _ in 0..<kvCount {
                let key = try string("a metadata key")
                let rawType = try read(UInt32.self)
                guard let type = GGUFValueType(rawValue: rawType) else {
                    throw FormatError.malformed(path: path, reason: "metadata \(key) has unknown value type \(rawType)")
                }
                let value = try value(of: type, key: key, depth: 0)
                guard header.metadata.updateValue(value, forKey: key) == nil else {
                    throw FormatError.malformed(path: path, reason: "duplicate metadata key \(key)")
                }
                header.metadataKeys.append(key)
            }

            if let value = header.metadata["general.alignment"] {
                guard case let .uint32(a) = value, a != 0, a & (a - 1) == 0 else {
                    throw FormatError.malformed(path: path, reason: "general.alignment is \(value), not a u32 power of two")
                }
                header.alignment = Int(a)
            }

            var names = Set<String>()
            header.tensors.reserveCapacity(tensorCount)
            for _ in 0..<tensorCount {
                let info = try tensorInfo(alignment: header.alignment)
                guard names.insert(info.name).inserted else {
                    throw FormatError.malformed(path: path, reason: "duplicate tensor name \(info.name)")
                }
                header.tensors.append(info)
            }

            // The data section starts at the next multiple of the alignment; each tensor must lie inside the file
            // and overlap no other.
            let padding = (header.alignment - position % header.alignment) % header.alignment
            header.dataOffset = position + padding
            let dataBytes = bytes.count - min(header.dataOffset, bytes.count)
            for t in header.tensors {
                let (end, overflow) = t.offset.addingReportingOverflow(t.byteCount)
                let (fileEnd, pastInt) = header.dataOffset.addingReportingOverflow(end)
                guard !overflow, !pastInt else {
                    throw FormatError.malformed(path: path, reason: "tensor \(t.name) has data offset \(t.offset), beyond any file")
                }
                guard end <= dataBytes else {  // most likely a download cut short
                    throw FormatError.truncated(path: path, expectedBytes: fileEnd, actualBytes: bytes.count)
                }
            }
            var end = 0, last = ""
            for t in header.tensors.filter({ $0.byteCount > 0 }).sorted(by: { $0.offset < $1.offset }) {
                guard t.offset >= end else {
                    throw FormatError.malformed(path: path, reason: "tensor \(t.name) (data bytes \(t.offset)..<\(t.offset + t.byteCount)) overlaps tensor \(last), which ends at \(end)")
                }
                end = t.offset + t.byteCount
                last = t.name
            }
            return header
        }

        private mutating func tensorInfo(alignment: Int) throws -> GGUFFile.TensorInfo {
            let name = try string("a tensor name")
            let nDims = try read(UInt32.self)
            guard nDims <= GGUFFile.maxDims else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) has \(nDims) dimensions (at most \(GGUFFile.maxDims))")
            }
            var dims = [Int](), elements = 1
            for _ in 0..<nDims {
                let raw = try read(UInt64.self)
                guard raw <= UInt64(Int64.max) else {
                    throw FormatError.malformed(path: path, reason: "tensor \(name) has dimension \(raw), too large to address")
                }
                let d = Int(raw)
                dims.append(d)
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw FormatError.malformed(path: path, reason: "tensor \(name) has dims \(dims)…, too large to address")
                }
                elements = product
            }
            let rawType = try read(UInt32.self)
            guard let type = GGMLType(rawValue: rawType) else {
                throw FormatError.unsupportedDType(path: path, name: name, dtype: "unknown ggml type \(rawType)")
            }
            guard (dims.first ?? 1) % type.blockSize == 0 else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) has rows of \(dims.first ?? 1) elements, not a multiple of \(type)'s block of \(type.blockSize)")
            }
            guard let byteCount = type.byteCount(elements: elements) else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) has dims \(dims), too large to address")
            }
            let rawOffset = try read(UInt64.self)
            guard let offset = Int(exactly: rawOffset), offset % alignment == 0 else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) has data offset \(rawOffset), not a multiple of the alignment \(alignment) within the file")
            }
            return GGUFFile.TensorInfo(name: name, dims: dims, type: type, offset: offset, byteCount: byteCount,
                                       elementCount: elements)
        }

        private mutating func value(of type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
            switch type {
            case .uint8: return .uint8(try read(UInt8.self))
            case .int8: return .int8(try read(Int8.self))
            case .uint16: return .uint16(try read(UInt16.self))
            case .int16: return .int16(try read(Int16.self))
            case .uint32: return .uint32(try read(UInt32.self))
            case .int32: return .int32(try read(Int32.self))
            case .uint64: return .uint64(try read(UInt64.self))
            case .int64: return .int64(try read(Int64.self))
            case .float32: return .float32(Float(bitPattern: try read(UInt32.self)))
            case .float64: return .float64(Double(bitPattern: try read(UInt64.self)))
            case .bool:
                let b = try read(UInt8.self)
                guard b <= 1 else { throw FormatError.malformed(path: path, reason: "metadata \(key) has bool value \(b)") }
                return .bool(b == 1)
            case .string: return .string(try string("metadata \(key)"))
            case .array:
                guard depth < GGUFFile.maxArrayDepth else {
                    throw FormatError.malformed(path: path, reason: "metadata \(key) nests arrays deeper than \(GGUFFile.maxArrayDepth)")
                }
                let rawType = try read(UInt32.self)
                guard let elementType = GGUFValueType(rawValue: rawType) else {
                    throw FormatError.malformed(path: path, reason: "metadata \(key) is an array of unknown value type \(rawType)")
                }
                let n = try count(of: "elements in metadata \(key)", minimumSize: elementType.minimumSize)
                var values = [GGUFValue]()
                values.reserveCapacity(n)
                for _ in 0..<n { values.append(try value(of: elementType, key: key, depth: depth + 1)) }
                return .array(values)
            }
        }

        /// A u64 count of items that each take at least `minimumSize` bytes, checked against the bytes that remain
        /// (so a count of 2^60 fails here, before anything is allocated).
        private mutating func count(of what: String, minimumSize: Int) throws -> Int {
            let n = try read(UInt64.self)
            guard n <= UInt64(remaining / minimumSize) else {
                throw FormatError.malformed(path: path, reason: "\(n) \(what) cannot fit in the \(remaining) bytes left at offset \(position)")
            }
            return Int(n)
        }

        /// A u64 length and that many bytes of UTF-8 (invalid sequences become U+FFFD).
        private mutating func string(_ what: String) throws -> String {
            let n = try read(UInt64.self)
            guard n <= UInt64(remaining) else {
                throw FormatError.malformed(path: path, reason: "\(what) claims \(n) bytes, but \(remaining) remain at offset \(position)")
            }
            let s = String(decoding: bytes[position..<position + Int(n)], as: UTF8.self)
            position += Int(n)
            return s
        }

        private mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let n = MemoryLayout<T>.size
            guard n <= remaining else {
                throw FormatError.truncated(path: path, expectedBytes: position + n, actualBytes: bytes.count)
            }
            let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
            position += n
            return v
        }
    }
}


private func Glibc_open(_ path: String) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, O_RDONLY)
    #else
    return Darwin.open(path, O_RDONLY)
    #endif
}
