// The quantized linear layer's dot products (LLM's Kernels/QuantizedMatmul.swift, whose generic kernels are the
// reference and whose header gives the arithmetic) with VNNI's 8-bit dot product, vpdpbusd: 4 unsigned weight
// bytes times 4 signed activation bytes summed into each 32-bit lane, exact. Weights are unpacked to unsigned
// codes u (Q8_0's signed q as q + 128), and the offset o·Σy of the types whose weights are d·(u − o) is put
// into the accumulator before the products, so each block's integer dot is exact and costs one vpdpbusd. A
// 32-weight block is one 256-bit register; a K-quant super-block is four 512-bit ones.
#if arch(x86_64)
import _Builtin_intrinsics.intel

private typealias V128 = SIMD2<Int64>
private typealias V256 = SIMD4<Int64>
private typealias V512 = SIMD8<Int64>

/// out[n*ldOut + r] = (bias?[r] ?? 0) + row r of the weights · activation row n, for r in `rows`, n < N.
/// `type` is the weights' ggml type number; `weights` holds rows of `rowBytes` bytes, `C` columns each; xq, xd, xs
/// are the quantized activations (LLM's QuantizedActivations), xf the float ones (for F16 and BF16).
public func quantizedRowsAVX512(_ type: UInt32, _ weights: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                _ C: Int, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>,
                                _ xs: UnsafePointer<Int16>, _ xf: UnsafePointer<Float>, _ N: Int,
                                _ out: UnsafeMutablePointer<Float>, _ ldOut: Int, _ bias: UnsafePointer<Float>?) {
    @inline(__always) func each(_ dot: (UnsafeRawPointer, Int) -> Float) {
        for r in rows {
            let row = weights + r * rowBytes, b = bias?[r] ?? 0
            for n in 0..<N { out[n * ldOut + r] = b + dot(row, n) }
        }
    }
    let blocks = C / 32, superBlocks = C / 256
    switch type {
    case 1: each { f16Dot($0, xf + $1 * C, C) }
    case 30: each { bf16Dot($0, xf + $1 * C, C) }
    case 2: each { blockDot(.q4_0, $0, xq + $1 * C, xd + $1 * blocks, xs + $1 * blocks, blocks) }
    case 3: each { blockDot(.q4_1, $0, xq + $1 * C, xd + $1 * blocks, xs + $1 * blocks, blocks) }
    case 6: each { blockDot(.q5_0, $0, xq + $1 * C, xd + $1 * blocks, xs + $1 * blocks, blocks) }
    case 7: each { blockDot(.q5_1, $0, xq + $1 * C, xd + $1 * blocks, xs + $1 * blocks, blocks) }
    case 8: each { blockDot(.q8_0, $0, xq + $1 * C, xd + $1 * blocks, xs + $1 * blocks, blocks) }
    case 12: each { q4KDot($0, xq + $1 * C, xd + $1 * superBlocks, xs + $1 * (C / 16), superBlocks, hasHighBits: false) }
    case 13: each { q4KDot($0, xq + $1 * C, xd + $1 * superBlocks, xs + $1 * (C / 16), superBlocks, hasHighBits: true) }
    case 14: each { q6KDot($0, xq + $1 * C, xd + $1 * superBlocks, xs + $1 * (C / 16), superBlocks) }
    default: preconditionFailure("no AVX-512 quantized dot for ggml type \(type)")
    }
}

// MARK: - Loads

extension UnsafeRawPointer {
    @inline(__always) fileprivate func v128(_ offset: Int = 0) -> V128 { loadUnaligned(fromByteOffset: offset, as: V128.self) }
    @inline(__always) fileprivate func v256(_ offset: Int = 0) -> V256 { loadUnaligned(fromByteOffset: offset, as: V256.self) }
    @inline(__always) fileprivate func v512(_ offset: Int = 0) -> V512 { loadUnaligned(fromByteOffset: offset, as: V512.self) }
    @inline(__always) fileprivate func half(_ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }
}

/// vpdpbusd on 256 bits: s + the sums of 4 products of a's unsigned bytes with b's signed ones, per 32-bit lane.
@inline(__always) private func dpbusd(_ s: V256, _ a: V256, _ b: V256) -> V256 { _mm256_mask_dpbusd_epi32(s, 0xFF, a, b) }
@inline(__always) private func float8(_ v: V256) -> SIMD8<Float> { _mm256_cvtepi32_ps(v) }
@inline(__always) private func float16(_ v: V512) -> SIMD16<Float> { _mm512_cvtepi32_ps(v) }

// MARK: - 32-weight blocks

private enum BlockType { case q4_0, q4_1, q5_0, q5_1, q8_0 }

