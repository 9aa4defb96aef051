// The CUDA attention kernels (attention.cu, attention_cached.cu) checked without a GPU: CUDAOps queues each launch on
// the CPU emulator, in both storage precisions, for every kind of AttentionShape (multi-head as GPT-2,
// grouped-query, multi-query, a sliding window, head sizes that are not a multiple of 32, a custom scale, a sequence
// of two query tiles), and the results are compared with the CPU kernels (Kernels/Attention.swift,
// AttentionCached.swift). Inputs are rounded to the storage precision for both sides.

import Foundation
import Testing
@testable import LLM

private let serial = ParallelFor(threads: 1)

/// 64-bit integers in host memory for the emulated kernels (the decode step's slots: `const long long*`), freed
/// with the value.
private final class Int64Array {
    let memory: UnsafeMutablePointer<Int64>

    init(_ values: [Int64]) {
        memory = .allocate(capacity: max(values.count, 1))
        memory.initialize(from: values, count: values.count)
    }

    deinit { memory.deallocate() }

    var address: CUdeviceptr { CUdeviceptr(UInt(bitPattern: memory)) }
}

struct KernelAttentionCase: CustomTestStringConvertible, Sendable {
    let name: String
    let B: Int, T: Int
    let shape: AttentionShape

    var testDescription: String { name }

    static let all: [KernelAttentionCase] = [
        .init(name: "GPT-2", B: 2, T: 7, shape: AttentionShape(heads: 2, kvHeads: 2, headSize: 8)),
        .init(name: "GQA", B: 1, T: 7, shape: AttentionShape(heads: 4, kvHeads: 2, headSize: 8)),
        .init(name: "window 3", B: 2, T: 7, shape: AttentionShape(heads: 4, kvHeads: 2, headSize: 8, window: 3)),
        .init(name: "MQA, d 40, scale 0.3", B: 1, T: 9,
              shape: AttentionShape(heads: 2, kvHeads: 1, headSize: 40, scale: 0.3)),
        .init(name: "two tiles, window 5", B: 1, T: 37,
              shape: AttentionShape(heads: 2, kvHeads: 1, headSize: 8, window: 5, scale: 0.5)),
        // Gemma 3's head size: the `_wide` tiled kernels (8 dimensions per lane).
        .init(name: "d 256, window 3", B: 1, T: 6, shape: AttentionShape(heads: 2, kvHeads: 1, headSize: 256, window: 3)),
        .init(name: "d 136", B: 1, T: 5, shape: AttentionShape(heads: 1, kvHeads: 1, headSize: 136)),
    ]

    /// The cache a generator gives this shape: the window's length, or the whole sequence.
    var capacity: Int { shape.window > 0 ? shape.window : T }
}

/// Expects the kernel's values within the precision's tolerance of the CPU's (float to rounding, bfloat16 to its
/// significand; relative above 1, absolute below), naming `what` and the error, not the arrays, when they are not.
private func expectClose(_ kernel: [Float], _ cpu: [Float], _ precision: CUDAPrecision, _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    let error = maxRelativeError(kernel, cpu, floor: 1)
    #expect(error < (precision == .bf16 ? 2e-2 : 1e-5), "\(what): error \(error)", sourceLocation: sourceLocation)
}

@Suite struct CUDAAttentionKernelTests {
    private static let cases = KernelAttentionCase.all.flatMap { c in CUDAPrecision.allCases.map { (c, $0) } }

    /// Forward (out and the log-sum-exp), then backward (delta, dK/dV, dQ) added into a gradient already there.
    @Test(arguments: cases)
    func forwardAndBackward(_ c: KernelAttentionCase, precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let (B, T, s) = (c.B, c.T, c.shape)
        let R = s.qkvWidth, O = s.outWidth, H = s.heads
        let qkv = stored(randomValues(B * T * R, seed: 31), precision)
        let dout = stored(randomValues(B * T * O, seed: 32), precision)
        let dqkv0 = stored(randomValues(B * T * R, seed: 33), precision)

        let out = cpu.zeros(B * T * O), preatt = cpu.zeros(B * H * T * T), att = cpu.zeros(B * H * T * T)
        let inp = cpu.floats(qkv)
        attentionForward(out: out, preatt: preatt, att: att, inp: inp, B: B, T: T, shape: s, parallel: serial)
        var lse = [Float]()
        for bh in 0..<B * H {
            for t in 0..<T {
                let scores = (s.first(t)...t).map { Double(preatt[(bh * T + t) * T + $0]) }
                let m = scores.max()!
                lse.append(Float(m + log(scores.reduce(0) { $0 + exp($1 - m) })))
            }
        }
        let dinp = cpu.floats(dqkv0)
        LLM.attentionBackward(dinp: dinp, dpreatt: cpu.zeros(B * H * T * T), datt: cpu.zeros(B * H * T * T),
                              dout: cpu.floats(dout), inp: inp, att: att, B: B, T: T, shape: s, parallel: serial)

        let gQKV = gpu.floatX(qkv), gOut = gpu.floatX([Float](repeating: .nan, count: B * T * O))
        let gLSE = gpu.floats([Float](repeating: .nan, count: B * H * T))
        try ops.attentionForward(out: gOut, lse: gLSE, qkv: gQKV, B: B, T: T, shape: s)
        expectClose(gpu.read(gOut), array(out, B * T * O), precision, "out")
        expectClose(gpu.read(gLSE), lse, .fp32, "lse")  // float in both precisions

        let gDqkv = gpu.floatX(dqkv0), gDelta = gpu.floats([Float](repeating: .nan, count: B * H * T))
        try ops.attentionBackward(dqkv: gDqkv, delta: gDelta, dout: gpu.floatX(dout), out: gOut, qkv: gQKV, lse: gLSE,
                                  B: B, T: T, shape: s)
        expectClose(gpu.read(gDqkv), array(dinp, B * T * R), precision, "dqkv")
    }

