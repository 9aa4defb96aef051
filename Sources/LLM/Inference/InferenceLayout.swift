// Where each buffer of the generation engine lives inside its one allocation: the key/value cache and the
// scratch activations of one forward pass.

/// The generation engine's buffers, for one sequence of up to maxT positions. Unlike training, nothing is
/// kept per layer except the cache: each layer's activations overwrite the previous layer's.
enum InferenceBuffer: Int, CaseIterable {
    case kCache    // (L,NH,maxT,hs) keys of every cached position, one (maxT,hs) block per layer and head
    case vCache    // (L,NH,maxT,hs) values, likewise
    case residual  // (maxT,C)      the residual stream of the new positions
    case ln        // (maxT,C)      LayerNorm output (ln1, then ln2, then lnf)
    case lnMean    // (maxT)
    case lnRstd    // (maxT)
    case qkv       // (maxT,3C)
    case atty      // (maxT,C)      attention output before its projection
    case proj      // (maxT,C)      attention or MLP projection, before it joins the residual
    case fch       // (maxT,4C)     MLP hidden layer, GELU applied in place
    case scores    // (NH,maxT)     attention scores of one query per head
    case logits    // (V)           logits of the last new position
}

/// Sizes and offsets of the engine's buffers within one flat Float buffer.
struct InferenceLayout {
    let offsets: [Int]
    let totalCount: Int

    init(config c: GPT2Config) {
        let L = c.numLayers, C = c.channels, NH = c.numHeads, T = c.maxSeqLen
        let counts = [L * T * C, L * T * C, T * C, T * C, T, T, T * 3 * C, T * C, T * C, T * 4 * C, NH * T, c.vocabSize]
        var offsets = [Int](), total = 0
        for n in counts {
            offsets.append(total)
            total += n
        }
        self.offsets = offsets
        self.totalCount = total
    }

    func offset(_ b: InferenceBuffer) -> Int { offsets[b.rawValue] }
}
