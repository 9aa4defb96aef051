// Linear layers: out = inp · Wᵀ + bias with weights stored (out, in), and both backward products.
//
// All three products run on one register-tiled micro-kernel: a 6-row tile of the output held in twelve vector
// accumulators, and for each k one broadcast of A per row times two vectors of B. Which kernel runs is the
// `KernelVariant`'s choice, made once at start (tests pass one explicitly):
//   generic  6 × 32, twelve SIMD16<Float> (this file; what non-x86 machines run),
//   avx512   the same 6 × 32 tile built for AVX-512's 32 zmm registers (KernelsAVX512/MatmulAVX512.swift),
//   avx2     6 × 16, twelve SIMD8<Float> + two B vectors + one broadcast = 15 of AVX2's 16 ymm registers
//            (KernelsAVX2/MatmulAVX2.swift; the 6 × 32 tile needs 24 and spills on these machines).
// The kernel reads B "k-major" (B[k][j] contiguous in j) from a per-thread scratch buffer allocated once with
// the model, into which each product packs its B 256 k × 512 columns at a time, in panels as wide as the tile:
// Wᵀ for the forward pass, W for dinp, the layer input for dW, or a quantized weight dequantized while it is
// packed (prompt prefill from a GGUF model). Threads split the output columns in panels; k is blocked by 256 so
// a 6-row slice of A stays in L1 and the packed block of B in L2. Each output's sum runs over k in the same
// order whatever the thread count, so results do not depend on it; variants differ only in the last bits.
import KernelsAVX2
import KernelsAVX512

let tileRows = 6        // MR: output rows per micro-kernel call
let maxTileCols = 32    // NR of the widest variant: the scratch is sized for it
let blockK = 256        // KC: k per block (a multiple of every GGML block size: 1, 32, 256)
let blockCols = 512     // NC: columns packed per block

extension KernelVariant {
    /// NR: output columns per micro-kernel call, the width of a packed panel of B.
    var matmulTileCols: Int {
        switch self {
        case .avx2: 16
        case .generic, .avx512: 32
        }
    }
}

/// Per-thread buffers for packing in `gemmAccumulate`: allocated once, never in a step.
public final class MatmulScratch: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    /// Threads that can pack at once; more threads than this share the work of this many.
    public let threads: Int
    // Per thread: a packed B block, a packed A tile, a C tile for the partial last panel, a dequantized row chunk
    // (blockK columns of a weight row for `.quantizedTranspose`, up to blockCols for `.quantized`).
    static let bBlock = 0
    static let aTile = bBlock + blockK * blockCols
    static let cTile = aTile + tileRows * blockK
    static let rowChunk = cTile + tileRows * maxTileCols
    static let rowChunkFloats = max(blockK, blockCols)
    static let floatsPerThread = rowChunk + rowChunkFloats

    public init(threads: Int) {
        self.threads = max(1, threads)
        base = .allocate(capacity: self.threads * MatmulScratch.floatsPerThread)
        base.initialize(repeating: 0, count: self.threads * MatmulScratch.floatsPerThread)
    }

    deinit { base.deallocate() }
}

