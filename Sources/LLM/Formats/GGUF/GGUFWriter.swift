// Writing GGUF v3 files (the layout is described in GGUFFile.swift), byte for byte as gguf-py's GGUFWriter writes
// them: metadata in the order it was added, tensor infos with offsets that pad every tensor to the alignment, zeros up
// to the alignment after the header, each tensor's bytes followed by zeros up to the alignment.
//
//     var w = GGUFWriter()
//     w.add("general.architecture", .string("llama"))          // keys in order; adding a key again replaces its value
//     w.add("general.alignment", .uint32(64))                  // optional, default 32
//     w.addTensor(name: "output_norm.weight", dims: [C], type: .f32, data: floats)
//     w.addTensor(name: "token_embd.weight", dims: [C, V], type: .q8_0) { dst in ... fill dst ... }
//     try w.write(to: path)
//
// dims are in ggml order (dims[0] is the innermost, a row's length; a PyTorch shape reversed). Tensors are F32, F16,
// BF16 or Q8_0, converted from Float bit for bit as gguf.quants.quantize does (GGMLBlocks.swift). Writing streams
// one tensor at a time (a fill closure runs when its tensor is written, into a buffer that lives only for that
// tensor), so a model needs at most one tensor's floats and bytes beyond what the caller holds. The file appears
// atomically (temporary file, fsync, rename); on any error, including one thrown by a fill closure, nothing is left.
// An empty metadata array is written with element type u8 (gguf-py refuses empty arrays).

public struct GGUFWriter {
    /// Metadata keys in the order they were first added.
    public private(set) var keys = [String]()
    public private(set) var metadata = GGUFMetadata()
    private var tensors = [PendingTensor]()

    private struct PendingTensor {
        enum Source {
            case floats([Float])
            case fill((UnsafeMutableBufferPointer<Float>) throws -> Void)
        }

        let name: String
        let dims: [Int]
        let type: GGMLType
        let source: Source
    }

    public init() {}

    /// Adds a metadata entry; adding a key again replaces its value and keeps its place (as gguf-py).
    public mutating func add(_ key: String, _ value: GGUFValue) {
        if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Adds a tensor whose elements are `data` (row-major in ggml order: dims[0] varies fastest).
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, data: [Float]) {
        tensors.append(PendingTensor(name: name, dims: dims, type: type, source: .floats(data)))
    }

