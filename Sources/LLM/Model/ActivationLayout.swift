// Where each activation tensor of a forward pass lives inside the one activation allocation.

/// The activations llm.c keeps for the backward pass, for a batch of B sequences of T tokens.
enum ActivationTensor: Int, CaseIterable {
    case encoded    // (B,T,C)      token + position embedding
    case ln1        // (L,B,T,C)
    case ln1Mean    // (L,B,T)
    case ln1Rstd    // (L,B,T)
    case qkv        // (L,B,T,3C)
    case atty       // (L,B,T,C)    attention output before its projection
    case preatt     // (L,B,NH,T,T) scaled q·k scores
    case att        // (L,B,NH,T,T) softmaxed, causal
    case attproj    // (L,B,T,C)
    case residual2  // (L,B,T,C)
    case ln2        // (L,B,T,C)
    case ln2Mean    // (L,B,T)
    case ln2Rstd    // (L,B,T)
    case fch        // (L,B,T,4C)
    case fchGelu    // (L,B,T,4C)
    case fcproj     // (L,B,T,C)
    case residual3  // (L,B,T,C)
    case lnf        // (B,T,C)
    case lnfMean    // (B,T)
    case lnfRstd    // (B,T)
    case logits     // (B,T,Vp)
    case probs      // (B,T,Vp)
    case losses     // (B,T)
}

/// Sizes and offsets of the activation tensors for a given (B, T) within one flat Float buffer.
/// Per-layer tensors are stacked over L with a stride of the layer's size for this (B, T).
struct ActivationLayout {
    let counts: [Int]
    let offsets: [Int]
    let totalCount: Int

    init(config c: GPT2Config, batch B: Int, seq T: Int) {
        let L = c.numLayers, C = c.channels, NH = c.numHeads, BT = B * T
        counts = [
            BT * C, L * BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C, L * B * NH * T * T,
            L * B * NH * T * T, L * BT * C, L * BT * C, L * BT * C, L * BT, L * BT, L * BT * 4 * C,
            L * BT * 4 * C, L * BT * C, L * BT * C, BT * C, BT, BT, BT * c.paddedVocabSize,
            BT * c.paddedVocabSize, BT,
        ]
        var offsets = [Int](), total = 0
        for n in counts {
            offsets.append(total)
            total += n
        }
        self.offsets = offsets
        self.totalCount = total
    }

    func offset(_ t: ActivationTensor) -> Int { offsets[t.rawValue] }
}
