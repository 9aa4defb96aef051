// Muon's update of one weight matrix, as nanochat runs it (after Keller Jordan's modded-nanogpt): Nesterov
// momentum on the gradient, then the gradient replaced by a nearby semi-orthogonal matrix (a quintic
// Newton–Schulz iteration, whose products run on Matmul.swift's GEMM), then a step along it scaled for the
// matrix's aspect ratio. Everything in float32; the caller owns all memory (`MuonScratch`, made with the model).

/// nanochat's zeropower_via_newtonschulz5 coefficients: chosen to maximise the slope at zero rather than to
/// converge, so five steps take every singular value to roughly 0.7…1.2 instead of exactly 1.
let newtonSchulzA: Float = 3.4445, newtonSchulzB: Float = -4.7750, newtonSchulzC: Float = 2.0315

/// The buffers the iteration needs for matrices of up to `maxElements` floats whose shorter side is at most
/// `maxShortSide` (m ≤ n below): allocated once, never in a step.
final class MuonScratch {
    private let arena: FloatArena
    let x, y: FloatPointer         // (m, n) the iterate and the next one
    let a, b: FloatPointer         // (m, m) A = X·Xᵀ and B = b·A + (c·A)·A
    let partials: UnsafeMutablePointer<Double>  // one sum of squares per 65,536 floats, for the Frobenius norm
    let maxElements: Int, maxShortSide: Int

    init(maxElements: Int, maxShortSide: Int) {
        (self.maxElements, self.maxShortSide) = (maxElements, maxShortSide)
        let e = maxElements, s2 = maxShortSide * maxShortSide
        arena = FloatArena(count: Self.floats(maxElements: e, maxShortSide: maxShortSide))
        (x, y) = (arena.base, arena.base + e)
        (a, b) = (arena.base + 2 * e, arena.base + 2 * e + s2)
        partials = .allocate(capacity: max(1, Self.blocks(e)))
        partials.initialize(repeating: 0, count: max(1, Self.blocks(e)))
    }

    deinit { partials.deallocate() }

    static func floats(maxElements e: Int, maxShortSide s: Int) -> Int { 2 * e + 2 * s * s }
    private static func blocks(_ e: Int) -> Int { (e + sumBlock - 1) / sumBlock }

    /// Bytes it holds, as `bytes(…)` computes before allocating.
    var allocatedBytes: Int { Self.bytes(maxElements: maxElements, maxShortSide: maxShortSide) }

    static func bytes(maxElements e: Int, maxShortSide s: Int) -> Int {
        4 * floats(maxElements: e, maxShortSide: s) + 8 * max(1, blocks(e))
    }
}

/// X ≈ U·Vᵀ for G = U·S·Vᵀ, G (rows, cols) row-major, as nanochat's zeropower_via_newtonschulz5 computes it
/// (in float32 here, not bfloat16): X = G / (‖G‖_F + 1e-7), transposed first when rows > cols so that the
/// iteration works on the short side (m = min(rows, cols), n = max), then `steps` times
///   A = X·Xᵀ (m, m);  B = b·A + (c·A)·A (m, m);  X = a·X + B·X (m, n).
/// Returns where the result is (in `scratch`: x or y), (m, n): the transpose of the (rows, cols) answer when
/// `transposed`. The products run on `gemmAccumulate`, so the result does not depend on the thread count.
func newtonSchulz5(_ g: ConstFloatPointer, rows: Int, cols: Int, steps: Int, scratch: MuonScratch,
                   gemm: MatmulScratch, parallel: ParallelFor,
                   variant: KernelVariant = .current) -> (result: FloatPointer, transposed: Bool) {
    let m = min(rows, cols), n = max(rows, cols), count = rows * cols, transposed = rows > cols
    precondition(count <= scratch.maxElements && m <= scratch.maxShortSide,
                 "a \(rows)×\(cols) matrix does not fit Muon's scratch")
    // The Frobenius norm: Σg² in Double over fixed blocks, rounded to float as torch's norm is.
    sumOfSquaresByBlock(g, count: count, partials: scratch.partials, parallel: parallel)
    var sum = 0.0
    for i in 0..<(count + sumBlock - 1) / sumBlock { sum += scratch.partials[i] }
    let denominator = Float(sum.squareRoot()) + Float(1e-7)
    var x = scratch.x, y = scratch.y
    let xs = x  // (a `let` for the closures)
    parallel(m, minimumPerThread: max(1, 4096 / n)) { range in
        for i in range {  // row i of X: row i of G, or column i when transposed
            let dst = xs + i * n
            if transposed {
                for j in 0..<n { dst[j] = g[j * cols + i] / denominator }
            } else {
                for j in 0..<n { dst[j] = g[i * cols + j] / denominator }
            }
        }
    }
    let a = scratch.a, b = scratch.b
    for _ in 0..<steps {
        let (xc, yc) = (x, y)
        // A = X·Xᵀ: B(k, j) = X[j, k].
        a.update(repeating: 0, count: m * m)
        gemmAccumulate(c: a, ldc: m, a: xc, ars: n, acs: 1, b: .strided(xc, ks: 1, js: n), M: m, cols: m, K: n,
                       parallel: parallel, scratch: gemm, variant: variant)
        // B = b·A + (c·A)·A, with c·A held in Y (free until X's update).
        for i in 0..<m * m {
            yc[i] = newtonSchulzC * a[i]
            b[i] = newtonSchulzB * a[i]
        }
        gemmAccumulate(c: b, ldc: m, a: yc, ars: m, acs: 1, b: .strided(a, ks: m, js: 1), M: m, cols: m, K: m,
                       parallel: parallel, scratch: gemm, variant: variant)
        // X' = a·X + B·X, into Y.
        parallel(m, minimumPerThread: max(1, 4096 / n)) { range in
            for i in range.lowerBound * n..<range.upperBound * n { yc[i] = newtonSchulzA * xc[i] }
        }
        gemmAccumulate(c: yc, ldc: n, a: b, ars: m, acs: 1, b: .strided(xc, ks: n, js: 1), M: m, cols: n, K: m,
                       parallel: parallel, scratch: gemm, variant: variant)
        swap(&x, &y)
    }
    return (x, transposed)
}

