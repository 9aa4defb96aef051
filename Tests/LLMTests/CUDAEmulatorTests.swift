// GPT-2's CUDA kernels (Sources/LLM/Resources/cuda) checked without a GPU: each runs in the CPU emulator
// (Sources/CUDAEmulator) with its documented launch shape, in both storage precisions, against the CPU kernel it
// mirrors. The first tests check the emulator itself: its reductions, its barriers, and the faults it reports.

import Foundation
import Testing
@testable import LLM

private let serial = ParallelFor(threads: 1)

@Suite struct CUDAEmulatorTests {
    // MARK: - The emulator

    @Test func everyKernelIsCompiledIn() {
        let names = Emulator.kernelNames
        #expect(names.sorted() == CUDAKernels.sources.flatMap(\.entryPoints).sorted())
    }

    @Test func reductionsAgreeWithASum() throws {
        let blocks = 2, threads = 96
        let input = randomValues(blocks * threads, seed: 1)
        let inp = HostArray(floats: input), out = HostArray(floats: [Float](repeating: 0, count: blocks + blocks * threads))
        try Emulator.launch("emulator_test_sums", .fp32, grid: (blocks, 1, 1), block: (threads, 1, 1),
                            [out, inp])
        let result = out.floats
        for b in 0..<blocks {
            let expected = input[b * threads..<(b + 1) * threads].reduce(0, +)
            #expect(abs(result[b] - expected) < 1e-5, "block \(b)")
            for warp in 0..<threads / 32 {
                let start = b * threads + warp * 32
                let warpSum = input[start..<start + 32].reduce(0, +)
                for lane in 0..<32 { #expect(abs(result[blocks + start + lane] - warpSum) < 1e-5) }
            }
        }
    }

    @Test func syncthreadsPublishesSharedMemory() throws {
        let n = 64
        let out = HostArray(floats: [Float](repeating: 0, count: n))
        try Emulator.launch("emulator_test_neighbour", .fp32, grid: (1, 1, 1), block: (n, 1, 1),
                            sharedMemory: 4 * n, [out, Int32(1)])
        #expect(out.floats == (0..<n).map { Float(($0 + 1) % n) })
        // Without the barrier, thread 0 reads its neighbour's slot before it is written: NaN, not a stale value.
        try Emulator.launch("emulator_test_neighbour", .fp32, grid: (1, 1, 1), block: (n, 1, 1),
                            sharedMemory: 4 * n, [out, Int32(0)])
        #expect(out.floats[0].isNaN)
    }

    @Test(arguments: [
        ("emulator_test_divergent_barrier", "has exited: every thread of a block must reach each __syncthreads"),
        ("emulator_test_exited_lane", "waits at a warp barrier (shuffle or __syncwarp) for thread (5,0,0) of block (0,0,0), which has exited"),
        ("emulator_test_deadlock", "a deadlock"),
    ])
    func faultsAreReported(kernel: String, message: String) throws {
        let out = HostArray(floats: [Float](repeating: 0, count: 64))
        #expect {
            try Emulator.launch(kernel, .fp32, grid: (1, 1, 1), block: (64, 1, 1), [out])
        } throws: { error in
            let text = String(describing: error)
            return text.hasPrefix(kernel + ": thread (") && text.contains(message) && !text.contains("\n")
        }
    }

