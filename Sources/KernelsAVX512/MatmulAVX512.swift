// The float matmul micro-kernel for AVX-512: a 6 × 32 tile of C in twelve 512-bit accumulators, the same tile
// and k-order as the generic kernel in LLM's Kernels/Matmul.swift (32 registers leave room for the two B
// vectors and a broadcast). One call does a whole tile, so the cost of the cross-module call is amortised
// over kCount iterations.
#if arch(x86_64)

/// C[r, 0..<32] += Σ_k a[k·6 + r] · b[k·32 + j] for r < rows (1...6), k < kCount: A is a k-major packed 6-row
/// tile (rows past `rows` hold copies and are not stored), B a packed panel of 32 columns, C row stride ldc.
@inline(never)
public func matmulTile6x32AVX512(a: UnsafePointer<Float>, b: UnsafePointer<Float>, kCount: Int,
                                 c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int) {
    var c00 = SIMD16<Float>(), c01 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
    var c20 = SIMD16<Float>(), c21 = SIMD16<Float>(), c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
    var c40 = SIMD16<Float>(), c41 = SIMD16<Float>(), c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
    var pa = a, pb = UnsafeRawPointer(b)
    for _ in 0..<kCount {
        let b0 = pb.loadUnaligned(as: SIMD16<Float>.self)
        let b1 = pb.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
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
        pa += 6
        pb += 128
    }
    @inline(__always) func add(_ r: Int, _ v0: SIMD16<Float>, _ v1: SIMD16<Float>) {
        let p = UnsafeMutableRawPointer(c + r * ldc)
        p.storeBytes(of: p.loadUnaligned(as: SIMD16<Float>.self) + v0, as: SIMD16<Float>.self)
        p.storeBytes(of: p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + v1, toByteOffset: 64,
                     as: SIMD16<Float>.self)
    }
    add(0, c00, c01)
    if rows > 1 { add(1, c10, c11) }
    if rows > 2 { add(2, c20, c21) }
    if rows > 3 { add(3, c30, c31) }
    if rows > 4 { add(4, c40, c41) }
    if rows > 5 { add(5, c50, c51) }
}

#endif
