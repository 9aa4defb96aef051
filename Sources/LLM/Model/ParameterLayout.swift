// Where each parameter tensor lives inside the one parameter allocation. GPT-2's tensors come in llm.c's
// order, so a GPT-2's arena is byte for byte an llm.c checkpoint's body; the other architectures' extra
// tensors sit between them, and a tensor a configuration does not have takes no space.

/// Every parameter tensor any architecture has, in arena order. Per-layer tensors are stacked over L.
/// The q|k|v projections are one fused matrix (rows: H query heads, then H_kv key heads, then H_kv value heads),
/// and a gated MLP's gate and up projections are one matrix too (rows: F gate rows, then F up rows).
public enum ParameterTensor: Int, CaseIterable, Sendable {
    case wte            // (Vp, C) token embedding (and the LM head when tied)
    case wpe            // (maxT, C) learned positions (GPT-2)
    case ln1w, ln1b     // (L, C) the norm before attention
    case qkvw, qkvb     // (L, (H+2H_kv)·d, C), (L, (H+2H_kv)·d)
    case qNormw, kNormw // (L, d) QK-norm weights (Gemma 3)
    case attprojw       // (L, C, H·d)
    case attprojb       // (L, C)
    case postAttnNormw  // (L, C) Gemma's norm of the attention output
    case ln2w, ln2b     // (L, C) the norm before the MLP
    case fcw, fcb       // (L, F or 2F, C), (L, F or 2F)
    case fcprojw        // (L, C, F)
    case fcprojb        // (L, C)
    case postMLPNormw   // (L, C) Gemma's norm of the MLP output
    case lnfw, lnfb     // (C) the final norm
    case lmHead         // (Vp, C) an untied LM head

    public var name: String { String(describing: self) }

    /// Per-layer tensors are stacked over L; the others are shared.
    public var isPerLayer: Bool { ![.wte, .wpe, .lnfw, .lnfb, .lmHead].contains(self) }
}

/// Shapes and offsets of the parameter tensors within one flat Float buffer.
/// Matrices are (out, in): a matmul weight row is one output channel. A tensor the configuration does not have
/// has the empty shape and no elements.
public struct ParameterLayout: Sendable, Equatable {
    public let config: ModelConfig
    public let shapes: [[Int]]    // indexed by ParameterTensor.rawValue
    public let offsets: [Int]
    public let counts: [Int]
    /// AdamW decays only tensors with two or more dimensions per layer: embeddings and matmul weights.
    public let decays: [Bool]
    public let totalCount: Int
    /// The tensors this configuration has, in arena order.
    public let present: [ParameterTensor]

    public init(config c: ModelConfig) {
        let L = c.numLayers, C = c.channels, d = c.headSize
        let normShape = c.norm.hasWeight ? [L, C] : []
        let biasShape = c.norm.hasBias ? [L, C] : []
        let shapes: [[Int]] = ParameterTensor.allCases.map { t in
            switch t {
            case .wte: [c.paddedVocabSize, C]
            case .wpe: c.learnedPositions ? [c.maxSeqLen, C] : []
            case .ln1w, .ln2w: normShape
            case .ln1b, .ln2b: biasShape
            case .qkvw: [L, c.qkvWidth, C]
            case .qkvb: c.qkvBias ? [L, c.qkvWidth] : []
            case .qNormw, .kNormw: c.qkNorm != .none && c.norm.hasWeight ? [L, d] : []
            case .attprojw: [L, C, c.attentionWidth]
            case .attprojb: c.attnOutBias ? [L, C] : []
            case .postAttnNormw, .postMLPNormw: c.sandwichNorms ? normShape : []
            case .fcw: [L, c.fcWidth, C]
            case .fcb: c.mlpBias ? [L, c.fcWidth] : []
            case .fcprojw: [L, C, c.hiddenSize]
            case .fcprojb: c.mlpBias ? [L, C] : []
            case .lnfw: c.norm.hasWeight ? [C] : []
            case .lnfb: c.norm.hasBias ? [C] : []
            case .lmHead: c.tiedEmbeddings ? [] : [c.paddedVocabSize, C]
            }
        }
        var offsets = [Int](), counts = [Int](), total = 0
        for shape in shapes {
            let n = shape.isEmpty ? 0 : shape.reduce(1, *)
            offsets.append(total)
            counts.append(n)
            total += n
        }
        self.config = c
        self.shapes = shapes
        self.offsets = offsets
        self.counts = counts
        self.decays = ParameterTensor.allCases.map { t in
            shapes[t.rawValue].count - (t.isPerLayer ? 1 : 0) >= 2
        }
        self.totalCount = total
        self.present = ParameterTensor.allCases.filter { counts[$0.rawValue] > 0 }
    }