/// C[r, 0..<32] += Σ_k a[k·6 + r] · b[k·32 + j] for r < rows (≤ 6), k < kCount: A a packed k-major 6-row tile
/// (rows past `rows` hold copies and are not stored), B a packed panel of 32 columns. The generic kernel.
@inline(__always)
private func microKernel6x32(_ a: ConstFloatPointer, _ b: ConstFloatPointer, kCount: Int, _ c: FloatPointer,
                             _ ldc: Int, rows: Int) {
    var c00 = SIMD16<Float>(), c01 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
    var c20 = SIMD16<Float>(), c21 = SIMD16<Float>(), c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
    var c40 = SIMD16<Float>(), c41 = SIMD16<Float>(), c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
    var pa = a, pb = b
    for _ in 0..<kCount {
        let b0 = loadSIMD16(pb), b1 = loadSIMD16(pb + 16)
        var x = SIMD16<Float>(repeating: pa[0])
        c00.addProduct(x, b0); c01.addProduct(x, b1)
        x = SIMD16<Float>(repeating: pa[1])
        c10.addProduct(x, b0); c11.addProduct(x, b1)
        x = SIMD16<Float>(repeating: pa[2])
        c20.addProduct(x, b0); c21.addProduct(x, b1)
        x = SIMD16<Float>(repeating: pa[3])
        c30.addProduct(x, b0); c31.addProduct(x, b1)
        x = SIMD16<Float>(repeating: pa[4])
        c40.addProduct(x, b0); c41.addProduct(x, b1)
        x = SIMD16<Float>(repeating: pa[5])
        c50.addProduct(x, b0); c51.addProduct(x, b1)
        pa += tileRows
        pb += 32
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

/// C[r, 0..<NR] += A tile · B panel with the variant's micro-kernel (NR = variant.matmulTileCols).
@inline(__always)
private func microKernel(_ variant: KernelVariant, _ a: ConstFloatPointer, _ b: ConstFloatPointer, kCount: Int,
                         _ c: FloatPointer, _ ldc: Int, rows: Int) {
    switch variant {
    case .generic: microKernel6x32(a, b, kCount: kCount, c, ldc, rows: rows)
    #if arch(x86_64)
    case .avx2: matmulTile6x16AVX2(a: a, b: b, kCount: kCount, c: c, ldc: ldc, rows: rows)
    case .avx512: matmulTile6x32AVX512(a: a, b: b, kCount: kCount, c: c, ldc: ldc, rows: rows)
    #else
    case .avx2, .avx512: preconditionFailure("\(variant) kernels exist only on x86-64")
    #endif
    }
}

/// Where `gemmAccumulate` reads B(k, j) from.
enum GemmB {
    /// B(k, j) = b[k·ks + j·js]: a matrix (js = 1) or the transpose of one (ks = 1).
    case strided(ConstFloatPointer, ks: Int, js: Int)
    /// B(k, j) = W[j, k]: a quantized weight's transpose, dequantized a block-aligned row chunk at a time.
    case quantizedTranspose(QuantizedMatrix)
    /// B(k, j) = W[k, j]: a quantized weight itself (the input gradient through a frozen quantized layer). Packed a
    /// block of panels at a time (`packBlock`): each weight row k's block-aligned column span under all the block's
    /// panels is dequantized once into `rowChunk` and scattered to the panels from there, instead of dequantizing
    /// a whole 32- or 256-column block for every 16- or 32-column panel it overlaps (up to 16× the work).
    /// `panelUnit` keeps each thread's (and so each block's) first column on a quantization block boundary, so the
    /// spans of different blocks and threads never overlap: every weight is dequantized once per call.
    case quantized(QuantizedMatrix)

    /// Panels a thread's share of the columns is a multiple of (but for the last share): 1, or for `.quantized`
    /// as many as make a whole number of quantization blocks, so no block straddles two threads.
    func panelUnit(nr: Int) -> Int {
        guard case .quantized(let weight) = self else { return 1 }
        var unit = 1
        while unit * nr % weight.type.blockSize != 0 { unit += 1 }
        return unit
    }

    /// Packs `panels` panels of B[k0..<k0+kCount, ·], the first starting at column j0, panel q at
    /// `panel + q·kCount·nr` as `pack` would (zeros past `cols`).
    func packBlock(k0: Int, kCount: Int, j0: Int, panels: Int, cols: Int, nr: Int, into panel: FloatPointer,
                   rowChunk: FloatPointer) {
        guard case .quantized(let weight) = self else {
            for q in 0..<panels {
                let jq = j0 + q * nr
                pack(k0: k0, kCount: kCount, j0: jq, width: min(nr, cols - jq), nr: nr, into: panel + q * kCount * nr,
                     rowChunk: rowChunk)
            }
            return
        }
        Self.packQuantized(weight, k0: k0, kCount: kCount, j0: j0, panels: panels, cols: cols, nr: nr, into: panel,
                           rowChunk: rowChunk)
    }

    /// `.quantized`'s packing: for each row k, its block-aligned column span covering the panels' columns (at most
    /// `MatmulScratch.rowChunkFloats` wide) is dequantized into `rowChunk` once, then copied out panel by panel.
    private static func packQuantized(_ weight: QuantizedMatrix, k0: Int, kCount: Int, j0: Int, panels: Int,
                                      cols: Int, nr: Int, into panel: FloatPointer, rowChunk: FloatPointer) {
        let bs = weight.type.blockSize
        let end = min(j0 + panels * nr, cols)
        let lo = j0 / bs * bs, hi = min((end + bs - 1) / bs * bs, weight.cols)
        precondition(hi - lo <= MatmulScratch.rowChunkFloats,
                     "columns \(lo)..<\(hi) of \(weight.type) do not fit a row chunk of \(MatmulScratch.rowChunkFloats)")
        for k in 0..<kCount {
            weight.dequantizeRow(k0 + k, columns: lo..<hi, into: rowChunk)
            for q in 0..<panels {
                let jq = j0 + q * nr, width = min(nr, cols - jq)
                let src = rowChunk + (jq - lo), dst = panel + q * kCount * nr + k * nr
                if width == nr {
                    for j in stride(from: 0, to: nr, by: 16) { storeSIMD16(loadSIMD16(src + j), dst + j) }
                } else {
                    for j in 0..<nr { dst[j] = j < width ? src[j] : 0 }
                }
            }
        }
    }

    /// Packs B[k0..<k0+kCount, j0..<j0+width] as kCount rows of `nr` floats (zeros past `width`) into `panel`;
    /// `rowChunk` holds blockK floats of temporary space.
    func pack(k0: Int, kCount: Int, j0: Int, width: Int, nr: Int, into panel: FloatPointer, rowChunk: FloatPointer) {
        switch self {
        case .strided(let b, let ks, 1):
            for k in 0..<kCount {
                let src = b + (k0 + k) * ks + j0, dst = panel + k * nr
                if width == nr {
                    for j in stride(from: 0, to: nr, by: 16) { storeSIMD16(loadSIMD16(src + j), dst + j) }
                } else {
                    for j in 0..<nr { dst[j] = j < width ? src[j] : 0 }
                }
            }
        case .strided(let b, let ks, let js):  // a transpose: write each packed row whole; the source rows stay in L1
            let src = b + k0 * ks + j0 * js
            for k in 0..<kCount {
                let dst = panel + k * nr
                for j in 0..<width { dst[j] = src[k * ks + j * js] }
                for j in width..<nr { dst[j] = 0 }
            }
        case .quantizedTranspose(let weight):
            for j in 0..<width {
                weight.dequantizeRow(j0 + j, columns: k0..<k0 + kCount, into: rowChunk)
                for k in 0..<kCount { panel[k * nr + j] = rowChunk[k] }
            }
            for k in 0..<kCount { (panel + k * nr + width).update(repeating: 0, count: nr - width) }
        case .quantized(let weight):  // one panel on its own (gemmAccumulate packs a block of them: packBlock)
            Self.packQuantized(weight, k0: k0, kCount: kCount, j0: j0, panels: 1, cols: j0 + width, nr: nr, into: panel,
                               rowChunk: rowChunk)
        }
    }
}

/// C(M × cols) += A(M × K) · B(K × cols), with A(r, k) = a[r·ars + k·acs], C row stride ldc. Threads split the
/// columns in panels of the variant's tile width NR; each thread packs its B block by block (256 k × up to 512
/// columns, zeros past `cols`) into its part of `scratch`, so the micro-kernel reads B contiguously, and reuses
/// it for every 6-row tile of A. Columns past `cols` in C are never touched. The variant must be one the CPU
/// supports (checked by whoever chose it: KernelVariant.current, or a test looping over .supported).
func gemmAccumulate(c: FloatPointer, ldc: Int, a: ConstFloatPointer, ars: Int, acs: Int, b: GemmB,
                            M: Int, cols: Int, K: Int, parallel: ParallelFor, scratch: MatmulScratch,
                            variant: KernelVariant) {
    let nr = variant.matmulTileCols
    let threads = min(parallel.threads, scratch.threads)
    let panels = (cols + nr - 1) / nr
    // Threads split the panels in units (1 panel, or a quantization block's worth for `.quantized`).
    let unit = b.panelUnit(nr: nr), units = (panels + unit - 1) / unit
    ParallelFor(threads: threads)(threads) { ids in
        for t in ids {
            let mine = scratch.base + t * MatmulScratch.floatsPerThread
            let bBlock = mine + MatmulScratch.bBlock, aTile = mine + MatmulScratch.aTile
            let cTile = mine + MatmulScratch.cTile, rowChunk = mine + MatmulScratch.rowChunk
            var p = min(panels, units * t / threads * unit)
            let pEnd = min(panels, units * (t + 1) / threads * unit)
            while p < pEnd {
                let blockPanels = min(blockCols / nr, pEnd - p)
                var k0 = 0
                while k0 < K {
                    let kCount = min(blockK, K - k0)
                    b.packBlock(k0: k0, kCount: kCount, j0: p * nr, panels: blockPanels, cols: cols, nr: nr,
                                into: bBlock, rowChunk: rowChunk)
                    var r0 = 0
                    while r0 < M {
                        let rows = min(tileRows, M - r0)
                        // Pack the A tile k-major (its 6 values for one k side by side): contiguous for the kernel,
                        // whatever A's strides (rows 12 KB apart would all fall in the same L1 sets).
                        let a0 = a + r0 * ars + k0 * acs
                        for k in 0..<kCount {
                            for r in 0..<tileRows { aTile[k * tileRows + r] = a0[min(r, rows - 1) * ars + k * acs] }
                        }
                        for q in 0..<blockPanels {
                            let j0 = (p + q) * nr, panel = bBlock + q * kCount * nr
                            if j0 + nr <= cols {
                                microKernel(variant, aTile, panel, kCount: kCount, c + r0 * ldc + j0, ldc, rows: rows)
                            } else {  // the last, partial panel: into a zeroed tile, then its columns into C
                                cTile.update(repeating: 0, count: tileRows * nr)
                                microKernel(variant, aTile, panel, kCount: kCount, cTile, nr, rows: rows)
                                for r in 0..<rows {
                                    let dst = c + (r0 + r) * ldc + j0
                                    for j in 0..<cols - j0 { dst[j] += cTile[r * nr + j] }
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
                   N: Int, C: Int, OC: Int, parallel: ParallelFor, scratch: MatmulScratch,
                   variant: KernelVariant = .current) {
    parallel(N) { rows in
        for n in rows {
            let o = out + n * OC
            if let bias { o.update(from: bias, count: OC) } else { o.update(repeating: 0, count: OC) }
        }
    }
    // out(N × OC) += inp(N × C) · weightᵀ: B(k, j) = weight[j·C + k].
    gemmAccumulate(c: out, ldc: OC, a: inp, ars: C, acs: 1, b: .strided(weight, ks: 1, js: C), M: N, cols: OC, K: C,
                   parallel: parallel, scratch: scratch, variant: variant)
}

/// out[n·ldOut + o] = bias[o] + sum_c inp[n,c] · W[o,c] for o < OC, from a quantized W (the prompt's rows at once:
/// each 256-column chunk of a weight row is dequantized once per call and reused for all N rows).
/// out rows are ldOut ≥ OC apart and their columns from OC on are left as they are (so q, k and v can be written
/// side by side into one row); inp is (N,C), weight is (OC,C) with OC = weight.rows, C = weight.cols; bias is (OC)
/// or nil.
func matmulForward(out: FloatPointer, ldOut: Int, inp: ConstFloatPointer, weight: QuantizedMatrix,
                   bias: ConstFloatPointer?, N: Int, parallel: ParallelFor, scratch: MatmulScratch,
                   variant: KernelVariant = .current) {
    let C = weight.cols, OC = weight.rows
    precondition(ldOut >= OC, "out rows of \(ldOut) floats cannot hold \(OC) outputs")
    precondition(blockK % weight.type.blockSize == 0, "\(weight.type) blocks do not divide a k-block of \(blockK)")
    parallel(N) { rows in
        for n in rows {
            let o = out + n * ldOut
            if let bias { o.update(from: bias, count: OC) } else { o.update(repeating: 0, count: OC) }
        }
    }
    gemmAccumulate(c: out, ldc: ldOut, a: inp, ars: C, acs: 1, b: .quantizedTranspose(weight), M: N, cols: OC, K: C,
                   parallel: parallel, scratch: scratch, variant: variant)
}

/// dinp += dout · weight; dweight += doutᵀ · inp; dbias += column sums of dout.
/// dinp is (N,C), dweight is (OC,C) or nil (a frozen weight: LoRA's base), dbias is (OC) or nil, dout is (N,OC).
func matmulBackward(dinp: FloatPointer, dweight: FloatPointer?, dbias: FloatPointer?, dout: ConstFloatPointer,
                    inp: ConstFloatPointer, weight: ConstFloatPointer, N: Int, C: Int, OC: Int,
                    parallel: ParallelFor, scratch: MatmulScratch, variant: KernelVariant = .current) {
    // dinp(N × C) += dout(N × OC) · weight(OC × C).
    gemmAccumulate(c: dinp, ldc: C, a: dout, ars: OC, acs: 1, b: .strided(weight, ks: C, js: 1), M: N, cols: C, K: OC,
                   parallel: parallel, scratch: scratch, variant: variant)
    if let dweight {
        // dweight(OC × C) += doutᵀ(OC × N) · inp(N × C): A(o, n) = dout[n·OC + o].
        gemmAccumulate(c: dweight, ldc: C, a: dout, ars: 1, acs: OC, b: .strided(inp, ks: C, js: 1), M: OC, cols: C,
                       K: N, parallel: parallel, scratch: scratch, variant: variant)
    }
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

/// dinp[n, c] += Σ_o dout[n·ldDout + o] · W[o, c] for a quantized W (OC = weight.rows, C = weight.cols):
/// the input gradient of a frozen quantized linear layer (LoRA on a GGUF base). dinp is (N, C); dout rows are
/// ldDout ≥ OC apart (a part of a fused q|k|v output, say: pass dout + rowOffset). Each weight is dequantized once
/// per call (see `GemmB.quantized`); the sum over o runs in the same order whatever the thread count.
func matmulBackwardInput(dinp: FloatPointer, dout: ConstFloatPointer, ldDout: Int, weight: QuantizedMatrix, N: Int,
                         parallel: ParallelFor, scratch: MatmulScratch, variant: KernelVariant = .current) {
    let C = weight.cols, OC = weight.rows
    precondition(N >= 0, "a negative number of rows (\(N))")
    precondition(ldDout >= OC, "dout rows of \(ldDout) floats cannot hold the weight's \(OC) outputs")
    precondition(weight.type.canDequantize, "dequantizing \(weight.type) is not supported")
    precondition(blockCols % weight.type.blockSize == 0,
                 "\(weight.type) blocks do not divide a packing block of \(blockCols) columns")
    guard N > 0, OC > 0, C > 0 else { return }
    // dinp(N × C) += dout(N × OC) · W(OC × C): A(n, o) = dout[n·ldDout + o], B(o, c) = W[o, c].
    gemmAccumulate(c: dinp, ldc: C, a: dout, ars: ldDout, acs: 1, b: .quantized(weight), M: N, cols: C, K: OC,
                   parallel: parallel, scratch: scratch, variant: variant)
}
