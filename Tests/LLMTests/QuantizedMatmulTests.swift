// The quantized linear layer (Kernels/QuantizedMatmul.swift and its AVX2 / AVX-512 twins): every weight type on
// every variant this CPU runs, against a Double product of the dequantized weights with the same 8-bit activations
// (tight: only float rounding differs) and with the float activations (loose: the activations' 8-bit rounding).
import Testing
@testable import LLM

@Suite struct QuantizedMatmulTests {
    static let types: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .f16, .bf16]

    /// Random rows × cols weights of `type`: quantized random floats where the package has a quantizer, otherwise
    /// random block bytes whose f16 scales (and mins) are set to values of about ±0.01.
    static func randomWeights(_ type: GGMLType, rows: Int, cols: Int, rng: inout SplitMix64) -> [UInt8] {
        if type.canQuantize {
            return type.quantize((0..<rows * cols).map { _ in Float(rng.nextGaussian() * 0.05) })
        }
        var bytes = (0..<rows * cols / type.blockSize * type.bytesPerBlock).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let scaleOffsets: [Int] = switch type {
        case .q4_0, .q5_0: [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
        case .q6_K: [208]
        default: []
        }
        for block in stride(from: 0, to: bytes.count, by: type.bytesPerBlock) {
            for offset in scaleOffsets {
                let value = Float(rng.nextUniform() * 0.015 + 0.005) * (offset == 2 && type.blockSize == 32 && rng.next() & 1 == 0 ? -1 : 1)
                let bits = float16Bits(value)
                bytes[block + offset] = UInt8(bits & 0xFF)
                bytes[block + offset + 1] = UInt8(bits >> 8)
            }
        }
        return bytes
    }

    /// One case: out (N, ldOut) from every supported variant with `threads` threads, checked against the references;
    /// returns the outputs per variant.
    @discardableResult
    static func check(_ type: GGMLType, rows: Int, cols: Int, N: Int, ldOut: Int, withBias: Bool, threads: Int = 1,
                      seed: UInt64 = 1) -> [KernelVariant: [Float]] {
        var rng = SplitMix64(seed: seed)
        let bytes = randomWeights(type, rows: rows, cols: cols, rng: &rng)
        let inp = (0..<N * cols).map { _ in Float(rng.nextGaussian()) }
        let bias = (0..<rows).map { _ in Float(rng.nextGaussian()) }
        let w = type.dequantize(bytes)

        // The activations the kernels see: quantized once here, dequantized for the reference.
        let scratch = QuantizedActivations(maxRows: N, maxCols: cols)
        var seen = inp
        if let block = type.activationBlock, block > 0 {
            scratch.quantize(inp, rows: N, cols: cols, block: block)
            for i in 0..<N * cols {
                seen[i] = Float(scratch.quants[i]) * scratch.scales[i / block]
            }
        }
        func reference(_ x: [Float]) -> (values: [Double], magnitudes: [Double]) {
            var values = [Double](repeating: 0, count: N * rows), magnitudes = values
            for n in 0..<N {
                for o in 0..<rows {
                    var sum = withBias ? Double(bias[o]) : 0, magnitude = abs(sum)
                    for c in 0..<cols {
                        let p = Double(w[o * cols + c]) * Double(x[n * cols + c])
                        sum += p
                        magnitude += abs(p)
                    }
                    values[n * rows + o] = sum
                    magnitudes[n * rows + o] = magnitude
                }
            }
            return (values, magnitudes)
        }
        let tight = reference(seen), full = reference(inp).values

        var results = [KernelVariant: [Float]]()
        let sentinel: Float = 12345
        for variant in KernelVariant.supported {
            var out = [Float](repeating: sentinel, count: N * ldOut)
            bytes.withUnsafeBytes { raw in
                let weight = QuantizedMatrix(type: type, base: raw.baseAddress!, rows: rows, cols: cols)
                out.withUnsafeMutableBufferPointer { o in
                    bias.withUnsafeBufferPointer { b in
                        quantizedMatmulForward(out: o.baseAddress!, ldOut: ldOut, inp: inp, weight: weight,
                                               bias: withBias ? b.baseAddress : nil, N: N,
                                               parallel: ParallelFor(threads: threads), scratch: scratch,
                                               variant: variant)
                    }
                }
            }
            var worstTight = 0.0, errorSquares = 0.0, fullSquares = 0.0, untouched = true
            for n in 0..<N {
                for o in 0..<ldOut where o >= rows { untouched = untouched && out[n * ldOut + o] == sentinel }
                for o in 0..<rows {
                    let got = Double(out[n * ldOut + o]), i = n * rows + o
                    worstTight = max(worstTight, abs(got - tight.values[i]) / max(tight.magnitudes[i], 1e-30))
                    errorSquares += (got - full[i]) * (got - full[i])
                    fullSquares += full[i] * full[i]
                }
            }
            #expect(worstTight < 1e-5, "\(type) \(variant) N=\(N): relative error \(worstTight) against the same 8-bit activations")
            #expect(errorSquares.squareRoot() <= 0.02 * fullSquares.squareRoot(),
                    "\(type) \(variant) N=\(N): \(errorSquares.squareRoot()) off the float product of norm \(fullSquares.squareRoot())")
            #expect(untouched, "\(type) \(variant): columns past the weight's rows were written")
            results[variant] = (0..<N).flatMap { n in out[n * ldOut..<n * ldOut + rows] }
        }
        return results
    }

    static func columns(_ type: GGMLType) -> [Int] { type.blockSize == 256 ? [512, 1536] : [640] }

    @Test(arguments: types)
    func oneRowMatchesTheReference(type: GGMLType) {
        for cols in Self.columns(type) { Self.check(type, rows: 7, cols: cols, N: 1, ldOut: 7, withBias: false) }
    }

    @Test(arguments: types)
    func fiveRowsWithBiasIntoAWiderOutput(type: GGMLType) {
        for cols in Self.columns(type) { Self.check(type, rows: 5, cols: cols, N: 5, ldOut: 9, withBias: true, seed: 2) }
    }

    @Test(arguments: types)
    func threadsAndVariantsAgree(type: GGMLType) {
        let cols = Self.columns(type)[0]
        let one = Self.check(type, rows: 9, cols: cols, N: 3, ldOut: 9, withBias: true, threads: 1, seed: 3)
        let two = Self.check(type, rows: 9, cols: cols, N: 3, ldOut: 9, withBias: true, threads: 2, seed: 3)
        let generic = one[.generic]!
        for variant in KernelVariant.supported {
            #expect(one[variant]! == two[variant]!, "\(type) \(variant): 1 and 2 threads differ")
            let out = one[variant]!
            let scale = generic.map { abs($0) }.max()!
            let worst = zip(out, generic).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-5 * scale, "\(type) \(variant) differs from generic by \(worst) (scale \(scale))")
        }
    }

    @Test func typesWithAQuantizedDot() {
        #expect(Self.types.allSatisfy { $0.hasQuantizedDot })
        #expect(!GGMLType.f32.hasQuantizedDot && !GGMLType.q2_K.hasQuantizedDot && !GGMLType.iq4_NL.hasQuantizedDot)
    }
}
