// The input gradient through a frozen quantized weight (Kernels/Matmul.swift's matmulBackwardInput, for LoRA on a
// GGUF base): every variant this CPU runs, 1 and 2 threads, against a Double product with the dequantized weight;
// the same bits whatever the thread count, and the same bits as the float path on the dequantized weight.
import Testing
@testable import LLM

@Suite struct QuantizedBackwardTests {
    static let types: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q4_K, .q6_K, .f16]

    /// Input widths C (the gradient's columns) for a type: whole blocks, some not a multiple of 512 (a partial
    /// packing block) and, for 32-column blocks, panels of 16 that start mid-block; F16 (blocks of 1) also gets
    /// partial 16- and 32-column panels.
    static func columns(_ type: GGMLType) -> [Int] {
        switch type.blockSize {
        case 1: [37, 300, 530]
        case 32: [96, 256, 544]
        default: [256, 768]
        }
    }

    /// (N, OC, ldDout): 1 row and 7 outputs; a partial 6-row tile with dout rows wider than OC; 300 outputs, so the
    /// sum over o crosses a 256-deep k-block.
    static let shapes: [(N: Int, OC: Int, ld: Int)] = [(1, 7, 7), (5, 33, 40), (13, 300, 300)]

    /// dinp = initial + dout · W from `matmulBackwardInput`.
    static func backward(_ type: GGMLType, _ bytes: [UInt8], dout: [Float], initial: [Float], N: Int, OC: Int, C: Int,
                         ld: Int, threads: Int, variant: KernelVariant) -> [Float] {
        var dinp = initial
        bytes.withUnsafeBytes { raw in
            let weight = QuantizedMatrix(type: type, base: raw.baseAddress!, rows: OC, cols: C)
            dinp.withUnsafeMutableBufferPointer { d in
                dout.withUnsafeBufferPointer { g in
                    matmulBackwardInput(dinp: d.baseAddress!, dout: g.baseAddress!, ldDout: ld, weight: weight, N: N,
                                        parallel: ParallelFor(threads: threads), scratch: MatmulScratch(threads: threads),
                                        variant: variant)
                }
            }
        }
        return dinp
    }

    /// The first index where the two arrays' bits differ, nil if none (a short failure message, not two arrays).
    static func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
        a.count != b.count ? -1 : a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
    }

    /// Random weights, dout (N rows `ld` apart, NaN in the columns past OC: they must not be read) and a non-zero
    /// starting dinp (the product accumulates into it).
    static func inputs(_ type: GGMLType, N: Int, OC: Int, C: Int, ld: Int, seed: UInt64)
        -> (bytes: [UInt8], dout: [Float], initial: [Float]) {
        var rng = SplitMix64(seed: seed)
        let bytes = QuantizedMatmulTests.randomWeights(type, rows: OC, cols: C, rng: &rng)
        var dout = [Float](repeating: .nan, count: N * ld)
        for n in 0..<N { for o in 0..<OC { dout[n * ld + o] = Float(rng.nextGaussian()) } }
        let initial = gaussians(N * C, &rng)
        return (bytes, dout, initial)
    }

    /// Every shape and width of `type`, every supported variant, 1 and 2 threads, against
    /// ref[n, c] = initial[n, c] + Σ_o dout[n·ld + o] · W[o, c] in Double from the dequantized rows, within
    /// |got − ref| ≤ 1e-5 · (1 + |initial| + Σ_o |dout · W|): float32 rounding of a sum of ≤ 300 products, bounded by
    /// the size of its terms (not of the result, which may cancel).
    @Test(arguments: types)
    func matchesDoubleReference(type: GGMLType) {
        for C in Self.columns(type) {
            for (s, (N, OC, ld)) in Self.shapes.enumerated() {
                let (bytes, dout, initial) = Self.inputs(type, N: N, OC: OC, C: C, ld: ld, seed: UInt64(C * 10 + s))
                // The reference, from each row dequantized by QuantizedMatrix itself.
                var w = [Float](repeating: 0, count: OC * C)
                bytes.withUnsafeBytes { raw in
                    let weight = QuantizedMatrix(type: type, base: raw.baseAddress!, rows: OC, cols: C)
                    w.withUnsafeMutableBufferPointer { w in
                        for o in 0..<OC { weight.dequantizeRow(o, into: w.baseAddress! + o * C) }
                    }
                }
                var ref = initial.map(Double.init), size = initial.map { 1 + abs(Double($0)) }
                for n in 0..<N {
                    for o in 0..<OC {
                        let g = Double(dout[n * ld + o])
                        for c in 0..<C {
                            let p = g * Double(w[o * C + c])
                            ref[n * C + c] += p
                            size[n * C + c] += abs(p)
                        }
                    }
                }
                for variant in KernelVariant.supported {
                    for threads in [1, 2] {
                        let got = Self.backward(type, bytes, dout: dout, initial: initial, N: N, OC: OC, C: C, ld: ld,
                                                threads: threads, variant: variant)
                        var worst = 0.0, at = 0
                        for i in 0..<N * C {
                            let e = abs(Double(got[i]) - ref[i]) / size[i]
                            if !(e <= worst) { (worst, at) = (e, i) }  // NaN counts as worst
                        }
                        #expect(worst <= 1e-5,
                                "\(type) \(variant) \(threads) threads N=\(N) OC=\(OC) C=\(C) ld=\(ld): dinp[\(at)] = \(got[at]), reference \(ref[at]) (error \(worst) of the terms' size)")
                    }
                }
            }
        }
    }

    /// 1, 2 and 3 threads give the same bits on every variant (threads split the columns; each sum over o runs in
    /// the same order).
    @Test(arguments: types)
    func sameBitsWhateverTheThreadCount(type: GGMLType) {
        let C = Self.columns(type).last!, N = 7, OC = 260, ld = 263
        let (bytes, dout, initial) = Self.inputs(type, N: N, OC: OC, C: C, ld: ld, seed: 99)
        for variant in KernelVariant.supported {
            let one = Self.backward(type, bytes, dout: dout, initial: initial, N: N, OC: OC, C: C, ld: ld, threads: 1,
                                    variant: variant)
            for threads in [2, 3] {
                let more = Self.backward(type, bytes, dout: dout, initial: initial, N: N, OC: OC, C: C, ld: ld,
                                         threads: threads, variant: variant)
                let differ = Self.firstDifference(one, more)
                #expect(differ == nil, "\(type) \(variant): 1 and \(threads) threads differ first at \(differ ?? -1)")
            }
        }
    }

    /// With ldDout = OC it is the float path's dinp (matmulBackward) on the dequantized weight, bit for bit: the
    /// same kernel reading the same packed values.
    @Test(arguments: [GGMLType.q4_0, .q4_K, .q6_K])
    func sameBitsAsTheFloatPathOnTheDequantizedWeight(type: GGMLType) {
        let C = Self.columns(type).last!, N = 8, OC = 40
        let (bytes, dout, initial) = Self.inputs(type, N: N, OC: OC, C: C, ld: OC, seed: 7)
        let w = type.dequantize(bytes), inp = [Float](repeating: 0, count: N * C)
        for variant in KernelVariant.supported {
            for threads in [1, 2] {
                var expected = initial, dweight = [Float](repeating: 0, count: OC * C)
                matmulBackward(dinp: &expected, dweight: &dweight, dbias: nil, dout: dout, inp: inp, weight: w, N: N,
                               C: C, OC: OC, parallel: ParallelFor(threads: threads),
                               scratch: MatmulScratch(threads: threads), variant: variant)
                let got = Self.backward(type, bytes, dout: dout, initial: initial, N: N, OC: OC, C: C, ld: OC,
                                        threads: threads, variant: variant)
                let differ = Self.firstDifference(got, expected)
                #expect(differ == nil, "\(type) \(variant) \(threads) threads: differs first at \(differ ?? -1)")
            }
        }
    }
}