    @Test func launchesTheGPURefusesAreRefused() {
        #expect(throws: EmulatorError.self) {
            try Emulator.launch("residual_forward", .fp32, grid: (1, 1, 1), block: (2048, 1, 1), [])
        }
        #expect {
            try Emulator.launch("no_such_kernel", .fp32, grid: (1, 1, 1), block: (32, 1, 1), [])
        } throws: { error in
            String(describing: error) == "no_such_kernel: no such kernel in the emulator"
        }
    }

    // MARK: - GPT-2's kernels against the CPU's

    @Test(arguments: CUDAPrecision.allCases)
    func encoder(precision: CUDAPrecision) throws {
        let B = 2, T = 3, C = 37, V = 5, N = B * T
        let tokens: [Int32] = [4, 0, 4, 2, 4, 0]
        let positions = (0..<N).map { Int32($0 % T) }
        let wte = stored(randomValues(V * C, seed: 2), precision), wpe = stored(randomValues(T * C, seed: 3), precision)
        let cpu = CPUArrays()
        let out = cpu.zeros(N * C)
        encoderForward(out: out, inp: cpu.ints(tokens), positions: cpu.ints(positions), wte: cpu.floats(wte),
                       wpe: cpu.floats(wpe), N: N, C: C, parallel: serial)
        let gOut = HostArray(floatX: [Float](repeating: 0, count: N * C), precision)
        let gTokens = HostArray(ints: tokens)
        try Emulator.launch("encoder_forward", precision, grid: (Emulator.blocks(N * C, of: 256), 1, 1), block: (256, 1, 1),
                            [gOut, gTokens, HostArray(floatX: wte, precision),
                             HostArray(floatX: wpe, precision), Int32(B), Int32(T), Int32(C)])
        #expect(maxRelativeError(gOut.floats, array(out, N * C)) < tolerance(precision))

        // Backward: both gradients accumulate into what is there.
        let dout = stored(randomValues(N * C, seed: 4), precision)
        let dwte0 = stored(randomValues(V * C, seed: 5), precision), dwpe0 = stored(randomValues(T * C, seed: 6), precision)
        let dwte = cpu.floats(dwte0), dwpe = cpu.floats(dwpe0)
        encoderBackward(dwte: dwte, dwpe: dwpe, dout: cpu.floats(dout), inp: cpu.ints(tokens), positions: cpu.ints(positions),
                        N: N, C: C, parallel: serial)
        let gDout = HostArray(floatX: dout, precision)
        let gDwpe = HostArray(floatX: dwpe0, precision), gDwte = HostArray(floatX: dwte0, precision)
        try Emulator.launch("encoder_backward_wpe", precision, grid: (Emulator.blocks(T * C, of: 256), 1, 1),
                            block: (256, 1, 1), [gDwpe, gDout, Int32(B), Int32(T), Int32(C)])
        // The host's counting sort: positions grouped by token, in increasing order.
        let present = Array(Set(tokens)).sorted()
        var starts: [Int32] = [0], grouped: [Int32] = []
        for token in present {
            grouped += (0..<N).filter { tokens[$0] == token }.map { Int32($0) }
            starts.append(Int32(grouped.count))
        }
        try Emulator.launch("encoder_backward_wte", precision, grid: (present.count, Emulator.blocks(C, of: 256), 1),
                            block: (256, 1, 1),
                            [gDwte, gDout, HostArray(ints: present), HostArray(ints: starts),
                             HostArray(ints: grouped), Int32(present.count), Int32(C)])
        #expect(maxRelativeError(gDwpe.floats, array(dwpe, T * C)) < tolerance(precision))
        #expect(maxRelativeError(gDwte.floats, array(dwte, V * C)) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases)
    func layerNorm(precision: CUDAPrecision) throws {
        let N = 5, C = 37, rowsPerChunk = 2, chunks = 3
        let x = stored(randomValues(N * C, seed: 7, scale: 3), precision)
        let weight = stored(randomValues(C, seed: 8), precision), bias = stored(randomValues(C, seed: 9), precision)
        let cpu = CPUArrays()
        let out = cpu.zeros(N * C), mean = cpu.zeros(N), rstd = cpu.zeros(N)
        layerNormForward(out: out, mean: mean, rstd: rstd, inp: cpu.floats(x), weight: cpu.floats(weight),
                         bias: cpu.floats(bias), N: N, C: C, parallel: serial)
        let gX = HostArray(floatX: x, precision), gWeight = HostArray(floatX: weight, precision)
        let gOut = HostArray(floatX: [Float](repeating: 0, count: N * C), precision)
        let gMean = HostArray(floats: [Float](repeating: 0, count: N)), gRstd = HostArray(floats: [Float](repeating: 0, count: N))
        try Emulator.launch("layernorm_forward", precision, grid: (Emulator.blocks(N, of: 4), 1, 1), block: (128, 1, 1),
                            [gOut, gMean, gRstd, gX, gWeight,
                             HostArray(floatX: bias, precision), Int32(N), Int32(C)])
        #expect(maxRelativeError(gOut.floats, array(out, N * C)) < tolerance(precision))
        #expect(maxRelativeError(gMean.floats, array(mean, N)) < 1e-5)
        #expect(maxRelativeError(gRstd.floats, array(rstd, N)) < 1e-5)

        let dout = stored(randomValues(N * C, seed: 10), precision)
        let dinp0 = stored(randomValues(N * C, seed: 11), precision)
        let dweight0 = stored(randomValues(C, seed: 12), precision), dbias0 = stored(randomValues(C, seed: 13), precision)
        let dinp = cpu.floats(dinp0), dweight = cpu.floats(dweight0), dbias = cpu.floats(dbias0)
        layerNormBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: cpu.floats(dout), inp: cpu.floats(x),
                          weight: cpu.floats(weight), mean: mean, rstd: rstd, N: N, C: C, parallel: serial)
        let gDout = HostArray(floatX: dout, precision), gDinp = HostArray(floatX: dinp0, precision)
        try Emulator.launch("layernorm_backward_input", precision, grid: (Emulator.blocks(N, of: 4), 1, 1),
                            block: (128, 1, 1),
                            [gDinp, gDout, gX, gWeight, gMean, gRstd,
                             Int32(N), Int32(C)])
        #expect(maxRelativeError(gDinp.floats, array(dinp, N * C)) < tolerance(precision))

        let partial = HostArray(floats: [Float](repeating: .nan, count: chunks * 2 * C))
        try Emulator.launch("layernorm_backward_params_partial", precision, grid: (Emulator.blocks(C, of: 32), chunks, 1),
                            block: (32, 8, 1),
                            [partial, gDout, gX, gMean, gRstd,
                             Int32(N), Int32(C), Int32(rowsPerChunk)])
        let gDweight = HostArray(floatX: dweight0, precision), gDbias = HostArray(floatX: dbias0, precision)
        for (target, offset) in [(gDweight, 0), (gDbias, C)] {
            try Emulator.launch("column_sum_finish", precision, grid: (Emulator.blocks(C, of: 256), 1, 1), block: (256, 1, 1),
                                [target, partial, Int32(chunks), Int32(2 * C),
                                 Int32(offset), Int32(C)])
        }
        #expect(maxRelativeError(gDweight.floats, array(dweight, C)) < tolerance(precision))
        #expect(maxRelativeError(gDbias.floats, array(dbias, C)) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases)
    func biasAndItsGradient(precision: CUDAPrecision) throws {
        let N = 11, OC = 45, rowsPerChunk = 4, chunks = 3
        let out0 = stored(randomValues(N * OC, seed: 14), precision), bias = stored(randomValues(OC, seed: 15), precision)
        let out = HostArray(floatX: out0, precision)
        try Emulator.launch("add_bias", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [out, HostArray(floatX: bias, precision), Int32(N), Int32(OC)])
        #expect(maxRelativeError(out.floats, (0..<N * OC).map { out0[$0] + bias[$0 % OC] }) < tolerance(precision))

        let partial = HostArray(floats: [Float](repeating: .nan, count: chunks * OC))
        try Emulator.launch("column_sum_partial", precision, grid: (Emulator.blocks(OC, of: 32), chunks, 1),
                            block: (32, 8, 1),
                            [partial, HostArray(floatX: out0, precision), Int32(N), Int32(OC),
                             Int32(rowsPerChunk)])
        let dbias0 = stored(randomValues(OC, seed: 16), precision)
        let dbias = HostArray(floatX: dbias0, precision)
        try Emulator.launch("column_sum_finish", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [dbias, partial, Int32(chunks), Int32(OC), Int32(0),
                             Int32(OC)])
        let expected = (0..<OC).map { o in dbias0[o] + Float((0..<N).reduce(0.0) { $0 + Double(out0[$1 * OC + o]) }) }
        #expect(maxRelativeError(dbias.floats, expected) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases)
    func residualAndGELU(precision: CUDAPrecision) throws {
        // 1000 values over 2 blocks of 256: the grid-stride loops go round twice.
        let n = 1000, grid = (2, 1, 1), block = (256, 1, 1)
        let a = stored(randomValues(n, seed: 17, scale: 6), precision), b = stored(randomValues(n, seed: 18), precision)
        let cpu = CPUArrays()
        let sum = cpu.zeros(n)
        residualForward(out: sum, inp1: cpu.floats(a), inp2: cpu.floats(b), N: n, parallel: serial)
        let gSum = HostArray(floatX: [Float](repeating: 0, count: n), precision)
        let gA = HostArray(floatX: a, precision), gB = HostArray(floatX: b, precision)
        try Emulator.launch("residual_forward", precision, grid: grid, block: block,
                            [gSum, gA, gB, Int64(n)])
        #expect(maxRelativeError(gSum.floats, array(sum, n)) < tolerance(precision))

        let d1 = cpu.floats(a), d2 = cpu.floats(b)
        residualBackward(dinp1: d1, dinp2: d2, dout: cpu.floats(a), N: n, parallel: serial)
        let gD1 = HostArray(floatX: a, precision), gD2 = HostArray(floatX: b, precision)
        try Emulator.launch("residual_backward", precision, grid: grid, block: block,
                            [gD1, gD2, gA, Int64(n)])
        #expect(maxRelativeError(gD1.floats, array(d1, n)) < tolerance(precision))
        #expect(maxRelativeError(gD2.floats, array(d2, n)) < tolerance(precision))

        let gelu = cpu.zeros(n)
        geluForward(out: gelu, inp: cpu.floats(a), N: n, parallel: serial)
        let gGelu = HostArray(floatX: [Float](repeating: 0, count: n), precision)
        try Emulator.launch("gelu_forward", precision, grid: grid, block: block, [gGelu, gA, Int64(n)])
        #expect(maxRelativeError(gGelu.floats, array(gelu, n)) < tolerance(precision))

        let dinp = cpu.floats(b)
        geluBackward(dinp: dinp, inp: cpu.floats(a), dout: cpu.floats(b), N: n, parallel: serial)
        let gDinp = HostArray(floatX: b, precision)
        try Emulator.launch("gelu_backward", precision, grid: grid, block: block,
                            [gDinp, gA, gB, Int64(n)])
        #expect(maxRelativeError(gDinp.floats, array(dinp, n)) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases)
    func fusedClassifier(precision: CUDAPrecision) throws {
        let N = 4, V = 37, Vp = 40
        let targets: [Int32] = [3, -1, 36, 0]
        let logits = stored(randomValues(N * Vp, seed: 19, scale: 8), precision)
        let supervised = targets.filter { $0 >= 0 }.count
        let dloss = 1 / Float(supervised)
        let cpu = CPUArrays()
        let probs = cpu.zeros(N * Vp), losses = cpu.zeros(N), dlogits = cpu.zeros(N * Vp)
        softmaxForward(probs: probs, logits: cpu.floats(logits), N: N, V: V, Vp: Vp, parallel: serial)
        crossEntropyForward(losses: losses, probs: probs, targets: cpu.ints(targets), N: N, Vp: Vp)
        crossEntropySoftmaxBackward(dlogits: dlogits, dlosses: cpu.floats(targets.map { $0 >= 0 ? dloss : 0 }), probs: probs,
                                    targets: cpu.ints(targets), N: N, V: V, Vp: Vp, parallel: serial)
        let gLogits = HostArray(floatX: logits, precision), gLosses = HostArray(floats: [Float](repeating: .nan, count: N))
        try Emulator.launch("fused_classifier", precision, grid: (N, 1, 1), block: (512, 1, 1),
                            [gLogits, gLosses, HostArray(ints: targets), Float(dloss),
                             Int32(N), Int32(V), Int32(Vp), Int32(1)])
        #expect(maxRelativeError(gLosses.floats, array(losses, N)) < 1e-5)
        // The gradient replaces the logits: padded columns and the ignored row are 0.
        #expect(maxRelativeError(gLogits.floats, array(dlogits, N * Vp), floor: 1e-2) < tolerance(precision))
        #expect(gLogits.floats[Vp..<2 * Vp].allSatisfy { $0 == 0 })
    }

    @Test(arguments: CUDAPrecision.allCases)
    func gradientNormAndAdamW(precision: CUDAPrecision) throws {
        let n = 300, partials = 4
        let grads = stored(randomValues(n, seed: 20, scale: 0.5), precision)
        let params0 = randomValues(n, seed: 21), m0 = randomValues(n, seed: 22, scale: 0.1)
        let v0 = randomValues(n, seed: 23, scale: 0.01).map { abs($0) }
        let gPartials = HostArray(floats: [Float](repeating: .nan, count: partials))
        let normScale = HostArray(floats: [0, 0])
        try Emulator.launch("global_norm_partial", precision, grid: (partials, 1, 1), block: (512, 1, 1),
                            [gPartials, HostArray(floatX: grads, precision), Int64(n)])
        let clip: Float = 1
        try Emulator.launch("global_norm_finish", precision, grid: (1, 1, 1), block: (1024, 1, 1),
                            [normScale, gPartials, Int32(partials), Float(clip)])
        let norm = Float(grads.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        let scale = min(1, clip / (norm + 1e-6))
        #expect(abs(normScale.floats[0] - norm) / norm < 1e-5)
        #expect(abs(normScale.floats[1] - scale) / scale < 1e-5)

        // AdamW step 3, with the scalars formed in double as the host will.
        let (lr, beta1, beta2, eps, wd, step) = (1e-3, 0.9, 0.95, 1e-8, 0.1, 3)
        let cpu = CPUArrays()
        let params = cpu.floats(params0), m = cpu.floats(m0), v = cpu.floats(v0)
        adamWUpdate(params: params, grads: cpu.floats(grads), m: m, v: v, n: n, gradScale: normScale.floats[1], lr: lr,
                    beta1: beta1, beta2: beta2, eps: eps, weightDecay: wd, step: step, parallel: serial)
        let scalars: [any LaunchArgument] = [
            Float(lr / (1 - pow(beta1, Double(step)))), Float((1 - pow(beta2, Double(step))).squareRoot()),
            Float(1 - lr * wd), Float(1 - beta1), Float(beta2), Float(1 - beta2), Float(eps),
        ]
        let gradScale: any LaunchArgument = KernelArgument.pointer(UInt64(UInt(bitPattern: normScale.memory)) + 4)
        let gParams = HostArray(floats: params0), gM = HostArray(floats: m0), gV = HostArray(floats: v0)
        try Emulator.launch("adamw_update", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [gParams, HostArray(floats: grads), gM, gV, Int64(n),
                             gradScale] + scalars)
        #expect(maxRelativeError(gParams.floats, array(params, n)) < 1e-6)
        #expect(maxRelativeError(gM.floats, array(m, n)) < 1e-6)
        #expect(maxRelativeError(gV.floats, array(v, n)) < 1e-6)

        // Mixed precision: the master copy takes the float update; the floatX copy is it rounded (stochastically in
        // bfloat16: to one of the two neighbours).
        let master = HostArray(floats: params0), copy = HostArray(floatX: params0, precision)
        gM.write(m0)
        gV.write(v0)
        try Emulator.launch("adamw_update_mixed", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [copy, master, HostArray(floatX: grads, precision), gM,
                             gV, Int64(n), gradScale] + scalars + [UInt32(7)])
        #expect(maxRelativeError(master.floats, array(params, n)) < 1e-6)
        for (rounded, exact) in zip(copy.floats, master.floats) {
            let ulp = precision == .bf16 ? exact.magnitude.ulp * 65536 : 0
            #expect(abs(rounded - exact) <= ulp)
        }

        // A non-finite gradient norm: the scale is NaN and the step leaves everything as it was.
        try Emulator.launch("global_norm_partial", precision, grid: (partials, 1, 1), block: (512, 1, 1),
                            [gPartials, HostArray(floatX: [.infinity] + grads.dropFirst(), precision),
                             Int64(n)])
        try Emulator.launch("global_norm_finish", precision, grid: (1, 1, 1), block: (1024, 1, 1),
                            [normScale, gPartials, Int32(partials), Float(clip)])
        #expect(normScale.floats[1].isNaN)
        let before = gParams.floats
        try Emulator.launch("adamw_update", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [gParams, HostArray(floats: grads), gM, gV, Int64(n),
                             gradScale] + scalars)
        #expect(gParams.floats == before)
    }

    @Test(arguments: CUDAPrecision.allCases)
    func conversions(precision: CUDAPrecision) throws {
        let values: [Float] = randomValues(300, seed: 24, scale: 100) + [0, -0, .infinity, 1e-40, 3.0e38]
        let n = values.count
        let floatX = HostArray(floatX: [Float](repeating: 0, count: n), precision)
        try Emulator.launch("cast_f32_to_floatx", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [floatX, HostArray(floats: values), Int64(n)])
        #expect(floatX.floats == stored(values, precision))  // round to nearest even, as bfloat16Bits
        let back = HostArray(floats: [Float](repeating: 0, count: n))
        try Emulator.launch("cast_floatx_to_f32", precision, grid: (1, 1, 1), block: (256, 1, 1),
                            [back, floatX, Int64(n)])
        #expect(back.floats == floatX.floats)
    }
}
