// Checks for the kernels the Llama / Qwen2 / Gemma / nanochat architectures added: RMSNorm (three flavours and the
// QK-norm layout), RoPE, grouped-query / multi-query / sliding-window attention and its cached form, the gated
// and ReLU² MLP activations, the logit softcap, and the scaled embedding. As in KernelGradientTests, each forward
// kernel is checked against a Double reference written here from the math (never by calling a Float kernel), and
// each backward kernel against central finite differences of that reference.

import Foundation
import Testing
@testable import LLM

// MARK: - Helpers (the shared ones are in GradientCheck.swift)

/// The kernels under test run split over 3 threads, so the chunk boundaries get exercised too.
private let parallel = ParallelFor(threads: 3)

/// The indices of N rows of `stride` floats that lie at or past `width` in their row: the floats a kernel
/// working on the first `width` of each row must leave alone.
private func paddingIndices(N: Int, width: Int, stride: Int) -> [Int] {
    (0..<N).flatMap { n in (width..<stride).map { n * stride + $0 } }
}

/// Every index in `indices` still holds exactly (bit for bit) what it held before the kernel ran.
private func expectUntouched(_ actual: [Float], _ before: [Float], at indices: [Int], _ what: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
    let changed = indices.filter { actual[$0].bitPattern != before[$0].bitPattern }
    #expect(changed.isEmpty,
            "\(what): \(changed.count) floats past the rows' data were written, first at \(changed.first ?? -1)",
            sourceLocation: sourceLocation)
}

/// `reference` with the entries at `indices` replaced by `before`'s: what a buffer should hold after a kernel that
/// writes everything except those entries.
private func keeping(_ before: [Float], at indices: [Int], in reference: [Double]) -> [Double] {
    var result = reference
    for i in indices { result[i] = Double(before[i]) }
    return result
}

// MARK: - RMSNorm

/// N rows of `stride` floats, each holding `groups` groups of C at its start (groups 1, stride C: a plain (N,C)).
struct RMSNormTestLayout: Sendable, CustomStringConvertible {
    let N: Int, C: Int, groups: Int, stride: Int
    let eps: Float

    /// C = 19 is a 16-wide SIMD block plus a tail. eps 0.5 is comparable to mean(x²), so a kernel dropping or
    /// misplacing it fails. The QK-norm layouts leave 16 and 3 floats of padding after the groups.
    static let all = [
        RMSNormTestLayout(N: 4, C: 19, groups: 1, stride: 19, eps: 1e-5),
        RMSNormTestLayout(N: 3, C: 37, groups: 1, stride: 37, eps: 0.5),
        RMSNormTestLayout(N: 3, C: 8, groups: 3, stride: 40, eps: 1e-6),
        RMSNormTestLayout(N: 2, C: 10, groups: 2, stride: 23, eps: 0.25),
    ]

    var description: String { "N=\(N) C=\(C) groups=\(groups) stride=\(stride) eps=\(eps)" }
}

/// y = x / √(mean(x²) + eps) · gain per group of C; returns the whole (N, stride) buffer (0 in the padding) and
/// rstd (N, groups).
private func rmsNormReference(_ x: [Double], weight: [Double]?, kind: RMSNormWeight, eps: Double,
                              layout: RMSNormTestLayout) -> (out: [Double], rstd: [Double]) {
    let (N, C, groups, S) = (layout.N, layout.C, layout.groups, layout.stride)
    var out = [Double](repeating: 0, count: N * S), rstd = [Double]()
    for n in 0..<N {
        for g in 0..<groups {
            let base = n * S + g * C
            var meanSquare = 0.0
            for c in 0..<C { meanSquare += x[base + c] * x[base + c] }
            meanSquare /= Double(C)
            let r = 1 / (meanSquare + eps).squareRoot()
            for c in 0..<C {
                let gain: Double = switch kind {
                case .scale: weight![c]
                case .onePlus: 1 + weight![c]
                case .none: 1
                }
                out[base + c] = x[base + c] * r * gain
            }
            rstd.append(r)
        }
    }
    return (out, rstd)
}

