// The ggml block layouts this package reads and writes, each next to its dequantizer (and, for the types GGUFWriter
// writes, its quantizer), as in llama.cpp's ggml-quants.c.
//
// A tensor's row is a sequence of blocks; a block holds `weights` consecutive elements in `bytes` bytes: one or two
// f16 scales and packed small integers. All multi-byte fields are little-endian and blocks have no alignment (a
// Q4_0 block is 18 bytes), so every field is read with an unaligned load.
//
// The arithmetic reproduces gguf-py's numpy dequantizers (gguf/quants.py) bit for bit: float32 throughout, f16
// scales converted exactly, and the same operations in the same order, e.g. Q4_K is `(d * sc) * q - (dmin * m)`
// with two products and one difference, each rounded to float32 (never a fused multiply-add). The quantizers
// reproduce `gguf.quants.quantize` bit for bit: numpy's float32 → float16 cast, ggml's bfloat16 rounding, and Q8_0's
// round-half-away-from-zero. Tests/LLMTests/Fixtures/gguf/ holds gguf-py's outputs for random blocks of every type.

/// One ggml block type: how many elements a block holds, in how many bytes, and how to turn one into Floats.
protocol GGMLBlock {
    static var weights: Int { get }
    static var bytes: Int { get }
    /// Writes the block's `weights` values to `y`; `x` points at its `bytes` bytes (any alignment).
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>)
}

/// A block type GGUFWriter can produce.
protocol GGMLQuantizingBlock: GGMLBlock {
    /// Encodes `weights` floats from `x` into the block's `bytes` bytes at `y`.
    static func quantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer)
}

extension UnsafeRawPointer {
    @inline(__always) fileprivate func u8(_ offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) fileprivate func i8(_ offset: Int) -> Int8 { load(fromByteOffset: offset, as: Int8.self) }
    @inline(__always) fileprivate func u16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) fileprivate func u32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    /// An f16 field as Float (exact).
    @inline(__always) fileprivate func f16(_ offset: Int) -> Float { floatFromFloat16(u16(offset)) }
}

extension UnsafeMutableRawPointer {
    @inline(__always) fileprivate func store(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
}

// MARK: - Floats

/// F32: one little-endian IEEE float.
enum BlockF32: GGMLQuantizingBlock {
    static let weights = 1, bytes = 4
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        y[0] = Float(bitPattern: x.u32(0))
    }
    static func quantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        y.storeBytes(of: x[0].bitPattern.littleEndian, as: UInt32.self)
    }
}

/// F16: one IEEE half. Quantizing rounds to nearest even like numpy's cast (`float16Bits`).
enum BlockF16: GGMLQuantizingBlock {
    static let weights = 1, bytes = 2
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) { y[0] = x.f16(0) }
    static func quantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) { y.store(float16Bits(x[0]), at: 0) }
}

/// BF16: the top 16 bits of a float32. Quantizing rounds to nearest even (`bfloat16Bits`).
enum BlockBF16: GGMLQuantizingBlock {
    static let weights = 1, bytes = 2
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) { y[0] = floatFromBFloat16(x.u16(0)) }
    static func quantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) { y.store(bfloat16Bits(x[0]), at: 0) }
}

/// Float → IEEE half bits as numpy casts float32 to float16 (npy_floatbits_to_halfbits): round to nearest even,
/// overflow to ±inf, underflow to subnormals or ±0, and a NaN keeps its sign and top 10 payload bits (made nonzero
/// so that it stays a NaN; a signaling NaN stays signaling).
func float16Bits(_ value: Float) -> UInt16 {
    let f = value.bitPattern
    let sign = UInt16((f & 0x8000_0000) >> 16)
    var exp = f & 0x7F80_0000
    if exp >= 0x4780_0000 {  // |value| >= 65536, inf or NaN
        let sig = f & 0x007F_FFFF
        guard exp == 0x7F80_0000, sig != 0 else { return sign | 0x7C00 }  // overflow or inf
        let nan = UInt16(0x7C00 + (sig >> 13))
        return sign | (nan == 0x7C00 ? 0x7C01 : nan)
    }
    if exp <= 0x3800_0000 {  // |value| < 2^-14: a half subnormal or zero
        guard exp >= 0x3300_0000 else { return sign }  // below 2^-25: rounds to zero
        exp >>= 23
        var sig = (0x0080_0000 + (f & 0x007F_FFFF)) >> (113 - exp)
        // Round to nearest even: add half an ulp unless exactly halfway with an even result (the shift above
        // may have dropped set bits; they are in f's low 11 bits).
        if (sig & 0x3FFF) != 0x1000 || (f & 0x7FF) != 0 { sig += 0x1000 }
        return sign | UInt16(sig >> 13)  // a carry into the exponent gives the smallest normal, correctly
    }
    let halfExp = UInt16((exp - 0x3800_0000) >> 13)
    var sig = f & 0x007F_FFFF
    if (sig & 0x3FFF) != 0x1000 { sig += 0x1000 }
    return sign | (UInt16(truncatingIfNeeded: sig >> 13) &+ halfExp)  // a carry rounds up the exponent, to inf at most
}

