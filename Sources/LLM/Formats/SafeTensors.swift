// The safetensors format: u64 little-endian header length N, N bytes of JSON
// {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}, then the raw data.
import Foundation

public struct SafeTensorsFile {
    public struct Entry: Equatable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        public let offsets: Range<Int>  // within the data section
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    let data: [UInt8]

    static let maxHeaderBytes = 100 << 20

    /// A validated header without the data: what a reader checks before it commits to allocating anything.
    public struct Header {
        public let path: String
        public let entries: [String: Entry]
        public let metadata: [String: String]
        /// Bytes of the data section (every tensor's bytes, back to back).
        public let dataBytes: Int
    }

    /// Reads and validates a whole safetensors file: a well-formed header whose tensors lie inside the data
    /// and whose byte sizes match their dtype and shape.
    public static func read(_ path: String) throws -> SafeTensorsFile {
        var file = try FileReader(path: path)
        let header = try parseHeader(&file)
        let data = try file.readBytes(file.remaining)
        return SafeTensorsFile(path: path, entries: header.entries, metadata: header.metadata, data: data)
    }

    /// Reads and validates only the header (the data section's size comes from the file's size), so a caller
    /// can check names, shapes and sizes before reading or allocating anything large.
    public static func readHeader(_ path: String) throws -> Header {
        var file = try FileReader(path: path)
        return try parseHeader(&file)
    }