@Test(arguments: [RMSNormWeight.scale, .onePlus, .none], RMSNormTestLayout.all)
func rmsNormMatchesReferenceAndAccumulates(kind: RMSNormWeight, layout: RMSNormTestLayout) {
    let (N, C, groups, S) = (layout.N, layout.C, layout.groups, layout.stride)
    var rng = SplitMix64(seed: 101)
    let x = gaussians(N * S, &rng, std: 1.5, mean: 0.3)
    let weight: [Float]? = switch kind {
    case .scale: gaussians(C, &rng, std: 0.3, mean: 1)
    case .onePlus: gaussians(C, &rng, std: 0.3)  // Gemma's weights start at 0
    case .none: nil
    }
    let dout = gaussians(N * S, &rng)  // the padding's dout must be ignored
    let before = gaussians(N * S, &rng)
    let padding = paddingIndices(N: N, width: groups * C, stride: S)
    let (xd, wd, eps) = (doubles(x), weight.map(doubles), Double(layout.eps))
    let reference = rmsNormReference(xd, weight: wd, kind: kind, eps: eps, layout: layout)

    var out = before, rstd = [Float](repeating: .nan, count: N * groups)
    if let weight {
        rmsNormForward(out: &out, rstd: &rstd, inp: x, weight: weight, kind: kind, eps: layout.eps, N: N, C: C,
                       groups: groups, stride: S, parallel: parallel)
    } else {
        rmsNormForward(out: &out, rstd: &rstd, inp: x, weight: nil, kind: kind, eps: layout.eps, N: N, C: C,
                       groups: groups, stride: S, parallel: parallel)
    }
    expectClose(out, keeping(before, at: padding, in: reference.out), "rmsnorm \(kind) out")
    expectUntouched(out, before, at: padding, "rmsnorm \(kind) out")
    expectClose(rstd, reference.rstd, "rmsnorm \(kind) rstd")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dx = grads[0]
        guard let weight else {
            rmsNormBackward(dinp: &dx, dweight: nil, dout: dout, inp: x, weight: nil, rstd: rstd, kind: kind, N: N,
                            C: C, groups: groups, stride: S, parallel: parallel)
            return [dx]
        }
        var dweight = grads[1]
        rmsNormBackward(dinp: &dx, dweight: &dweight, dout: dout, inp: x, weight: weight, rstd: rstd, kind: kind,
                        N: N, C: C, groups: groups, stride: S, parallel: parallel)
        return [dx, dweight]
    }
    let zeros = [[Float](repeating: 0, count: N * S)] + (weight == nil ? [] : [[Float](repeating: 0, count: C)])
    let grads = backward(zeros)
    expectClose(grads[0], numericGradient(at: xd) {
        weightedSum(dout, rmsNormReference($0, weight: wd, kind: kind, eps: eps, layout: layout).out)
    }, "rmsnorm \(kind) dinp")
    if let wd {
        expectClose(grads[1], numericGradient(at: wd) {
            weightedSum(dout, rmsNormReference(xd, weight: $0, kind: kind, eps: eps, layout: layout).out)
        }, "rmsnorm \(kind) dweight")
    }
    expectAccumulates(grads, backward)
    // dinp's padding keeps whatever it held.
    expectUntouched(backward([before] + zeros.dropFirst())[0], before, at: padding, "rmsnorm \(kind) dinp")
}

// MARK: - Rotary position embedding

struct RotaryTestCase: Sendable, CustomStringConvertible {
    let d: Int, theta: Double, heads: Int, N: Int, stride: Int

    /// Head sizes not a multiple of 16 (and 34: a pair count of 17); rows with padding after the heads.
    static let all = [
        RotaryTestCase(d: 6, theta: 10_000, heads: 3, N: 5, stride: 22),
        RotaryTestCase(d: 10, theta: 1_000_000, heads: 2, N: 4, stride: 25),
        RotaryTestCase(d: 34, theta: 10_000, heads: 1, N: 3, stride: 40),
    ]

