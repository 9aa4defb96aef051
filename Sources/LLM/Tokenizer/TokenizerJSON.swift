// A small JSON reader for tokenizer files. Foundation's JSONSerialization hands back [String: Any], and Swift's
// String == is canonical equivalence, so a vocabulary holding both "é" and "e\u{301}" (Gemma's holds 434 such
// pairs) loses tokens there. Here strings are kept exactly as written and objects are key/value lists in file
// order; nothing is a dictionary until a loader builds one keyed by UTF-8 bytes. Every failure is a one-line
// error naming the file and the key path ("model.merges[12]"): hostile files throw, never crash.
import Foundation

enum JSONValue {
    case null
    case bool(Bool)
    case int(Int)          // an integer literal that fits in an Int
    case double(Double)    // any other number
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON object with the file and key path it came from, for typed access with errors that name both.
struct JSONObject {
    let file: String
    let keyPath: String
    let members: [(key: String, value: JSONValue)]

    /// Reads and parses a JSON file whose top level is an object.
    static func read(_ path: String) throws(TokenizerError) -> JSONObject {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "no such file or not readable")
        }
        let parsed = data.withUnsafeBytes { raw in
            var parser = JSONParser(raw.bindMemory(to: UInt8.self))
            return Result { () throws(JSONParser.Failure) in try parser.parseDocument() }
        }
        let value: JSONValue
        switch parsed {
        case .success(let v): value = v
        case .failure(let error): throw .malformed(path: path, reason: "not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let members) = value else {
            throw .malformed(path: path, reason: "the top level is \(value.typeName), not an object")
        }
        return JSONObject(file: path, keyPath: "", members: members)
    }

    func path(_ key: String) -> String { keyPath.isEmpty ? key : keyPath + "." + key }

    func fail(_ key: String, _ why: String) -> TokenizerError { .malformed(path: file, reason: "\(path(key)): \(why)") }

    /// The value of `key`, nil if absent or null (the last one if the key repeats).
    subscript(key: String) -> JSONValue? {
        guard let v = members.last(where: { $0.key == key })?.value else { return nil }
        if case .null = v { return nil }
        return v
    }

    func string(_ key: String) throws(TokenizerError) -> String {
        guard let s = try optionalString(key) else { throw fail(key, "missing (expected a string)") }
        return s
    }

    func optionalString(_ key: String) throws(TokenizerError) -> String? {
        guard let v = self[key] else { return nil }
        guard case .string(let s) = v else { throw fail(key, "expected a string, found \(v.typeName)") }
        return s
    }