/// The orthogonalised G as a (rows, cols) matrix in `out` (for tests and checks; the update reads the
/// iteration's result in place).
func newtonSchulz5(_ g: ConstFloatPointer, into out: FloatPointer, rows: Int, cols: Int, steps: Int,
                   scratch: MuonScratch, gemm: MatmulScratch, parallel: ParallelFor,
                   variant: KernelVariant = .current) {
    let (x, transposed) = newtonSchulz5(g, rows: rows, cols: cols, steps: steps, scratch: scratch, gemm: gemm,
                                        parallel: parallel, variant: variant)
    for i in 0..<rows {
        for j in 0..<cols { out[i * cols + j] = transposed ? x[j * rows + i] : x[i * cols + j] }
    }
}

/// One Muon step for one (rows, cols) weight matrix, as nanochat's Muon.step with nesterov:
///   g ← g·gradScale (clipping);  buf ← lerp(buf, g, 1 − μ);  g ← lerp(g, buf, μ)  (in place in `grads`);
///   p ← p − lr·√max(1, rows/cols) · NS5(g).
/// lerp is torch's: start + w·(end − start) for |w| < 0.5, else end + (w − 1)·(end − start), fused. `momentum`
/// μ and `lr` are this step's (their schedules are the caller's).
func muonUpdate(params: FloatPointer, grads: FloatPointer, momentumBuffer buf: FloatPointer, rows: Int, cols: Int,
                gradScale: Float, lr: Double, momentum: Double, steps: Int, scratch: MuonScratch,
                gemm: MatmulScratch, parallel: ParallelFor, variant: KernelVariant = .current) {
    let count = rows * cols
    let toward = Float(1 - momentum), back = Float(momentum)
    @inline(__always) func lerp(_ start: SIMD16<Float>, _ end: SIMD16<Float>, _ w: Float) -> SIMD16<Float> {
        abs(w) < 0.5 ? start.addingProduct(SIMD16(repeating: w), end - start)
            : end.addingProduct(SIMD16(repeating: w - 1), end - start)
    }
    // Whole 16-float blocks per thread; a last partial block takes the same path with its lanes gathered.
    parallel((count + 15) / 16) { blocks in
        for block in blocks {
            let i = block * 16, width = min(16, count - i)
            var g = SIMD16<Float>(), m = g
            if width == 16 {
                (g, m) = (loadSIMD16(grads + i), loadSIMD16(buf + i))
            } else {
                for j in 0..<width { (g[j], m[j]) = (grads[i + j], buf[i + j]) }
            }
            g *= gradScale
            m = lerp(m, g, toward)
            g = lerp(g, m, back)
            if width == 16 {
                storeSIMD16(g, grads + i)
                storeSIMD16(m, buf + i)
            } else {
                for j in 0..<width { (grads[i + j], buf[i + j]) = (g[j], m[j]) }
            }
        }
    }
    let (x, transposed) = newtonSchulz5(grads, rows: rows, cols: cols, steps: steps, scratch: scratch, gemm: gemm,
                                        parallel: parallel, variant: variant)
    let step = Float(-(lr * max(1, Double(rows) / Double(cols)).squareRoot()))
    parallel(rows, minimumPerThread: max(1, 4096 / cols)) { range in
        for i in range {
            let p = params + i * cols
            for j in 0..<cols {
                let u = transposed ? x[j * rows + i] : x[i * cols + j]  // x is (cols, rows) when transposed
                p[j] = p[j].addingProduct(u, step)
            }
        }
    }
}
