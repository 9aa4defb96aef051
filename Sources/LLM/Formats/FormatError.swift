// Errors from reading and writing model files: each names the file and says what is wrong in one line.

public enum FormatError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case badMagic(path: String, found: Int32, expected: Int32)
    case unsupportedVersion(path: String, version: Int32, supported: [Int32])
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    case trailingBytes(path: String, expectedBytes: Int, actualBytes: Int)
    case inconsistentHeader(path: String, reason: String)
    case malformed(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case unexpectedTensor(path: String, name: String)
    case wrongShape(path: String, name: String, expected: [Int], found: [Int])
    case unsupportedDType(path: String, name: String, dtype: String)
    case nonFinite(path: String, name: String, index: Int, value: Float)
    case mismatch(path: String, reason: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read: \(reason)"
        case let .badMagic(path, found, expected): "\(path): bad magic number \(found) (expected \(expected))"
        case let .unsupportedVersion(path, version, supported):
            "\(path): unsupported version \(version) (supported: \(supported.map(String.init).joined(separator: ", ")))"
        case let .truncated(path, expected, actual):
            "\(path): truncated: \(actual) bytes, the header says \(expected)"
        case let .trailingBytes(path, expected, actual):
            "\(path): \(actual - expected) unexpected bytes after the \(expected) the header describes"
        case let .inconsistentHeader(path, reason): "\(path): inconsistent header: \(reason)"
        case let .malformed(path, reason): "\(path): malformed: \(reason)"
        case let .missingTensor(path, name): "\(path): missing tensor \(name)"
        case let .unexpectedTensor(path, name): "\(path): unexpected tensor \(name) (not a parameter of this architecture)"
        case let .wrongShape(path, name, expected, found):
            "\(path): tensor \(name) has shape \(found), expected \(expected)"
        case let .unsupportedDType(path, name, dtype): "\(path): tensor \(name) has unsupported dtype \(dtype)"
        case let .nonFinite(path, name, index, value):
            "\(path): tensor \(name) holds a non-finite value (\(value)) at element \(index)"
        case let .mismatch(path, reason): "\(path): \(reason)"
        case let .writeFailed(path, reason): "\(path): cannot write: \(reason)"
        }
    }
}