/// One row of 32-weight blocks · one activation row, two blocks per step into two accumulators.
@inline(__always) private func blockDot(_ type: BlockType, _ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>,
                                        _ xd: UnsafePointer<Float>, _ xs: UnsafePointer<Int16>, _ blocks: Int) -> Float {
    let y = UnsafeRawPointer(xq)
    let low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10), top = _mm256_set1_epi8(-128)
    let bytes = switch type { case .q4_0: 18; case .q4_1: 20; case .q5_0: 22; case .q5_1: 24; case .q8_0: 34 }
    /// Block b: (d·da, the exact integer dot in 8 lanes, m·da·s for the types with a min).
    @inline(__always) func block(_ b: Int) -> (scale: Float, dot: V256, min: Float) {
        let x = row + bytes * b, yb = y.v256(32 * b), da = xd[b], s = Int32(xs[b])
        @inline(__always) func nibbles(_ offset: Int) -> V256 {
            let q = x.v128(offset)
            return _mm256_and_si256(V256(lowHalf: q, highHalf: _mm_srli_epi16(q, 4)), low4)
        }
        @inline(__always) func fifthBits(_ offset: Int) -> V256 {
            _mm256_maskz_mov_epi8(x.loadUnaligned(fromByteOffset: offset, as: UInt32.self), bit4)
        }
        @inline(__always) func offset(_ o: Int32) -> V256 { _mm256_zextsi128_si256(_mm_cvtsi32_si128(-o * s)) }
        switch type {
        case .q4_0: return (x.half(0) * da, dpbusd(offset(8), nibbles(2), yb), 0)
        case .q4_1: return (x.half(0) * da, dpbusd(V256(), nibbles(4), yb), x.half(2) * da * Float(s))
        case .q5_0:
            let u = _mm256_or_si256(nibbles(6), fifthBits(2))
            return (x.half(0) * da, dpbusd(offset(16), u, yb), 0)
        case .q5_1:
            let u = _mm256_or_si256(nibbles(8), fifthBits(4))
            return (x.half(0) * da, dpbusd(V256(), u, yb), x.half(2) * da * Float(s))
        case .q8_0:
            let u = _mm256_xor_si256(x.v256(2), top)
            return (x.half(0) * da, dpbusd(offset(128), u, yb), 0)
        }
    }
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var min0: Float = 0, min1: Float = 0
    var b = 0
    while b + 2 <= blocks {
        let p = block(b), q = block(b + 1)
        acc0.addProduct(SIMD8(repeating: p.scale), float8(p.dot))
        acc1.addProduct(SIMD8(repeating: q.scale), float8(q.dot))
        min0 += p.min
        min1 += q.min
        b += 2
    }
    if b < blocks {
        let p = block(b)
        acc0.addProduct(SIMD8(repeating: p.scale), float8(p.dot))
        min0 += p.min
    }
    return (acc0 + acc1).sum() + (min0 + min1)
}

// MARK: - K-quants

/// One row of Q4_K (or, with the fifth bits, Q5_K) super-blocks · one activation row. Per super-block: four
/// 512-bit dots, each two groups of 32 (the low and high nibbles of 32 bytes against 64 activations), times the
/// groups' scales; the mins against the activations' sums of 16 with vpmaddwd.
@inline(__always) private func q4KDot(_ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>,
                                      _ xs: UnsafePointer<Int16>, _ blocks: Int, hasHighBits: Bool) -> Float {
    let y = UnsafeRawPointer(xq), sums = UnsafeRawPointer(xs)
    let bytes = hasHighBits ? 176 : 144, qsOffset = hasHighBits ? 48 : 16
    let low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10)
    // pick(c): lanes 0–7 take group 2c's scale, lanes 8–15 group 2c + 1's.
    @inline(__always) func pick(_ c: Int32) -> V512 {
        unsafeBitCast(SIMD16<Int32>(lowHalf: SIMD8(repeating: 2 * c), highHalf: SIMD8(repeating: 2 * c + 1)),
                      to: V512.self)
    }
    // Byte j of the mins to 16-bit lanes 2j and 2j + 1.
    let pairMins = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0)
    var accDot = SIMD16<Float>(), accMin = SIMD8<Float>()
    for b in 0..<blocks {
        let x = row + bytes * b, yb = y + 256 * b, da = xd[b]
        let (scales, mins) = unpackScalesAndMinsK4(x + 4)
        let sc32 = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128(Int64(bitPattern: scales)))
        var qh = hasHighBits ? x.v256(16) : V256()
        var isum = V512()
        @inline(__always) func group(_ c: Int, _ pick: V512) {
            let q = x.v256(qsOffset + 32 * c)
            var lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4)
            if hasHighBits {
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4))
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4))
                qh = _mm256_srli_epi16(qh, 2)
            }
            let u = V512(lowHalf: lo, highHalf: hi)
            let dot = _mm512_dpbusd_epi32(V512(), u, yb.v512(64 * c))
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dot, _mm512_permutexvar_epi32(pick, sc32)))
        }
        group(0, pick(0))
        group(1, pick(1))
        group(2, pick(2))
        group(3, pick(3))
        let m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi64_si128(Int64(bitPattern: mins)), pairMins))
        let msum = _mm256_madd_epi16(sums.v256(32 * b), m16)
        accDot.addProduct(SIMD16(repeating: x.half(0) * da), float16(isum))
        accMin.addProduct(SIMD8(repeating: x.half(2) * da), float8(msum))
    }
    return accDot.sum() - accMin.sum()
}

