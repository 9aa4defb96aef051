// GPT-2's CUDA kernels (Sources/LLM/Resources/cuda) checked without a GPU: CUDAOps queues each launch, with the
// grid and scalars the GPU will get, on the CPU emulator (Sources/CUDAEmulator), in both storage precisions, and the
// result is compared with the CPU kernel it mirrors. The first tests check the emulator itself: its reductions,
// its barriers, and the faults it reports.

import Foundation
import Testing
@testable import LLM

private let serial = ParallelFor(threads: 1)

@Suite struct CUDAEmulatorTests {
    // MARK: - The emulator

    @Test func everyKernelIsCompiledIn() {
        #expect(EmulatedDevice.kernelNames.sorted() == CUDAKernels.sources.flatMap(\.entryPoints).sorted())
    }

    @Test func reductionsAgreeWithASum() throws {
        let gpu = EmulatedDevice(.fp32)
        let blocks = 2, threads = 96
        let input = randomValues(blocks * threads, seed: 1)
        let inp = gpu.floats(input), out = gpu.floats([Float](repeating: 0, count: blocks + blocks * threads))
        try gpu.launch("emulator_test_sums", grid: (blocks, 1, 1), block: (threads, 1, 1), [.pointer(out), .pointer(inp)])
        let result = gpu.read(out)
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
        let gpu = EmulatedDevice(.fp32)
        let n = 64
        let out = gpu.floats([Float](repeating: 0, count: n))
        try gpu.launch("emulator_test_neighbour", grid: (1, 1, 1), block: (n, 1, 1), sharedMemory: 4 * n,
                       [.pointer(out), .int32(1)])
        #expect(gpu.read(out) == (0..<n).map { Float(($0 + 1) % n) })
        // Without the barrier, thread 0 reads its neighbour's slot before it is written: NaN, not a stale value.
        try gpu.launch("emulator_test_neighbour", grid: (1, 1, 1), block: (n, 1, 1), sharedMemory: 4 * n,
                       [.pointer(out), .int32(0)])
        #expect(gpu.read(out)[0].isNaN)
    }

