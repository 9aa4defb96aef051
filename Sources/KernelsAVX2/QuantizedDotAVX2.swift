// The quantized linear layer's dot products (LLM's Kernels/QuantizedMatmul.swift, whose generic kernels are the
// reference and whose header gives the arithmetic) for AVX2: vpmaddubsw multiplies unsigned weight bytes by signed
// activation bytes and adds pairs into 16 bits, vpmaddwd adds pairs of those (or multiplies them by 16-bit scales)
// into 32 bits. Every intermediate stays below 2^15, so each block's integer dot is exact: unsigned codes are at
// most 63, and Q8_0's signed weights go in as |q| against y with q's sign (|q| ≤ 128, |y| ≤ 127).
#if arch(x86_64)
import _Builtin_intrinsics.intel

private typealias V128 = SIMD2<Int64>
private typealias V256 = SIMD4<Int64>

/// out[n*ldOut + r] = (bias?[r] ?? 0) + row r of the weights · activation row n, for r in `rows`, n < N.
/// `type` is the weights' ggml type number; `weights` holds rows of `rowBytes` bytes, `C` columns each; xq, xd, xs
/// are the quantized activations (LLM's QuantizedActivations), xf the float ones (for F16 and BF16).
public func quantizedRowsAVX2(_ type: UInt32, _ weights: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
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
    default: preconditionFailure("no AVX2 quantized dot for ggml type \(type)")
    }
}

// MARK: - Loads

extension UnsafeRawPointer {
    @inline(__always) fileprivate func v128(_ offset: Int = 0) -> V128 { loadUnaligned(fromByteOffset: offset, as: V128.self) }
    @inline(__always) fileprivate func v256(_ offset: Int = 0) -> V256 { loadUnaligned(fromByteOffset: offset, as: V256.self) }
    @inline(__always) fileprivate func half(_ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }
}

@inline(__always) private func float8(_ v: V256) -> SIMD8<Float> { _mm256_cvtepi32_ps(v) }

/// Σ u·y over 32 bytes into 8 lanes of 32 bits (u unsigned, each u·y pair sum below 2^15).
@inline(__always) private func pairDot(_ u: V256, _ y: V256) -> V256 {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1))
}

// MARK: - 32-weight blocks

private enum BlockType { case q4_0, q4_1, q5_0, q5_1, q8_0 }

/// One row of 32-weight blocks · one activation row, two blocks per step into two accumulators.
@inline(__always) private func blockDot(_ type: BlockType, _ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>,
                                        _ xd: UnsafePointer<Float>, _ xs: UnsafePointer<Int16>, _ blocks: Int) -> Float {
    let y = UnsafeRawPointer(xq)
    let low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10)
    // Byte i of the expanded fifth bits looks at byte i / 8 of qh, bit i % 8.
    let spreadBits = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
    let bitOfByte = _mm256_set1_epi64x(Int64(bitPattern: 0x8040_2010_0804_0201))
    let bytes = switch type { case .q4_0: 18; case .q4_1: 20; case .q5_0: 22; case .q5_1: 24; case .q8_0: 34 }
    /// Block b: (d·da, the exact integer dot in 8 lanes, m·da·s for the types with a min).
    @inline(__always) func block(_ b: Int) -> (scale: Float, dot: V256, min: Float) {
        let x = row + bytes * b, yb = y.v256(32 * b), da = xd[b], s = Int32(xs[b])
        @inline(__always) func nibbles(_ offset: Int) -> V256 {
            let q = x.v128(offset)
            return _mm256_and_si256(V256(lowHalf: q, highHalf: _mm_srli_epi16(q, 4)), low4)
        }
        @inline(__always) func fifthBits(_ offset: Int) -> V256 {
            let qh = _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: offset, as: Int32.self))
            let bits = _mm256_and_si256(_mm256_shuffle_epi8(qh, spreadBits), bitOfByte)
            return _mm256_and_si256(_mm256_cmpeq_epi8(bits, bitOfByte), bit4)
        }
        @inline(__always) func offset(_ dot: V256, _ o: Int32) -> V256 {
            _mm256_add_epi32(dot, _mm256_zextsi128_si256(_mm_cvtsi32_si128(-o * s)))
        }
        switch type {
        case .q4_0: return (x.half(0) * da, offset(pairDot(nibbles(2), yb), 8), 0)
        case .q4_1: return (x.half(0) * da, pairDot(nibbles(4), yb), x.half(2) * da * Float(s))
        case .q5_0:
            let u = _mm256_or_si256(nibbles(6), fifthBits(2))
            return (x.half(0) * da, offset(pairDot(u, yb), 16), 0)
        case .q5_1:
            let u = _mm256_or_si256(nibbles(8), fifthBits(4))
            return (x.half(0) * da, pairDot(u, yb), x.half(2) * da * Float(s))
        case .q8_0:
            let q = x.v256(2)
            return (x.half(0) * da, pairDot(_mm256_abs_epi8(q), _mm256_sign_epi8(yb, q)), 0)
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

/// One row of Q4_K (or, with the fifth bits, Q5_K) super-blocks · one activation row: per group of 32, the 16-bit
/// pair sums times the group's scale with vpmaddwd; the mins against the activations' sums of 16 likewise.
@inline(__always) private func q4KDot(_ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>,
                                      _ xs: UnsafePointer<Int16>, _ blocks: Int, hasHighBits: Bool) -> Float {
    let y = UnsafeRawPointer(xq), sums = UnsafeRawPointer(xs)
    let bytes = hasHighBits ? 176 : 144, qsOffset = hasHighBits ? 48 : 16
    let low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10)
    // Byte j of the mins to 16-bit lanes 2j and 2j + 1.
    let pairMins = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0)
    var accDot = SIMD8<Float>(), accMin = SIMD8<Float>()
    for b in 0..<blocks {
        let x = row + bytes * b, yb = y + 256 * b, da = xd[b]
        let (scales, mins) = unpackScalesAndMinsK4(x + 4)
        var qh = hasHighBits ? x.v256(16) : V256()
        var isum = V256()
        @inline(__always) func scale(_ j: Int) -> V256 {
            _mm256_set1_epi16(Int16(truncatingIfNeeded: scales >> UInt64(8 * j)) & 0xFF)
        }
        for c in 0..<4 {
            let q = x.v256(qsOffset + 32 * c)
            var lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4)
            if hasHighBits {
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4))
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4))
                qh = _mm256_srli_epi16(qh, 2)
            }
            let pLo = _mm256_maddubs_epi16(lo, yb.v256(64 * c))
            let pHi = _mm256_maddubs_epi16(hi, yb.v256(64 * c + 32))
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm256_madd_epi16(pLo, scale(2 * c)),
                                                           _mm256_madd_epi16(pHi, scale(2 * c + 1))))
        }
        let m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi64_si128(Int64(bitPattern: mins)), pairMins))
        let msum = _mm256_madd_epi16(sums.v256(32 * b), m16)
        accDot.addProduct(SIMD8(repeating: x.half(0) * da), float8(isum))
        accMin.addProduct(SIMD8(repeating: x.half(2) * da), float8(msum))
    }
    return accDot.sum() - accMin.sum()
}

