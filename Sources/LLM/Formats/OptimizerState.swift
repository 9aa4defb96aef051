// The optimizer's state on disk, so a resumed run continues exactly: 256 × int32 header
// [20241121, 1, parameter count, optimizer (0 AdamW, 1 Muon), 0…], then the two moment arenas m and v as fp32, in
// the parameter layout's order (or the LoRA adapter's, when only an adapter trains). Under Muon, m holds the
// momentum buffers of the matrices it steps (their v stays zero) and AdamW's first moment of the other tensors.

extension Transformer {
    static let optimizerMagic: Int32 = 20_241_121

    /// The optimizer's code in the header: files from before Muon hold 0 there.
    static func optimizerCode(_ kind: OptimizerKind) -> Int32 { kind == .muon ? 1 : 0 }

    private var optimizerHeader: [Int32] {
        var header = [Int32](repeating: 0, count: 256)
        header[0] = Transformer.optimizerMagic
        header[1] = 1
        header[2] = Int32(grads.count)
        header[3] = Transformer.optimizerCode(optimizer)
        return header
    }

    /// Writes the optimizer's state atomically.
    public func writeOptimizerState(to path: String) throws {
        precondition(optimizerShard.count == grads.count, "a sharded optimizer state is written with writeOptimizerState(to:over:)")
        try writeFileAtomically(path) { out in
            try out.write(int32s: optimizerHeader)
            try adamM.withBuffer { try out.write(floats: $0) }
            try adamV.withBuffer { try out.write(floats: $0) }
        }
    }

    /// ZeRO-1: every rank calls this; rank 0 writes the whole state to `path` (the same file as an unsharded
    /// run's, so a run resumes on any number of ranks), receiving each rank's part of m, then of v, in turn
    /// into the gradients' arena (free between steps). Other ranks pass a nil path.
    public func writeOptimizerState(to path: String?, over communicator: any Communicator) throws {
        let parts = evenParts(count: grads.count, size: communicator.size)
        guard parts[communicator.rank] == optimizerShard else {
            throw DistributedError.invalid("this rank's optimizer shard \(optimizerShard) is not its part \(parts[communicator.rank])")
        }
        func sendParts(_ write: (UnsafeBufferPointer<Float>) throws -> Void) throws {
            for moments in [adamM, adamV] {
                for (r, part) in parts.enumerated() {
                    let buffer = r == communicator.rank ? moments.base : grads.base
                    try communicator.broadcast(UnsafeMutableRawBufferPointer(start: buffer, count: part.count * 4), root: r)
                    try write(UnsafeBufferPointer(start: buffer, count: part.count))
                }
            }
        }
        guard let path else { return try sendParts { _ in } }
        try writeFileAtomically(path) { out in
            try out.write(int32s: optimizerHeader)
            try sendParts { try out.write(floats: $0) }
        }
    }

    /// Reads the state `writeOptimizerState` wrote for a model of the same shape and optimizer.
    public func readOptimizerState(from path: String) throws {
        var file = try FileReader(path: path)
        let count = grads.count
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
        // This model's part of each (all of it unless its moments are sharded).
        let shard = optimizerShard
        try file.seek(to: 1024 + 4 * shard.lowerBound)
        try file.readFloats(into: adamM.base, count: shard.count, expectedTotal: expected)
        try file.seek(to: 1024 + 4 * (count + shard.lowerBound))
        try file.readFloats(into: adamV.base, count: shard.count, expectedTotal: expected)
    }
}
