// Gradient checks for the kernels and the model. A wrong term in a backward pass neither crashes nor stops the
// loss from falling, so each backward kernel is checked against central finite differences of an independent
// Double reference forward (written here from the math, not by calling the Float kernels), each forward kernel
// against that same reference, AdamW against a naive Double torch.optim.AdamW, and the whole model's backward
// against finite differences of its own loss.

import Foundation
import Testing
@testable import LLM

// MARK: - Helpers

/// The kernels under test run split over 3 threads, so the chunk boundaries get exercised too.
private let parallel = ParallelFor(threads: 3)

// MARK: - Double references, from the math

private func encoderReference(tokens: [Int32], wte: [Double], wpe: [Double], T: Int, C: Int) -> [Double] {
    var out = [Double](repeating: 0, count: tokens.count * C)
    for (bt, token) in tokens.enumerated() {
        for c in 0..<C { out[bt * C + c] = wte[Int(token) * C + c] + wpe[(bt % T) * C + c] }
    }
    return out
}

private func layerNormReference(_ x: [Double], weight: [Double], bias: [Double], N: Int, C: Int)
    -> (out: [Double], mean: [Double], rstd: [Double]) {
    var out = x, means = [Double](), rstds = [Double]()
    for n in 0..<N {
        let row = x[n * C..<(n + 1) * C]
        let mean = row.reduce(0, +) / Double(C)
        let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(C)
        let rstd = 1 / (variance + 1e-5).squareRoot()
        for c in 0..<C { out[n * C + c] = (x[n * C + c] - mean) * rstd * weight[c] + bias[c] }
        means.append(mean)
        rstds.append(rstd)
    }
    return (out, means, rstds)
}

private func matmulReference(_ x: [Double], weight: [Double], bias: [Double]?, N: Int, C: Int, OC: Int) -> [Double] {
    var out = [Double](repeating: 0, count: N * OC)
    for n in 0..<N {
        for o in 0..<OC {
            var sum = bias?[o] ?? 0
            for c in 0..<C { sum += x[n * C + c] * weight[o * C + c] }
            out[n * OC + o] = sum
        }
    }
    return out
}

/// Causal multi-head attention over x = (B,T,3C) laid out [q | k | v]; preatt and att are (B,NH,T,T) with
/// zeros above the diagonal.
private func attentionReference(_ x: [Double], B: Int, T: Int, C: Int, NH: Int)
    -> (out: [Double], preatt: [Double], att: [Double]) {
    let hs = C / NH
    var out = [Double](repeating: 0, count: B * T * C)
    var preatt = [Double](repeating: 0, count: B * NH * T * T), att = preatt
    /// Element i of head h of part 0 (q), 1 (k) or 2 (v) at batch b, position t.
    func at(_ b: Int, _ t: Int, _ part: Int, _ h: Int, _ i: Int) -> Double {
        x[(b * T + t) * 3 * C + part * C + h * hs + i]
    }
    for b in 0..<B {
        for h in 0..<NH {
            for t in 0..<T {
                let row = ((b * NH + h) * T + t) * T
                let scores = (0...t).map { t2 in
                    (0..<hs).reduce(0) { $0 + at(b, t, 0, h, $1) * at(b, t2, 1, h, $1) } / Double(hs).squareRoot()
                }
                let top = scores.max()!
                let e = scores.map { exp($0 - top) }
                let z = e.reduce(0, +)
                for t2 in 0...t {
                    preatt[row + t2] = scores[t2]
                    att[row + t2] = e[t2] / z
                    for i in 0..<hs { out[(b * T + t) * C + h * hs + i] += att[row + t2] * at(b, t2, 2, h, i) }
                }
            }
        }
    }
    return (out, preatt, att)
}

