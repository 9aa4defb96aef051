// ggml's tensor types, numbered as in ggml.h (the numbers are what a GGUF file stores). A tensor's elements are
// stored in blocks: `blockSize` consecutive elements of a row take `bytesPerBlock` bytes (1 and 4 for F32, 32 and
// 34 for Q8_0, 256 and 210 for Q6_K). A row (ggml's ne[0], the innermost dimension) is always a whole number of
// blocks. Every type ggml defines is here so that errors can name it; `canDequantize` says which ones this package
// converts to Float (Dequantize.swift), `canQuantize` which ones it writes (Quantize.swift).

public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1
    case q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28
    case iq1_M = 29, bf16 = 30
    // 31...33 were Q4_0_4_4, Q4_0_4_8 and Q4_0_8_8, removed from ggml; a file using them is refused as unknown.
    case tq1_0 = 34, tq2_0 = 35
    case mxfp4 = 39, nvfp4 = 40, q1_0 = 41

    /// Elements per 256-element "super-block" of the K-quants (ggml's QK_K).
    static let superBlock = 256

    /// ggml's name for the type, e.g. "Q4_K", "BF16".
    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q8_1: "Q8_1"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .q8_K: "Q8_K"
        case .iq2_XXS: "IQ2_XXS"
        case .iq2_XS: "IQ2_XS"
        case .iq3_XXS: "IQ3_XXS"
        case .iq1_S: "IQ1_S"
        case .iq4_NL: "IQ4_NL"
        case .iq3_S: "IQ3_S"
        case .iq2_S: "IQ2_S"
        case .iq4_XS: "IQ4_XS"
        case .i8: "I8"
        case .i16: "I16"
        case .i32: "I32"
        case .i64: "I64"
        case .f64: "F64"
        case .iq1_M: "IQ1_M"
        case .bf16: "BF16"
        case .tq1_0: "TQ1_0"
        case .tq2_0: "TQ2_0"
        case .mxfp4: "MXFP4"
        case .nvfp4: "NVFP4"
        case .q1_0: "Q1_0"
        }
    }

    /// Elements per block (ggml's blck_size).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL, .mxfp4: 32
        case .nvfp4: 64
        case .q1_0: 128
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_XXS, .iq2_XS, .iq3_XXS, .iq1_S, .iq3_S, .iq2_S, .iq4_XS,
             .iq1_M, .tq1_0, .tq2_0:
            Self.superBlock
        }
    }

    /// Bytes per block (ggml's type_size).
    public var bytesPerBlock: Int {
        let k = Self.superBlock
        return switch self {
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8: 1
        case .i64, .f64: 8
        case .q4_0: 2 + 16
        case .q4_1: 2 + 2 + 16
        case .q5_0: 2 + 4 + 16
        case .q5_1: 2 + 2 + 4 + 16
        case .q8_0: 2 + 32
        case .q8_1: 4 + 4 + 32
        case .q2_K: 2 + 2 + k / 16 + k / 4
        case .q3_K: 2 + k / 4 + k / 8 + 12
        case .q4_K: 2 + 2 + k / 2 + 12
        case .q5_K: 2 + 2 + k / 2 + k / 8 + 12
        case .q6_K: 2 + k / 2 + k / 4 + k / 16
        case .q8_K: 4 + k + k / 8
        case .iq2_XXS: 2 + k / 4
        case .iq2_XS: 2 + k / 4 + k / 32
        case .iq3_XXS: 2 + k / 4 + k / 8
        case .iq1_S: 2 + k / 8 + k / 16
        case .iq4_NL: 2 + 16
        case .iq3_S: 2 + k / 4 + k / 8 + k / 32 + 4
        case .iq2_S: 2 + k / 4 + k / 16
        case .iq4_XS: 2 + 2 + k / 2 + k / 64
        case .iq1_M: k / 8 + k / 16 + k / 32
        case .tq1_0: 2 + 4 * 13
        case .tq2_0: 2 + 64
        case .mxfp4: 1 + 16
        case .nvfp4: 4 + 32
        case .q1_0: 2 + 16
        }
    }

    /// Whether `dequantize` converts this type to Float (the types gguf-py and llama.cpp models mostly use).
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: true
        default: false
        }
    }

    /// Whether `quantize` (and so GGUFWriter) can produce this type.
    public var canQuantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0: true
        default: false
        }
    }

    /// Bytes that `elements` elements take, nil if `elements` is not a whole number of blocks or the size
    /// overflows an Int.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : bytes
    }
}