    public func shape(_ t: ParameterTensor) -> [Int] { shapes[t.rawValue] }
    public func offset(_ t: ParameterTensor) -> Int { offsets[t.rawValue] }
    public func count(_ t: ParameterTensor) -> Int { counts[t.rawValue] }
    public func range(_ t: ParameterTensor) -> Range<Int> { offset(t)..<offset(t) + count(t) }
    public func has(_ t: ParameterTensor) -> Bool { counts[t.rawValue] > 0 }
}

/// One layer's slice of every per-layer tensor in a buffer laid out like the parameters: the weights
/// themselves, or their gradients; nil for a tensor the configuration does not have. Carved out the same way
/// by the training model and the generator.
struct LayerTensors {
    let ln1w, ln1b, qkvw, qkvb, qNormw, kNormw, attprojw, attprojb, postAttnNormw: UnsafeMutablePointer<Float>?
    let ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, postMLPNormw: UnsafeMutablePointer<Float>?
    /// The linear layers kept in quantized blocks (generation of a GGUF model), which then replace qkvw, … .
    var qkvq, attprojq, fcq, fcprojq: QuantizedLinear?
    /// The layer's low-rank adapters (their A and B, or those's gradients), run after the linear layers they adapt.
    var lora: LayerLoRA?

    /// No tensors at all: the gradients of a frozen model (LoRA's base), `lora` holding the adapters'.
    init(frozenWith lora: LayerLoRA?) {
        (ln1w, ln1b, qkvw, qkvb, qNormw, kNormw, attprojw, attprojb) = (nil, nil, nil, nil, nil, nil, nil, nil)
        (postAttnNormw, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, postMLPNormw) = (nil, nil, nil, nil, nil, nil, nil, nil)
        self.lora = lora
    }

    init(_ base: UnsafeMutablePointer<Float>, _ layout: ParameterLayout, layer l: Int,
         quantized: QuantizedWeights? = nil, lora: LayerLoRA? = nil) {
        self.lora = lora
        if let quantized {
            (qkvq, attprojq) = (quantized.linear(.qkvw, layer: l), quantized.linear(.attprojw, layer: l))
            (fcq, fcprojq) = (quantized.linear(.fcw, layer: l), quantized.linear(.fcprojw, layer: l))
        }
        let L = layout.config.numLayers
        func slice(_ t: ParameterTensor) -> UnsafeMutablePointer<Float>? {
            layout.has(t) ? base + layout.offset(t) + l * (layout.count(t) / L) : nil
        }
        (ln1w, ln1b, qkvw, qkvb) = (slice(.ln1w), slice(.ln1b), slice(.qkvw), slice(.qkvb))
        (qNormw, kNormw, attprojw, attprojb) = (slice(.qNormw), slice(.kNormw), slice(.attprojw), slice(.attprojb))
        postAttnNormw = slice(.postAttnNormw)
        (ln2w, ln2b, fcw, fcb) = (slice(.ln2w), slice(.ln2b), slice(.fcw), slice(.fcb))
        (fcprojw, fcprojb, postMLPNormw) = (slice(.fcprojw), slice(.fcprojb), slice(.postMLPNormw))
    }
}