/// GELU's tanh form. For u < 0, 1 + tanh(u) is written 2e^{2u} / (1 + e^{2u}): the plain form cancels to
/// exactly 0 even in Double once x ≲ -5, which would hide the tiny values the Float kernel is meant to keep.
private func geluReference(_ x: Double) -> Double {
    let u = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
    if u >= 0 { return 0.5 * x * (1 + tanh(u)) }
    let e = exp(2 * u)
    return x * e / (1 + e)
}

/// Softmax over the first V of each row of Vp logits (padded columns get probability 0) and
/// losses[n] = -log probs[n, targets[n]].
private func crossEntropyReference(_ logits: [Double], targets: [Int32], V: Int, Vp: Int)
    -> (probs: [Double], losses: [Double]) {
    var probs = [Double](repeating: 0, count: logits.count), losses = [Double]()
    for (n, target) in targets.enumerated() {
        let row = logits[n * Vp..<n * Vp + V]
        let top = row.max()!
        let z = row.reduce(0) { $0 + exp($1 - top) }
        for i in 0..<V { probs[n * Vp + i] = exp(logits[n * Vp + i] - top) / z }
        losses.append(-log(probs[n * Vp + Int(target)]))
    }
    return (probs, losses)
}

/// AdamW as torch.optim.AdamW writes it, in Double; `step` counts from 1.
private func adamWReference(params p: inout [Double], m: inout [Double], v: inout [Double], grads: [Double],
                            lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double, step: Int) {
    let t = Double(step)
    for i in p.indices {
        p[i] -= lr * weightDecay * p[i]
        m[i] = beta1 * m[i] + (1 - beta1) * grads[i]
        v[i] = beta2 * v[i] + (1 - beta2) * grads[i] * grads[i]
        p[i] -= lr / (1 - pow(beta1, t)) * m[i] / (v[i].squareRoot() / (1 - pow(beta2, t)).squareRoot() + eps)
    }
}

// MARK: - Kernels

@Test func encoderMatchesReferenceAndAccumulates() {
    let B = 2, T = 3, C = 5, Vp = 8, maxT = 4
    var rng = SplitMix64(seed: 1)
    let tokens: [Int32] = [2, 4, 2, 0, 2, 5]  // token 2 three times: its wte row must sum three gradients
    let wte = gaussians(Vp * C, &rng), wpe = gaussians(maxT * C, &rng), dout = gaussians(B * T * C, &rng)

    var out = [Float](repeating: 0, count: B * T * C)
    let positions = (0..<B * T).map { Int32($0 % T) }
    encoderForward(out: &out, inp: tokens, positions: positions, wte: wte, wpe: wpe, N: B * T, C: C, parallel: parallel)
    expectClose(out, encoderReference(tokens: tokens, wte: doubles(wte), wpe: doubles(wpe), T: T, C: C), "encoder out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dwte = grads[0], dwpe = grads[1]
        encoderBackward(dwte: &dwte, dwpe: &dwpe, dout: dout, inp: tokens, positions: positions, N: B * T, C: C,
                        parallel: parallel)
        return [dwte, dwpe]
    }
    let grads = backward([[Float](repeating: 0, count: Vp * C), [Float](repeating: 0, count: maxT * C)])
    expectClose(grads[0], numericGradient(at: doubles(wte)) {
        weightedSum(dout, encoderReference(tokens: tokens, wte: $0, wpe: doubles(wpe), T: T, C: C))
    }, "dwte")
    expectClose(grads[1], numericGradient(at: doubles(wpe)) {
        weightedSum(dout, encoderReference(tokens: tokens, wte: doubles(wte), wpe: $0, T: T, C: C))
    }, "dwpe")
    expectAccumulates(grads, backward)
}

