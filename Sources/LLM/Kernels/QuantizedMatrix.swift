// A weight matrix kept in the blocks a GGUF file stores it in (Q8_0, Q4_K, F16, …), read in place: the linear
// layers of a quantized model compute from these bytes (Kernels/QuantizedMatmul.swift for a few rows at a time,
// Kernels/Matmul.swift's packing for a prompt) instead of from a float copy four to eight times larger.

/// `rows` × `cols` weights (a linear layer's (out, in) matrix) stored row by row as `type`'s blocks, each row
/// `rowBytes` bytes, at `base`. The memory belongs to whoever made the value (a memory-mapped GGUF file, or a
/// buffer of the model's) and must outlive it.
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let base: UnsafeRawPointer
    public let rows: Int
    public let cols: Int

    /// Requires `cols` to be a whole number of `type`'s blocks.
    public init(type: GGMLType, base: UnsafeRawPointer, rows: Int, cols: Int) {
        precondition(cols % type.blockSize == 0, "\(cols) columns is not a whole number of \(type) blocks")
        self.type = type
        self.base = base
        self.rows = rows
        self.cols = cols
    }

    /// Bytes of one row.
    public var rowBytes: Int { cols / type.blockSize * type.bytesPerBlock }

    /// The start of row r.
    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowBytes }

    /// Rows `range` as a matrix of their own (for splitting a fused projection).
    public func rows(_ range: Range<Int>) -> QuantizedMatrix {
        QuantizedMatrix(type: type, base: row(range.lowerBound), rows: range.count, cols: cols)
    }

    /// Row r as floats into `out` (`cols` of them).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        type.dequantize(UnsafeRawBufferPointer(start: row(r), count: rowBytes),
                        into: UnsafeMutableBufferPointer(start: out, count: cols))
    }

    /// Columns `columns` of row r as floats into `out` (`columns.count` of them); the range must start and end
    /// on block boundaries (or at `cols`).
    public func dequantizeRow(_ r: Int, columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let bs = type.blockSize
        precondition(columns.lowerBound % bs == 0 && (columns.upperBound % bs == 0 || columns.upperBound == cols),
                     "columns \(columns) do not fall on \(type) block boundaries")
        let start = row(r) + columns.lowerBound / bs * type.bytesPerBlock
        type.dequantize(UnsafeRawBufferPointer(start: start, count: columns.count / bs * type.bytesPerBlock),
                        into: UnsafeMutableBufferPointer(start: out, count: columns.count))
    }
}