    static let maxSeqLen = 256
    /// Arbitrary positions, not 0..<N, some far apart.
    static let positions: [Int32] = [37, 5, 0, 211, 98]

    var description: String { "d=\(d) θ=\(theta) heads=\(heads) stride=\(stride)" }
}

/// Hugging Face's `apply_rotary_pos_emb`: y = x·cos + rotate_half(x)·sin, with rotate_half(x) = [−x₂, x₁] and
/// cos, sin = cat(freqs, freqs) for freqs[i] = pos·θ^(−2i/d); the padding of each row passes through.
private func rotaryReference(_ x: [Double], positions: [Int32], _ c: RotaryTestCase) -> [Double] {
    let half = c.d / 2
    var y = x
    for n in 0..<c.N {
        for h in 0..<c.heads {
            let base = n * c.stride + h * c.d
            for j in 0..<c.d {
                let angle = Double(positions[n]) * pow(c.theta, -Double(2 * (j % half)) / Double(c.d))
                let rotated = j < half ? -x[base + j + half] : x[base + j - half]
                y[base + j] = x[base + j] * cos(angle) + rotated * sin(angle)
            }
        }
    }
    return y
}

@Test(arguments: RotaryTestCase.all)
func rotaryMatchesHuggingFaceAndItsBackwardIsTheTranspose(_ c: RotaryTestCase) {
    var rng = SplitMix64(seed: 102)
    let positions = Array(RotaryTestCase.positions.prefix(c.N))
    let table = RotaryTable(theta: c.theta, headSize: c.d, maxSeqLen: RotaryTestCase.maxSeqLen)
    let x = gaussians(c.N * c.stride, &rng), g = gaussians(c.N * c.stride, &rng)
    let padding = paddingIndices(N: c.N, width: c.heads * c.d, stride: c.stride)

    var y = x
    rotaryForward(&y, positions: positions, table: table, N: c.N, heads: c.heads, stride: c.stride,
                  parallel: parallel)
    expectClose(y, rotaryReference(doubles(x), positions: positions, c), "rope out")
    expectUntouched(y, x, at: padding, "rope out")

    // The gradient of Σ g ⊙ rope(x) with respect to x (g itself in the padding, which passes through).
    var dx = g
    rotaryBackward(&dx, positions: positions, table: table, N: c.N, heads: c.heads, stride: c.stride,
                   parallel: parallel)
    expectClose(dx, numericGradient(at: doubles(x)) { weightedSum(g, rotaryReference($0, positions: positions, c)) },
                "rope backward")
    expectUntouched(dx, g, at: padding, "rope backward")

    // Turning back undoes the turn.
    rotaryForward(&y, positions: positions, table: table, N: c.N, heads: c.heads, stride: c.stride, inverse: true,
                  parallel: parallel)
    expectClose(y, doubles(x), "rope inverse(forward(x))")
}

// MARK: - Attention

struct GroupedAttentionCase: Sendable, CustomStringConvertible {
    let name: String
    let B: Int, T: Int, H: Int, Hkv: Int, d: Int, window: Int
    let scale: Double?

    static let all = [
        GroupedAttentionCase(name: "GQA", B: 2, T: 5, H: 4, Hkv: 2, d: 6, window: 0, scale: nil),
        GroupedAttentionCase(name: "MQA", B: 1, T: 6, H: 3, Hkv: 1, d: 8, window: 0, scale: nil),
        GroupedAttentionCase(name: "MHA window 3", B: 2, T: 7, H: 2, Hkv: 2, d: 4, window: 3, scale: nil),
        GroupedAttentionCase(name: "custom scale", B: 1, T: 5, H: 2, Hkv: 2, d: 8, window: 0,
                             scale: 1 / 24.0.squareRoot()),
        GroupedAttentionCase(name: "GQA window 2, scale 0.3", B: 1, T: 6, H: 4, Hkv: 2, d: 6, window: 2, scale: 0.3),
    ]

