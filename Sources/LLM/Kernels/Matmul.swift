// Linear layers: out = inp · Wᵀ + bias with weights stored (out, in), and both backward products.
//
// All three products run on one register-tiled micro-kernel: a 6 × 32 tile of the output held in twelve
// SIMD16 accumulators, and for each k one broadcast of A per row times two 16-wide vectors of B. The kernel
// reads B "k-major" (B[k][j] contiguous in j) from a per-thread scratch buffer allocated once with the
// model, into which each product packs its B 256 k × 512 columns at a time: Wᵀ for the forward pass, W
// for dinp, the layer input for dW. Threads split the output columns in panels of 32; k is blocked by 256 so
// a 6-row slice of A stays in L1 and the packed block of B in L2.

let tileRows = 6        // MR: output rows per micro-kernel call
let tileCols = 32       // NR: output columns per micro-kernel call (two SIMD16 vectors)
let blockK = 256        // KC: k per block
let blockCols = 512     // NC: columns packed per block (16 panels)

/// Per-thread buffers for packing weights in `matmulForward`: allocated once, never in a step.
public final class MatmulScratch: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    /// Threads that can pack at once; more threads than this share the work of this many.
    public let threads: Int
    static let floatsPerThread = blockK * blockCols + tileRows * blockK  // a B block, then an A tile

    public init(threads: Int) {
        self.threads = max(1, threads)
        base = .allocate(capacity: self.threads * MatmulScratch.floatsPerThread)
        base.initialize(repeating: 0, count: self.threads * MatmulScratch.floatsPerThread)
    }

    deinit { base.deallocate() }
}

/// C[r, 0..<32] += Σ_k A(r, k) · B[k, 0..<32] for r < rows (≤ 6), k < kCount, where A(r, k) = a[r·ars + k·acs]
/// and B[k, j] = b[k·ldb + j]. Rows past `rows` repeat the last row and are not stored.
@inline(__always)
private func microKernel(_ a: ConstFloatPointer, _ ars: Int, _ acs: Int, _ b: ConstFloatPointer, _ ldb: Int,
                         _ c: FloatPointer, _ ldc: Int, kCount: Int, rows: Int) {
    let last = rows - 1
    let a0 = a, a1 = a + min(1, last) * ars, a2 = a + min(2, last) * ars
    let a3 = a + min(3, last) * ars, a4 = a + min(4, last) * ars, a5 = a + min(5, last) * ars
    var c00 = SIMD16<Float>(), c01 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
    var c20 = SIMD16<Float>(), c21 = SIMD16<Float>(), c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
    var c40 = SIMD16<Float>(), c41 = SIMD16<Float>(), c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
    var pb = b, ka = 0
    for _ in 0..<kCount {
        let b0 = loadSIMD16(pb), b1 = loadSIMD16(pb + 16)
        var x = SIMD16<Float>(repeating: a0[ka])
        c00.addProduct(x, b0); c01.addProduct(x, b1)
        x = SIMD16<Float>(repeating: a1[ka])
        c10.addProduct(x, b0); c11.addProduct(x, b1)
        x = SIMD16<Float>(repeating: a2[ka])
        c20.addProduct(x, b0); c21.addProduct(x, b1)
        x = SIMD16<Float>(repeating: a3[ka])
        c30.addProduct(x, b0); c31.addProduct(x, b1)
        x = SIMD16<Float>(repeating: a4[ka])
        c40.addProduct(x, b0); c41.addProduct(x, b1)
        x = SIMD16<Float>(repeating: a5[ka])
        c50.addProduct(x, b0); c51.addProduct(x, b1)
        pb += ldb
        ka += acs
    }
    @inline(__always) func add(_ r: Int, _ v0: SIMD16<Float>, _ v1: SIMD16<Float>) {
        let p = c + r * ldc
        storeSIMD16(loadSIMD16(p) + v0, p)
        storeSIMD16(loadSIMD16(p + 16) + v1, p + 16)
    }
    add(0, c00, c01)
    if rows > 1 { add(1, c10, c11) }
    if rows > 2 { add(2, c20, c21) }
    if rows > 3 { add(3, c30, c31) }
    if rows > 4 { add(4, c40, c41) }
    if rows > 5 { add(5, c50, c51) }
}

