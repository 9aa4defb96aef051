// The linear layer of a quantized model for a few input rows at a time (decoding: N = 1…16), computed straight
// from the GGUF blocks instead of from a float copy four to eight times larger, as llama.cpp's vec_dot kernels do.
// Decoding reads every weight once per token, so it is bound by memory bandwidth, and reading 4.5 bits a weight
// instead of 32 is the whole speed-up.
//
// The input rows are first quantized to 8 bits (QuantizedActivations: blocks of int8 with a float scale, and the
// sums of their integers), then each weight block's dot with an activation block is exact integer arithmetic,
// times the two blocks' float scales:
//
//     32-weight blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), activations in blocks of 32 (scale da, integer sum s):
//         weights d·(u − o), u = 0…15 or 0…31, o = 8 or 16:   d·da·(Σ u·y − o·s)
//         weights d·u + m:                                    d·da·Σ u·y + m·da·s
//         Q8_0, weights d·q, q = −128…127:                    d·da·Σ q·y
//     K-quants (Q4_K, Q5_K, Q6_K), activations in blocks of 256 (scale da, integer sums s_g of each 16):
//         Q4_K/Q5_K, 8 groups of 32, weights (d·sc_j)·u − dmin·m_j:
//                                          d·da·Σ_j sc_j·Σ u·y − dmin·da·Σ_j m_j·(s_2j + s_2j+1)
//         Q6_K, 16 groups of 16, weights (d·sc_g)·(u − 32): d·da·Σ_g sc_g·(Σ u·y − 32·s_g)
//
// so the result differs from the float product with the dequantized weights only by the activations' rounding to
// 8 bits. F16 and BF16 weights are a float dot with the float activations. Every variant (KernelVariant) uses the
// same quantized activations; the generic kernels here are the reference the KernelsAVX2 and KernelsAVX512 twins
// (QuantizedDotAVX2.swift, QuantizedDotAVX512.swift) are tested against.
import KernelsAVX2
import KernelsAVX512

extension GGMLType {
    /// Whether `quantizedMatmulForward` computes with weights of this type.
    public var hasQuantizedDot: Bool { activationBlock != nil }

    /// The block the activations are quantized in for a dot with this type's weights: 32 or 256 columns, 0 for
    /// float activations (F16, BF16); nil when the type has no quantized dot.
    var activationBlock: Int? {
        switch self {
        case .f16, .bf16: 0
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: 32
        case .q4_K, .q5_K, .q6_K: Self.superBlock
        default: nil
        }
    }
}

/// The input rows of a quantized linear layer, quantized to 8 bits: for N rows of C columns, in blocks of `block`
/// (32 or 256) columns,
///
///     quants  Int8   (N, C)            round(x / scale), −127…127
///     scales  Float  (N, C / block)    max |x| / 127 of each block
///     sums    Int16  (N, C / 32) or (N, C / 16)   Σ quants of each 32 columns (block 32) or each 16 (block 256)
///
/// Made once (per thread, per model) for the largest N and C it will see, so that no call allocates.
final class QuantizedActivations {
    let maxRows: Int, maxCols: Int
    let quants: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Int16>

