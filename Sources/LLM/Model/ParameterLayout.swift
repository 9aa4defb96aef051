// Where each parameter tensor lives inside the one parameter allocation, in llm.c's order.

/// The 16 parameter tensors of GPT-2, in the order llm.c's checkpoint stores them.
public enum ParameterTensor: Int, CaseIterable, Sendable {
    case wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb

    public var name: String { String(describing: self) }

    /// Per-layer tensors are stacked over L; the others are shared.
    public var isPerLayer: Bool { self != .wte && self != .wpe && self != .lnfw && self != .lnfb }
}

/// Shapes and offsets of the parameter tensors within one flat Float buffer.
/// Matrices are (out, in): a matmul weight row is one output channel.
public struct ParameterLayout: Sendable, Equatable {
    public let config: GPT2Config
    public let shapes: [[Int]]    // indexed by ParameterTensor.rawValue
    public let offsets: [Int]
    public let counts: [Int]
    /// AdamW decays only tensors with two or more dimensions per layer: wte, wpe and the matmul weights.
    public let decays: [Bool]
    public let totalCount: Int

    public init(config c: GPT2Config) {
        let L = c.numLayers, C = c.channels
        let shapes = [
            [c.paddedVocabSize, C],  // wte
            [c.maxSeqLen, C],        // wpe
            [L, C], [L, C],          // ln1w, ln1b
            [L, 3 * C, C], [L, 3 * C],  // qkvw, qkvb
            [L, C, C], [L, C],       // attprojw, attprojb
            [L, C], [L, C],          // ln2w, ln2b
            [L, 4 * C, C], [L, 4 * C],  // fcw, fcb
            [L, C, 4 * C], [L, C],   // fcprojw, fcprojb
            [C], [C],                // lnfw, lnfb
        ]
        var offsets = [Int](), total = 0
        for shape in shapes {
            offsets.append(total)
            total += shape.reduce(1, *)
        }
        self.config = c
        self.shapes = shapes
        self.offsets = offsets
        self.counts = shapes.map { $0.reduce(1, *) }
        // AdamW decays tensors with two or more dimensions per layer (the stacked layer dimension aside).
        self.decays = ParameterTensor.allCases.map { t in
            shapes[t.rawValue].count - (t.isPerLayer ? 1 : 0) >= 2
        }
        self.totalCount = total
    }

    public func shape(_ t: ParameterTensor) -> [Int] { shapes[t.rawValue] }
    public func offset(_ t: ParameterTensor) -> Int { offsets[t.rawValue] }
    public func count(_ t: ParameterTensor) -> Int { counts[t.rawValue] }
    public func range(_ t: ParameterTensor) -> Range<Int> { offset(t)..<offset(t) + count(t) }
}

/// One layer's slice of every per-layer tensor in a buffer laid out like the parameters: the weights
/// themselves, or their gradients. Carved out the same way by the training model and the generator.
struct LayerTensors {
    let ln1w, ln1b, qkvw, qkvb, attprojw, attprojb: UnsafeMutablePointer<Float>
    let ln2w, ln2b, fcw, fcb, fcprojw, fcprojb: UnsafeMutablePointer<Float>

    init(_ base: UnsafeMutablePointer<Float>, _ layout: ParameterLayout, layer l: Int) {
        let L = layout.config.numLayers
        func slice(_ t: ParameterTensor) -> UnsafeMutablePointer<Float> {
            base + layout.offset(t) + l * (layout.count(t) / L)
        }
        (ln1w, ln1b, qkvw, qkvb) = (slice(.ln1w), slice(.ln1b), slice(.qkvw), slice(.qkvb))
        (attprojw, attprojb, ln2w, ln2b) = (slice(.attprojw), slice(.attprojb), slice(.ln2w), slice(.ln2b))
        (fcw, fcb, fcprojw, fcprojb) = (slice(.fcw), slice(.fcb), slice(.fcprojw), slice(.fcprojb))
    }
}
