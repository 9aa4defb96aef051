// What the kernel gradient tests share: seeded inputs, central finite differences in Double, and the closeness
// and accumulation checks (KernelGradientTests.swift, ArchitectureKernelTests.swift).
import Testing
@testable import LLM

/// `count` seeded normal samples with the given mean and standard deviation.
func gaussians(_ count: Int, _ rng: inout SplitMix64, std: Double = 1, mean: Double = 0) -> [Float] {
    (0..<count).map { _ in Float(mean + std * rng.nextGaussian()) }
}

func doubles(_ x: [Float]) -> [Double] { x.map(Double.init) }

/// Σ g ⊙ y: its gradient with respect to y is g, so a backward kernel run with dout = g must return the gradient
/// of this scalar with respect to the forward's inputs.
func weightedSum(_ g: [Float], _ y: [Double]) -> Double {
    zip(g, y).reduce(0) { $0 + Double($1.0) * $1.1 }
}

/// Central differences (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h for every coordinate i of x, in Double.
func numericGradient(at x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    var gradient = [Double](repeating: 0, count: x.count)
    for i in x.indices {
        let saved = x[i]
        x[i] = saved + h
        let up = f(x)
        x[i] = saved - h
        let down = f(x)
        x[i] = saved
        gradient[i] = (up - down) / (2 * h)
    }
    return gradient
}

/// Checks max |actual − expected| ≤ relative · max|expected| + absolute. Unlike a plain `max` fold (for which
/// max(0, NaN) is 0), a NaN or infinite difference counts as an infinite error: several checks below fill the
/// kernel's output with NaN first, to prove that every entry gets written.
func expectClose(_ actual: [Float], _ expected: [Double], relative: Double = 1e-4, absolute: Double = 1e-6,
                         _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    let scale = expected.reduce(0) { max($0, abs($1)) }
    var error = 0.0, worst = 0
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let difference = abs(Double(a) - e)
        let d = difference.isFinite ? difference : .infinity
        if d > error { (error, worst) = (d, i) }
    }
    let bound = relative * scale + absolute
    let example = worst < min(actual.count, expected.count)
        ? " at [\(worst)]: \(actual[worst]) vs \(expected[worst])" : ""
    #expect(error <= bound, "\(what): max |Δ| \(error) > \(bound) (max |reference| \(scale))\(example)",
            sourceLocation: sourceLocation)
}

/// Backward kernels add into their gradient outputs: running `backward` again on its own result must double it.
/// `backward` takes the gradient buffers' starting contents and returns them after one call.
func expectAccumulates(_ once: [[Float]], _ backward: ([[Float]]) -> [[Float]],
                               sourceLocation: SourceLocation = #_sourceLocation) {
    for (i, (first, twice)) in zip(once, backward(once)).enumerated() {
        expectClose(twice, first.map { 2 * Double($0) }, relative: 1e-5, absolute: 0,
                    "gradient \(i) after two backward calls", sourceLocation: sourceLocation)
    }
}
