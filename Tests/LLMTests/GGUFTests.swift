// GGUF: the reader, the writer and every dequantizer against what llama.cpp's Python package (gguf-py) computes
// and writes (Fixtures/gguf/, made by reference/make_gguf_fixtures.py), bit for bit; and hostile files, which must
// fail with a one-line FormatError, never crash or allocate what they claim.
import Foundation
import Testing
@testable import LLM

@Suite struct GGUFTests {
    // MARK: Fixture helpers

    static func fixture(_ file: String) throws -> [UInt8] { try Fixtures.bytes("gguf", file) }

    static func floats(_ file: String) throws -> [Float] {
        let bytes = try fixture(file)
        return stride(from: 0, to: bytes.count, by: 4).map { i in
            Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
    }

    /// The first index where two float arrays differ bitwise, or nil.
    static func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
        guard a.count == b.count else { return -1 }
        return a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
    }

    /// The first index where two byte arrays differ, or nil.
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        guard a.count == b.count else { return min(a.count, b.count) }
        return a.indices.first { a[$0] != b[$0] }
    }

    // MARK: 1. Dequantizers: bit-exact with gguf.quants.dequantize

    static let dequantizedTypes: [GGMLType] = [.f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    @Test(arguments: dequantizedTypes)
    func dequantizerMatchesGGUFPy(_ type: GGMLType) throws {
        let raw = try Self.fixture("\(type).raw")
        let expected = try Self.floats("\(type).f32")
        #expect(raw.count % type.bytesPerBlock == 0 && raw.count / type.bytesPerBlock * type.blockSize == expected.count)
        let got = type.dequantize(raw)
        let i = Self.firstDifference(got, expected)
        #expect(i == nil, "\(type): element \(i ?? 0): \(i.map { got[$0] } ?? 0) != \(i.map { expected[$0] } ?? 0)")
    }

    @Test func dequantizingWithThreadsGivesTheSameFloats() throws {
        // 64 Q4_K blocks (2^14 elements) and 2^16 F16 elements: the first stays on one thread, the second splits.
        for (type, copies) in [(GGMLType.q4_K, 16), (.f16, 128)] {
            let raw = Array([[UInt8]](repeating: try Self.fixture("\(type).raw"), count: copies).joined())
            let n = raw.count / type.bytesPerBlock * type.blockSize
            var one = [Float](repeating: 0, count: n), three = [Float](repeating: 1, count: n)
            raw.withUnsafeBytes { src in
                one.withUnsafeMutableBufferPointer { type.dequantize(src, into: $0, parallel: ParallelFor(threads: 1)) }
                three.withUnsafeMutableBufferPointer { type.dequantize(src, into: $0, parallel: ParallelFor(threads: 3)) }
            }
            #expect(Self.firstDifference(one, three) == nil)
        }
    }

    @Test func typeSizesAreGGMLs() {
        let sizes: [(GGMLType, Int, Int)] = [(.f32, 1, 4), (.f16, 1, 2), (.bf16, 1, 2), (.q4_0, 32, 18), (.q4_1, 32, 20),
                                             (.q5_0, 32, 22), (.q5_1, 32, 24), (.q8_0, 32, 34), (.q2_K, 256, 84),
                                             (.q3_K, 256, 110), (.q4_K, 256, 144), (.q5_K, 256, 176), (.q6_K, 256, 210),
                                             (.q8_K, 256, 292), (.iq4_XS, 256, 136), (.tq2_0, 256, 66)]
        for (type, block, bytes) in sizes {
            #expect(type.blockSize == block && type.bytesPerBlock == bytes, "\(type)")
        }
        #expect(GGMLType(rawValue: 30) == .bf16 && GGMLType(rawValue: 14)?.description == "Q6_K")
        #expect(GGMLType(rawValue: 31) == nil && GGMLType(rawValue: 4) == nil)
        #expect(GGMLType.q4_K.byteCount(elements: 512) == 288 && GGMLType.q4_K.byteCount(elements: 100) == nil)
        #expect(GGMLType.f32.byteCount(elements: Int.max / 2) == nil)
    }

    // MARK: 2. Quantizers: bit-exact with gguf.quants.quantize

    @Test func float16AndBFloat16ConversionsMatchGGUFPy() throws {
        let input = try Self.floats("convert-input.f32")
        for type in [GGMLType.f16, .bf16] {
            let expected = try Self.fixture("convert-input.\(type)")
            let got = type.quantize(input)
            let i = Self.firstDifference(got, expected)
            #expect(i == nil,
                    "\(type): input \(i.map { String(input[$0 / 2].bitPattern, radix: 16) } ?? "")")
        }
    }

    @Test func q8_0QuantizationMatchesGGUFPy() throws {
        // Blocks at scales from 1e-5 to 1e5, zeros, exact halves, infinities, NaN, subnormal and overflowing scales.
        let input = try Self.floats("q8_0-input.f32")
        let expected = try Self.fixture("q8_0-input.Q8_0")
        let got = GGMLType.q8_0.quantize(input)
        let i = Self.firstDifference(got, expected)
        #expect(i == nil, "block \(i.map { $0 / 34 } ?? 0), byte \(i.map { $0 % 34 } ?? 0)")
    }

    // MARK: 3. Reading gguf-py's file

    /// A metadata value from reader.json: integers as decimal strings, floats as bit patterns.
    static func expectedValue(_ json: [String: Any]) throws -> GGUFValue {
        let type = try #require(json["type"] as? String)
        if type == "array" {
            return .array(try (try #require(json["value"] as? [[String: Any]])).map(expectedValue))
        }
        let s = try #require(json["value"] as? String)
        switch type {
        case "uint8": return .uint8(try #require(UInt8(s)))
        case "int8": return .int8(try #require(Int8(s)))
        case "uint16": return .uint16(try #require(UInt16(s)))
        case "int16": return .int16(try #require(Int16(s)))
        case "uint32": return .uint32(try #require(UInt32(s)))
        case "int32": return .int32(try #require(Int32(s)))
        case "uint64": return .uint64(try #require(UInt64(s)))
        case "int64": return .int64(try #require(Int64(s)))
        case "float32": return .float32(Float(bitPattern: try #require(UInt32(s))))
        case "float64": return .float64(Double(bitPattern: try #require(UInt64(s))))
        case "bool": return .bool(s == "true")
        case "string": return .string(s)
        default: throw FormatError.malformed(path: "reader.json", reason: "unknown type \(type)")
        }
    }

    /// Equality with floats compared bit for bit (so -0.0 is not 0.0).
    static func identical(_ a: GGUFValue, _ b: GGUFValue) -> Bool {
        switch (a, b) {
        case let (.float32(x), .float32(y)): x.bitPattern == y.bitPattern
        case let (.float64(x), .float64(y)): x.bitPattern == y.bitPattern
        case let (.array(x), .array(y)): x.count == y.count && zip(x, y).allSatisfy { identical($0, $1) }
        default: a == b
        }
    }

    @Test func readsGGUFPyFileExactly() throws {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(Self.fixture("reader.json"))) as? [String: Any])
        let file = try GGUFFile.open(Fixtures.path("gguf", "reader.gguf"))
        #expect(file.version == json["version"] as? Int)
        #expect(file.alignment == 64 && file.dataOffset == json["data_offset"] as? Int && file.dataOffset % 64 == 0)

        let entries = try #require(json["metadata"] as? [[String: Any]])
        #expect(file.metadataKeys == entries.compactMap { $0["key"] as? String })
        #expect(file.metadata.count == entries.count)
        for entry in entries {
            let key = try #require(entry["key"] as? String)
            let expected = try Self.expectedValue(entry)
            let got = try #require(file.metadata[key], "\(key)")
            #expect(Self.identical(got, expected), "\(key): \(got) != \(expected)")
        }
        #expect(file.metadata["tokenizer.ggml.tokens"]?.strings?.count == 40)
        #expect(file.metadata["test.string.unicode"]?.string?.contains("🦙") == true)

        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(file.tensors.map(\.name) == tensors.compactMap { $0["name"] as? String })
        for t in tensors {
            let name = try #require(t["name"] as? String)
            let info = try #require(file.tensor(named: name))
            #expect(info.type.rawValue == t["type"] as? UInt32 && info.dims == t["dims"] as? [Int], "\(name)")
            #expect(info.offset == t["offset"] as? Int && info.elementCount == info.dims.reduce(1, *), "\(name)")
            if let bits = t["bits"] as? [UInt32] {
                let got = try file.dequantize(name)
                let expected = bits.map(Float.init(bitPattern:))
                #expect(Self.firstDifference(got, expected) == nil, "\(name)")
                // Straight into caller memory, with threads.
                var into = [Float](repeating: .nan, count: info.elementCount)
                try into.withUnsafeMutableBufferPointer { try file.dequantize(info, into: $0, parallel: ParallelFor(threads: 2)) }
                #expect(Self.firstDifference(into, expected) == nil, "\(name)")
            }
            if let ints = t["ints"] as? [Int32] {
                let got = file.withTensorBytes(info) { raw in
                    (0..<info.elementCount).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
                }
                #expect(got == ints)
                #expect(throws: FormatError.unsupportedDType(path: file.path, name: name, dtype: "I32")) {
                    try file.dequantize(name)
                }
            }
        }
        #expect(throws: FormatError.missingTensor(path: file.path, name: "nope")) { try file.dequantize("nope") }
        let q8 = try #require(file.tensor(named: "q8_0"))
        var small = [Float](repeating: 0, count: q8.elementCount - 1)
        #expect(throws: FormatError.self) { try small.withUnsafeMutableBufferPointer { try file.dequantize(q8, into: $0) } }
    }

    // MARK: 4. Writing: byte for byte as gguf-py, atomically

    /// q8_0-input.f32's first 384 floats with NaN → 0 and ±inf → ±1 (what make_gguf_fixtures.py's writer_fixture uses).
    static func writerInput() throws -> [Float] {
        try floats("q8_0-input.f32").prefix(384).map { $0.isNaN ? 0 : $0 == .infinity ? 1 : $0 == -.infinity ? -1 : $0 }
    }

    @Test func writerMatchesGGUFPyByteForByte() throws {
        let reference = try GGUFFile.open(Fixtures.path("gguf", "writer.gguf"))
        let x = try Self.writerInput()
        var w = GGUFWriter()
        for key in reference.metadataKeys { w.add(key, reference.metadata[key]!) }
        w.addTensor(name: "t.f32", dims: [32, 3], type: .f32, data: Array(x[0..<96]))
        w.addTensor(name: "t.f16", dims: [64], type: .f16, data: Array(x[96..<160]))
        w.addTensor(name: "t.bf16", dims: [96, 1], type: .bf16, data: Array(x[160..<256]))
        w.addTensor(name: "t.q8_0", dims: [32, 4], type: .q8_0) { dst in
            for i in 0..<dst.count { dst[i] = x[256 + i] }
        }
        try withTemporaryDirectory { dir in
            try w.write(to: dir + "/ours.gguf")
            let ours = try readBytes(dir + "/ours.gguf"), theirs = try Self.fixture("writer.gguf")
            #expect(ours.count == theirs.count)
            #expect(ours == theirs, "first difference at byte \(Self.firstDifference(ours, theirs) ?? -1)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["ours.gguf"])
        }
    }

    @Test func writerRoundTripsThroughTheReader() throws {
        let metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.alignment", .uint32(64)),
            ("a.u8", .uint8(200)), ("a.i8", .int8(-3)), ("a.u16", .uint16(60000)), ("a.i16", .int16(-30000)),
            ("a.u32", .uint32(.max)), ("a.i32", .int32(.min)), ("a.u64", .uint64(.max)), ("a.i64", .int64(.min)),
            ("a.f32", .float32(-0.0)), ("a.f64", .float64(.pi)), ("a.bool", .bool(true)), ("a.string", .string("")),
            ("a.strings", .array([.string("x"), .string("✓ 🦙")])), ("a.empty", .array([])),
            ("a.nested", .array([.array([.int32(1)]), .array([.string("s"), .string("t")]), .array([])])),
        ]
        var w = GGUFWriter()
        for (k, v) in metadata { w.add(k, v) }
        w.add("a.u8", .uint8(201))  // replaces the value, keeps the place
        let data = (0..<128).map { Float($0 % 17) * 0.37 - 2.9 }
        w.addTensor(name: "f32", dims: [3, 2], type: .f32, data: Array(data[0..<6]))
        w.addTensor(name: "f16", dims: [8], type: .f16, data: Array(data[0..<8]))
        w.addTensor(name: "bf16", dims: [2, 1, 1, 2], type: .bf16, data: Array(data[0..<4]))
        w.addTensor(name: "q8_0", dims: [64, 2], type: .q8_0) { dst in
            for i in 0..<dst.count { dst[i] = data[i] }
        }
        try withTemporaryDirectory { dir in
            let path = dir + "/round.gguf"
            try w.write(to: path)
            let file = try GGUFFile.open(path)
            #expect(file.version == 3 && file.alignment == 64)
            #expect(file.metadataKeys == metadata.map(\.0))
            for (k, v) in metadata {
                let expected = k == "a.u8" ? GGUFValue.uint8(201) : v
                #expect(Self.identical(try #require(file.metadata[k]), expected), "\(k)")
            }
            #expect(file.tensors.map(\.name) == ["f32", "f16", "bf16", "q8_0"])
            #expect(file.tensors.map(\.dims) == [[3, 2], [8], [2, 1, 1, 2], [64, 2]])
            #expect(file.tensors.allSatisfy { $0.offset % 64 == 0 })
            #expect(try file.dequantize("f32") == Array(data[0..<6]))
            for (name, type, count) in [("f16", GGMLType.f16, 8), ("bf16", .bf16, 4), ("q8_0", .q8_0, 128)] {
                let expected = type.dequantize(type.quantize(Array(data[0..<count])))
                #expect(Self.firstDifference(try file.dequantize(name), expected) == nil, "\(name)")
            }
            // The file ends with the last tensor's padding, as gguf-py's.
            #expect(try readBytes(path).count == file.dataOffset + file.tensors.last!.offset + 192)
        }
    }

    @Test func aFailedWriteLeavesNothingBehind() throws {
        struct Stop: Error {}
        try withTemporaryDirectory { dir in
            let path = dir + "/model.gguf"
            try writeBytes([1, 2, 3], path)  // an earlier file stays as it was
            var w = GGUFWriter()
            w.add("general.architecture", .string("llama"))
            w.addTensor(name: "a", dims: [4], type: .f32, data: [1, 2, 3, 4])
            w.addTensor(name: "b", dims: [32], type: .q8_0) { _ in throw Stop() }
            #expect(throws: Stop.self) { try w.write(to: path) }
            #expect(try readBytes(path) == [1, 2, 3])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["model.gguf"])

            // Refused before anything is written.
            func refused(_ mentions: String, _ build: (inout GGUFWriter) -> Void) {
                var w = GGUFWriter()
                build(&w)
                do {
                    try w.write(to: dir + "/new.gguf")
                    Issue.record("expected an error mentioning \(mentions)")
                } catch let error as FormatError {
                    #expect(error.description.hasPrefix(dir + "/new.gguf: cannot write: "), "\(error)")
                    #expect(error.description.contains(mentions), "\(error)")
                } catch { Issue.record("unexpected error \(error)") }
                #expect(!FileManager.default.fileExists(atPath: dir + "/new.gguf"))
            }
            refused("Q4_K") { $0.addTensor(name: "t", dims: [256], type: .q4_K, data: .init(repeating: 0, count: 256)) }
            refused("not a multiple of Q8_0's block of 32") { $0.addTensor(name: "t", dims: [16, 2], type: .q8_0, data: .init(repeating: 0, count: 32)) }
            refused("3 floats for dims [4]") { $0.addTensor(name: "t", dims: [4], type: .f32, data: [1, 2, 3]) }
            refused("duplicate tensor name t") {
                $0.addTensor(name: "t", dims: [1], type: .f32, data: [1])
                $0.addTensor(name: "t", dims: [1], type: .f32, data: [1])
            }
            refused("too large to address") { $0.addTensor(name: "t", dims: [1 << 40, 1 << 40], type: .f32) { _ in } }
            refused("at most 4") { $0.addTensor(name: "t", dims: [1, 1, 1, 1, 1], type: .f32, data: [1]) }
            refused("general.alignment") { $0.add("general.alignment", .uint32(48)) }
            refused("mixed types") { $0.add("k", .array([.int32(1), .uint32(2)])) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["model.gguf"])
        }
    }

    // MARK: 5. Hostile files

    /// GGUF bytes built by hand, to write what no writer would.
    struct Raw {
        var bytes = [UInt8]()
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += s.utf8 }

        /// A key/value entry: key, value type, then whatever `value` appends.
        static func kv(_ key: String, _ type: UInt32, _ value: (inout Raw) -> Void) -> [UInt8] {
            var r = Raw()
            r.string(key)
            r.u32(type)
            value(&r)
            return r.bytes
        }

        static func tensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) -> [UInt8] {
            var r = Raw()
            r.string(name)
            r.u32(UInt32(dims.count))
            for d in dims { r.u64(d) }
            r.u32(type)
            r.u64(offset)
            return r.bytes
        }

        /// A whole file: header, entries, tensor infos, padding to 32, `data` zero bytes.
        static func file(version: UInt32 = 3, kvs: [[UInt8]] = [], tensors: [[UInt8]] = [], data: Int = 0) -> [UInt8] {
            var r = Raw()
            r.bytes += Array("GGUF".utf8)
            r.u32(version)
            r.u64(UInt64(tensors.count))
            r.u64(UInt64(kvs.count))
            for kv in kvs { r.bytes += kv }
            for t in tensors { r.bytes += t }
            while r.bytes.count % 32 != 0 { r.u8(0) }
            return r.bytes + [UInt8](repeating: 0, count: data)
        }
    }

    /// Opening `bytes` throws a one-line FormatError naming the file that mentions `mentions`.
    func expectRefused(_ bytes: [UInt8], mentions: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.gguf"
            try writeBytes(bytes, path)
            do {
                _ = try GGUFFile.open(path)
                Issue.record("expected an error mentioning \(mentions)", sourceLocation: sourceLocation)
            } catch let error as FormatError {
                #expect(error.description.hasPrefix(path + ": "), "\(error)", sourceLocation: sourceLocation)
                #expect(error.description.contains(mentions), "\(error)", sourceLocation: sourceLocation)
                #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
            }
        }
    }

    @Test func handCraftedFilesAreReadAndEmptyOnesAreValid() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.gguf"
            try writeBytes(Raw.file(version: 2, kvs: [Raw.kv("e", 9) { $0.u32(8); $0.u64(0) }],
                                    tensors: [Raw.tensor("w", dims: [2, 3]), Raw.tensor("empty", dims: [0, 5], offset: 32)],
                                    data: 32), path)
            let file = try GGUFFile.open(path)
            #expect(file.version == 2 && file.metadata["e"] == .array([]))
            #expect(file.tensors.map(\.elementCount) == [6, 0] && file.tensors.map(\.byteCount) == [24, 0])
            #expect(try file.dequantize("w") == [Float](repeating: 0, count: 6) && file.dequantize("empty") == [])
        }
    }

    @Test func badHeadersAreRefused() throws {
        try expectRefused([], mentions: "truncated: 0 bytes")
        try expectRefused(Array("GGML".utf8) + [UInt8](repeating: 0, count: 28), mentions: "bad magic")
        try expectRefused(Raw.file(version: 1), mentions: "unsupported version 1 (supported: 2, 3)")
        try expectRefused(Raw.file(version: 4), mentions: "unsupported version 4")
        try expectRefused(Raw.file(version: 3 << 24), mentions: "big-endian")
        try expectRefused(Array(Raw.file().prefix(23)), mentions: "truncated")
    }

    @Test func hugeCountsAndLengthsFailFastWithoutAllocating() throws {
        let start = Date()
        var header = Raw.file(kvs: [Raw.kv("k", 4) { $0.u32(1) }])
        header.replaceSubrange(8..<16, with: withUnsafeBytes(of: UInt64(1 << 60).littleEndian) { Array($0) })
        try expectRefused(header, mentions: "1152921504606846976 tensors cannot fit")
        header = Raw.file(kvs: [Raw.kv("k", 4) { $0.u32(1) }])
        header.replaceSubrange(16..<24, with: withUnsafeBytes(of: UInt64.max.littleEndian) { Array($0) })
        try expectRefused(header, mentions: "18446744073709551615 metadata entries cannot fit")
        // A key, a string value and a tensor name claiming 2^63 bytes.
        var key = Raw()
        key.u64(1 << 63)
        try expectRefused(Raw.file(kvs: [key.bytes + [0, 0, 0, 0]]), mentions: "a metadata key claims 9223372036854775808 bytes")
        try expectRefused(Raw.file(kvs: [Raw.kv("s", 8) { $0.u64(.max) }]), mentions: "metadata s claims 18446744073709551615 bytes")
        var name = Raw()
        name.u64(1 << 63)
        try expectRefused(Raw.file(tensors: [name.bytes + [UInt8](repeating: 0, count: 24)]), mentions: "a tensor name claims")
        // Arrays of 2^60 bytes, strings and arrays.
        for elementType: UInt32 in [0, 8, 9, 12] {
            try expectRefused(Raw.file(kvs: [Raw.kv("a", 9) { $0.u32(elementType); $0.u64(1 << 60) }]),
                              mentions: "1152921504606846976 elements in metadata a cannot fit")
        }
        // An array whose count fits in bytes only if its elements were smaller than they are.
        try expectRefused(Raw.file(kvs: [Raw.kv("a", 9) { $0.u32(12); $0.u64(8) }]), mentions: "8 elements in metadata a cannot fit")
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func badMetadataIsRefused() throws {
        try expectRefused(Raw.file(kvs: [Raw.kv("k", 13) { $0.u32(0) }]), mentions: "metadata k has unknown value type 13")
        try expectRefused(Raw.file(kvs: [Raw.kv("k", 9) { $0.u32(99); $0.u64(1) }]), mentions: "array of unknown value type 99")
        try expectRefused(Raw.file(kvs: [Raw.kv("k", 7) { $0.u8(2) }]), mentions: "metadata k has bool value 2")
        try expectRefused(Raw.file(kvs: [Raw.kv("k", 4) { $0.u32(1) }, Raw.kv("k", 5) { $0.u32(2) }]),
                          mentions: "duplicate metadata key k")
        // Arrays nested 9 deep.
        let deep = Raw.kv("deep", 9) { r in
            for _ in 0..<8 { r.u32(9); r.u64(1) }
            r.u32(0); r.u64(1); r.u8(7)
        }
        try expectRefused(Raw.file(kvs: [deep]), mentions: "metadata deep nests arrays deeper than 8")
        for alignment in [Raw.kv("general.alignment", 4) { $0.u32(0) }, Raw.kv("general.alignment", 4) { $0.u32(48) },
                          Raw.kv("general.alignment", 10) { $0.u64(64) }] {
            try expectRefused(Raw.file(kvs: [alignment]), mentions: "general.alignment is")
        }
    }

    @Test func badTensorInfosAreRefused() throws {
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [1, 1, 1, 1, 1])]), mentions: "tensor t has 5 dimensions (at most 4)")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [1 << 32, 1 << 32, 1 << 32])]), mentions: "too large to address")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [1 << 63])]), mentions: "dimension 9223372036854775808, too large")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [1 << 62])]), mentions: "tensor t has dims [4611686018427387904], too large")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [4], type: 99)]),
                          mentions: "tensor t has unsupported dtype unknown ggml type 99")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [4], type: 31)]), mentions: "unknown ggml type 31")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [33, 2], type: 2)], data: 1024),
                          mentions: "tensor t has rows of 33 elements, not a multiple of Q4_0's block of 32")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [4], offset: 4)], data: 64),
                          mentions: "data offset 4, not a multiple of the alignment 32")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [4], offset: .max)]), mentions: "data offset 18446744073709551615")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [16], offset: UInt64(Int.max) & ~31)]),
                          mentions: "beyond any file")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [16], offset: 32)], data: 64), mentions: "truncated")
        try expectRefused(Raw.file(tensors: [Raw.tensor("t", dims: [1]), Raw.tensor("t", dims: [1], offset: 32)], data: 64),
                          mentions: "duplicate tensor name t")
        try expectRefused(Raw.file(tensors: [Raw.tensor("a", dims: [16]), Raw.tensor("b", dims: [8], offset: 32)], data: 96),
                          mentions: "tensor b (data bytes 32..<64) overlaps tensor a, which ends at 64")
    }

    @Test func everyTruncationOfARealFileIsRefused() throws {
        let bytes = try Self.fixture("reader.gguf")
        let file = try GGUFFile.open(Fixtures.path("gguf", "reader.gguf"))
        let end = file.dataOffset + file.tensors.map { $0.offset + $0.byteCount }.max()!
        try withTemporaryDirectory { dir in
            let path = dir + "/cut.gguf"
            // Every length inside the header, then every 8 bytes of the data, cutting the file shorter and shorter;
            // from `end` on only the last tensor's padding is missing, which is fine.
            try writeBytes(bytes, path)
            for n in (Array(0..<file.dataOffset) + Array(stride(from: file.dataOffset, to: bytes.count, by: 8))).reversed() {
                #expect(truncate(path, off_t(n)) == 0)
                do {
                    _ = try GGUFFile.open(path)
                    #expect(n >= end, "a file cut to \(n) bytes opened")
                } catch let error as FormatError {
                    #expect(n < end && error.description.hasPrefix(path + ": ") && !error.description.contains("\n"),
                            "\(n): \(error)")
                }
            }
        }
    }

    @Test func corruptedCountsInARealFileAreRefused() throws {
        let bytes = try Self.fixture("reader.gguf")
        /// The offset of the first byte after `key`'s bytes in the file.
        func after(_ key: String) throws -> Int {
            let k = Array(key.utf8)
            let i = try #require((0...(bytes.count - k.count)).first { Array(bytes[$0..<$0 + k.count]) == k })
            return i + k.count
        }
        func patched(_ offset: Int, _ value: UInt64) -> [UInt8] {
            var b = bytes
            b.replaceSubrange(offset..<offset + 8, with: withUnsafeBytes(of: value.littleEndian) { Array($0) })
            return b
        }
        let huge: UInt64 = 1 << 60
        try expectRefused(patched(8, huge), mentions: "tensors cannot fit")
        try expectRefused(patched(16, huge), mentions: "metadata entries cannot fit")
        // Array counts (after the key, its type 9 and the element type), a string length, a key length.
        try expectRefused(patched(try after("test.array.uint8") + 8, huge), mentions: "elements in metadata test.array.uint8")
        try expectRefused(patched(try after("tokenizer.ggml.tokens") + 8, huge), mentions: "elements in metadata tokenizer.ggml.tokens")
        try expectRefused(patched(try after("test.array.array") + 8, huge), mentions: "elements in metadata test.array.array")
        try expectRefused(patched(try after("test.string") + 4, huge), mentions: "metadata test.string claims")
        try expectRefused(patched(try after("test.uint8") + 5, huge), mentions: "a metadata key claims")
        // A tensor's dims and offset (its name, then n_dims u32, then dims).
        try expectRefused(patched(try after("q4_k") + 4, 1 << 62), mentions: "tensor q4_k")
        try expectRefused(patched(try after("q6_k") + 16, 1 << 20), mentions: "truncated")
    }

    @Test func randomByteCorruptionNeverCrashes() throws {
        let bytes = try Self.fixture("reader.gguf")
        let file = try GGUFFile.open(Fixtures.path("gguf", "reader.gguf"))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {  // splitmix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        try withTemporaryDirectory { dir in
            let path = dir + "/fuzz.gguf"
            var opened = 0
            for _ in 0..<400 {
                var b = bytes
                for _ in 0..<(1 + next() % 4) {
                    let at = next() % file.dataOffset
                    b[at] = next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: next())
                }
                try writeBytes(b, path)
                do {
                    let f = try GGUFFile.open(path)
                    opened += 1
                    for t in f.tensors where t.type.canDequantize { _ = try f.dequantize(t) }
                } catch is FormatError {}
            }
            #expect(opened > 0)  // some corruptions (inside strings, floats) leave a valid file
        }
    }
}