/// One row of Q6_K super-blocks · one activation row: per 32 weights (two groups of 16), the 16-bit pair sums
/// times the two groups' signed scales with vpmaddwd; the −32 offsets against the activations' sums likewise.
@inline(__always) private func q6KDot(_ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>,
                                      _ xs: UnsafePointer<Int16>, _ blocks: Int) -> Float {
    let y = UnsafeRawPointer(xq), sums = UnsafeRawPointer(xs)
    let low4 = _mm256_set1_epi8(0x0F), high2 = _mm256_set1_epi8(0x30)
    var acc = SIMD8<Float>()
    for b in 0..<blocks {
        let x = row + 210 * b, yb = y + 256 * b, da = xd[b]
        let scales = x.v128(192)
        var isum = V256()
        /// Weights 32k…32k + 31 (groups 2k and 2k + 1) · their activations, times the groups' scales (scale
        /// bytes 2k and 2k + 1 spread to 8 bytes each, then to 16-bit lanes).
        @inline(__always) func groups(_ k: Int, _ u: V256) {
            let p = _mm256_maddubs_epi16(u, yb.v256(32 * k))
            let g = Int64(2 * k), spread = V128(0x0101_0101_0101_0101 &* g, 0x0101_0101_0101_0101 &* (g + 1))
            let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, spread))
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sc))
        }
        @inline(__always) func half(_ h: Int) {
            let l0 = x.v256(64 * h), l1 = x.v256(64 * h + 32), qh = x.v256(128 + 32 * h)
            groups(4 * h, _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high2)))
            groups(4 * h + 1,
                   _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high2)))
            groups(4 * h + 2,
                   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(qh, high2)))
            groups(4 * h + 3, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                              _mm256_and_si256(_mm256_srli_epi16(qh, 2), high2)))
        }
        half(0)
        half(1)
        let offsets = _mm256_slli_epi32(_mm256_madd_epi16(sums.v256(32 * b), _mm256_cvtepi8_epi16(scales)), 5)
        acc.addProduct(SIMD8(repeating: x.half(208) * da), float8(_mm256_sub_epi32(isum, offsets)))
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

/// An F16 row · float activations: 16 columns per step into two accumulators.
@inline(__always) private func f16Dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ C: Int) -> Float {
    let xr = UnsafeRawPointer(x)
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var c = 0
    while c + 16 <= C {
        acc0.addProduct(_mm256_cvtph_ps(row.v128(2 * c)), xr.loadUnaligned(fromByteOffset: 4 * c, as: SIMD8<Float>.self))
        acc1.addProduct(_mm256_cvtph_ps(row.v128(2 * c + 16)),
                        xr.loadUnaligned(fromByteOffset: 4 * c + 32, as: SIMD8<Float>.self))
        c += 16
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
    @inline(__always) func floats(_ offset: Int) -> SIMD8<Float> {
        unsafeBitCast(_mm256_slli_epi32(_mm256_cvtepu16_epi32(row.v128(offset)), 16), to: SIMD8<Float>.self)
    }
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var c = 0
    while c + 16 <= C {
        acc0.addProduct(floats(2 * c), xr.loadUnaligned(fromByteOffset: 4 * c, as: SIMD8<Float>.self))
        acc1.addProduct(floats(2 * c + 16), xr.loadUnaligned(fromByteOffset: 4 * c + 32, as: SIMD8<Float>.self))
        c += 16
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