    var shape: AttentionShape {
        AttentionShape(heads: H, kvHeads: Hkv, headSize: d, window: window, scale: scale.map { Float($0) })
    }
    var scoreScale: Double { scale ?? 1 / Double(d).squareRoot() }
    /// Floats in one input row: H query heads, H_kv key heads, H_kv value heads.
    var width: Int { (H + 2 * Hkv) * d }
    var description: String { name }
}

/// Attention over rows [q heads | k heads | v heads]: query head h of position t reads key/value head
/// h / (H / H_kv) at positions t2 with t − W < t2 ≤ t (all t2 ≤ t without a window). Returns out (B,T,H·d),
/// preatt and att (B,H,T,T) with zeros outside the attended range, and which entries are attended.
private func attentionReference(_ x: [Double], _ c: GroupedAttentionCase)
    -> (out: [Double], preatt: [Double], att: [Double], attended: [Bool]) {
    let (B, T, H, d, W) = (c.B, c.T, c.H, c.d, c.width)
    let perKV = H / c.Hkv
    var out = [Double](repeating: 0, count: B * T * H * d)
    var preatt = [Double](repeating: 0, count: B * H * T * T), att = preatt
    var attended = [Bool](repeating: false, count: B * H * T * T)
    for b in 0..<B {
        for h in 0..<H {
            let kv = h / perKV
            let q = h * d, k = (H + kv) * d, v = (H + c.Hkv + kv) * d
            for t in 0..<T {
                let seen = (0...t).filter { c.window == 0 || $0 > t - c.window }
                let row = ((b * H + h) * T + t) * T
                var scores = [Double]()
                for t2 in seen {
                    var s = 0.0
                    for i in 0..<d { s += x[(b * T + t) * W + q + i] * x[(b * T + t2) * W + k + i] }
                    scores.append(s * c.scoreScale)
                }
                let top = scores.max()!
                let e = scores.map { exp($0 - top) }
                let z = e.reduce(0, +)
                for (j, t2) in seen.enumerated() {
                    preatt[row + t2] = scores[j]
                    att[row + t2] = e[j] / z
                    attended[row + t2] = true
                    for i in 0..<d { out[(b * T + t) * H * d + h * d + i] += e[j] / z * x[(b * T + t2) * W + v + i] }
                }
            }
        }
    }
    return (out, preatt, att, attended)
}

@Test(arguments: GroupedAttentionCase.all)
func groupedAttentionMatchesReferenceAndAccumulates(_ c: GroupedAttentionCase) {
    let (B, T, H, d) = (c.B, c.T, c.H, c.d)
    var rng = SplitMix64(seed: 103)
    let x = gaussians(B * T * c.width, &rng, std: 1.2), dout = gaussians(B * T * H * d, &rng)
    let reference = attentionReference(doubles(x), c)

    // NaN everywhere first: out and att must be written in full (att with zeros outside the attended range).
    var out = [Float](repeating: .nan, count: B * T * H * d)
    var preatt = [Float](repeating: .nan, count: B * H * T * T), att = preatt
    attentionForward(out: &out, preatt: &preatt, att: &att, inp: x, B: B, T: T, shape: c.shape, parallel: parallel)
    expectClose(out, reference.out, "\(c) out")
    expectClose(att, reference.att, "\(c) att")
    let inside = reference.attended.indices.filter { reference.attended[$0] }
    expectClose(inside.map { preatt[$0] }, inside.map { reference.preatt[$0] }, "\(c) preatt inside the range")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dinp = grads[0]
        var datt = [Float](repeating: 0, count: B * H * T * T), dpreatt = datt
        attentionBackward(dinp: &dinp, dpreatt: &dpreatt, datt: &datt, dout: dout, inp: x, att: att, B: B, T: T,
                          shape: c.shape, parallel: parallel)
        return [dinp]
    }
    let grads = backward([[Float](repeating: 0, count: B * T * c.width)])
    expectClose(grads[0], numericGradient(at: doubles(x)) { weightedSum(dout, attentionReference($0, c).out) },
                "\(c) dinp")
    expectAccumulates(grads, backward)
}