@Test func layerNormMatchesReferenceAndAccumulates() {
    let N = 4, C = 7
    var rng = SplitMix64(seed: 2)
    let x = gaussians(N * C, &rng, std: 2, mean: 0.5), weight = gaussians(C, &rng, std: 0.3, mean: 1)
    let bias = gaussians(C, &rng, std: 0.5), dout = gaussians(N * C, &rng)
    let (xd, wd, bd) = (doubles(x), doubles(weight), doubles(bias))

    var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
    layerNormForward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: weight, bias: bias, N: N, C: C,
                     parallel: parallel)
    let reference = layerNormReference(xd, weight: wd, bias: bd, N: N, C: C)
    expectClose(out, reference.out, "layernorm out")
    expectClose(mean, reference.mean, "layernorm mean")
    expectClose(rstd, reference.rstd, "layernorm rstd")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dx = grads[0], dweight = grads[1], dbias = grads[2]
        layerNormBackward(dinp: &dx, dweight: &dweight, dbias: &dbias, dout: dout, inp: x, weight: weight, mean: mean,
                          rstd: rstd, N: N, C: C, parallel: parallel)
        return [dx, dweight, dbias]
    }
    let grads = backward([[Float](repeating: 0, count: N * C), [Float](repeating: 0, count: C),
                          [Float](repeating: 0, count: C)])
    expectClose(grads[0], numericGradient(at: xd) {
        weightedSum(dout, layerNormReference($0, weight: wd, bias: bd, N: N, C: C).out)
    }, "layernorm dinp")
    expectClose(grads[1], numericGradient(at: wd) {
        weightedSum(dout, layerNormReference(xd, weight: $0, bias: bd, N: N, C: C).out)
    }, "layernorm dweight")
    expectClose(grads[2], numericGradient(at: bd) {
        weightedSum(dout, layerNormReference(xd, weight: wd, bias: $0, N: N, C: C).out)
    }, "layernorm dbias")
    expectAccumulates(grads, backward)
}

/// C = 19 is one 16-wide SIMD block plus a scalar tail; C = 37 is two blocks plus a tail.
@Test(arguments: [(N: 5, C: 19, OC: 7), (N: 3, C: 37, OC: 4)], [true, false])
func matmulMatchesReferenceAndAccumulates(shape: (N: Int, C: Int, OC: Int), withBias: Bool) {
    let (N, C, OC) = shape
    var rng = SplitMix64(seed: 3)
    let x = gaussians(N * C, &rng), weight = gaussians(OC * C, &rng, std: 0.5), bias = gaussians(OC, &rng)
    let dout = gaussians(N * OC, &rng)
    let (xd, wd) = (doubles(x), doubles(weight))
    let bd: [Double]? = withBias ? doubles(bias) : nil

    var out = [Float](repeating: 0, count: N * OC)
    bias.withUnsafeBufferPointer { b in
        matmulForward(out: &out, inp: x, weight: weight, bias: withBias ? b.baseAddress : nil, N: N, C: C, OC: OC,
                      parallel: parallel, scratch: MatmulScratch(threads: 3))
    }
    expectClose(out, matmulReference(xd, weight: wd, bias: bd, N: N, C: C, OC: OC), "matmul out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dx = grads[0], dweight = grads[1], dbias = grads[2]
        dbias.withUnsafeMutableBufferPointer { db in
            matmulBackward(dinp: &dx, dweight: &dweight, dbias: withBias ? db.baseAddress : nil, dout: dout, inp: x,
                           weight: weight, N: N, C: C, OC: OC, parallel: parallel, scratch: MatmulScratch(threads: 3))
        }
        return [dx, dweight, dbias]
    }
    let grads = backward([[Float](repeating: 0, count: N * C), [Float](repeating: 0, count: OC * C),
                          [Float](repeating: 0, count: OC)])
    expectClose(grads[0], numericGradient(at: xd) {
        weightedSum(dout, matmulReference($0, weight: wd, bias: bd, N: N, C: C, OC: OC))
    }, "matmul dinp")
    expectClose(grads[1], numericGradient(at: wd) {
        weightedSum(dout, matmulReference(xd, weight: $0, bias: bd, N: N, C: C, OC: OC))
    }, "matmul dweight")
    if let bd {
        expectClose(grads[2], numericGradient(at: bd) {
            weightedSum(dout, matmulReference(xd, weight: wd, bias: $0, N: N, C: C, OC: OC))
        }, "matmul dbias")
    } else {
        #expect(grads[2].allSatisfy { $0 == 0 }, "without a bias, dbias must not be written")
    }
    expectAccumulates(grads, backward)
}

