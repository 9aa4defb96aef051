// AdamW's two moment buffers on disk, so a resumed run continues exactly: 256 × int32 header
// [20241121, 1, parameter count, 0…], then m then v as fp32, in the parameter layout's order (or the LoRA
// adapter's, when only an adapter trains).

extension Transformer {
    static let optimizerMagic: Int32 = 20_241_121

    /// Writes the AdamW moments atomically.
    public func writeOptimizerState(to path: String) throws {
        var header = [Int32](repeating: 0, count: 256)
        header[0] = Transformer.optimizerMagic
        header[1] = 1
        header[2] = Int32(adamM.count)
        try writeFileAtomically(path) { out in
            try out.write(int32s: header)
            try adamM.withBuffer { try out.write(floats: $0) }
            try adamV.withBuffer { try out.write(floats: $0) }
        }
    }

    /// Reads AdamW moments written by `writeOptimizerState` for a model of the same shape.
    public func readOptimizerState(from path: String) throws {
        var file = try FileReader(path: path)
        let count = adamM.count
        let expected = 1024 + 8 * count
        guard file.size >= 1024 else { throw FormatError.truncated(path: path, expectedBytes: expected, actualBytes: file.size) }
        let header = try file.readInt32s(256)
        guard header[0] == Transformer.optimizerMagic else {
            throw FormatError.badMagic(path: path, found: header[0], expected: Transformer.optimizerMagic)
        }
        guard header[1] == 1 else { throw FormatError.unsupportedVersion(path: path, version: header[1], supported: [1]) }
        guard Int(header[2]) == count else {
            throw FormatError.mismatch(path: path, reason: "holds moments for \(header[2]) parameters, the model has \(count)")
        }
        if file.size != expected {
            throw file.size < expected
                ? FormatError.truncated(path: path, expectedBytes: expected, actualBytes: file.size)
                : FormatError.trailingBytes(path: path, expectedBytes: expected, actualBytes: file.size)
        }
        try file.readFloats(into: adamM.base, count: count, expectedTotal: expected)
        try file.readFloats(into: adamV.base, count: count, expectedTotal: expected)
    }
}