    /// The header's checks, as the reference implementation makes them: a length that fits the file, a JSON
    /// object, entries with a dtype, a shape of non-negative integers and two integer offsets, byte counts that
    /// match dtype × shape (every product overflow-checked), and tensors that tile the data section exactly:
    /// sorted by offset, each begins where the previous ends, the last ends at the end of the file (no overlap,
    /// no hole, no trailing bytes).
    private static func parseHeader(_ file: inout FileReader) throws -> Header {
        let path = file.path
        guard file.size >= 8 else { throw FormatError.truncated(path: path, expectedBytes: 8, actualBytes: file.size) }
        let lenBytes = try file.readBytes(8)
        let length = lenBytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(maxHeaderBytes), Int(length) <= file.remaining else {
            throw FormatError.malformed(path: path, reason: "header length \(length) does not fit in the \(file.size)-byte file")
        }
        let n = Int(length)
        let headerBytes = try file.readBytes(n)
        guard headerBytes.first == UInt8(ascii: "{"),
              let json = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "header is not a JSON object")
        }
        let dataBytes = file.remaining
        /// A JSON number that is a whole number in 0...Int.max (not a fraction, not a huge double).
        func index(_ v: Any) -> Int? {
            guard let number = v as? NSNumber else { return nil }
            return Int(exactly: number).flatMap { $0 >= 0 ? $0 : nil }
        }
        var entries = [String: Entry](), metadata = [String: String]()
        for (name, value) in json {
            if name == "__metadata__" {
                if let m = value as? [String: String] { metadata = m }
                continue
            }
            guard let obj = value as? [String: Any], let dtype = obj["dtype"] as? String,
                  let rawShape = obj["shape"] as? [Any], let rawOffsets = obj["data_offsets"] as? [Any],
                  rawOffsets.count == 2
            else { throw FormatError.malformed(path: path, reason: "bad entry for tensor \(name)") }
            let shape = rawShape.compactMap(index), offs = rawOffsets.compactMap(index)
            guard shape.count == rawShape.count else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) has shape \(rawShape.map { "\($0)" }), not a list of non-negative integers")
            }
            guard offs.count == 2, offs[0] <= offs[1], offs[1] <= dataBytes else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) data \(rawOffsets.map { "\($0)" }) lies outside the \(dataBytes)-byte data section")
            }
            if let size = bytesPerElement(dtype) {
                var bytes: Int? = size
                for d in shape { bytes = bytes.flatMap { b in
                    let (p, overflow) = b.multipliedReportingOverflow(by: d)
                    return overflow ? nil : p
                } }
                guard let bytes else {
                    throw FormatError.malformed(path: path, reason: "tensor \(name) has shape \(shape), too large to address")
                }
                guard bytes == offs[1] - offs[0] else {
                    throw FormatError.malformed(path: path, reason: "tensor \(name) has \(offs[1] - offs[0]) bytes for shape \(shape) of \(dtype)")
                }
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, offsets: offs[0]..<offs[1])
        }
        // The tensors must cover the data section exactly once, in offset order.
        var end = 0
        for e in entries.values.sorted(by: { ($0.offsets.lowerBound, $0.offsets.upperBound, $0.name) < ($1.offsets.lowerBound, $1.offsets.upperBound, $1.name) }) {
            guard e.offsets.lowerBound == end else {
                throw FormatError.malformed(path: path, reason: e.offsets.lowerBound < end
                    ? "tensor \(e.name) data \([e.offsets.lowerBound, e.offsets.upperBound]) overlaps another tensor's (which ends at \(end))"
                    : "bytes \(end)..<\(e.offsets.lowerBound) of the data section belong to no tensor")
            }
            end = e.offsets.upperBound
        }
        guard end == dataBytes else {
            throw FormatError.malformed(path: path, reason: "bytes \(end)..<\(dataBytes) of the data section belong to no tensor")
        }
        return Header(path: path, entries: entries, metadata: metadata, dataBytes: dataBytes)
    }

    static func bytesPerElement(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32", "U32": 4
        case "F16", "BF16", "I16", "U16": 2
        case "F64", "I64", "U64": 8
        case "I8", "U8", "BOOL": 1
        default: nil
        }
    }

    /// A tensor's values widened to Float32 (from F32, F16 or BF16).
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw FormatError.missingTensor(path: path, name: name) }
        guard let size = Self.bytesPerElement(e.dtype) else {
            throw FormatError.unsupportedDType(path: path, name: name, dtype: e.dtype)
        }
        let count = e.offsets.count / size  // read checked that the bytes are exactly dtype × shape
        if count == 0 { return [] }
        return try data.withUnsafeBytes { raw -> [Float] in
            let base = raw.baseAddress! + e.offsets.lowerBound
            switch e.dtype {
            case "F32":
                return (0..<count).map { Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case "F16":
                return (0..<count).map { floatFromFloat16(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case "BF16":
                return (0..<count).map { floatFromBFloat16(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            default:
                throw FormatError.unsupportedDType(path: path, name: name, dtype: e.dtype)
            }
        }
    }

    /// An I32 tensor's values.
    public func int32s(_ name: String) throws -> [Int32] {
        guard let e = entries[name] else { throw FormatError.missingTensor(path: path, name: name) }
        guard e.dtype == "I32" else { throw FormatError.unsupportedDType(path: path, name: name, dtype: e.dtype) }
        if e.offsets.isEmpty { return [] }
        return data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + e.offsets.lowerBound
            return (0..<e.offsets.count / 4).map {
                Int32(littleEndian: base.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))
            }
        }
    }

    /// One tensor to write: Float32 values, or Int32 ones (token ids).
    public struct Tensor {
        public let name: String
        public let shape: [Int]
        public let values: [Float]
        public let ints: [Int32]?
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) for \(values.count) values")
            self.name = name
            self.shape = shape
            self.values = values
            ints = nil
        }
        public init(name: String, shape: [Int], ints: [Int32]) {
            precondition(shape.reduce(1, *) == ints.count, "\(name): shape \(shape) for \(ints.count) values")
            self.name = name
            self.shape = shape
            values = []
            self.ints = ints
        }
    }

    /// Writes F32 (and I32) tensors atomically, laid out as the reference `safetensors` library does: compact JSON
    /// with `__metadata__` first and tensors sorted by name, padded with spaces to a multiple of 8 bytes.
    public static func write(_ tensors: [Tensor], metadata: [String: String] = ["format": "pt"], to path: String) throws {
        let sorted = tensors.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        var json = "{"
        var parts = [String]()
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for t in sorted {
            let bytes = (t.ints?.count ?? t.values.count) * 4
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(t.name)):{\"dtype\":\"\(t.ints == nil ? "F32" : "I32")\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        json += parts.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var length = UInt64(header.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Array($0) }
        try writeFileAtomically(path) { out in
            try out.write(lengthBytes)
            try out.write(header)
            for t in sorted {
                if let ints = t.ints { try out.write(int32s: ints) } else {
                    try t.values.withUnsafeBufferPointer { try out.write(floats: $0) }
                }
            }
        }
    }

    private static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
