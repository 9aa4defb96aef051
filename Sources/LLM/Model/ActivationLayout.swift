// Where each activation tensor of a training forward pass lives inside the one activation allocation.

/// The activations kept for the backward pass, for a batch of B sequences of T tokens (N = B·T rows).
/// Sizes are for the configuration; a tensor a configuration does not need has none.
enum ActivationTensor: Int, CaseIterable {
    case encoded       // (N,C)        the embedding (scaled where the model scales it)
    case embedNorm     // (N,C)        its norm, the first residual stream (nanochat)
    case embedRstd     // (N)
    case ln1           // (L,N,C)
    case ln1Mean       // (L,N)        LayerNorm only
    case ln1Rstd       // (L,N)
    case qkv           // (L,N,QKV)    the q|k|v projection
    case qkRoped       // (L,N,QKV)    q and k after RoPE, before a QK-norm that follows it
    case qkvAttn       // (L,N,QKV)    what attention reads: q, k normed and rotated (when the model does either)
    case qkRstd        // (L,N,H+H_kv) the QK-norm's rstd per head
    case atty          // (L,N,H·d)    attention output before its projection
    case preatt        // (L,B,H,T,T)  scaled q·k scores
    case att           // (L,B,H,T,T)  softmaxed, causal
    case attproj       // (L,N,C)
    case postAttn      // (L,N,C)      Gemma's norm of attproj
    case postAttnRstd  // (L,N)
    case residual2     // (L,N,C)
    case ln2           // (L,N,C)
    case ln2Mean       // (L,N)
    case ln2Rstd       // (L,N)
    case fch           // (L,N,F or 2F) the MLP's first matmul
    case fchAct        // (L,N,F)      after the activation
    case fcproj        // (L,N,C)
    case postMLP       // (L,N,C)      Gemma's norm of fcproj
    case postMLPRstd   // (L,N)
    case residual3     // (L,N,C)
    case lnf           // (N,C)
    case lnfMean       // (N)
    case lnfRstd       // (N)
    case logits        // (N,Vp)       softcapped where the model caps them
    case probs         // (N,Vp)
    case losses        // (N)
}

extension ActivationTensor {
    /// Stacked over the layers (the others exist once).
    var isPerLayer: Bool {
        switch self {
        case .encoded, .embedNorm, .embedRstd, .lnf, .lnfMean, .lnfRstd, .logits, .probs, .losses: false
        default: true
        }
    }
}

/// Sizes and offsets of the activation tensors for a given (B, T) within one flat Float buffer.
/// Per-layer tensors are stacked over L with a stride of the layer's size for this (B, T).
struct ActivationLayout {
    let counts: [Int]
    let offsets: [Int]
    let totalCount: Int
    /// Layer slots of the per-layer tensors (L, or 2 for gradients).
    let numLayers: Int
    /// Slots of each tensor: numLayers for per-layer tensors, 1 for the others and for a shared one (preatt).
    let slots: [Int]

    /// `gradients`: the layout of the activations' gradients, which the backward pass needs for one layer and the
    /// next at a time: two layers' slots (not L), and no probabilities (the loss's gradient goes straight to
    /// the logits'). The activations themselves keep every layer's, but for the attention scores before the
    /// softmax (`preatt`), which no backward pass reads: one slot, reused by every layer.
    init(config c: ModelConfig, batch B: Int, seq T: Int, gradients: Bool = false) {
        let L = gradients ? Self.gradientSlots(c) : c.numLayers, C = c.channels, N = B * T, H = c.numHeads, QKV = c.qkvWidth
        let layerNorm = c.norm == .layerNorm, sandwich = c.sandwichNorms
        let rotated = c.usesRoPE || c.qkNorm != .none
        counts = ActivationTensor.allCases.map { t in
            switch t {
            case .encoded: N * C
            case .embedNorm: c.normAfterEmbedding ? N * C : 0
            case .embedRstd: c.normAfterEmbedding ? N : 0
            case .ln1, .residual2, .ln2, .residual3, .attproj, .fcproj: L * N * C
            case .ln1Mean, .ln2Mean: layerNorm ? L * N : 0
            case .ln1Rstd, .ln2Rstd: L * N
            case .qkv: L * N * QKV
            case .qkRoped: c.qkNorm == .afterRoPE ? L * N * QKV : 0
            case .qkvAttn: rotated ? L * N * QKV : 0
            case .qkRstd: c.qkNorm != .none ? L * N * (H + c.numKVHeads) : 0
            case .atty: L * N * c.attentionWidth
            case .preatt: (gradients ? L : 1) * B * H * T * T
            case .att: L * B * H * T * T
            case .postAttn, .postMLP: sandwich ? L * N * C : 0
            case .postAttnRstd, .postMLPRstd: sandwich ? L * N : 0
            case .fch: L * N * c.fcWidth
            case .fchAct: L * N * c.hiddenSize
            case .lnf: N * C
            case .lnfMean: layerNorm ? N : 0
            case .lnfRstd: N
            case .logits: N * c.paddedVocabSize
            case .probs: gradients ? 0 : N * c.paddedVocabSize
            case .losses: N
            }
        }
        var offsets = [Int](), total = 0
        for n in counts {
            offsets.append(total)
            total += n
        }
        self.offsets = offsets
        self.totalCount = total
        numLayers = L
        slots = ActivationTensor.allCases.map { t in !t.isPerLayer ? 1 : t == .preatt && !gradients ? 1 : L }
    }

    /// Layers whose activation gradients are held at once.
    static func gradientSlots(_ c: ModelConfig) -> Int { min(2, c.numLayers) }

    func offset(_ t: ActivationTensor) -> Int { offsets[t.rawValue] }
    func has(_ t: ActivationTensor) -> Bool { counts[t.rawValue] > 0 }
    /// Layer l's slice of a per-layer tensor: slot l mod the tensor's slots.
    func offset(_ t: ActivationTensor, layer l: Int) -> Int {
        let n = slots[t.rawValue]
        return offsets[t.rawValue] + l % n * (counts[t.rawValue] / n)
    }
    /// Floats in one slot of a tensor.
    func slotCount(_ t: ActivationTensor) -> Int { counts[t.rawValue] / slots[t.rawValue] }
}