/// Float → bfloat16 bits as ggml (ggml_compute_fp32_to_bf16) and gguf-py: NaNs become quiet NaNs with their sign and
/// top payload bits, everything else rounds to nearest even (overflowing to ±inf).
func bfloat16Bits(_ value: Float) -> UInt16 {
    var n = value.bitPattern
    if n & 0x7FFF_FFFF > 0x7F80_0000 { n = (n & 0xFFFF_0000) | 0x0040_0000 }
    return UInt16(truncatingIfNeeded: (UInt64(n) + 0x7FFF + UInt64((n >> 16) & 1)) >> 16)
}

// MARK: - 32-element blocks

/// Q4_0: 32 weights in 18 bytes.
///
///     d   f16       @0   scale
///     qs  u8[16]    @2   weight j < 16 in the low nibble of qs[j], weight j + 16 in the high nibble
///
///     w = d * (q - 8)
enum BlockQ4_0: GGMLBlock {
    static let weights = 32, bytes = 18
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0)
        for j in 0..<16 {
            let q = x.u8(2 + j)
            y[j] = d * Float(Int(q & 0x0F) - 8)
            y[j + 16] = d * Float(Int(q >> 4) - 8)
        }
    }
}

/// Q4_1: 32 weights in 20 bytes.
///
///     d   f16       @0   scale
///     m   f16       @2   offset (the block's minimum)
///     qs  u8[16]    @4   nibbles as in Q4_0
///
///     w = d * q + m
enum BlockQ4_1: GGMLBlock {
    static let weights = 32, bytes = 20
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0), m = x.f16(2)
        for j in 0..<16 {
            let q = x.u8(4 + j)
            y[j] = d * Float(q & 0x0F) + m
            y[j + 16] = d * Float(q >> 4) + m
        }
    }
}

/// Q5_0: 32 weights in 22 bytes.
///
///     d   f16       @0   scale
///     qh  u32       @2   bit j is the fifth (high) bit of weight j
///     qs  u8[16]    @6   low four bits, nibbles as in Q4_0
///
///     w = d * ((low | high << 4) - 16)
enum BlockQ5_0: GGMLBlock {
    static let weights = 32, bytes = 22
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0), qh = x.u32(2)
        for j in 0..<16 {
            let q = x.u8(6 + j)
            let lo = Int(q & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
            let hi = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(lo - 16)
            y[j + 16] = d * Float(hi - 16)
        }
    }
}

/// Q5_1: 32 weights in 24 bytes.
///
///     d   f16       @0   scale
///     m   f16       @2   offset
///     qh  u32       @4   high bits as in Q5_0
///     qs  u8[16]    @8   low four bits as in Q5_0
///
///     w = d * q + m
enum BlockQ5_1: GGMLBlock {
    static let weights = 32, bytes = 24
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0), m = x.f16(2), qh = x.u32(4)
        for j in 0..<16 {
            let q = x.u8(8 + j)
            let lo = UInt32(q & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let hi = UInt32(q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(lo) + m
            y[j + 16] = d * Float(hi) + m
        }
    }
}

