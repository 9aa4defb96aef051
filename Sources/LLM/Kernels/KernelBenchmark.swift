// Timing the matmul kernels on their own, for `llm bench matmul`: GFLOP/s of the forward product and of
// the two backward products on a given shape, with random inputs.
import Dispatch

public enum KernelBenchmark {
    public struct MatmulResult: Sendable {
        public let N: Int, C: Int, OC: Int
        public let forwardMs: Double, backwardMs: Double   // medians
        public var forwardGFLOPS: Double { 2 * Double(N * C * OC) / forwardMs / 1e6 }
        public var backwardGFLOPS: Double { 4 * Double(N * C * OC) / backwardMs / 1e6 }
    }

    /// Median times of `repeats` runs (after one warm-up) of out(N×OC) = inp(N×C)·Wᵀ and its backward.
    public static func matmul(N: Int, C: Int, OC: Int, parallel: ParallelFor, repeats: Int = 5) -> MatmulResult {
        var rng = SplitMix64(seed: 7)
        let inp = FloatArena(count: N * C), w = FloatArena(count: OC * C), bias = FloatArena(count: OC)
        let out = FloatArena(count: N * OC), dinp = FloatArena(count: N * C), dw = FloatArena(count: OC * C)
        let db = FloatArena(count: OC)
        for a in [inp, w, bias, out] { for i in 0..<a.count { a[i] = Float(rng.nextGaussian()) } }
        let scratch = MatmulScratch(threads: parallel.threads)
        func median(_ body: () -> Void) -> Double {
            var times = [Double]()
            for i in 0...repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                if i > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
            }
            return times.sorted()[times.count / 2]
        }
        let f = median {
            matmulForward(out: out.base, inp: inp.base, weight: w.base, bias: bias.base, N: N, C: C, OC: OC,
                          parallel: parallel, scratch: scratch)
        }
        let b = median {
            matmulBackward(dinp: dinp.base, dweight: dw.base, dbias: db.base, dout: out.base, inp: inp.base,
                           weight: w.base, N: N, C: C, OC: OC, parallel: parallel, scratch: scratch)
        }
        return MatmulResult(N: N, C: C, OC: OC, forwardMs: f, backwardMs: b)
    }
}