    /// Adds a tensor whose elements `fill` writes, when the tensor is written, into a buffer of exactly
    /// dims.product floats.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType,
                                   fill: @escaping (UnsafeMutableBufferPointer<Float>) throws -> Void) {
        tensors.append(PendingTensor(name: name, dims: dims, type: type, source: .fill(fill)))
    }

    /// Validates everything, then writes the file atomically.
    public func write(to path: String) throws {
        func fail(_ reason: String) -> FormatError { .writeFailed(path: path, reason: reason) }

        var alignment = GGUFFile.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard case let .uint32(a) = value, a != 0, a & (a - 1) == 0 else {
                throw fail("general.alignment is \(value), not a u32 power of two")
            }
            alignment = Int(a)
        }
        func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

        // The header: counts, metadata, tensor infos with their offsets, padding.
        var header = [UInt8]()
        header.append(le: GGUFFile.magic)
        header.append(le: UInt32(3))
        header.append(le: UInt64(tensors.count))
        header.append(le: UInt64(keys.count))
        for key in keys {
            header.append(gguf: key)
            let value = metadata[key]!
            header.append(le: GGUFValueType(of: value).rawValue)
            try header.append(gguf: value, key: key, depth: 0, fail: fail)
        }
        var names = Set<String>(), byteCounts = [Int](), offset = 0
        for t in tensors {
            guard names.insert(t.name).inserted else { throw fail("duplicate tensor name \(t.name)") }
            guard t.type.canQuantize else { throw fail("tensor \(t.name): writing \(t.type) is not supported") }
            guard t.dims.count <= GGUFFile.maxDims, t.dims.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor \(t.name) has dims \(t.dims) (at most \(GGUFFile.maxDims), none negative)")
            }
            guard (t.dims.first ?? 1) % t.type.blockSize == 0 else {
                throw fail("tensor \(t.name) has rows of \(t.dims.first ?? 1) elements, not a multiple of \(t.type)'s block of \(t.type.blockSize)")
            }
            var elements: Int? = 1
            for d in t.dims { elements = elements.flatMap { e in
                let (p, overflow) = e.multipliedReportingOverflow(by: d)
                return overflow ? nil : p
            } }
            guard let elements, let bytes = t.type.byteCount(elements: elements) else {
                throw fail("tensor \(t.name) has dims \(t.dims), too large to address")
            }
            if case let .floats(data) = t.source, data.count != elements {
                throw fail("tensor \(t.name) has \(data.count) floats for dims \(t.dims)")
            }
            header.append(gguf: t.name)
            header.append(le: UInt32(t.dims.count))
            for d in t.dims { header.append(le: UInt64(d)) }
            header.append(le: t.type.rawValue)
            header.append(le: UInt64(offset))
            byteCounts.append(bytes)
            offset += padded(bytes)
        }
        header.append(contentsOf: repeatElement(0, count: padded(header.count) - header.count))

        try writeFileAtomically(path) { out in
            try out.write(header)
            for (t, byteCount) in zip(tensors, byteCounts) {
                var bytes = [UInt8](repeating: 0, count: padded(byteCount))
                try bytes.withUnsafeMutableBytes { dst in
                    let encoded = UnsafeMutableRawBufferPointer(rebasing: dst[0..<byteCount])
                    switch t.source {
                    case let .floats(data):
                        data.withUnsafeBufferPointer { t.type.quantize($0, into: encoded) }
                    case let .fill(fill):
                        var floats = [Float](repeating: 0, count: byteCount / t.type.bytesPerBlock * t.type.blockSize)
                        try floats.withUnsafeMutableBufferPointer { try fill($0) }
                        floats.withUnsafeBufferPointer { t.type.quantize($0, into: encoded) }
                    }
                }
                try out.write(bytes)
            }
        }
    }
}

extension [UInt8] {
    fileprivate mutating func append<T: FixedWidthInteger>(le value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// A GGUF string: u64 byte count, UTF-8 bytes.
    fileprivate mutating func append(gguf string: String) {
        append(le: UInt64(string.utf8.count))
        append(contentsOf: string.utf8)
    }

    /// A metadata value without its type tag (arrays carry their element type and count).
    fileprivate mutating func append(gguf value: GGUFValue, key: String, depth: Int,
                                     fail: (String) -> FormatError) throws {
        switch value {
        case let .uint8(v): append(le: v)
        case let .int8(v): append(le: v)
        case let .uint16(v): append(le: v)
        case let .int16(v): append(le: v)
        case let .uint32(v): append(le: v)
        case let .int32(v): append(le: v)
        case let .uint64(v): append(le: v)
        case let .int64(v): append(le: v)
        case let .float32(v): append(le: v.bitPattern)
        case let .float64(v): append(le: v.bitPattern)
        case let .bool(v): append(v ? 1 : 0)
        case let .string(v): append(gguf: v)
        case let .array(values):
            guard depth < GGUFFile.maxArrayDepth else {
                throw fail("metadata \(key) nests arrays deeper than \(GGUFFile.maxArrayDepth)")
            }
            let elementType = values.first.map { GGUFValueType(of: $0) } ?? .uint8
            guard values.allSatisfy({ GGUFValueType(of: $0) == elementType }) else {
                throw fail("metadata \(key) is an array of mixed types")
            }
            append(le: elementType.rawValue)
            append(le: UInt64(values.count))
            for v in values { try append(gguf: v, key: key, depth: depth + 1, fail: fail) }
        }
    }
}
