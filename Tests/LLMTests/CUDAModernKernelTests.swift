// The CUDA kernels of the modern architectures (rmsnorm.cu, rope.cu, mlp.cu, softcap.cu) on the CPU emulator,
// launched through CUDAOps as a GPU would get them, in both storage precisions, against the CPU kernels. Shapes are
// tiny but awkward: rows that leave blocks partial, sizes that are not multiples of 32, several groups per row.

import Foundation
import Testing
@testable import LLM

private let serial = ParallelFor(threads: 1)

@Suite struct CUDAModernKernelTests {
    /// Plain RMSNorm (one group of C per row) and QK-norm (3 heads of d = 8 at the start of rows of 40).
    @Test(arguments: CUDAPrecision.allCases, [RMSNormWeight.scale, .onePlus, .none])
    func rmsNorm(precision: CUDAPrecision, kind: RMSNormWeight) throws {
        for (N, C, groups, stride) in [(5, 37, 1, 37), (6, 8, 3, 40)] {
            let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
            let x = stored(randomValues(N * stride, seed: 40, scale: 3), precision)
            let weight = stored(randomValues(C, seed: 41), precision)
            let out0 = stored(randomValues(N * stride, seed: 42), precision)  // what lies outside the groups stays
            let out = cpu.floats(out0), rstd = cpu.zeros(N * groups)
            rmsNormForward(out: out, rstd: rstd, inp: cpu.floats(x), weight: cpu.floats(weight), kind: kind, eps: 1e-6,
                           N: N, C: C, groups: groups, stride: stride, parallel: serial)
            let gX = gpu.floatX(x), gWeight = gpu.floatX(weight), gOut = gpu.floatX(out0)
            let gRstd = gpu.floats([Float](repeating: .nan, count: N * groups))
            try ops.rmsNormForward(out: gOut, rstd: gRstd, inp: gX, weight: kind == .none ? nil : gWeight, kind: kind,
                                   eps: 1e-6, N: N, C: C, groups: groups, stride: stride)
            #expect(maxRelativeError(gpu.read(gOut), array(out, N * stride)) < tolerance(precision), "\(N)×\(groups)")
            #expect(maxRelativeError(gpu.read(gRstd), array(rstd, N * groups)) < 1e-5)

            let dout = stored(randomValues(N * stride, seed: 43), precision)
            let dinp0 = stored(randomValues(N * stride, seed: 44), precision), dweight0 = stored(randomValues(C, seed: 45), precision)
            let dinp = cpu.floats(dinp0), dweight = cpu.floats(dweight0)
            rmsNormBackward(dinp: dinp, dweight: kind == .none ? nil : dweight, dout: cpu.floats(dout), inp: cpu.floats(x),
                            weight: cpu.floats(weight), rstd: rstd, kind: kind, N: N, C: C, groups: groups,
                            stride: stride, parallel: serial)
            let gDinp = gpu.floatX(dinp0), gDweight = gpu.floatX(dweight0)
            let scratch = gpu.floats([Float](repeating: .nan, count: CUDAOps.columnScratchCount(rows: N * groups, columns: C)))
            try ops.rmsNormBackward(dinp: gDinp, dweight: kind == .none ? nil : gDweight, dout: gpu.floatX(dout), inp: gX,
                                    weight: kind == .none ? nil : gWeight, rstd: gRstd, scratch: scratch, kind: kind, N: N,
                                    C: C, groups: groups, stride: stride)
            #expect(maxRelativeError(gpu.read(gDinp), array(dinp, N * stride)) < tolerance(precision))
            #expect(maxRelativeError(gpu.read(gDweight), array(dweight, C)) < tolerance(precision))
        }
    }