/// The register-tiled paths on shapes that reach every edge: rows not a multiple of the 6-row tile, more than
/// one 256-deep k block, more than one 512-column packing block, and a last partial 32-column panel; checked
/// against the products in Double (finite differences would be too slow here in a debug build).
@Test(arguments: [(N: 13, C: 300, OC: 70), (N: 7, C: 40, OC: 600), (N: 6, C: 64, OC: 32)])
func blockedMatmulMatchesNaiveProducts(shape: (N: Int, C: Int, OC: Int)) {
    let (N, C, OC) = shape
    var rng = SplitMix64(seed: 17)
    let x = gaussians(N * C, &rng), weight = gaussians(OC * C, &rng, std: 0.5), bias = gaussians(OC, &rng)
    let dout = gaussians(N * OC, &rng)
    for threads in [1, 3] {
        let parallel = ParallelFor(threads: threads)
        var out = [Float](repeating: .nan, count: N * OC)
        bias.withUnsafeBufferPointer { b in
            matmulForward(out: &out, inp: x, weight: weight, bias: b.baseAddress, N: N, C: C, OC: OC,
                          parallel: parallel, scratch: MatmulScratch(threads: 2))
        }
        expectClose(out, matmulReference(doubles(x), weight: doubles(weight), bias: doubles(bias), N: N, C: C, OC: OC),
                    "blocked matmul out, \(threads) threads")
        var dx = [Float](repeating: 1, count: N * C), dw = [Float](repeating: 1, count: OC * C)
        var db = [Float](repeating: 1, count: OC)
        matmulBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: weight, N: N, C: C, OC: OC,
                       parallel: parallel, scratch: MatmulScratch(threads: 2))
        // Reference: 1 (the accumulated starting value) + dout · W, 1 + doutᵀ · x, 1 + column sums.
        var rdx = [Double](repeating: 1, count: N * C), rdw = [Double](repeating: 1, count: OC * C)
        var rdb = [Double](repeating: 1, count: OC)
        for n in 0..<N {
            for o in 0..<OC {
                let g = Double(dout[n * OC + o])
                rdb[o] += g
                for c in 0..<C {
                    rdx[n * C + c] += g * Double(weight[o * C + c])
                    rdw[o * C + c] += g * Double(x[n * C + c])
                }
            }
        }
        expectClose(dx, rdx, "blocked matmul dinp, \(threads) threads")
        expectClose(dw, rdw, "blocked matmul dweight, \(threads) threads")
        expectClose(db, rdb, "blocked matmul dbias, \(threads) threads")
    }
}

private enum AttentionCase {
    static let B = 2, T = 5, C = 12, NH = 3
}

/// Runs attentionForward on x = (B,T,3C); att starts as NaN, so entries above the diagonal must be written.
private func attentionKernel(_ x: [Float]) -> (out: [Float], preatt: [Float], att: [Float]) {
    let (B, T, C, NH) = (AttentionCase.B, AttentionCase.T, AttentionCase.C, AttentionCase.NH)
    var out = [Float](repeating: 0, count: B * T * C), preatt = [Float](repeating: 0, count: B * NH * T * T)
    var att = [Float](repeating: .nan, count: B * NH * T * T)
    attentionForward(out: &out, preatt: &preatt, att: &att, inp: x, B: B, T: T,
                     shape: AttentionShape(heads: NH, kvHeads: NH, headSize: C / NH), parallel: parallel)
    return (out, preatt, att)
}