/// One row of Q6_K super-blocks · one activation row: per half of 128 weights, two 512-bit dots of 64, each lane
/// of 4 weights times its group's signed scale; the −32 offsets against the activations' sums with vpmaddwd.
@inline(__always) private func q6KDot(_ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>,
                                      _ xs: UnsafePointer<Int16>, _ blocks: Int) -> Float {
    let y = UnsafeRawPointer(xq), sums = UnsafeRawPointer(xs)
    let low4 = _mm512_set1_epi8(0x0F), high2 = _mm512_set1_epi8(0x30)
    // spread(k): scale bytes 4k…4k + 3 each to 4 bytes (then to 32-bit lanes): the 16 lanes of a dot of 64 weights.
    @inline(__always) func spread(_ k: Int64) -> V128 {
        let g = 0x0404_0404_0404_0404 &* k
        return V128(0x0101_0101_0000_0000 &+ g, 0x0303_0303_0202_0202 &+ g)
    }
    var acc = SIMD16<Float>()
    for b in 0..<blocks {
        let x = row + 210 * b, yb = y + 256 * b, da = xd[b]
        let scales = x.v128(192)
        var isum = V512()
        @inline(__always) func half(_ h: Int, _ spreadLow: V128, _ spreadHigh: V128) {
            let l = x.v512(64 * h), qh = x.v256(128 + 32 * h)
            let hz = V512(lowHalf: qh, highHalf: _mm256_srli_epi16(qh, 2))
            let u0 = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_and_si512(_mm512_slli_epi16(hz, 4), high2))
            let u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4), _mm512_and_si512(hz, high2))
            let d0 = _mm512_dpbusd_epi32(V512(), u0, yb.v512(128 * h))
            let d1 = _mm512_dpbusd_epi32(V512(), u1, yb.v512(128 * h + 64))
            let s0 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(scales, spreadLow))
            let s1 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(scales, spreadHigh))
            isum = _mm512_add_epi32(isum, _mm512_add_epi32(_mm512_mullo_epi32(d0, s0), _mm512_mullo_epi32(d1, s1)))
        }
        half(0, spread(0), spread(1))
        half(1, spread(2), spread(3))
        let offsets = _mm256_slli_epi32(_mm256_madd_epi16(sums.v256(32 * b), _mm256_cvtepi8_epi16(scales)), 5)
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(offsets))
        acc.addProduct(SIMD16(repeating: x.half(208) * da), float16(isum))
    }
    return acc.sum()
}

/// Q4_K/Q5_K's eight 6-bit scales and mins from their 12 bytes, one per byte (the twin of LLM's
/// unpackScalesAndMinsK4).
@inline(__always) private func unpackScalesAndMinsK4(_ p: UnsafeRawPointer) -> (scales: UInt64, mins: UInt64) {
    let a = p.loadUnaligned(as: UInt32.self), b = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
    let c = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    let scalesHigh = (c & 0x0F0F_0F0F) | ((a >> 6) & 0x0303_0303) << 4
    let minsHigh = ((c >> 4) & 0x0F0F_0F0F) | ((b >> 6) & 0x0303_0303) << 4
    return (UInt64(a & 0x3F3F_3F3F) | UInt64(scalesHigh) << 32, UInt64(b & 0x3F3F_3F3F) | UInt64(minsHigh) << 32)
}

// MARK: - Float weights

/// An F16 row · float activations: 32 columns per step into two accumulators.
@inline(__always) private func f16Dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ C: Int) -> Float {
    let xr = UnsafeRawPointer(x)
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var c = 0
    while c + 32 <= C {
        acc0.addProduct(_mm512_cvtph_ps(row.v256(2 * c)), xr.loadUnaligned(fromByteOffset: 4 * c, as: SIMD16<Float>.self))
        acc1.addProduct(_mm512_cvtph_ps(row.v256(2 * c + 32)),
                        xr.loadUnaligned(fromByteOffset: 4 * c + 64, as: SIMD16<Float>.self))
        c += 32
    }
    var sum = (acc0 + acc1).sum()
    while c < C {
        sum += row.half(2 * c) * x[c]
        c += 1
    }
    return sum
}

/// A BF16 row · float activations: a bfloat16 is a float's top 16 bits.
@inline(__always) private func bf16Dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ C: Int) -> Float {
    let xr = UnsafeRawPointer(x)
    @inline(__always) func floats(_ offset: Int) -> SIMD16<Float> {
        unsafeBitCast(_mm512_slli_epi32(_mm512_cvtepu16_epi32(row.v256(offset)), 16), to: SIMD16<Float>.self)
    }
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var c = 0
    while c + 32 <= C {
        acc0.addProduct(floats(2 * c), xr.loadUnaligned(fromByteOffset: 4 * c, as: SIMD16<Float>.self))
        acc1.addProduct(floats(2 * c + 32), xr.loadUnaligned(fromByteOffset: 4 * c + 64, as: SIMD16<Float>.self))
        c += 32
    }
    var sum = (acc0 + acc1).sum()
    while c < C {
        let bits = UInt32(row.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self)) << 16
        sum += Float(bitPattern: bits) * x[c]
        c += 1
    }
    return sum
}
#endif