    init(maxRows: Int, maxCols: Int) {
        precondition(maxRows > 0 && maxCols > 0)
        self.maxRows = maxRows
        self.maxCols = maxCols
        let count = maxRows * (maxCols + 255) / 256 * 256
        quants = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64).bindMemory(to: Int8.self, capacity: count)
        scales = .allocate(capacity: count / 32)
        sums = .allocate(capacity: count / 16)
    }

    deinit {
        quants.deallocate()
        scales.deallocate()
        sums.deallocate()
    }

    /// Quantizes `inp` (N, C) in blocks of `block` (32 or 256) columns: scale = max |x| / 127,
    /// q = round-half-away-from-zero(x / scale) (0 for a block of zeros), all in float32.
    func quantize(_ inp: UnsafePointer<Float>, rows N: Int, cols C: Int, block: Int) {
        precondition(N <= maxRows && C <= maxCols && C % block == 0 && (block == 32 || block == 256))
        let blocks = C / block
        for n in 0..<N {
            for b in 0..<blocks {
                let x = UnsafeRawPointer(inp + n * C + b * block)
                var amax = SIMD16<Float>()
                for i in stride(from: 0, to: block, by: 16) {
                    let v = x.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                    amax = lanewiseMax(amax, lanewiseMax(v, -v))
                }
                let d = amax.max() / 127
                let id: Float = d == 0 ? 0 : 1 / d
                scales[n * blocks + b] = d
                let q = UnsafeMutableRawPointer(quants + n * C + b * block)
                var blockSum: Int32 = 0
                for g in 0..<block / 16 {
                    let v = x.loadUnaligned(fromByteOffset: 64 * g, as: SIMD16<Float>.self) * id
                    let r = SIMD16<Int32>(v, rounding: .toNearestOrAwayFromZero)
                    q.storeBytes(of: SIMD16<Int8>(truncatingIfNeeded: r), toByteOffset: 16 * g, as: SIMD16<Int8>.self)
                    let s = r.wrappedSum()
                    if block == 256 { sums[n * (C / 16) + 16 * b + g] = Int16(s) }
                    blockSum += s
                }
                if block == 32 { sums[n * blocks + b] = Int16(blockSum) }
            }
        }
    }
}

/// out[n*ldOut + o] = (bias?[o] ?? 0) + Σ_c W[o,c]·inp[n*C + c], n < N, o < weight.rows, C = weight.cols.
/// Columns of each out row past weight.rows are left untouched (used to write q, k and v into one fused row).
/// inp is (N, C), out is (N, ldOut), bias is (weight.rows) or nil; N ≤ scratch.maxRows, C ≤ scratch.maxCols.
/// The activations are quantized once (into scratch), then threads split the output rows, and each weight row
/// is read once for all N dots. Requires `weight.type.hasQuantizedDot`.
func quantizedMatmulForward(out: UnsafeMutablePointer<Float>, ldOut: Int, inp: UnsafePointer<Float>,
                            weight: QuantizedMatrix, bias: UnsafePointer<Float>?, N: Int, parallel: ParallelFor,
                            scratch: QuantizedActivations, variant: KernelVariant = .current) {
    withUnsafeTemporaryAllocation(of: QuantizedMatrix.self, capacity: 1) { parts in
        parts.initialize(repeating: weight)
        quantizedMatmulForward(out: out, ldOut: ldOut, inp: inp, parts: UnsafeBufferPointer(parts), bias: bias, N: N,
                               parallel: parallel, scratch: scratch, variant: variant)
    }
}