/// Prefill in uneven chunks through the key/value cache equals full causal attention over all positions, and
/// the cache holds each position's keys and values at (kv head, position) and nothing past them.
@Test(arguments: [1, 3], [0, 3])
func cachedAttentionInChunksMatchesFullAttention(threads: Int, window: Int) {
    let c = GroupedAttentionCase(name: "cached", B: 1, T: 8, H: 4, Hkv: 2, d: 6, window: window, scale: nil)
    let (T, H, Hkv, d, W) = (c.T, c.H, c.Hkv, c.d, c.width)
    let maxT = 11
    var rng = SplitMix64(seed: 104)
    let x = gaussians(T * W, &rng, std: 1.2)
    let parallel = ParallelFor(threads: threads)

    var kCache = [Float](repeating: .nan, count: Hkv * maxT * d), vCache = kCache
    var scores = [Float](repeating: .nan, count: H * maxT)
    var out = [Float](repeating: .nan, count: T * H * d)
    var t0 = 0
    for n in [3, 1, 4] {
        var chunkOut = [Float](repeating: .nan, count: n * H * d)
        let qkv = Array(x[t0 * W..<(t0 + n) * W])
        attentionCachedForward(out: &chunkOut, kCache: &kCache, vCache: &vCache, scores: &scores, qkv: qkv, t0: t0,
                               n: n, shape: c.shape, capacity: maxT, parallel: parallel)
        out.replaceSubrange(t0 * H * d..<(t0 + n) * H * d, with: chunkOut)
        t0 += n
    }
    expectClose(out, attentionReference(doubles(x), c).out,
                "cached attention out (window \(window), \(threads) threads)")

    var expectedK = [Double](repeating: .nan, count: Hkv * maxT * d), expectedV = expectedK
    for g in 0..<Hkv {
        for t in 0..<T {
            for i in 0..<d {
                expectedK[(g * maxT + t) * d + i] = Double(x[t * W + (H + g) * d + i])
                expectedV[(g * maxT + t) * d + i] = Double(x[t * W + (H + Hkv + g) * d + i])
            }
        }
    }
    let filled = expectedK.indices.filter { !expectedK[$0].isNaN }
    #expect(filled.allSatisfy { Double(kCache[$0]) == expectedK[$0] && Double(vCache[$0]) == expectedV[$0] },
            "the caches hold each position's keys and values")
    #expect(expectedK.indices.allSatisfy { !expectedK[$0].isNaN || (kCache[$0].isNaN && vCache[$0].isNaN) },
            "cache rows past the filled positions are left alone")
}

// MARK: - MLP activations

private func siluReference(_ x: Double) -> Double { x / (1 + exp(-x)) }

/// GELU's tanh form; for u < 0, 1 + tanh(u) is written 2e^{2u} / (1 + e^{2u}), which keeps the tiny values of
/// nearly dead units that the plain form cancels to 0.
private func geluReference(_ x: Double) -> Double {
    let u = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
    if u >= 0 { return 0.5 * x * (1 + tanh(u)) }
    let e = exp(2 * u)
    return x * e / (1 + e)
}

private func gateReference(_ x: Double, _ activation: MLPActivation) -> Double {
    activation == .swiGLU ? siluReference(x) : geluReference(x)
}

/// out[n,i] = act(gate[n,i]) · up[n,i], inp rows [gate (F) | up (F)].
private func gatedReference(_ inp: [Double], _ activation: MLPActivation, N: Int, F: Int) -> [Double] {
    var out = [Double](repeating: 0, count: N * F)
    for n in 0..<N {
        for i in 0..<F { out[n * F + i] = gateReference(inp[n * 2 * F + i], activation) * inp[n * 2 * F + F + i] }
    }
    return out
}

