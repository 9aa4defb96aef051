// The matmul micro-kernels of every variant this CPU runs (generic 6 × 32, AVX2 6 × 16, AVX-512 6 × 32), each
// forced explicitly: the forward and both backward products against naive Double products, the same bits on 1
// and 2 threads, and the forward from a quantized weight against the float path on its dequantized copy.

import Testing
@testable import LLM

@Test func kernelVariantsIncludeGenericAndTheCurrentOne() {
    #expect(KernelVariant.supported.first == .generic)
    #expect(KernelVariant.current.isSupported)
}

/// out = bias + x · Wᵀ, in Double.
private func forwardReference(_ x: [Float], _ weight: [Float], _ bias: [Float], N: Int, C: Int, OC: Int) -> [Double] {
    var out = [Double](repeating: 0, count: N * OC)
    for n in 0..<N {
        for o in 0..<OC {
            var sum = Double(bias[o])
            for c in 0..<C { sum += Double(x[n * C + c]) * Double(weight[o * C + c]) }
            out[n * OC + o] = sum
        }
    }
    return out
}

/// Shapes reaching every edge of both tile widths: rows not a multiple of 6, partial 16- and 32-column panels,
/// more than one 256-deep k block (C = 300, and N = 260 for dW's k), more than one 512-column packing block.
@Test(arguments: KernelVariant.supported,
      [(N: 7, C: 37, OC: 33), (N: 7, C: 64, OC: 50), (N: 13, C: 300, OC: 70), (N: 5, C: 20, OC: 530),
       (N: 260, C: 9, OC: 17)])
func matmulVariantMatchesNaiveProducts(variant: KernelVariant, shape: (N: Int, C: Int, OC: Int)) {
    let (N, C, OC) = shape
    var rng = SplitMix64(seed: 11)
    let x = gaussians(N * C, &rng), weight = gaussians(OC * C, &rng, std: 0.5), bias = gaussians(OC, &rng)
    let dout = gaussians(N * OC, &rng)
    var results: [[[Float]]] = []
    for threads in [1, 2] {
        let parallel = ParallelFor(threads: threads), scratch = MatmulScratch(threads: threads)
        var out = [Float](repeating: .nan, count: N * OC)
        matmulForward(out: &out, inp: x, weight: weight, bias: bias, N: N, C: C, OC: OC, parallel: parallel,
                      scratch: scratch, variant: variant)
        var dx = [Float](repeating: 1, count: N * C), dw = [Float](repeating: 1, count: OC * C)
        var db = [Float](repeating: 1, count: OC)
        matmulBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: weight, N: N, C: C, OC: OC,
                       parallel: parallel, scratch: scratch, variant: variant)
        results.append([out, dx, dw, db])
    }
    #expect(results[0] == results[1], "\(variant): 1 and 2 threads must give the same bits")

    // Backward reference: 1 (the accumulated starting value) + dout · W, 1 + doutᵀ · x, 1 + column sums.
    var rdx = [Double](repeating: 1, count: N * C), rdw = [Double](repeating: 1, count: OC * C)
    var rdb = [Double](repeating: 1, count: OC)
    for n in 0..<N {
        for o in 0..<OC {
            let g = Double(dout[n * OC + o])
            rdb[o] += g
            for c in 0..<C {
                rdx[n * C + c] += g * Double(weight[o * C + c])
                rdw[o * C + c] += g * Double(x[n * C + c])
            }
        }
    }
    let (out, dx, dw, db) = (results[0][0], results[0][1], results[0][2], results[0][3])
    expectClose(out, forwardReference(x, weight, bias, N: N, C: C, OC: OC), "\(variant) out")
    expectClose(dx, rdx, "\(variant) dinp")
    expectClose(dw, rdw, "\(variant) dweight")
    expectClose(db, rdb, "\(variant) dbias")
}

/// `rows` × `cols` weights of `type` as bytes: quantized from Gaussians where this library can quantize to the
/// type, otherwise random blocks whose f16 scales are set to small sane values.
private func quantizedWeight(_ type: GGMLType, rows: Int, cols: Int, _ rng: inout SplitMix64) -> [UInt8] {
    if type == .q8_0 { return type.quantize(gaussians(rows * cols, &rng, std: 0.5)) }
    let blocks = rows * cols / type.blockSize
    var bytes = (0..<blocks * type.bytesPerBlock).map { _ in UInt8.random(in: 0...255, using: &rng) }
    // Offsets of each block's f16 scales (Q4_K: d and dmin; Q6_K: d at the end; Q5_0: d first).
    let scales: [Int] = switch type {
    case .q5_0: [0]
    case .q4_K: [0, 2]
    case .q6_K: [208]
    default: preconditionFailure("no test blocks for \(type)")
    }
    for b in 0..<blocks {
        for offset in scales {
            let bits = float16Bits(Float.random(in: 0.005...0.02, using: &rng))
            bytes[b * type.bytesPerBlock + offset] = UInt8(bits & 0xFF)
            bytes[b * type.bytesPerBlock + offset + 1] = UInt8(bits >> 8)
        }
    }
    return bytes
}

/// The forward from a quantized weight gives the float path's bits on the dequantized weight, writes only the first
/// OC columns of rows ldOut apart, and does not depend on the thread count. C = 640 is 20 blocks of 32: k-chunks of
/// 256, 256, 128.
@Test(arguments: KernelVariant.supported,
      [(type: GGMLType.q8_0, C: 96), (type: .q5_0, C: 640), (type: .q4_K, C: 512), (type: .q6_K, C: 256)])
func quantizedWeightForwardMatchesFloatPath(variant: KernelVariant, weightType: (type: GGMLType, C: Int)) {
    let (type, C) = weightType
    let N = 7, OC = 37, ldOut = OC + 5
    var rng = SplitMix64(seed: 5)
    let bytes = quantizedWeight(type, rows: OC, cols: C, &rng)
    let weight = type.dequantize(bytes)
    let x = gaussians(N * C, &rng), bias = gaussians(OC, &rng)

    var expected = [Float](repeating: .nan, count: N * OC)
    matmulForward(out: &expected, inp: x, weight: weight, bias: bias, N: N, C: C, OC: OC,
                  parallel: ParallelFor(threads: 1), scratch: MatmulScratch(threads: 1), variant: variant)
    expectClose(expected, forwardReference(x, weight, bias, N: N, C: C, OC: OC), "\(variant) \(type) float path")

    for threads in [1, 2] {
        var out = [Float](repeating: -7, count: N * ldOut)
        bytes.withUnsafeBytes { raw in
            let matrix = QuantizedMatrix(type: type, base: raw.baseAddress!, rows: OC, cols: C)
            matmulForward(out: &out, ldOut: ldOut, inp: x, weight: matrix, bias: bias, N: N,
                          parallel: ParallelFor(threads: threads), scratch: MatmulScratch(threads: threads),
                          variant: variant)
        }
        for n in 0..<N {
            #expect(Array(out[n * ldOut..<n * ldOut + OC]) == Array(expected[n * OC..<(n + 1) * OC]),
                    "\(variant) \(type), \(threads) threads: row \(n)")
            #expect(out[n * ldOut + OC..<(n + 1) * ldOut].allSatisfy { $0 == -7 },
                    "\(variant) \(type): columns past OC must be left alone")
        }
    }
}