    /// Query and key heads (3 of d = 8) at the start of fused rows of 40 (the values after them stay), positions out
    /// of order; the inverse rotation is the backward.
    @Test(arguments: CUDAPrecision.allCases)
    func rope(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let N = 5, heads = 3, d = 8, stride = 40
        let table = RotaryTable(theta: 10_000, headSize: d, maxSeqLen: 16)
        let positions: [Int32] = [0, 7, 3, 15, 1]
        let x0 = stored(randomValues(N * stride, seed: 46), precision)
        let x = cpu.floats(x0)
        rotaryForward(x, positions: cpu.ints(positions), table: table, N: N, heads: heads, stride: stride, parallel: serial)
        let gX = gpu.floatX(x0), gPositions = gpu.ints(positions)
        let cosines = gpu.floats(table.cosines), sines = gpu.floats(table.sines)
        try ops.rope(gX, positions: gPositions, cosines: cosines, sines: sines, N: N, heads: heads, headSize: d,
                     stride: stride, inverse: false)
        #expect(maxRelativeError(gpu.read(gX), array(x, N * stride)) < tolerance(precision))

        let dx0 = stored(randomValues(N * stride, seed: 47), precision)
        let dx = cpu.floats(dx0), gDx = gpu.floatX(dx0)
        rotaryBackward(dx, positions: cpu.ints(positions), table: table, N: N, heads: heads, stride: stride, parallel: serial)
        try ops.rope(gDx, positions: gPositions, cosines: cosines, sines: sines, N: N, heads: heads, headSize: d,
                     stride: stride, inverse: true)
        #expect(maxRelativeError(gpu.read(gDx), array(dx, N * stride)) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases, [MLPActivation.gelu, .swiGLU, .geGLU, .reluSquared])
    func activations(precision: CUDAPrecision, kind: MLPActivation) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let N = 5, F = 7, width = kind.isGated ? 2 * F : F
        // Large magnitudes too: σ and tanh must not overflow.
        let x = stored(randomValues(N * width, seed: 48, scale: 6) + [], precision).enumerated().map { i, v in
            i % 11 == 0 ? v * 20 : v
        }
        let inp = cpu.floats(x), out = cpu.zeros(N * F)
        switch kind {
        case .gelu: geluForward(out: out, inp: inp, N: N * F, parallel: serial)
        case .reluSquared: reluSquaredForward(out: out, inp: inp, N: N * F, parallel: serial)
        case .swiGLU, .geGLU: gatedForward(out: out, inp: inp, activation: kind, N: N, F: F, parallel: serial)
        }
        let gInp = gpu.floatX(x), gOut = gpu.floatX([Float](repeating: .nan, count: N * F))
        try ops.activation(out: gOut, inp: gInp, kind: kind, N: N, F: F)
        #expect(maxRelativeError(gpu.read(gOut), array(out, N * F)) < tolerance(precision))

        let dout = stored(randomValues(N * F, seed: 49), precision), dinp0 = stored(randomValues(N * width, seed: 50), precision)
        let dinp = cpu.floats(dinp0)
        switch kind {
        case .gelu: geluBackward(dinp: dinp, inp: inp, dout: cpu.floats(dout), N: N * F, parallel: serial)
        case .reluSquared: reluSquaredBackward(dinp: dinp, inp: inp, dout: cpu.floats(dout), N: N * F, parallel: serial)
        case .swiGLU, .geGLU:
            gatedBackward(dinp: dinp, inp: inp, dout: cpu.floats(dout), activation: kind, N: N, F: F, parallel: serial)
        }
        let gDinp = gpu.floatX(dinp0)
        try ops.activationBackward(dinp: gDinp, inp: gInp, dout: gpu.floatX(dout), kind: kind, N: N, F: F)
        #expect(maxRelativeError(gpu.read(gDinp), array(dinp, N * width)) < tolerance(precision))
    }

    /// Logits from tiny to far beyond the cap, in rows of V = 37 real columns padded to 40 (the padding stays).
    @Test(arguments: CUDAPrecision.allCases)
    func softcap(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let N = 3, V = 37, Vp = 40, cap: Float = 15
        let logits = stored((0..<N * Vp).map { i in Float(i % 7 - 3) * pow(10, Float(i % 5) - 3) }, precision)
        let x = cpu.floats(logits)
        softcapForward(x, cap: cap, N: N, V: V, Vp: Vp, parallel: serial)
        let gX = gpu.floatX(logits)
        try ops.softcap(gX, cap: cap, N: N, V: V, Vp: Vp)
        #expect(maxRelativeError(gpu.read(gX), array(x, N * Vp), floor: 1e-6) < tolerance(precision))

        let d0 = stored(randomValues(N * Vp, seed: 51), precision)
        let d = cpu.floats(d0), gD = gpu.floatX(d0)
        // From the capped logits as each side stores them (near the cap, 1 − (y/cap)² is all rounding in bfloat16).
        softcapBackward(d, capped: cpu.floats(gpu.read(gX)), cap: cap, N: N, V: V, Vp: Vp, parallel: serial)
        try ops.softcapBackward(gD, capped: gX, cap: cap, N: N, V: V, Vp: Vp)
        #expect(maxRelativeError(gpu.read(gD), array(d, N * Vp)) < tolerance(precision))
    }
}