@Test(arguments: [MLPActivation.swiGLU, .geGLU])
func gatedActivationMatchesReferenceAndAccumulates(_ activation: MLPActivation) {
    let N = 3, F = 21  // one 16-lane group and a tail of 5 per row
    var rng = SplitMix64(seed: 105)
    var inp = gaussians(N * 2 * F, &rng, std: 2)
    // Saturated (+20) and nearly dead (−20 … −4) gates, the bend, and large up values (±20).
    let special: [Float] = [-20, 20, -12, 12, -8, -6.5, -5, -4, -1, 0, 0.5, 3]
    for (i, value) in special.enumerated() { inp[(i % N) * 2 * F + i / N * 5 % F] = value }
    inp[2 * F + F + 4] = 20
    inp[F + 7] = -20
    let dout = gaussians(N * F, &rng)
    let inpd = doubles(inp)

    var out = [Float](repeating: .nan, count: N * F)
    gatedForward(out: &out, inp: inp, activation: activation, N: N, F: F, parallel: parallel)
    let reference = gatedReference(inpd, activation, N: N, F: F)
    expectClose(out, reference, "\(activation) out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dinp = grads[0]
        gatedBackward(dinp: &dinp, inp: inp, dout: dout, activation: activation, N: N, F: F, parallel: parallel)
        return [dinp]
    }
    let grads = backward([[Float](repeating: 0, count: N * 2 * F)])
    #expect(out.allSatisfy(\.isFinite) && grads[0].allSatisfy(\.isFinite), "\(activation) stays finite")
    expectClose(grads[0], numericGradient(at: inpd) { weightedSum(dout, gatedReference($0, activation, N: N, F: F)) },
                "\(activation) dinp")
    expectAccumulates(grads, backward)

    // Nearly dead gates keep their tiny values and gradients accurate relative to their own size (GELU's true
    // values underflow Float below about −9; SiLU's at −20 are still ~4e-8).
    for n in 0..<N {
        for i in 0..<F {
            let g = inpd[n * 2 * F + i], up = inpd[n * 2 * F + F + i], dy = Double(dout[n * F + i])
            guard g <= -4, activation == .swiGLU || g > -9 else { continue }
            expectClose([out[n * F + i]], [reference[n * F + i]], absolute: 0, "\(activation)(\(g)) · up")
            let slope = numericGradient(at: [g]) { gateReference($0[0], activation) }[0]
            expectClose([grads[0][n * 2 * F + i]], [dy * up * slope], absolute: 0, "\(activation)'(\(g)) · up · dout")
        }
    }
}

@Test func reluSquaredMatchesReferenceAndAccumulates() {
    var rng = SplitMix64(seed: 106)
    // Kept at least 1e-3 away from the kink at 0, where the central difference would straddle it.
    let x: [Float] = ([-20, -3, -0.01, 0.002, 0.5, 3, 20] + gaussians(30, &rng, std: 2)).map {
        abs($0) < 1e-3 ? ($0 < 0 ? -0.01 : 0.01) : $0
    }
    let dout = gaussians(x.count, &rng)
    func reference(_ x: [Double]) -> [Double] { x.map { max($0, 0) * max($0, 0) } }

    var out = [Float](repeating: .nan, count: x.count)
    reluSquaredForward(out: &out, inp: x, N: x.count, parallel: parallel)
    expectClose(out, reference(doubles(x)), "relu² out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dx = grads[0]
        reluSquaredBackward(dinp: &dx, inp: x, dout: dout, N: x.count, parallel: parallel)
        return [dx]
    }
    let grads = backward([[Float](repeating: 0, count: x.count)])
    expectClose(grads[0], numericGradient(at: doubles(x)) { weightedSum(dout, reference($0)) }, "relu² dinp")
    expectAccumulates(grads, backward)
}

// MARK: - Softcap