/// attentionBackward into dinp; its datt and dpreatt scratch must start at zero on every call.
private func attentionBackwardKernel(dinp: [Float], dout: [Float], x: [Float], att: [Float]) -> [Float] {
    let (B, T, C, NH) = (AttentionCase.B, AttentionCase.T, AttentionCase.C, AttentionCase.NH)
    var dinp = dinp, datt = [Float](repeating: 0, count: B * NH * T * T), dpreatt = datt
    attentionBackward(dinp: &dinp, dpreatt: &dpreatt, datt: &datt, dout: dout, inp: x, att: att, B: B, T: T,
                      shape: AttentionShape(heads: NH, kvHeads: NH, headSize: C / NH), parallel: parallel)
    return dinp
}

@Test func attentionMatchesReferenceAndAccumulates() {
    let (B, T, C, NH) = (AttentionCase.B, AttentionCase.T, AttentionCase.C, AttentionCase.NH)
    var rng = SplitMix64(seed: 4)
    let x = gaussians(B * T * 3 * C, &rng), dout = gaussians(B * T * C, &rng)

    let kernel = attentionKernel(x)
    let reference = attentionReference(doubles(x), B: B, T: T, C: C, NH: NH)
    expectClose(kernel.out, reference.out, "attention out")
    expectClose(kernel.preatt, reference.preatt, "attention preatt")
    expectClose(kernel.att, reference.att, "attention att")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        [attentionBackwardKernel(dinp: grads[0], dout: dout, x: x, att: kernel.att)]
    }
    let grads = backward([[Float](repeating: 0, count: B * T * 3 * C)])
    expectClose(grads[0], numericGradient(at: doubles(x)) {
        weightedSum(dout, attentionReference($0, B: B, T: T, C: C, NH: NH).out)
    }, "attention dinp")
    expectAccumulates(grads, backward)
}

@Test func attentionIsCausal() {
    let (B, T, C) = (AttentionCase.B, AttentionCase.T, AttentionCase.C)
    let lastSeen = 2  // positions 0...2 are the past; 3 and 4 the future
    var rng = SplitMix64(seed: 5)
    let x = gaussians(B * T * 3 * C, &rng)
    func position(_ i: Int, width: Int) -> Int { i / width % T }

    // Changing every q, k and v of the future leaves the past's outputs bit for bit the same.
    var future = x
    for i in future.indices where position(i, width: 3 * C) > lastSeen { future[i] += Float(rng.nextGaussian()) }
    let before = attentionKernel(x).out, after = attentionKernel(future).out
    #expect(before.indices.allSatisfy { position($0, width: C) > lastSeen || before[$0] == after[$0] })
    #expect(before.indices.contains { position($0, width: C) > lastSeen && before[$0] != after[$0] })

    // And a gradient arriving only at the past reaches nothing in the future.
    var dout = gaussians(B * T * C, &rng)
    for i in dout.indices where position(i, width: C) > lastSeen { dout[i] = 0 }
    let dinp = attentionBackwardKernel(dinp: [Float](repeating: 0, count: B * T * 3 * C), dout: dout, x: x,
                                       att: attentionKernel(x).att)
    #expect(dinp.indices.allSatisfy { position($0, width: 3 * C) <= lastSeen || dinp[$0] == 0 })
}

