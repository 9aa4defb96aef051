// The optimizer's state on disk, so a resumed run continues exactly: 256 × int32 header
// [20241121, 1, parameter count, optimizer (0 AdamW, 1 Muon), 0…], then the two moment arenas m and v as fp32, in
// the parameter layout's order (or the LoRA adapter's, when only an adapter trains). Under Muon, m holds the
// momentum buffers of the matrices it steps (their v stays zero) and AdamW's first moment of the other tensors.

extension Transformer {
    static let optimizerMagic: Int32 = 20_241_121

    /// The optimizer's code in the header: files from before Muon hold 0 there.
    static func optimizerCode(_ kind: OptimizerKind) -> Int32 { kind == .muon ? 1 : 0 }

    /// Writes the optimizer's state atomically.
    public func writeOptimizerState(to path: String) throws {
        var header = [Int32](repeating: 0, count: 256)
        header[0] = Transformer.optimizerMagic
        header[1] = 1
        header[2] = Int32(adamM.count)
        header[3] = Transformer.optimizerCode(optimizer)
        try writeFileAtomically(path) { out in
            try out.write(int32s: header)
            try adamM.withBuffer { try out.write(floats: $0) }
            try adamV.withBuffer { try out.write(floats: $0) }
        }
    }

    /// Reads the state `writeOptimizerState` wrote for a model of the same shape and optimizer.
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
        guard header[3] == Transformer.optimizerCode(optimizer) else {
            let names = ["AdamW", "Muon"], held = (0...1).contains(header[3]) ? names[Int(header[3])] : "unknown (\(header[3]))"
            throw FormatError.mismatch(path: path, reason: "holds \(held) state, the model trains with \(names[Int(Transformer.optimizerCode(optimizer))])")
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