/// Q8_0: 32 weights in 34 bytes.
///
///     d   f16       @0   scale
///     qs  i8[32]    @2   one signed byte per weight
///
///     w = q * d
///
/// Quantizing (gguf-py's, bit-exact with ggml's reference quantize_row_q8_0): amax = max |x| (NaN if any x is NaN),
/// d = amax / 127, id = d == 0 ? 0 : 1 / d, q = round-half-away-from-zero(x * id), stored d = f16(d), all in float32.
enum BlockQ8_0: GGMLQuantizingBlock {
    static let weights = 32, bytes = 34
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0)
        for j in 0..<32 { y[j] = Float(x.i8(2 + j)) * d }
    }

    static func quantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 {
            let a = abs(x[j])
            if a.isNaN || a > amax { amax = a }  // once NaN, amax stays NaN, as numpy's max
        }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        y.store(float16Bits(d), at: 0)
        for j in 0..<32 {
            y.storeBytes(of: int8LikeNumpy((x[j] * id).rounded(.toNearestOrAwayFromZero)), toByteOffset: 2 + j,
                         as: Int8.self)
        }
    }

    /// numpy's float32 → int8 cast on x86-64 (through a 32-bit integer conversion): exact for -128...127, wrapping
    /// for larger integers, 0 for NaN, infinities and values beyond Int32. Only a block holding an infinity, a NaN
    /// or a scale that underflows reaches the unusual cases.
    @inline(__always) private static func int8LikeNumpy(_ v: Float) -> Int8 {
        let i: Int32 = v.isNaN || v >= 0x1p31 || v < -0x1p31 ? .min : Int32(v)
        return Int8(truncatingIfNeeded: i)
    }
}

// MARK: - K-quants: 256-element super-blocks

/// Q2_K: 256 weights in 84 bytes, 16 groups of 16 weights.
///
///     scales  u8[16]   @0    group g: scale in the low nibble, min in the high nibble
///     qs      u8[64]   @16   2 bits per weight: weight p = 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]
///     d       f16      @80   super-scale of the scales
///     dmin    f16      @82   super-scale of the mins
///
///     w = (d * scale) * q - (dmin * min)
enum BlockQ2_K: GGMLBlock {
    static let weights = 256, bytes = 84
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(80), dmin = x.f16(82)
        for g in 0..<16 {
            let sc = x.u8(g)
            let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
            for i in 0..<16 {
                let p = 16 * g + i
                let h = p / 128, s = (p % 128) / 32, l = p % 32
                let q = (x.u8(16 + 32 * h + l) >> UInt8(2 * s)) & 3
                y[p] = dl * Float(q) - ml
            }
        }
    }
}

/// Q3_K: 256 weights in 110 bytes, 16 groups of 16 weights.
///
///     hmask   u8[32]   @0    weight p's third bit is bit p / 32 of hmask[p % 32]; a 0 bit means "subtract 4"
///     qs      u8[64]   @32   low 2 bits, packed as in Q2_K
///     scales  u8[12]   @96   sixteen 6-bit signed scales (biased by 32): group g's low 4 bits are the low nibble
///                            of scales[g] (g < 8) or the high nibble of scales[g - 8], its high 2 bits are bits
///                            2(g / 4)... of scales[8 + g % 4]
///     d       f16      @108  super-scale
///
///     w = (d * (scale - 32)) * (low - (high bit ? 0 : 4))
enum BlockQ3_K: GGMLBlock {
    static let weights = 256, bytes = 110
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(108)
        for g in 0..<16 {
            let low = g < 8 ? x.u8(96 + g) & 0x0F : x.u8(96 + g - 8) >> 4
            let high = (x.u8(96 + 8 + g % 4) >> UInt8(2 * (g / 4))) & 3
            let dl = d * Float(Int(low | high << 4) - 32)
            for i in 0..<16 {
                let p = 16 * g + i
                let h = p / 128, s = (p % 128) / 32, l = p % 32
                let q = Int((x.u8(32 + 32 * h + l) >> UInt8(2 * s)) & 3)
                let bit = (x.u8(l) >> UInt8(p / 32)) & 1
                y[p] = dl * Float(q - (bit == 0 ? 4 : 0))
            }
        }
    }
}

/// The eight 6-bit scales and mins of Q4_K and Q5_K, packed in 12 bytes:
///
///     j < 4:   scale = s[j] & 63                          min = s[j + 4] & 63
///     j >= 4:  scale = s[j + 4] & 15 | (s[j - 4] >> 6) << 4   min = s[j + 4] >> 4 | (s[j] >> 6) << 4
@inline(__always) private func scaleAndMinK4(_ s: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
    if j < 4 { return (s.u8(j) & 63, s.u8(j + 4) & 63) }
    return (s.u8(j + 4) & 0x0F | (s.u8(j - 4) >> 6) << 4, s.u8(j + 4) >> 4 | (s.u8(j) >> 6) << 4)
}