    @Test(arguments: [
        ("emulator_test_divergent_barrier", "has exited: every thread of a block must reach each __syncthreads"),
        ("emulator_test_exited_lane",
         "waits at a warp barrier (shuffle or __syncwarp) for thread (5,0,0) of block (0,0,0), which has exited"),
        ("emulator_test_deadlock", "a deadlock"),
    ])
    func faultsAreReported(kernel: String, message: String) throws {
        let gpu = EmulatedDevice(.fp32)
        let out = gpu.floats([Float](repeating: 0, count: 64))
        #expect {
            try gpu.launch(kernel, grid: (1, 1, 1), block: (64, 1, 1), [.pointer(out)])
        } throws: { error in
            let text = String(describing: error)
            return text.hasPrefix("kernel \(kernel): thread (") && text.contains(message) && !text.contains("\n")
        }
    }

    @Test func launchesTheGPURefusesAreRefused() {
        let gpu = EmulatedDevice(.fp32)
        #expect(throws: CUDAError.launch(kernel: "residual_forward",
                                         reason: "launch refused: a block of 2048×1×1 threads; the GPU allows at most 1024 (x, y ≤ 1024, z ≤ 64)")) {
            try gpu.launch("residual_forward", grid: (1, 1, 1), block: (2048, 1, 1), [])
        }
        #expect(throws: CUDAError.launch(kernel: "no_such_kernel", reason: "no such kernel in the emulator")) {
            try gpu.launch("no_such_kernel", grid: (1, 1, 1), block: (32, 1, 1), [])
        }
    }

    // MARK: - GPT-2's kernels against the CPU's

    @Test(arguments: CUDAPrecision.allCases)
    func encoder(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let B = 2, T = 3, C = 37, V = 5, N = B * T
        let tokens: [Int32] = [4, 0, 4, 2, 4, 0]
        let positions = (0..<N).map { Int32($0 % T) }
        let wte = stored(randomValues(V * C, seed: 2), precision), wpe = stored(randomValues(T * C, seed: 3), precision)
        let out = cpu.zeros(N * C)
        encoderForward(out: out, inp: cpu.ints(tokens), positions: cpu.ints(positions), wte: cpu.floats(wte),
                       wpe: cpu.floats(wpe), N: N, C: C, parallel: serial)
        let gOut = gpu.floatX([Float](repeating: 0, count: N * C))
        try ops.encoderForward(out: gOut, tokens: gpu.ints(tokens), wte: gpu.floatX(wte), wpe: gpu.floatX(wpe), B: B, T: T, C: C)
        #expect(maxRelativeError(gpu.read(gOut), array(out, N * C)) < tolerance(precision))

        // Backward: both gradients accumulate into what is there.
        let dout = stored(randomValues(N * C, seed: 4), precision)
        let dwte0 = stored(randomValues(V * C, seed: 5), precision), dwpe0 = stored(randomValues(T * C, seed: 6), precision)
        let dwte = cpu.floats(dwte0), dwpe = cpu.floats(dwpe0)
        encoderBackward(dwte: dwte, dwpe: dwpe, dout: cpu.floats(dout), inp: cpu.ints(tokens), positions: cpu.ints(positions),
                        N: N, C: C, parallel: serial)
        let buckets = CUDAOps.TokenBuckets(inputs: tokens)
        #expect(buckets.tokens == [0, 2, 4] && buckets.starts == [0, 2, 3, 6] && buckets.positions == [1, 5, 3, 0, 2, 4])
        let gDwte = gpu.floatX(dwte0), gDwpe = gpu.floatX(dwpe0)
        try ops.encoderBackward(dwte: gDwte, dwpe: gDwpe, dout: gpu.floatX(dout), bucketTokens: gpu.ints(buckets.tokens),
                                bucketStarts: gpu.ints(buckets.starts), positions: gpu.ints(buckets.positions),
                                bucketCount: buckets.tokens.count, B: B, T: T, C: C)
        #expect(maxRelativeError(gpu.read(gDwpe), array(dwpe, T * C)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gDwte), array(dwte, V * C)) < tolerance(precision))
    }

    /// N = 5 rows (a partial block of 4 rows per block; 3 is the least that fills no block), and 300 rows, which
    /// the column sums cut into chunks of 2.
    @Test(arguments: CUDAPrecision.allCases, [5, 300])
    func layerNorm(precision: CUDAPrecision, N: Int) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let C = 37
        let x = stored(randomValues(N * C, seed: 7, scale: 3), precision)
        let weight = stored(randomValues(C, seed: 8), precision), bias = stored(randomValues(C, seed: 9), precision)
        let out = cpu.zeros(N * C), mean = cpu.zeros(N), rstd = cpu.zeros(N)
        layerNormForward(out: out, mean: mean, rstd: rstd, inp: cpu.floats(x), weight: cpu.floats(weight),
                         bias: cpu.floats(bias), N: N, C: C, parallel: serial)
        let gX = gpu.floatX(x), gWeight = gpu.floatX(weight), gOut = gpu.floatX([Float](repeating: 0, count: N * C))
        let gMean = gpu.floats([Float](repeating: 0, count: N)), gRstd = gpu.floats([Float](repeating: 0, count: N))
        try ops.layerNormForward(out: gOut, mean: gMean, rstd: gRstd, inp: gX, weight: gWeight, bias: gpu.floatX(bias),
                                 N: N, C: C)
        #expect(maxRelativeError(gpu.read(gOut), array(out, N * C)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gMean), array(mean, N)) < 1e-5)
        #expect(maxRelativeError(gpu.read(gRstd), array(rstd, N)) < 1e-5)

        let dout = stored(randomValues(N * C, seed: 10), precision)
        let dinp0 = stored(randomValues(N * C, seed: 11), precision)
        let dweight0 = stored(randomValues(C, seed: 12), precision), dbias0 = stored(randomValues(C, seed: 13), precision)
        let dinp = cpu.floats(dinp0), dweight = cpu.floats(dweight0), dbias = cpu.floats(dbias0)
        layerNormBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: cpu.floats(dout), inp: cpu.floats(x),
                          weight: cpu.floats(weight), mean: mean, rstd: rstd, N: N, C: C, parallel: serial)
        let gDinp = gpu.floatX(dinp0), gDweight = gpu.floatX(dweight0), gDbias = gpu.floatX(dbias0)
        let scratch = gpu.floats([Float](repeating: .nan, count: CUDAOps.columnScratchCount(rows: N, columns: 2 * C)))
        try ops.layerNormBackward(dinp: gDinp, dweight: gDweight, dbias: gDbias, dout: gpu.floatX(dout), inp: gX,
                                  weight: gWeight, mean: gMean, rstd: gRstd, scratch: scratch, N: N, C: C)
        #expect(maxRelativeError(gpu.read(gDinp), array(dinp, N * C)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gDweight), array(dweight, C)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gDbias), array(dbias, C)) < tolerance(precision))
    }

    @Test func columnChunksCoverEveryRowOnce() {
        for N in [1, 2, 255, 256, 257, 1000, 16384] {
            let (rows, chunks) = CUDAOps.columnChunks(rows: N)
            #expect(chunks <= 256 && rows * chunks >= N && rows * (chunks - 1) < N, "N = \(N)")
        }
    }

    @Test(arguments: CUDAPrecision.allCases)
    func biasAndItsGradient(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu)
        let N = 11, OC = 45
        let out0 = stored(randomValues(N * OC, seed: 14), precision), bias = stored(randomValues(OC, seed: 15), precision)
        let out = gpu.floatX(out0)
        try ops.addBias(out: out, bias: gpu.floatX(bias), N: N, OC: OC)
        #expect(maxRelativeError(gpu.read(out), (0..<N * OC).map { out0[$0] + bias[$0 % OC] }) < tolerance(precision))

        let dbias0 = stored(randomValues(OC, seed: 16), precision)
        let dbias = gpu.floatX(dbias0)
        let scratch = gpu.floats([Float](repeating: .nan, count: CUDAOps.columnScratchCount(rows: N, columns: OC)))
        try ops.biasBackward(dbias: dbias, dout: gpu.floatX(out0), scratch: scratch, N: N, OC: OC)
        let expected = (0..<OC).map { o in dbias0[o] + Float((0..<N).reduce(0.0) { $0 + Double(out0[$1 * OC + o]) }) }
        #expect(maxRelativeError(gpu.read(dbias), expected) < tolerance(precision))
    }

    /// The three products of a linear layer, as DeviceGEMM maps them onto cuBLAS's column-major gemm, against the
    /// CPU's matmulForward and matmulBackward.
    @Test(arguments: CUDAPrecision.allCases)
    func linearLayerProducts(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), cpu = CPUArrays()
        let N = 5, C = 7, OC = 11
        let inp = stored(randomValues(N * C, seed: 30), precision), weight = stored(randomValues(OC * C, seed: 31), precision)
        let bias = stored(randomValues(OC, seed: 32), precision), dout = stored(randomValues(N * OC, seed: 33), precision)
        let dinp0 = stored(randomValues(N * C, seed: 34), precision), dweight0 = stored(randomValues(OC * C, seed: 35), precision)
        let out = cpu.zeros(N * OC), dinp = cpu.floats(dinp0), dweight = cpu.floats(dweight0)
        let scratch = MatmulScratch(threads: 1)
        matmulForward(out: out, inp: cpu.floats(inp), weight: cpu.floats(weight), bias: cpu.floats(bias), N: N, C: C, OC: OC,
                      parallel: serial, scratch: scratch)
        matmulBackward(dinp: dinp, dweight: dweight, dbias: nil, dout: cpu.floats(dout), inp: cpu.floats(inp),
                       weight: cpu.floats(weight), N: N, C: C, OC: OC, parallel: serial, scratch: scratch)
        let gInp = gpu.floatX(inp), gWeight = gpu.floatX(weight), gDout = gpu.floatX(dout)
        let gOut = gpu.floatX([Float](repeating: .nan, count: N * OC)), gDinp = gpu.floatX(dinp0), gDweight = gpu.floatX(dweight0)
        try gpu.forward(out: gOut, inp: gInp, weight: gWeight, bias: gpu.floatX(bias), N: N, C: C, OC: OC)
        try gpu.backwardInput(dinp: gDinp, dout: gDout, weight: gWeight, N: N, C: C, OC: OC)
        try gpu.backwardWeight(dweight: gDweight, dout: gDout, inp: gInp, N: N, C: C, OC: OC)
        #expect(maxRelativeError(gpu.read(gOut), array(out, N * OC)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gDinp), array(dinp, N * C)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gDweight), array(dweight, OC * C)) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases)
    func residualAndGELU(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let n = 1000
        let a = stored(randomValues(n, seed: 17, scale: 6), precision), b = stored(randomValues(n, seed: 18), precision)
        let gA = gpu.floatX(a), gB = gpu.floatX(b)
        let sum = cpu.zeros(n), gSum = gpu.floatX([Float](repeating: 0, count: n))
        residualForward(out: sum, inp1: cpu.floats(a), inp2: cpu.floats(b), N: n, parallel: serial)
        try ops.residualForward(out: gSum, inp1: gA, inp2: gB, N: n)
        #expect(maxRelativeError(gpu.read(gSum), array(sum, n)) < tolerance(precision))

        let d1 = cpu.floats(a), d2 = cpu.floats(b), gD1 = gpu.floatX(a), gD2 = gpu.floatX(b)
        residualBackward(dinp1: d1, dinp2: d2, dout: cpu.floats(a), N: n, parallel: serial)
        try ops.residualBackward(dinp1: gD1, dinp2: gD2, dout: gA, N: n)
        #expect(maxRelativeError(gpu.read(gD1), array(d1, n)) < tolerance(precision))
        #expect(maxRelativeError(gpu.read(gD2), array(d2, n)) < tolerance(precision))

        let gelu = cpu.zeros(n), gGelu = gpu.floatX([Float](repeating: 0, count: n))
        geluForward(out: gelu, inp: cpu.floats(a), N: n, parallel: serial)
        try ops.geluForward(out: gGelu, inp: gA, N: n)
        #expect(maxRelativeError(gpu.read(gGelu), array(gelu, n)) < tolerance(precision))

        let dinp = cpu.floats(b), gDinp = gpu.floatX(b)
        geluBackward(dinp: dinp, inp: cpu.floats(a), dout: cpu.floats(b), N: n, parallel: serial)
        try ops.geluBackward(dinp: gDinp, inp: gA, dout: gB, N: n)
        #expect(maxRelativeError(gpu.read(gDinp), array(dinp, n)) < tolerance(precision))
    }

    @Test(arguments: CUDAPrecision.allCases)
    func fusedClassifier(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let N = 4, V = 37, Vp = 40
        let targets: [Int32] = [3, -1, 36, 0]
        let logits = stored(randomValues(N * Vp, seed: 19, scale: 8), precision)
        let dloss = 1 / Float(targets.filter { $0 >= 0 }.count)
        let probs = cpu.zeros(N * Vp), losses = cpu.zeros(N), dlogits = cpu.zeros(N * Vp)
        softmaxForward(probs: probs, logits: cpu.floats(logits), N: N, V: V, Vp: Vp, parallel: serial)
        crossEntropyForward(losses: losses, probs: probs, targets: cpu.ints(targets), N: N, Vp: Vp)
        crossEntropySoftmaxBackward(dlogits: dlogits, dlosses: cpu.floats(targets.map { $0 >= 0 ? dloss : 0 }), probs: probs,
                                    targets: cpu.ints(targets), N: N, V: V, Vp: Vp, parallel: serial)
        let gLogits = gpu.floatX(logits), gLosses = gpu.floats([Float](repeating: .nan, count: N))
        try ops.fusedClassifier(logits: gLogits, losses: gLosses, targets: gpu.ints(targets), dloss: dloss, N: N, V: V,
                                Vp: Vp, writeGradient: true)
        #expect(maxRelativeError(gpu.read(gLosses), array(losses, N)) < 1e-5)
        // The gradient replaces the logits: padded columns and the ignored row are 0.
        let gradient = gpu.read(gLogits)
        #expect(maxRelativeError(gradient, array(dlogits, N * Vp)) < tolerance(precision))
        #expect(gradient[Vp..<2 * Vp].allSatisfy { $0 == 0 })
    }

    @Test(arguments: CUDAPrecision.allCases)
    func gradientNormAndAdamW(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let n = 300
        let grads = stored(randomValues(n, seed: 20, scale: 0.5), precision)
        let params0 = randomValues(n, seed: 21), m0 = randomValues(n, seed: 22, scale: 0.1)
        let v0 = randomValues(n, seed: 23, scale: 0.01).map { abs($0) }
        let partials = gpu.floats([Float](repeating: .nan, count: CUDAOps.normPartials))
        let normScale = gpu.floats([0, 0]), gradScale = normScale + 4
        try ops.gradientNorm(normScale: normScale, partials: partials, grads: gpu.floatX(grads), n: n, clip: 1)
        let norm = Float(grads.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        let scale = min(1, 1 / (norm + 1e-6))
        #expect(abs(gpu.read(normScale)[0] - norm) / norm < 1e-5)
        #expect(abs(gpu.read(normScale)[1] - scale) / scale < 1e-5)

        let config = AdamWConfig(learningRate: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)
        let params = cpu.floats(params0), m = cpu.floats(m0), v = cpu.floats(v0)
        adamWUpdate(params: params, grads: cpu.floats(grads), m: m, v: v, n: n, gradScale: gpu.read(normScale)[1],
                    lr: config.learningRate, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
                    weightDecay: config.weightDecay, step: 3, parallel: serial)
        let gParams = gpu.floats(params0), gM = gpu.floats(m0), gV = gpu.floats(v0), gGrads = gpu.floats(grads)
        try ops.adamW(params: gParams, grads: gGrads, m: gM, v: gV, n: n, gradScale: gradScale, config: config, step: 3,
                      decay: true)
        #expect(maxRelativeError(gpu.read(gParams), array(params, n)) < 1e-6)
        #expect(maxRelativeError(gpu.read(gM), array(m, n)) < 1e-6)
        #expect(maxRelativeError(gpu.read(gV), array(v, n)) < 1e-6)

        // Mixed precision: the master copy takes the float update; the floatX copy is it rounded (stochastically in
        // bfloat16: to one of its two neighbours).
        let master = gpu.floats(params0), copy = gpu.floatX(params0)
        gpu.write(m0, to: gM)
        gpu.write(v0, to: gV)
        try ops.adamWMixed(params: copy, master: master, grads: gpu.floatX(grads), m: gM, v: gV, n: n, gradScale: gradScale,
                           config: config, step: 3, decay: true, seed: 7)
        #expect(maxRelativeError(gpu.read(master), array(params, n)) < 1e-6)
        for (rounded, exact) in zip(gpu.read(copy), gpu.read(master)) {
            #expect(abs(rounded - exact) <= (precision == .bf16 ? exact.magnitude.ulp * 65536 : 0))
        }

        // A non-finite gradient norm: the scale is NaN and the step leaves every weight as it was.
        try ops.gradientNorm(normScale: normScale, partials: partials, grads: gpu.floatX([.infinity] + grads.dropFirst()),
                             n: n, clip: 1)
        #expect(gpu.read(normScale)[1].isNaN)
        let before = gpu.read(gParams)
        try ops.adamW(params: gParams, grads: gGrads, m: gM, v: gV, n: n, gradScale: gradScale, config: config, step: 4,
                      decay: true)
        #expect(gpu.read(gParams) == before)
    }

    @Test(arguments: CUDAPrecision.allCases)
    func conversions(precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu)
        let values: [Float] = randomValues(300, seed: 24, scale: 100) + [0, -0, .infinity, 1e-40, 3.0e38]
        let n = values.count
        let floatX = gpu.floatX([Float](repeating: 0, count: n)), back = gpu.floats([Float](repeating: 0, count: n))
        try ops.castToFloatX(out: floatX, inp: gpu.floats(values), n: n)
        #expect(gpu.read(floatX) == stored(values, precision))  // round to nearest even, as bfloat16Bits
        try ops.castToFloat(out: back, inp: floatX, n: n)
        #expect(gpu.read(back) == gpu.read(floatX))
    }
}