/// The same for several matrices stacked by output rows (q, k and v; gate and up) that read the same input:
/// part i writes columns offset_i..<offset_i + rows_i of each out row, offset_i the rows of the parts before it,
/// with bias[offset_i...]. One parallel loop splits all the rows, so a step of a small model pays one thread
/// hand-off per layer input rather than one per matrix. Parts whose activation blocks differ (a 32-weight type
/// beside a K-quant) run one after the other.
func quantizedMatmulForward(out: UnsafeMutablePointer<Float>, ldOut: Int, inp: UnsafePointer<Float>,
                            parts: UnsafeBufferPointer<QuantizedMatrix>, bias: UnsafePointer<Float>?, N: Int,
                            parallel: ParallelFor, scratch: QuantizedActivations,
                            variant: KernelVariant = .current) {
    guard N > 0, let first = parts.first else { return }
    guard let block = first.type.activationBlock else {
        preconditionFailure("no quantized dot for \(first.type) weights")
    }
    let C = first.cols
    var totalRows = 0
    var sameBlocks = true
    for part in parts {
        precondition(part.cols == C, "stacked matrices of \(part.cols) and \(C) columns")
        sameBlocks = sameBlocks && part.type.activationBlock == block
        totalRows += part.rows
    }
    precondition(ldOut >= totalRows && N <= scratch.maxRows && C <= scratch.maxCols)
    guard sameBlocks else {
        var offset = 0
        for i in parts.indices {
            quantizedMatmulForward(out: out + offset, ldOut: ldOut, inp: inp, parts: UnsafeBufferPointer(rebasing: parts[i...i]),
                                   bias: bias.map { $0 + offset }, N: N, parallel: parallel, scratch: scratch,
                                   variant: variant)
            offset += parts[i].rows
        }
        return
    }
    if block > 0 { scratch.quantize(inp, rows: N, cols: C, block: block) }
    let xq = UnsafePointer(scratch.quants), xd = UnsafePointer(scratch.scales), xs = UnsafePointer(scratch.sums)
    parallel(totalRows) { rows in
        // The parts this chunk of the stacked rows overlaps, each with its own rows.
        var offset = 0
        for part in parts {
            let lower = max(rows.lowerBound - offset, 0), upper = min(rows.upperBound - offset, part.rows)
            if lower < upper {
                let local = lower..<upper
                let type = part.type.rawValue, w = part.base, rowBytes = part.rowBytes
                let o = out + offset, b = bias.map { $0 + offset }
                switch variant {
                #if arch(x86_64)
                case .avx512:
                    quantizedRowsAVX512(type, w, rowBytes, local, C, xq, xd, xs, inp, N, o, ldOut, b)
                case .avx2:
                    quantizedRowsAVX2(type, w, rowBytes, local, C, xq, xd, xs, inp, N, o, ldOut, b)
                #endif
                default:
                    quantizedRowsGeneric(part.type, w, rowBytes, local, C, xq, xd, xs, inp, N, o, ldOut, b)
                }
            }
            offset += part.rows
        }
    }
}

// MARK: - Generic kernels

/// Rows `rows` of the weights times the N activation rows, into out (the shared contract of the three variants;
/// xq, xd, xs are QuantizedActivations' arrays, xf the float activations for F16/BF16).
private func quantizedRowsGeneric(_ type: GGMLType, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                  _ C: Int, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>,
                                  _ xs: UnsafePointer<Int16>, _ xf: UnsafePointer<Float>, _ N: Int,
                                  _ out: UnsafeMutablePointer<Float>, _ ldOut: Int, _ bias: UnsafePointer<Float>?) {
    for r in rows {
        let row = w + r * rowBytes
        let b = bias?[r] ?? 0
        for n in 0..<N {
            let dot: Float
            switch type {
            case .f16, .bf16: dot = floatRowDot(type, row, xf + n * C, C)
            case .q4_K, .q5_K, .q6_K:
                dot = superBlockRowDot(type, row, xq + n * C, xd + n * (C / 256), xs + n * (C / 16), C / 256)
            default: dot = blockRowDot(type, row, xq + n * C, xd + n * (C / 32), xs + n * (C / 32), C / 32)
            }
            out[n * ldOut + r] = b + dot
        }
    }
}

/// An F16 or BF16 row · float activations.
private func floatRowDot(_ type: GGMLType, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ C: Int) -> Float {
    var acc = SIMD8<Float>()
    var c = 0
    while c + 8 <= C {
        var v = SIMD8<Float>()
        for i in 0..<8 {
            let bits = UInt16(littleEndian: row.loadUnaligned(fromByteOffset: 2 * (c + i), as: UInt16.self))
            v[i] = type == .f16 ? floatFromFloat16(bits) : floatFromBFloat16(bits)
        }
        acc.addProduct(v, UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self))
        c += 8
    }
    var sum = acc.sum()
    while c < C {
        let bits = UInt16(littleEndian: row.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self))
        sum += (type == .f16 ? floatFromFloat16(bits) : floatFromBFloat16(bits)) * x[c]
        c += 1
    }
    return sum
}