/// Q4_K: 256 weights in 144 bytes, 8 groups of 32 weights.
///
///     d       f16      @0    super-scale of the scales
///     dmin    f16      @2    super-scale of the mins
///     scales  u8[12]   @4    eight 6-bit scales and mins (scaleAndMinK4)
///     qs      u8[128]  @16   4 bits per weight: weight p = 64c + 32s + l is the low (s = 0) or high (s = 1)
///                            nibble of qs[32c + l]
///
///     w = (d * scale) * q - (dmin * min)
enum BlockQ4_K: GGMLBlock {
    static let weights = 256, bytes = 144
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0), dmin = x.f16(2)
        for j in 0..<8 {
            let (sc, m) = scaleAndMinK4(x + 4, j)
            let dl = d * Float(sc), ml = dmin * Float(m)
            let c = j / 2, shift = UInt8(4 * (j % 2))
            for l in 0..<32 {
                let q = (x.u8(16 + 32 * c + l) >> shift) & 0x0F
                y[32 * j + l] = dl * Float(q) - ml
            }
        }
    }
}

/// Q5_K: 256 weights in 176 bytes, 8 groups of 32 weights.
///
///     d       f16      @0    super-scale of the scales
///     dmin    f16      @2    super-scale of the mins
///     scales  u8[12]   @4    as Q4_K
///     qh      u8[32]   @16   weight p's fifth bit is bit p / 32 of qh[p % 32]
///     qs      u8[128]  @48   low four bits, as Q4_K
///
///     w = (d * scale) * q - (dmin * min)
enum BlockQ5_K: GGMLBlock {
    static let weights = 256, bytes = 176
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(0), dmin = x.f16(2)
        for j in 0..<8 {
            let (sc, m) = scaleAndMinK4(x + 4, j)
            let dl = d * Float(sc), ml = dmin * Float(m)
            let c = j / 2, shift = UInt8(4 * (j % 2))
            for l in 0..<32 {
                let q = (x.u8(48 + 32 * c + l) >> shift) & 0x0F | ((x.u8(16 + l) >> UInt8(j)) & 1) << 4
                y[32 * j + l] = dl * Float(q) - ml
            }
        }
    }
}

/// Q6_K: 256 weights in 210 bytes, 16 groups of 16 weights.
///
///     ql      u8[128]  @0    low 4 bits: weight p = 128h + 64s + k is the low (s = 0) or high (s = 1) nibble of
///                            ql[64h + k]
///     qh      u8[64]   @128  high 2 bits: weight p = 128h + 32s + l is bits 2s..2s+1 of qh[32h + l]
///     scales  i8[16]   @192  one signed scale per group of 16
///     d       f16      @208  super-scale
///
///     w = (d * scale) * (q - 32)
enum BlockQ6_K: GGMLBlock {
    static let weights = 256, bytes = 210
    static func dequantize(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.f16(208)
        for g in 0..<16 {
            let dl = d * Float(x.i8(192 + g))
            for i in 0..<16 {
                let p = 16 * g + i
                let h = p / 128, r = p % 128
                let low = (x.u8(64 * h + r % 64) >> UInt8(4 * (r / 64))) & 0x0F
                let high = (x.u8(128 + 32 * h + r % 32) >> UInt8(2 * (r / 32))) & 3
                y[p] = dl * Float(Int(low | high << 4) - 32)
            }
        }
    }
}

// MARK: - Whole tensors

