// Rotary position embedding (RoPE) in Hugging Face's convention: head dimension i is paired with i + d/2
// (`rotate_half`), and pair i at position t turns by the angle t·θ^(−2i/d). It rotates queries and keys in
// place; a rotation's transpose is the rotation the other way, which is the whole backward pass.

/// cos and sin of every (position, pair) angle for one θ: two (maxT, d/2) tables, computed once in Double.
public struct RotaryTable: Sendable {
    public let theta: Double
    public let headSize: Int
    public let maxSeqLen: Int
    let cosines: [Float]  // (maxT, d/2)
    let sines: [Float]

    public init(theta: Double, headSize d: Int, maxSeqLen: Int) {
        precondition(d > 0 && d % 2 == 0, "RoPE needs an even head size, not \(d)")
        self.theta = theta
        headSize = d
        self.maxSeqLen = maxSeqLen
        var c = [Float](), s = [Float]()
        c.reserveCapacity(maxSeqLen * d / 2)
        s.reserveCapacity(maxSeqLen * d / 2)
        for t in 0..<maxSeqLen {
            for i in 0..<d / 2 {
                let angle = Double(t) * pow(theta, -Double(2 * i) / Double(d))
                c.append(Float(cos(angle)))
                s.append(Float(sin(angle)))
            }
        }
        cosines = c
        sines = s
    }
}

/// Rotates, in place, `heads` consecutive heads of size d at the start of each of N rows (row stride `stride`),
/// row n at position positions[n]: (x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin) for x₁ = x[i], x₂ = x[i + d/2].
/// With `inverse`, turns the other way: the backward pass, applied to the gradient.
func rotaryForward(_ x: FloatPointer, positions: UnsafePointer<Int32>, table: RotaryTable, N: Int, heads: Int,
                   stride: Int, inverse: Bool = false, parallel: ParallelFor) {
    let d = table.headSize, half = d / 2
    table.cosines.withUnsafeBufferPointer { cosTable in
        table.sines.withUnsafeBufferPointer { sinTable in
            let cosBase = cosTable.baseAddress!, sinBase = sinTable.baseAddress!
            parallel(N) { rows in
                for n in rows {
                    let t = Int(positions[n])
                    let cs = cosBase + t * half, sn = sinBase + t * half
                    for h in 0..<heads {
                        let x1 = x + n * stride + h * d, x2 = x1 + half
                        for i in 0..<half {
                            let a = x1[i], b = x2[i], c = cs[i], s = inverse ? -sn[i] : sn[i]
                            x1[i] = a * c - b * s
                            x2[i] = b * c + a * s
                        }
                    }
                }
            }
        }
    }
}

/// The backward pass of `rotaryForward`: rotates the gradient back, in place.
func rotaryBackward(_ dx: FloatPointer, positions: UnsafePointer<Int32>, table: RotaryTable, N: Int, heads: Int,
                    stride: Int, parallel: ParallelFor) {
    rotaryForward(dx, positions: positions, table: table, N: N, heads: heads, stride: stride, inverse: true,
                  parallel: parallel)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