extension UnsafeRawPointer {
    @inline(__always) fileprivate func half(_ offset: Int) -> Float {
        floatFromFloat16(UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }
    @inline(__always) fileprivate func word(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}

// (Plain loops rather than SIMD conversions between lane widths, which are element by element in generic code.)

/// Σ u·y over 32 columns, exact.
@inline(__always) private func integerDot(_ u: SIMD32<Int16>, _ y: UnsafePointer<Int8>) -> Int32 {
    var sum: Int32 = 0
    for i in 0..<32 { sum &+= Int32(u[i]) &* Int32(y[i]) }
    return sum
}

/// The 32 nibbles of 16 bytes: low nibbles first, then high ones (the Q4_0/Q4_1/Q5_0/Q5_1 order).
@inline(__always) private func nibbles(_ p: UnsafeRawPointer) -> SIMD32<Int16> {
    var u = SIMD32<Int16>()
    for j in 0..<16 {
        let q = p.load(fromByteOffset: j, as: UInt8.self)
        u[j] = Int16(q & 0x0F)
        u[j + 16] = Int16(q >> 4)
    }
    return u
}

/// 16 · bit j of qh in lane j (the fifth bits of Q5_0/Q5_1).
@inline(__always) private func fifthBits(_ qh: UInt32) -> SIMD32<Int16> {
    var u = SIMD32<Int16>()
    for j in 0..<32 { u[j] = Int16((qh >> UInt32(j)) & 1) << 4 }
    return u
}

/// A row of 32-weight blocks · one activation row (xd, xs: its per-block scales and sums).
private func blockRowDot(_ type: GGMLType, _ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>,
                         _ xd: UnsafePointer<Float>, _ xs: UnsafePointer<Int16>, _ blocks: Int) -> Float {
    var sum: Float = 0
    for b in 0..<blocks {
        let y = xq + 32 * b, da = xd[b], s = Int32(xs[b])
        switch type {
        case .q8_0:
            let x = row + 34 * b
            var q = SIMD32<Int16>()
            for i in 0..<32 { q[i] = Int16(x.load(fromByteOffset: 2 + i, as: Int8.self)) }
            sum += x.half(0) * da * Float(integerDot(q, y))
        case .q4_0:
            let x = row + 18 * b
            sum += x.half(0) * da * Float(integerDot(nibbles(x + 2), y) - 8 * s)
        case .q4_1:
            let x = row + 20 * b
            sum += x.half(0) * da * Float(integerDot(nibbles(x + 4), y)) + x.half(2) * da * Float(s)
        case .q5_0:
            let x = row + 22 * b
            sum += x.half(0) * da * Float(integerDot(nibbles(x + 6) | fifthBits(x.word(2)), y) - 16 * s)
        case .q5_1:
            let x = row + 24 * b
            sum += x.half(0) * da * Float(integerDot(nibbles(x + 8) | fifthBits(x.word(4)), y))
                + x.half(2) * da * Float(s)
        default: preconditionFailure("\(type) is not a 32-weight block type")
        }
    }
    return sum
}

/// The eight 6-bit scales and eight 6-bit mins of a Q4_K/Q5_K super-block, from its 12 bytes at p (the packing
/// GGMLBlocks.swift documents: words a, b, c of 4 bytes; scales 0–3 and mins 0–3 are the low 6 bits of a and b,
/// scales and mins 4–7 take their low 4 bits from c's nibbles and their high 2 from the top bits of a and b).
@inline(__always) func unpackScalesAndMinsK4(_ p: UnsafeRawPointer) -> (scales: UInt64, mins: UInt64) {
    let a = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
    let b = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
    let c = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    let scalesLow = a & 0x3F3F_3F3F, minsLow = b & 0x3F3F_3F3F
    let scalesHigh = (c & 0x0F0F_0F0F) | ((a >> 6) & 0x0303_0303) << 4
    let minsHigh = ((c >> 4) & 0x0F0F_0F0F) | ((b >> 6) & 0x0303_0303) << 4
    return (UInt64(scalesLow) | UInt64(scalesHigh) << 32, UInt64(minsLow) | UInt64(minsHigh) << 32)
}

/// A row of K-quant super-blocks · one activation row (xd: one scale per 256, xs: sums of each 16).
private func superBlockRowDot(_ type: GGMLType, _ row: UnsafeRawPointer, _ xq: UnsafePointer<Int8>,
                              _ xd: UnsafePointer<Float>, _ xs: UnsafePointer<Int16>, _ blocks: Int) -> Float {
    var sum: Float = 0
    withUnsafeTemporaryAllocation(of: Int16.self, capacity: 256) { u in
        for b in 0..<blocks {
            let y = xq + 256 * b, s = xs + 16 * b, da = xd[b]
            switch type {
            case .q4_K, .q5_K:
                // u[32j + l] for group j = 2c + h: nibble h of qs[32c + l], plus 16 · bit j of qh[l] for Q5_K.
                let x = row + type.bytesPerBlock * b
                let qs = x + (type == .q4_K ? 16 : 48)
                for c in 0..<4 {
                    let q = SIMD32<Int16>(truncatingIfNeeded: (qs + 32 * c).loadUnaligned(as: SIMD32<UInt8>.self))
                    var lo = q & 0x0F, hi = q &>> 4
                    if type == .q5_K {
                        let qh = SIMD32<Int16>(truncatingIfNeeded: (x + 16).loadUnaligned(as: SIMD32<UInt8>.self))
                        lo |= ((qh &>> Int16(2 * c)) & 1) &<< 4
                        hi |= ((qh &>> Int16(2 * c + 1)) & 1) &<< 4
                    }
                    UnsafeMutableRawPointer(u.baseAddress! + 64 * c).storeBytes(of: lo, as: SIMD32<Int16>.self)
                    UnsafeMutableRawPointer(u.baseAddress! + 64 * c + 32).storeBytes(of: hi, as: SIMD32<Int16>.self)
                }
                let (scales, mins) = unpackScalesAndMinsK4(x + 4)
                var dots: Int32 = 0, offsets: Int32 = 0
                for j in 0..<8 {
                    let sc = Int32((scales >> (8 * UInt64(j))) & 0xFF), m = Int32((mins >> (8 * UInt64(j))) & 0xFF)
                    let uj = UnsafeRawPointer(u.baseAddress! + 32 * j).loadUnaligned(as: SIMD32<Int16>.self)
                    dots += sc * integerDot(uj, y + 32 * j)
                    offsets += m * (Int32(s[2 * j]) + Int32(s[2 * j + 1]))
                }
                sum += x.half(0) * da * Float(dots) - x.half(2) * da * Float(offsets)
            case .q6_K:
                // Weight p = 128h + 32t + l: u = low | high << 4, low = nibble (t / 2) of ql[64h + 32(t % 2) + l],
                // high = bits 2t… of qh[32h + l].
                let x = row + 210 * b
                for h in 0..<2 {
                    let qh = SIMD32<Int16>(truncatingIfNeeded: (x + 128 + 32 * h).loadUnaligned(as: SIMD32<UInt8>.self))
                    for t in 0..<4 {
                        let ql = SIMD32<Int16>(truncatingIfNeeded: (x + 64 * h + 32 * (t % 2))
                            .loadUnaligned(as: SIMD32<UInt8>.self))
                        let low = (ql &>> Int16(4 * (t / 2))) & 0x0F
                        let high = (qh &>> Int16(2 * t)) & 3
                        UnsafeMutableRawPointer(u.baseAddress! + 128 * h + 32 * t)
                            .storeBytes(of: low | high &<< 4, as: SIMD32<Int16>.self)
                    }
                }
                var dots: Int32 = 0
                for g in 0..<16 {
                    let ug = UnsafeRawPointer(u.baseAddress! + 16 * g).loadUnaligned(as: SIMD16<Int16>.self)
                    let yg = SIMD16<Int32>(truncatingIfNeeded: UnsafeRawPointer(y + 16 * g)
                        .loadUnaligned(as: SIMD16<Int8>.self))
                    let dot = (SIMD16<Int32>(truncatingIfNeeded: ug) &* yg).wrappedSum()
                    dots += Int32(x.load(fromByteOffset: 192 + g, as: Int8.self)) * (dot - 32 * Int32(s[g]))
                }
                sum += x.half(208) * da * Float(dots)
            default: preconditionFailure("\(type) is not a K-quant type")
            }
        }
    }
    return sum
}