    func bool(_ key: String, default value: Bool) throws(TokenizerError) -> Bool {
        guard let v = self[key] else { return value }
        guard case .bool(let b) = v else { throw fail(key, "expected true or false, found \(v.typeName)") }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(TokenizerError) -> Int {
        guard let v = self[key] else { throw fail(key, "missing (expected an integer)") }
        return try JSONObject.int(v, in: range) { fail(key, $0) }
    }

    func optionalInt(_ key: String, in range: ClosedRange<Int>) throws(TokenizerError) -> Int? {
        guard let v = self[key] else { return nil }
        return try JSONObject.int(v, in: range) { fail(key, $0) }
    }

    static func int(_ v: JSONValue, in range: ClosedRange<Int>, _ fail: (String) -> TokenizerError) throws(TokenizerError) -> Int {
        guard case .int(let i) = v else { throw fail("expected an integer, found \(v.typeName)") }
        guard range.contains(i) else { throw fail("\(i) is outside \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    func object(_ key: String) throws(TokenizerError) -> JSONObject {
        guard let o = try optionalObject(key) else { throw fail(key, "missing (expected an object)") }
        return o
    }

    func optionalObject(_ key: String) throws(TokenizerError) -> JSONObject? {
        guard let v = self[key] else { return nil }
        guard case .object(let m) = v else { throw fail(key, "expected an object, found \(v.typeName)") }
        return JSONObject(file: file, keyPath: path(key), members: m)
    }

    func array(_ key: String) throws(TokenizerError) -> [JSONValue] {
        guard let a = try optionalArray(key) else { throw fail(key, "missing (expected an array)") }
        return a
    }

    func optionalArray(_ key: String) throws(TokenizerError) -> [JSONValue]? {
        guard let v = self[key] else { return nil }
        guard case .array(let a) = v else { throw fail(key, "expected an array, found \(v.typeName)") }
        return a
    }

    /// The elements of array `key` as objects.
    func objects(_ key: String) throws(TokenizerError) -> [JSONObject] {
        var out = [JSONObject]()
        for (i, v) in try array(key).enumerated() {
            guard case .object(let m) = v else { throw fail("\(key)[\(i)]", "expected an object, found \(v.typeName)") }
            out.append(JSONObject(file: file, keyPath: path("\(key)[\(i)]"), members: m))
        }
        return out
    }
}

/// Recursive descent over UTF-8 bytes (RFC 8259), nesting at most `maxDepth` deep.
struct JSONParser {
    struct Failure: Error {
        let reason: String
        let offset: Int
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0
    private var depth = 0
    private static let maxDepth = 256

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func parseDocument() throws(Failure) -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }  // a UTF-8 byte order mark
        let v = try value()
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected text after the value") }
        return v
    }

    private func fail(_ reason: String) -> Failure { Failure(reason: reason, offset: i) }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func value() throws(Failure) -> JSONValue {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of file") }
        switch bytes[i] {
        case 0x7B: return try object()
        case 0x5B: return try array()
        case 0x22: return .string(try string())
        case 0x74: try literal("true"); return .bool(true)
        case 0x66: try literal("false"); return .bool(false)
        case 0x6E: try literal("null"); return .null
        case 0x2D, 0x30...0x39: return try number()
        default: throw fail("unexpected character")
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        guard depth <= JSONParser.maxDepth else { throw fail("nested more than \(JSONParser.maxDepth) deep") }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count,
              UnsafeBufferPointer(start: word.utf8Start, count: n).elementsEqual(bytes[i..<i + n]) else {
            throw fail("unexpected character")
        }
        i += n
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1  // {
        var members = [(key: String, value: JSONValue)]()
        skipSpace()
        if i < bytes.count && bytes[i] == 0x7D { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x22 else { throw fail("expected a string key") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x3A else { throw fail("expected ':'") }
            i += 1
            members.append((key, try value()))
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of file in an object") }
            if bytes[i] == 0x2C { i += 1; continue }
            if bytes[i] == 0x7D { i += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1  // [
        var elements = [JSONValue]()
        skipSpace()
        if i < bytes.count && bytes[i] == 0x5D { i += 1; return .array(elements) }
        while true {
            elements.append(try value())
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of file in an array") }
            if bytes[i] == 0x2C { i += 1; continue }
            if bytes[i] == 0x5D { i += 1; return .array(elements) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func string() throws(Failure) -> String {
        i += 1  // "
        let start = i
        // Fast path: no escapes.
        while i < bytes.count && bytes[i] != 0x22 && bytes[i] != 0x5C && bytes[i] >= 0x20 { i += 1 }
        if i < bytes.count && bytes[i] == 0x22 {
            defer { i += 1 }
            return try validated(UnsafeBufferPointer(rebasing: bytes[start..<i]))
        }
        var out = [UInt8](bytes[start..<i])
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            if b == 0x22 { i += 1; break }
            if b < 0x20 { throw fail("control character in a string") }
            if b != 0x5C { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == 0x5C, bytes[i + 1] == 0x75 else { throw fail("lone surrogate") }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("lone surrogate") }
                    scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw fail("lone surrogate")
                }
                out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
            default: throw fail("bad escape")
            }
        }
        return try out.withUnsafeBufferPointer { b throws(Failure) in try validated(b) }
    }

    private func validated(_ b: UnsafeBufferPointer<UInt8>) throws(Failure) -> String {
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("invalid UTF-8 in a string") }
        return s
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func number() throws(Failure) -> JSONValue {
        let start = i
        var integral = true
        if bytes[i] == 0x2D { i += 1 }
        while i < bytes.count {
            let c = bytes[i]
            if c >= 0x30 && c <= 0x39 { i += 1; continue }
            if c == 0x2E || c == 0x65 || c == 0x45 || c == 0x2B || (c == 0x2D && i > start) { integral = false; i += 1; continue }
            break
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if integral, let n = Int(text) { return .int(n) }
        guard let d = Double(text), d.isFinite else { throw fail("bad number \(text.prefix(40))") }
        return .double(d)
    }
}