extension GGMLType {
    /// Converts `dst.count` elements stored as this type in `src` (`byteCount(elements: dst.count)` bytes) to Float.
    /// Blocks are independent, so with several threads the result is the same. Requires `canDequantize`.
    public func dequantize(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>,
                           parallel: ParallelFor = ParallelFor(threads: 1)) {
        precondition(canDequantize, "dequantizing \(self) is not supported")
        precondition(byteCount(elements: dst.count) == src.count,
                     "\(src.count) bytes of \(self) for \(dst.count) elements")
        switch self {
        case .f32: Self.dequantize(BlockF32.self, src, dst, parallel)
        case .f16: Self.dequantize(BlockF16.self, src, dst, parallel)
        case .bf16: Self.dequantize(BlockBF16.self, src, dst, parallel)
        case .q4_0: Self.dequantize(BlockQ4_0.self, src, dst, parallel)
        case .q4_1: Self.dequantize(BlockQ4_1.self, src, dst, parallel)
        case .q5_0: Self.dequantize(BlockQ5_0.self, src, dst, parallel)
        case .q5_1: Self.dequantize(BlockQ5_1.self, src, dst, parallel)
        case .q8_0: Self.dequantize(BlockQ8_0.self, src, dst, parallel)
        case .q2_K: Self.dequantize(BlockQ2_K.self, src, dst, parallel)
        case .q3_K: Self.dequantize(BlockQ3_K.self, src, dst, parallel)
        case .q4_K: Self.dequantize(BlockQ4_K.self, src, dst, parallel)
        case .q5_K: Self.dequantize(BlockQ5_K.self, src, dst, parallel)
        case .q6_K: Self.dequantize(BlockQ6_K.self, src, dst, parallel)
        default: preconditionFailure("dequantizing \(self) is not supported")
        }
    }

    /// The elements stored as this type in `bytes` (a whole number of blocks), as Floats. Requires `canDequantize`.
    public func dequantize(_ bytes: [UInt8]) -> [Float] {
        precondition(bytes.count % bytesPerBlock == 0, "\(bytes.count) bytes is not a whole number of \(self) blocks")
        let count = bytes.count / bytesPerBlock * blockSize
        return [Float](unsafeUninitializedCapacity: count) { dst, initialized in
            bytes.withUnsafeBytes { dequantize($0, into: dst) }
            initialized = count
        }
    }

    /// Encodes `src.count` floats (a whole number of blocks) as this type into `dst`
    /// (`byteCount(elements: src.count)` bytes), bit for bit as `gguf.quants.quantize`. Requires `canQuantize`.
    public func quantize(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer) {
        precondition(canQuantize, "quantizing to \(self) is not supported")
        precondition(byteCount(elements: src.count) == dst.count, "\(dst.count) bytes of \(self) for \(src.count) floats")
        switch self {
        case .f32: Self.quantize(BlockF32.self, src, dst)
        case .f16: Self.quantize(BlockF16.self, src, dst)
        case .bf16: Self.quantize(BlockBF16.self, src, dst)
        case .q8_0: Self.quantize(BlockQ8_0.self, src, dst)
        default: preconditionFailure("quantizing to \(self) is not supported")
        }
    }

    /// `floats` (a whole number of blocks) encoded as this type. Requires `canQuantize`.
    public func quantize(_ floats: [Float]) -> [UInt8] {
        precondition(floats.count % blockSize == 0, "\(floats.count) floats is not a whole number of \(self) blocks")
        let count = floats.count / blockSize * bytesPerBlock
        return [UInt8](unsafeUninitializedCapacity: count) { dst, initialized in
            floats.withUnsafeBufferPointer { quantize($0, into: UnsafeMutableRawBufferPointer(dst)) }
            initialized = count
        }
    }

    private static func dequantize<B: GGMLBlock>(_: B.Type, _ src: UnsafeRawBufferPointer,
                                                 _ dst: UnsafeMutableBufferPointer<Float>, _ parallel: ParallelFor) {
        guard let x = src.baseAddress, let y = dst.baseAddress else { return }
        // Threads only pay off for large tensors; below that one thread does it without dispatching.
        let threads = dst.count >= 1 << 16 ? parallel : ParallelFor(threads: 1)
        threads(dst.count / B.weights) { blocks in
            for b in blocks { B.dequantize(x + b * B.bytes, y + b * B.weights) }
        }
    }

    private static func quantize<B: GGMLQuantizingBlock>(_: B.Type, _ src: UnsafeBufferPointer<Float>,
                                                         _ dst: UnsafeMutableRawBufferPointer) {
        guard let x = src.baseAddress, let y = dst.baseAddress else { return }
        for b in 0..<src.count / B.weights { B.quantize(x + b * B.weights, y + b * B.bytes) }
    }
}