    /// A prefill in three chunks, the last longer than a window's ring, against attentionCachedForward chunk by
    /// chunk: outputs and caches.
    @Test(arguments: cases)
    func cachedPrefill(_ c: KernelAttentionCase, precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let (T, s, capacity) = (c.T, c.shape, c.capacity)
        let R = s.qkvWidth, O = s.outWidth, cacheSize = s.kvHeads * capacity * s.headSize
        let qkv = stored(randomValues(T * R, seed: 34), precision)
        let out = cpu.zeros(T * O), kCache = cpu.zeros(cacheSize), vCache = cpu.zeros(cacheSize)
        let scores = cpu.zeros(s.heads * capacity), inp = cpu.floats(qkv)
        let gKCache = gpu.floatX([Float](repeating: 0, count: cacheSize))
        let gVCache = gpu.floatX([Float](repeating: 0, count: cacheSize))
        var gOut = [Float]()
        var t0 = 0
        for n in [2, 1, T - 3] {
            attentionCachedForward(out: out + t0 * O, kCache: kCache, vCache: vCache, scores: scores, qkv: inp + t0 * R,
                                   t0: t0, n: n, shape: s, capacity: capacity, parallel: serial)
            let chunkOut = gpu.floatX([Float](repeating: .nan, count: n * O))
            try ops.cachedAttention(out: chunkOut, kCache: gKCache, vCache: gVCache,
                                    qkv: gpu.floatX(Array(qkv[t0 * R..<(t0 + n) * R])), t0: t0, n: n, shape: s,
                                    capacity: capacity)
            gOut += gpu.read(chunkOut)
            t0 += n
        }
        expectClose(gOut, array(out, T * O), precision, "out")
        let keysAgree = gpu.read(gKCache) == array(kCache, cacheSize)
        let valuesAgree = gpu.read(gVCache) == array(vCache, cacheSize)
        #expect(keysAgree && valuesAgree, "the caches")
    }

    /// A decode step of three rows, each its own slot (out of order) at its own position, against
    /// attentionCachedForward with n = 1 per row (as CPUBackend.decodeAttention): outputs and every slot's cache.
    @Test(arguments: cases)
    func decode(_ c: KernelAttentionCase, precision: CUDAPrecision) throws {
        let gpu = EmulatedDevice(precision), ops = CUDAOps(launcher: gpu), cpu = CPUArrays()
        let (T, s, capacity) = (c.T, c.shape, c.capacity)
        let R = s.qkvWidth, O = s.outWidth
        let slotStride = s.kvHeads * capacity * s.headSize, rows = 3
        let slots = [2, 0, 1], positions: [Int32] = [Int32(T - 1), 0, Int32(T / 2)]
        let kCache = cpu.zeros(rows * slotStride), vCache = cpu.zeros(rows * slotStride)
        let scores = cpu.zeros(s.heads * capacity)
        // Each slot's sequence up to its row's position, prefilled on the CPU.
        for r in 0..<rows where positions[r] > 0 {
            let n = Int(positions[r])
            attentionCachedForward(out: cpu.zeros(n * O), kCache: kCache + slots[r] * slotStride,
                                   vCache: vCache + slots[r] * slotStride, scores: scores,
                                   qkv: cpu.floats(stored(randomValues(n * R, seed: 40 + UInt64(r)), precision)), t0: 0,
                                   n: n, shape: s, capacity: capacity, parallel: serial)
        }
        let gKCache = gpu.floatX(array(kCache, rows * slotStride)), gVCache = gpu.floatX(array(vCache, rows * slotStride))
        let qkv = stored(randomValues(rows * R, seed: 35), precision)
        let out = cpu.zeros(rows * O), inp = cpu.floats(qkv)
        for r in 0..<rows {
            attentionCachedForward(out: out + r * O, kCache: kCache + slots[r] * slotStride,
                                   vCache: vCache + slots[r] * slotStride, scores: scores, qkv: inp + r * R,
                                   t0: Int(positions[r]), n: 1, shape: s, capacity: capacity, parallel: serial)
        }
        let gOut = gpu.floatX([Float](repeating: .nan, count: rows * O))
        let gSlots = Int64Array(slots.map { Int64($0) })
        try ops.decodeAttention(out: gOut, kCache: gKCache, vCache: gVCache, slotStride: slotStride, qkv: gpu.floatX(qkv),
                                slots: gSlots.address, positions: gpu.ints(positions), rows: rows, shape: s,
                                capacity: capacity)
        expectClose(gpu.read(gOut), array(out, rows * O), precision, "out")
        let keysAgree = gpu.read(gKCache) == array(kCache, rows * slotStride)
        let valuesAgree = gpu.read(gVCache) == array(vCache, rows * slotStride)
        #expect(keysAgree && valuesAgree, "the caches")
    }
}