/// C(M × cols) += A(M × K) · B(K × cols), with A(r, k) = a[r·ars + k·acs] and B(k, j) = b[k·bks + j·bjs]
/// (so B can be a matrix or the transpose of one), C row stride ldc. Threads split the columns in panels of
/// 32; each thread packs its B block by block (256 k × up to 512 columns, zeros past `cols`) into its part of
/// `scratch`, so the micro-kernel reads B contiguously, and reuses it for every 6-row tile of A.
private func gemmAccumulate(c: FloatPointer, ldc: Int, a: ConstFloatPointer, ars: Int, acs: Int,
                            b: ConstFloatPointer, bks: Int, bjs: Int, M: Int, cols: Int, K: Int,
                            parallel: ParallelFor, scratch: MatmulScratch) {
    let threads = min(parallel.threads, scratch.threads)
    let panels = (cols + tileCols - 1) / tileCols
    ParallelFor(threads: threads)(threads) { ids in
        for t in ids {
            let pack = scratch.base + t * MatmulScratch.floatsPerThread
            var p = panels * t / threads
            let pEnd = panels * (t + 1) / threads
            while p < pEnd {
                let blockPanels = min(blockCols / tileCols, pEnd - p)
                var k0 = 0
                while k0 < K {
                    let kCount = min(blockK, K - k0)
                    // Panel q of the block: B[k0..<k0+kCount, its 32 columns] as kCount rows of 32.
                    for q in 0..<blockPanels {
                        let panel = pack + q * kCount * tileCols
                        let j0 = (p + q) * tileCols, width = min(tileCols, cols - j0)
                        if bjs == 1 {
                            for k in 0..<kCount {
                                let src = b + (k0 + k) * bks + j0, dst = panel + k * tileCols
                                if width == tileCols {
                                    storeSIMD16(loadSIMD16(src), dst)
                                    storeSIMD16(loadSIMD16(src + 16), dst + 16)
                                } else {
                                    for j in 0..<tileCols { dst[j] = j < width ? src[j] : 0 }
                                }
                            }
                        } else {  // a transpose: write each packed row whole; the 32 source rows stay in L1
                            let src = b + k0 * bks + j0 * bjs
                            for k in 0..<kCount {
                                let dst = panel + k * tileCols
                                for j in 0..<width { dst[j] = src[k * bks + j * bjs] }
                                for j in width..<tileCols { dst[j] = 0 }
                            }
                        }
                    }
                    var r0 = 0
                    while r0 < M {
                        let rows = min(tileRows, M - r0)
                        // Pack the A tile k-major (its 6 values for one k side by side): contiguous for the kernel,
                        // whatever A's strides (rows 12 KB apart would all fall in the same L1 sets).
                        let aTile = pack + blockK * blockCols
                        let a0 = a + r0 * ars + k0 * acs
                        for k in 0..<kCount {
                            for r in 0..<tileRows { aTile[k * tileRows + r] = a0[min(r, rows - 1) * ars + k * acs] }
                        }
                        for q in 0..<blockPanels {
                            let j0 = (p + q) * tileCols, panel = pack + q * kCount * tileCols
                            if j0 + tileCols <= cols {
                                microKernel(aTile, 1, tileRows, panel, tileCols, c + r0 * ldc + j0, ldc, kCount: kCount,
                                            rows: rows)
                            } else {  // the last, partial panel: scalar, from the packed columns
                                for r in 0..<rows {
                                    for j in 0..<cols - j0 {
                                        var sum: Float = 0
                                        for k in 0..<kCount { sum += a0[r * ars + k * acs] * panel[k * tileCols + j] }
                                        c[(r0 + r) * ldc + j0 + j] += sum
                                    }
                                }
                            }
                        }
                        r0 += rows
                    }
                    k0 += kCount
                }
                p += blockPanels
            }
        }
    }
}

/// out[n,o] = bias[o] + sum_c inp[n,c] · weight[o,c]
/// out is (N,OC), inp is (N,C), weight is (OC,C), bias is (OC) or nil. N = B·T.
func matmulForward(out: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
                   N: Int, C: Int, OC: Int, parallel: ParallelFor, scratch: MatmulScratch) {
    parallel(N) { rows in
        for n in rows {
            let o = out + n * OC
            if let bias { o.update(from: bias, count: OC) } else { o.update(repeating: 0, count: OC) }
        }
    }
    // out(N × OC) += inp(N × C) · weightᵀ: B(k, j) = weight[j·C + k].
    gemmAccumulate(c: out, ldc: OC, a: inp, ars: C, acs: 1, b: weight, bks: 1, bjs: C, M: N, cols: OC, K: C,
                   parallel: parallel, scratch: scratch)
}

/// dinp += dout · weight; dweight += doutᵀ · inp; dbias += column sums of dout.
/// dinp is (N,C), dweight is (OC,C), dbias is (OC) or nil, dout is (N,OC).
func matmulBackward(dinp: FloatPointer, dweight: FloatPointer, dbias: FloatPointer?, dout: ConstFloatPointer,
                    inp: ConstFloatPointer, weight: ConstFloatPointer, N: Int, C: Int, OC: Int,
                    parallel: ParallelFor, scratch: MatmulScratch) {
    // dinp(N × C) += dout(N × OC) · weight(OC × C).
    gemmAccumulate(c: dinp, ldc: C, a: dout, ars: OC, acs: 1, b: weight, bks: C, bjs: 1, M: N, cols: C, K: OC,
                   parallel: parallel, scratch: scratch)
    // dweight(OC × C) += doutᵀ(OC × N) · inp(N × C): A(o, n) = dout[n·OC + o].
    gemmAccumulate(c: dweight, ldc: C, a: dout, ars: 1, acs: OC, b: inp, bks: C, bjs: 1, M: OC, cols: C, K: N,
                   parallel: parallel, scratch: scratch)
    if let dbias {
        parallel(OC) { outputs in
            for o in outputs {
                var s: Float = 0
                for n in 0..<N { s += dout[n * OC + o] }
                dbias[o] += s
            }
        }
    }
}