@Test func geluMatchesReferenceAndAccumulates() {
    var rng = SplitMix64(seed: 6)
    // Nearly dead units (-8, -5), the bend, saturated ones, extremes where exp(-2u) would overflow a naive
    // sigmoid (±12, ±60, ±1000), then ordinary values.
    let x: [Float] = [-1000, -60, -12, -8, -5, -3, -1.5, -0.75, -0.25, 0, 0.3, 1, 2.5, 5, 8, 12, 60, 1000]
        + gaussians(20, &rng, std: 2)
    let dout = gaussians(x.count, &rng)

    var out = [Float](repeating: 0, count: x.count)
    geluForward(out: &out, inp: x, N: x.count, parallel: parallel)
    let reference = x.map { geluReference(Double($0)) }
    expectClose(out, reference, "gelu out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dx = grads[0]
        geluBackward(dinp: &dx, inp: x, dout: dout, N: x.count, parallel: parallel)
        return [dx]
    }
    let grads = backward([[Float](repeating: 0, count: x.count)])
    #expect(out.allSatisfy(\.isFinite) && grads[0].allSatisfy(\.isFinite), "GELU must stay finite at extreme inputs")
    // GELU is elementwise, so ∂(Σ dout ⊙ gelu(x))/∂xᵢ = doutᵢ · gelu'(xᵢ), each from a one-variable
    // difference: exact to ~1e-9 relative even where gelu' is 1e-20, which a difference of the whole sum
    // could not be.
    let dx = x.indices.map { i in Double(dout[i]) * numericGradient(at: [Double(x[i])]) { geluReference($0[0]) }[0] }
    expectClose(grads[0], dx, "gelu dinp")

    // Nearly dead units must keep their tiny values and gradients accurate relative to their own size.
    // (Float's exp(-2u) carries ~|2u|·1e-7 ≈ 5e-6 relative error at x = -8, hence 1e-4.)
    // (Below about -9 the true values underflow Float altogether.)
    for i in x.indices where x[i] <= -4 && x[i] > -9 {
        expectClose([out[i]], [reference[i]], absolute: 0, "gelu(\(x[i]))")
        expectClose([grads[0][i]], [dx[i]], absolute: 0, "gelu'(\(x[i])) · dout")
    }
    expectAccumulates(grads, backward)
}

@Test func residualMatchesReferenceAndAccumulates() {
    let N = 23
    var rng = SplitMix64(seed: 7)
    let a = gaussians(N, &rng), b = gaussians(N, &rng), dout = gaussians(N, &rng)

    var out = [Float](repeating: 0, count: N)
    residualForward(out: &out, inp1: a, inp2: b, N: N, parallel: parallel)
    expectClose(out, zip(doubles(a), doubles(b)).map(+), "residual out")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var da = grads[0], db = grads[1]
        residualBackward(dinp1: &da, dinp2: &db, dout: dout, N: N, parallel: parallel)
        return [da, db]
    }
    let grads = backward([[Float](repeating: 0, count: N), [Float](repeating: 0, count: N)])
    expectClose(grads[0], numericGradient(at: doubles(a)) { weightedSum(dout, zip($0, doubles(b)).map(+)) },
                "residual dinp1")
    expectClose(grads[1], numericGradient(at: doubles(b)) { weightedSum(dout, zip(doubles(a), $0).map(+)) },
                "residual dinp2")
    expectAccumulates(grads, backward)
}

@Test func softmaxCrossEntropyMatchesReferenceAndAccumulates() {
    let N = 4, V = 11, Vp = 16
    var rng = SplitMix64(seed: 8)
    var logits = gaussians(N * Vp, &rng, std: 2)
    // Huge padded logits: if any leaked into the max or the sum, every probability would be wrong.
    for n in 0..<N { for i in V..<Vp { logits[n * Vp + i] = 50 } }
    let targets: [Int32] = [3, 0, 10, 3]
    let dlosses = gaussians(N, &rng)

    var probs = [Float](repeating: .nan, count: N * Vp), losses = [Float](repeating: 0, count: N)
    softmaxForward(probs: &probs, logits: logits, N: N, V: V, Vp: Vp, parallel: parallel)
    crossEntropyForward(losses: &losses, probs: probs, targets: targets, N: N, Vp: Vp)
    let reference = crossEntropyReference(doubles(logits), targets: targets, V: V, Vp: Vp)
    expectClose(probs, reference.probs, "probs")
    expectClose(losses, reference.losses, "losses")
    #expect((0..<N * Vp).allSatisfy { $0 % Vp < V || probs[$0] == 0 }, "padded columns get probability exactly 0")

    let backward = { (grads: [[Float]]) -> [[Float]] in
        var dlogits = grads[0]
        crossEntropySoftmaxBackward(dlogits: &dlogits, dlosses: dlosses, probs: probs, targets: targets, N: N, V: V,
                                    Vp: Vp, parallel: parallel)
        return [dlogits]
    }
    let grads = backward([[Float](repeating: 0, count: N * Vp)])
    expectClose(grads[0], numericGradient(at: doubles(logits)) {
        weightedSum(dlosses, crossEntropyReference($0, targets: targets, V: V, Vp: Vp).losses)
    }, "dlogits")
    #expect((0..<N * Vp).allSatisfy { $0 % Vp < V || grads[0][$0] == 0 }, "padded columns get gradient exactly 0")
    expectAccumulates(grads, backward)
}