/// cap · tanh(x / cap) on columns < V of rows of stride Vp; the padding passes through.
private func softcapReference(_ x: [Double], cap: Double, N: Int, V: Int, Vp: Int) -> [Double] {
    var y = x
    for n in 0..<N { for i in 0..<V { y[n * Vp + i] = cap * tanh(x[n * Vp + i] / cap) } }
    return y
}

@Test(arguments: [Float(15), 30])
func softcapMatchesReferenceAndBackward(cap: Float) {
    let N = 3, V = 21, Vp = 24
    var rng = SplitMix64(seed: 107)
    // Logits from −100 to 100 (deep in both saturated tails for either cap), plus small and ordinary ones.
    var x = (0..<N * Vp).map { Float(-100 + 200 * Double($0) / Double(N * Vp - 1)) }
    let extra: [Float] = [0, 1e-4, -3e-3, 0.05, -0.7, 2.5, -9, 14.9, 29, -31]
    for (i, value) in extra.enumerated() { x[(i % N) * Vp + (i * 5 + 1) % V] = value }
    for i in paddingIndices(N: N, width: V, stride: Vp) { x[i] = 1000 }  // would be capped if touched
    let g = gaussians(N * Vp, &rng)
    let padding = paddingIndices(N: N, width: V, stride: Vp)
    let xd = doubles(x), capd = Double(cap)

    var y = x
    softcapForward(&y, cap: cap, N: N, V: V, Vp: Vp, parallel: parallel)
    expectClose(y, softcapReference(xd, cap: capd, N: N, V: V, Vp: Vp), "softcap \(cap) out")
    expectUntouched(y, x, at: padding, "softcap \(cap) out")
    #expect((0..<N * Vp).allSatisfy { padding.contains($0) || abs(y[$0]) <= cap }, "capped logits stay within ±cap")

    // The gradient of Σ g ⊙ softcap(x) with respect to x (g itself in the padding, which passes through).
    var dx = g
    softcapBackward(&dx, capped: y, cap: cap, N: N, V: V, Vp: Vp, parallel: parallel)
    expectClose(dx, numericGradient(at: xd) { weightedSum(g, softcapReference($0, cap: capd, N: N, V: V, Vp: Vp)) },
                "softcap \(cap) backward")
    expectUntouched(dx, g, at: padding, "softcap \(cap) backward")
}

/// Logits that are all small (as a freshly initialised model's are): the capped values must be accurate relative
/// to their own size, 1e-4 of the largest, as every other check here is.
@Test(arguments: [Float(15), 30])
func softcapKeepsSmallLogitsAccurate(cap: Float) {
    let x: [Float] = [1e-3, -7e-4, 5e-4, -3e-4, 2e-4, -1e-4, 5e-5, -2e-5, 1e-5, -1e-6, 0]
    var y = x
    softcapForward(&y, cap: cap, N: 1, V: x.count, Vp: x.count, parallel: parallel)
    expectClose(y, softcapReference(doubles(x), cap: Double(cap), N: 1, V: x.count, Vp: x.count), absolute: 0,
                "softcap \(cap) of logits below 1e-3")
}

// MARK: - Scaled embedding

