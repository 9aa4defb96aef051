// One GGUF metadata value. GGUF (llama.cpp's file format) stores key → value pairs before its tensors; a value
// is one of twelve scalar types, a string, or an array of values of one type (arrays of arrays are legal).
// The tokenizer, the chat template and every hyperparameter of a GGUF model are metadata.
import Foundation

public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as an integer if it is one of the integer types (and fits an Int).
    public var int: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    /// The value as a Double if it is a number (integers included).
    public var double: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: int.map(Double.init)
        }
    }

    public var bool: Bool? { if case let .bool(v) = self { v } else { nil } }
    public var string: String? { if case let .string(v) = self { v } else { nil } }
    public var array: [GGUFValue]? { if case let .array(v) = self { v } else { nil } }

    /// An array of strings (nil if this is not an array or any element is not a string).
    public var strings: [String]? {
        guard let a = array else { return nil }
        var out = [String]()
        out.reserveCapacity(a.count)
        for v in a { guard let s = v.string else { return nil }; out.append(s) }
        return out
    }

    /// An array of numbers as Floats (nil if this is not an array or any element is not a number).
    public var floats: [Float]? {
        guard let a = array else { return nil }
        var out = [Float]()
        out.reserveCapacity(a.count)
        for v in a { guard let d = v.double else { return nil }; out.append(Float(d)) }
        return out
    }

    /// An array of integers (nil if this is not an array or any element is not an integer).
    public var ints: [Int]? {
        guard let a = array else { return nil }
        var out = [Int]()
        out.reserveCapacity(a.count)
        for v in a { guard let i = v.int else { return nil }; out.append(i) }
        return out
    }
}

/// A GGUF file's metadata: key → value, e.g. "general.architecture" → "llama",
/// "tokenizer.ggml.tokens" → an array of strings.
public typealias GGUFMetadata = [String: GGUFValue]