/// Several steps of adamWUpdate against the Double reference, from the same start and the same gradients.
/// Parameters near 1 move by ~lr per step; Float keeps them to ~1e-7 each step, so after 5 steps they agree
/// to ~1e-6, while a slip such as decaying after the update instead of before (lr²·wd ≈ 1e-5 per step) or a
/// missing bias correction (a whole step) lies far outside.
@Test(arguments: [(gradScale: Float(1), weightDecay: 0.0), (gradScale: 1, weightDecay: 0.1),
                   (gradScale: 0.37, weightDecay: 0.1)])
func adamWMatchesTorchFormula(setting: (gradScale: Float, weightDecay: Double)) {
    let n = 37, lr = 1e-2, beta1 = 0.9, beta2 = 0.95, eps = 1e-8
    var rng = SplitMix64(seed: 9)
    var params = gaussians(n, &rng, std: 0.5, mean: 1)
    var m = [Float](repeating: 0, count: n), v = m
    var (pd, md, vd) = (doubles(params), [Double](repeating: 0, count: n), [Double](repeating: 0, count: n))
    for step in 1...5 {
        let grads = gaussians(n, &rng)
        adamWUpdate(params: &params, grads: grads, m: &m, v: &v, n: n, gradScale: setting.gradScale, lr: lr,
                    beta1: beta1, beta2: beta2, eps: eps, weightDecay: setting.weightDecay, step: step,
                    parallel: parallel)
        adamWReference(params: &pd, m: &md, v: &vd, grads: grads.map { Double($0 * setting.gradScale) }, lr: lr,
                       beta1: beta1, beta2: beta2, eps: eps, weightDecay: setting.weightDecay, step: step)
        expectClose(params, pd, relative: 0, absolute: 2e-6, "params after step \(step)")
        expectClose(m, md, relative: 1e-5, absolute: 0, "m after step \(step)")
        expectClose(v, vd, relative: 1e-5, absolute: 0, "v after step \(step)")
    }
}

// MARK: - The whole model

private let tinyBatch = 2, tinySeq = 4

/// A tiny GPT-2 (V = 11 padded to 128, so wte has 117 padded rows) whose every real parameter is pushed off
/// GPT-2's init, so that biases (init 0) and LayerNorm weights (init 1) are generic too; and a seeded batch.
private func tinyModel(threads: Int) throws -> (model: Transformer, inputs: [Int32], targets: [Int32]) {
    let config = try ModelConfig.gpt2(maxSeqLen: 8, vocabSize: 11, numLayers: 2, numHeads: 2, channels: 8)
    let weights = ModelWeights.randomGPT2(config: config, seed: 10)
    var rng = SplitMix64(seed: 11)
    let wte = weights.layout.range(.wte)
    let paddedRows = wte.lowerBound + config.vocabSize * config.channels..<wte.upperBound
    for i in 0..<weights.layout.totalCount where !paddedRows.contains(i) {
        weights.arena[i] += Float(0.1 * rng.nextGaussian())
    }
    let tokens = (0..<2 * tinyBatch * tinySeq).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
    let model = try Transformer(weights: weights, batch: tinyBatch, seq: tinySeq, parallel: ParallelFor(threads: threads))
    return (model, Array(tokens[..<(tinyBatch * tinySeq)]), Array(tokens[(tinyBatch * tinySeq)...]))
}

