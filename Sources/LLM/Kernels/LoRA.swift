// A low-rank adapter on a linear layer (LoRA, arXiv:2106.09685), forward and backward side by side:
//
//   y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ        A (r, C), B (OC, r), s = alpha / r
//
// where W and b are the frozen base layer (computed elsewhere, by the ordinary or quantized matmul) and only A and
// B train. The adapter may cover some of a fused matrix's output rows (q of q|k|v, gate of gate|up), so `out` and
// `dout` are row slices with their own stride. Every product runs on the matmul's register-tiled GEMM; with r of
// 4–64 they cost a few percent of the base layer's.

/// out[n·ldOut + o] += scale · Σ_r u[n, r] · B[o, r] with u = inp · Aᵀ, for n < N, o < OC.
/// inp is (N, C), A is (rank, C), B is (OC, rank); `u` is N·rank floats of scratch and holds scale·u on return
/// (what `loraBackward` would recompute).
func loraForward(out: FloatPointer, ldOut: Int, inp: ConstFloatPointer, a: ConstFloatPointer, b: ConstFloatPointer,
                 u: FloatPointer, scale: Float, N: Int, C: Int, OC: Int, rank: Int, parallel: ParallelFor,
                 scratch: MatmulScratch, variant: KernelVariant = .current) {
    precondition(ldOut >= OC, "out rows of \(ldOut) floats cannot hold \(OC) outputs")
    scaledDown(u: u, inp: inp, a: a, scale: scale, N: N, C: C, rank: rank, parallel: parallel, scratch: scratch,
               variant: variant)
    // out(N × OC) += (s·u)(N × r) · Bᵀ: B(k, j) = b[j·rank + k].
    gemmAccumulate(c: out, ldc: ldOut, a: u, ars: rank, acs: 1, b: .strided(b, ks: 1, js: rank), M: N, cols: OC,
                   K: rank, parallel: parallel, scratch: scratch, variant: variant)
}

/// The backward pass of `loraForward`, adding into dinp (N, C), dA (rank, C) and dB (OC, rank):
///   su = s·(inp·Aᵀ),  dB += doutᵀ·su,  du = s·(dout·B),  dA += duᵀ·inp,  dinp += du·A.
/// dout rows are ldDout ≥ OC apart. `u` and `du` are N·rank floats of scratch each.
func loraBackward(dinp: FloatPointer, da: FloatPointer, db: FloatPointer, dout: ConstFloatPointer, ldDout: Int,
                  inp: ConstFloatPointer, a: ConstFloatPointer, b: ConstFloatPointer, u: FloatPointer, du: FloatPointer,
                  scale: Float, N: Int, C: Int, OC: Int, rank: Int, parallel: ParallelFor, scratch: MatmulScratch,
                  variant: KernelVariant = .current) {
    precondition(ldDout >= OC, "dout rows of \(ldDout) floats cannot hold \(OC) outputs")
    scaledDown(u: u, inp: inp, a: a, scale: scale, N: N, C: C, rank: rank, parallel: parallel, scratch: scratch,
               variant: variant)
    // dB(OC × r) += doutᵀ(OC × N) · su(N × r): A(o, n) = dout[n·ldDout + o].
    gemmAccumulate(c: db, ldc: rank, a: dout, ars: 1, acs: ldDout, b: .strided(u, ks: rank, js: 1), M: OC,
                   cols: rank, K: N, parallel: parallel, scratch: scratch, variant: variant)
    // du(N × r) = s · dout(N × OC) · B(OC × r).
    du.update(repeating: 0, count: N * rank)
    gemmAccumulate(c: du, ldc: rank, a: dout, ars: ldDout, acs: 1, b: .strided(b, ks: rank, js: 1), M: N, cols: rank,
                   K: OC, parallel: parallel, scratch: scratch, variant: variant)
    for i in 0..<N * rank { du[i] *= scale }
    // dA(r × C) += duᵀ(r × N) · inp(N × C): A(r, n) = du[n·rank + r].
    gemmAccumulate(c: da, ldc: C, a: du, ars: 1, acs: rank, b: .strided(inp, ks: C, js: 1), M: rank, cols: C, K: N,
                   parallel: parallel, scratch: scratch, variant: variant)
    // dinp(N × C) += du(N × r) · A(r × C).
    gemmAccumulate(c: dinp, ldc: C, a: du, ars: rank, acs: 1, b: .strided(a, ks: C, js: 1), M: N, cols: C, K: rank,
                   parallel: parallel, scratch: scratch, variant: variant)
}

/// u = scale · inp · Aᵀ, (N × rank).
private func scaledDown(u: FloatPointer, inp: ConstFloatPointer, a: ConstFloatPointer, scale: Float, N: Int, C: Int,
                        rank: Int, parallel: ParallelFor, scratch: MatmulScratch, variant: KernelVariant) {
    u.update(repeating: 0, count: N * rank)
    // u(N × r) += inp(N × C) · Aᵀ: B(k, j) = a[j·C + k].
    gemmAccumulate(c: u, ldc: rank, a: inp, ars: C, acs: 1, b: .strided(a, ks: 1, js: C), M: N, cols: rank, K: C,
                   parallel: parallel, scratch: scratch, variant: variant)
    for i in 0..<N * rank { u[i] *= scale }
}