@Test(arguments: [false, true])
func scaledEncoderMatchesReferenceAndAccumulates(withPositions: Bool) {
    let N = 7, C = 6, Vp = 9, maxT = 8
    let scale = Double(C).squareRoot()  // Gemma's √C
    var rng = SplitMix64(seed: 108)
    let tokens: [Int32] = [3, 1, 3, 8, 0, 3, 1]  // token 3 three times, 1 twice: their rows sum the gradients
    let positions: [Int32] = [5, 0, 2, 7, 1, 5, 3]
    let wte = gaussians(Vp * C, &rng), wpe = gaussians(maxT * C, &rng), dout = gaussians(N * C, &rng)
    func reference(wte: [Double], wpe: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: N * C)
        for n in 0..<N {
            for c in 0..<C {
                out[n * C + c] = scale * wte[Int(tokens[n]) * C + c]
                    + (withPositions ? wpe[Int(positions[n]) * C + c] : 0)
            }
        }
        return out
    }

    var out = [Float](repeating: .nan, count: N * C)
    if withPositions {
        encoderForward(out: &out, inp: tokens, positions: positions, wte: wte, wpe: wpe, scale: Float(scale), N: N,
                       C: C, parallel: parallel)
    } else {
        encoderForward(out: &out, inp: tokens, positions: positions, wte: wte, wpe: nil, scale: Float(scale), N: N,
                       C: C, parallel: parallel)
    }
    expectClose(out, reference(wte: doubles(wte), wpe: doubles(wpe)), "scaled encoder out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dwte = grads[0]
        guard withPositions else {
            encoderBackward(dwte: &dwte, dwpe: nil, dout: dout, inp: tokens, positions: positions,
                            scale: Float(scale), N: N, C: C, parallel: parallel)
            return [dwte]
        }
        var dwpe = grads[1]
        encoderBackward(dwte: &dwte, dwpe: &dwpe, dout: dout, inp: tokens, positions: positions, scale: Float(scale),
                        N: N, C: C, parallel: parallel)
        return [dwte, dwpe]
    }
    let grads = backward([[Float](repeating: 0, count: Vp * C)]
                         + (withPositions ? [[Float](repeating: 0, count: maxT * C)] : []))
    expectClose(grads[0], numericGradient(at: doubles(wte)) {
        weightedSum(dout, reference(wte: $0, wpe: doubles(wpe)))
    }, "scaled encoder dwte")
    if withPositions {
        expectClose(grads[1], numericGradient(at: doubles(wpe)) {
            weightedSum(dout, reference(wte: doubles(wte), wpe: $0))
        }, "scaled encoder dwpe")
    }
    expectAccumulates(grads, backward)
}

/// A sliding-window layer's cache is a ring of exactly its window: prefills longer than the ring, single
/// decode steps and chunks that wrap around it all give full attention's result, and the ring ends up holding the
/// last `window` positions.
@Test(arguments: [1, 3])
func ringCacheOfTheWindowMatchesFullAttention(threads: Int) {
    let c = GroupedAttentionCase(name: "ring", B: 1, T: 13, H: 4, Hkv: 2, d: 6, window: 4, scale: nil)
    let (T, H, Hkv, d, W, capacity) = (c.T, c.H, c.Hkv, c.d, c.width, 4)
    var rng = SplitMix64(seed: 105)
    let x = gaussians(T * W, &rng, std: 1.2)
    var kCache = [Float](repeating: .nan, count: Hkv * capacity * d), vCache = kCache
    var scores = [Float](repeating: .nan, count: H * capacity)
    var out = [Float](repeating: .nan, count: T * H * d)
    var t0 = 0
    for n in [6, 1, 1, 3, 2] {  // 6 > the ring's 4; later chunks wrap around it
        var chunkOut = [Float](repeating: .nan, count: n * H * d)
        attentionCachedForward(out: &chunkOut, kCache: &kCache, vCache: &vCache, scores: &scores,
                               qkv: Array(x[t0 * W..<(t0 + n) * W]), t0: t0, n: n, shape: c.shape, capacity: capacity,
                               parallel: ParallelFor(threads: threads))
        out.replaceSubrange(t0 * H * d..<(t0 + n) * H * d, with: chunkOut)
        t0 += n
    }
    expectClose(out, attentionReference(doubles(x), c).out, "ring-cached attention out (\(threads) threads)")
    for t in T - capacity..<T {
        for g in 0..<Hkv {
            let row = Array(kCache[(g * capacity + t % capacity) * d..<(g * capacity + t % capacity + 1) * d])
            #expect(row == Array(x[t * W + (H + g) * d..<t * W + (H + g + 1) * d]), "key of position \(t), head \(g)")
        }
    }
}