/// Checks the backward pass against central differences of the model's own Float mean loss, for 3 entries of
/// each of the 16 tensors: the entry with the largest gradient in each third of the tensor's live part (wte's
/// real rows, wpe's first T rows), so both layers and many rows are covered, and every chosen gradient
/// (the smallest are ~2e-3) stands well above the differences' noise.
///
/// The loss (~2.4) is Float, so each evaluation carries ~1e-6 of rounding noise, which a difference over 2h
/// turns into ~1e-6 / 2h of gradient noise, while the curvature adds ~h²·f'''/6. Measured here, h = 1e-2 is
/// curvature-bound (errors up to 2e-4), h = 2e-3 noise-bound (up to 6e-5) and h = 5e-3 best (up to 4e-5).
/// The bound 1e-4 + 2e-3·|analytic| keeps an 8× margin on every entry, yet fails a gradient off by 5% on
/// the smallest entries or 0.3% on the largest, let alone a sign error or a missing path (such as the LM
/// head's share of the tied wte).
@Test func modelGradientsMatchFiniteDifferencesOfTheLoss() throws {
    let (model, inputs, targets) = try tinyModel(threads: 1)
    let weights = model.weights, layout = weights.layout, config = model.config
    func loss() throws -> Double { Double(try #require(try model.forward(inputs: inputs, targets: targets))) }

    _ = try loss()
    model.zeroGradients()
    try model.backward()
    let h: Float = 5e-3
    for tensor in layout.present {
        let analytic = model.gradient(tensor)
        let live = switch tensor {
        case .wte: config.vocabSize * config.channels
        case .wpe: tinySeq * config.channels
        default: analytic.count
        }
        for third in 0..<3 {
            let slice = live * third / 3..<live * (third + 1) / 3
            let i = slice.max { abs(analytic[$0]) < abs(analytic[$1]) }!
            let index = layout.offset(tensor) + i, saved = weights.arena[index]
            weights.arena[index] = saved + h
            let up = try loss()
            weights.arena[index] = saved - h
            let down = try loss()
            weights.arena[index] = saved
            let numeric = (up - down) / (Double(saved + h) - Double(saved - h))
            let error = abs(numeric - Double(analytic[i]))
            #expect(error <= 1e-4 + 2e-3 * abs(Double(analytic[i])),
                    "\(tensor.name)[\(i)]: backward \(analytic[i]), finite difference \(numeric)")
        }
    }
}

@Test func modelGivesNoGradientToPaddedOrUnseenRows() throws {
    let (model, inputs, targets) = try tinyModel(threads: 1)
    let config = model.config
    try model.forward(inputs: inputs, targets: targets)
    model.zeroGradients()
    try model.backward()
    let dwte = model.gradient(.wte), dwpe = model.gradient(.wpe)
    #expect(dwte[(config.vocabSize * config.channels)...].allSatisfy { $0 == 0 }, "padded wte rows")
    #expect(dwpe[(tinySeq * config.channels)...].allSatisfy { $0 == 0 }, "wpe rows past the sequence")
}

@Test func modelGradientsDoNotDependOnThreadCount() throws {
    func gradients(threads: Int) throws -> [[Float]] {
        let (model, inputs, targets) = try tinyModel(threads: threads)
        try model.forward(inputs: inputs, targets: targets)
        model.zeroGradients()
        try model.backward()
        return model.weights.layout.present.map(model.gradient)
    }
    let one = try gradients(threads: 1), three = try gradients(threads: 3)
    for (tensor, (a, b)) in zip(ParameterLayout(config: try tinyModel(threads: 1).model.config).present, zip(one, three)) {
        expectClose(b, doubles(a), relative: 1e-6, absolute: 0, "\(tensor.name) with 3 threads vs 1")
    }
}
