// Low-rank adapters (LoRA) on a model's linear layers: which layers they cover, where their A and B matrices live
// (one arena, like the model's own parameters), PEFT's initialisation, and merging them into the weights.
//
// Layers are named as Hugging Face names them (`model.layers.3.self_attn.q_proj`, GPT-2's `transformer.h.3.attn.
// c_attn`), and a target matches a layer whose name is the target or ends with "." + target, as PEFT's
// `target_modules` list does: "q_proj" covers every layer's q projection. Our q|k|v and gate|up matrices are fused,
// so an adapter on q_proj covers the first H·d output rows of the fused q|k|v matrix; its B has only those rows.
// The forward and backward pass of an adapted layer are in Kernels/LoRA.swift; TransformerBlock runs them after
// the base layer's.

/// What to adapt and how strongly.
public struct LoRAConfig: Codable, Equatable, Sendable {
    /// r: the inner dimension of A (r, in) and B (out, r).
    public var rank: Int
    /// The update is scaled by alpha / r.
    public var alpha: Double
    /// Layer names or name suffixes ("q_proj", "mlp.c_proj"), or "all-linear" for every linear layer of the blocks.
    public var targets: [String]

    public init(rank: Int, alpha: Double? = nil, targets: [String]) {
        self.rank = rank
        self.alpha = alpha ?? Double(2 * rank)
        self.targets = targets
    }

    /// alpha / r, what B·A is multiplied by.
    public var scale: Float { Float(alpha / Double(rank)) }

    /// The largest rank accepted (far beyond any useful one; it keeps the sizes small numbers).
    public static let maxRank = 4096

    /// Every linear layer of the blocks.
    public static let allLinear = "all-linear"

    public func validate() throws(ModelError) {
        guard (1...Self.maxRank).contains(rank) else {
            throw .invalidConfig("LoRA rank \(rank) must be between 1 and \(Self.maxRank)")
        }
        guard alpha.isFinite, alpha > 0 else { throw .invalidConfig("LoRA alpha \(alpha) must be a positive number") }
        guard !targets.isEmpty, targets.allSatisfy({ !$0.isEmpty }) else {
            throw .invalidConfig("LoRA needs at least one target layer name (q_proj, v_proj, …, or all-linear)")
        }
    }
}

/// One adapted linear layer: output rows `rows` of layer `layer`'s fused `linear` matrix (the whole matrix but for
/// q, k, v, gate and up), with A (rank, inputs) and B (rows.count, rank) at `a` and `b` in the adapter's arena.
public struct LoRAPart: Sendable, Equatable {
    /// The Hugging Face name of the layer, "model.layers.0.self_attn.q_proj".
    public let module: String
    public let linear: ParameterTensor
    public let layer: Int
    public let rows: Range<Int>
    public let inputs: Int
    public let a: Range<Int>
    public let b: Range<Int>

    public var outputs: Int { rows.count }
}

/// A model's adapters: the parts `config.targets` selects, their A and B in one arena. Attach it to the weights
/// (`ModelWeights.withAdapter`) and the generators run it, and `Transformer` trains it with the base frozen.
public final class LoRAAdapter: @unchecked Sendable {
    public let config: LoRAConfig
    public let modelConfig: ModelConfig
    public let parts: [LoRAPart]
    public let arena: FloatArena

    /// The linear layers of the blocks: the fused matrices adapters attach to.
    static let linears: [ParameterTensor] = [.qkvw, .attprojw, .fcw, .fcprojw]

    /// A zero adapter (A and B zero: `initialize` gives PEFT's starting point) for the layers `config` targets.
    public init(config: LoRAConfig, model c: ModelConfig) throws(ModelError) {
        try config.validate()
        var parts = [LoRAPart](), used = Set<String>(), offset = 0
        let layers = Self.adaptableLayers(c)
        for layer in layers {
            guard let target = config.targets.first(where: { Self.matches(layer.module, $0) }) else { continue }
            used.insert(target)
            // Σ rank·(inputs + outputs) stays far below Int's range: rank ≤ 4096, widths are a valid config's.
            let aCount = config.rank * layer.inputs, bCount = layer.rows.count * config.rank
            parts.append(LoRAPart(module: layer.module, linear: layer.linear, layer: layer.layer, rows: layer.rows,
                                  inputs: layer.inputs, a: offset..<offset + aCount,
                                  b: offset + aCount..<offset + aCount + bCount))
            offset += aCount + bCount
        }
        if let unused = config.targets.first(where: { !used.contains($0) }) {
            let names = Set(layers.map { $0.module.split(separator: ".").last.map(String.init) ?? $0.module })
            throw .invalidConfig("LoRA target \"\(unused)\" matches no linear layer of this \(c.architecture) model (its layers: \(names.sorted().joined(separator: ", ")), or all-linear)")
        }
        try MemoryBudget.check(4 * offset, for: "the LoRA adapter")
        self.config = config
        modelConfig = c
        self.parts = parts
        arena = FloatArena(count: offset)
    }

    /// Trainable parameters: Σ rank·(inputs + outputs) over the parts.
    public var parameterCount: Int { arena.count }

    /// Whether `target` selects the layer `module` (PEFT's rule for a list of names).
    static func matches(_ module: String, _ target: String) -> Bool {
        target == LoRAConfig.allLinear || module == target || module.hasSuffix("." + target)
    }

    /// Every linear layer of the blocks, with its Hugging Face name, in the order HuggingFaceFolder lists them.
    static func adaptableLayers(_ c: ModelConfig) -> [(module: String, linear: ParameterTensor, layer: Int,
                                                      rows: Range<Int>, inputs: Int)] {
        let layout = ParameterLayout(config: c)
        return HuggingFaceFolder.placements(c).compactMap { p in
            guard linears.contains(p.tensor), p.name.hasSuffix(".weight"), let layer = p.layer else { return nil }
            return (String(p.name.dropLast(".weight".count)), p.tensor, layer, p.rows, layout.shape(p.tensor)[2])
        }
    }

    /// PEFT's starting point: A Kaiming-uniform (a = √5, so U(−1/√in, 1/√in), as nn.Linear's default), B zero, so
    /// the adapted model starts as the base.
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        arena.zero()
        for part in parts {
            let bound = 1 / Double(part.inputs).squareRoot()
            arena.withMutableBuffer(part.a) { a in
                for i in a.indices { a[i] = Float((2 * rng.nextUniform() - 1) * bound) }
            }
        }
    }

    /// The part adapting `module`, if any.
    public func part(_ module: String) -> LoRAPart? { parts.first { $0.module == module } }

    /// W[rows] += scale · B·A for every part: the base weights with the adapter folded in (as PEFT's
    /// `merge_and_unload`). `weights` must be float weights of this adapter's model.
    public func merge(into weights: ModelWeights) {
        precondition(weights.config == modelConfig, "an adapter for another model shape")
        precondition(weights.quantized == nil, "merging needs float weights")
        let layout = weights.layout, s = config.scale, r = config.rank
        let scratch = MatmulScratch(threads: ProcessInfoCores.count)
        var scaledB = [Float]()
        for part in parts {
            scaledB = arena.array(part.b).map { $0 * s }
            let perLayer = layout.count(part.linear) / modelConfig.numLayers
            let w = weights.arena.base + layout.offset(part.linear) + part.layer * perLayer + part.rows.lowerBound * part.inputs
            scaledB.withUnsafeBufferPointer { sb in
                // W(rows × in) += (s·B)(rows × r) · A(r × in).
                gemmAccumulate(c: w, ldc: part.inputs, a: sb.baseAddress!, ars: r, acs: 1,
                               b: .strided(arena.base + part.a.lowerBound, ks: part.inputs, js: 1), M: part.outputs,
                               cols: part.inputs, K: r, parallel: .allCores, scratch: scratch, variant: .current)
            }
        }
    }

    /// `weights` with the adapter folded into their own memory (no copy of the model), returned without an adapter.
    /// The tensors are shared: `weights` (and any other view of them) are merged as well.
    public func mergedWeights(_ weights: ModelWeights) throws(ModelError) -> ModelWeights {
        guard weights.config == modelConfig else {
            throw .invalidConfig("the adapter was made for a different model shape (\(modelConfig)) than these weights (\(weights.config))")
        }
        guard weights.quantized == nil else {
            throw .invalidConfig("merging needs the model's float weights: load it dequantized")
        }
        merge(into: weights)
        return ModelWeights(sharing: weights, adapter: nil)
    }

    /// Each layer's adapted parts as the block reads them, over `base` (the adapter's arena, or gradients laid out
    /// like it); `u` and `du` are scratch of rank floats per row the block runs.
    func layers(base: Buffer, u: Buffer?, du: Buffer?) -> [LayerLoRA] {
        var layers = (0..<modelConfig.numLayers).map { _ in
            LayerLoRA(rank: config.rank, scale: config.scale, u: u, du: du)
        }
        for part in parts {
            let slice = LoRASlice(a: base + part.a.lowerBound, b: base + part.b.lowerBound,
                                  rowOffset: part.rows.lowerBound, outputs: part.outputs, inputs: part.inputs)
            switch part.linear {
            case .qkvw: layers[part.layer].qkv.append(slice)
            case .attprojw: layers[part.layer].attproj.append(slice)
            case .fcw: layers[part.layer].fc.append(slice)
            default: layers[part.layer].fcproj.append(slice)
            }
        }
        return layers
    }
}

/// One adapted part as the block runs it: A and B (or their gradients), and which output rows it adds to.
struct LoRASlice {
    let a: Buffer
    let b: Buffer
    let rowOffset: Int
    let outputs: Int
    let inputs: Int
}

/// One layer's adapters, by linear layer (most layers have one part per linear; q|k|v may have up to three).
struct LayerLoRA {
    let rank: Int
    let scale: Float
    /// Scratch (rank floats per row) for x·Aᵀ and its gradient; nil in a gradient view.
    let u: Buffer?
    let du: Buffer?
    var qkv = [LoRASlice](), attproj = [LoRASlice](), fc = [LoRASlice](), fcproj = [LoRASlice]()

    init(rank: Int, scale: Float, u: Buffer?, du: Buffer?) {
        (self.rank, self.scale, self.u, self.du) = (rank, scale, u, du)
    }
}

extension ModelWeights {
    /// These weights with `adapter` attached (sharing the weights' memory): the generators add the adapter's
    /// output to the base layers', and `Transformer` trains the adapter alone with the base frozen.
    public func withAdapter(_ adapter: LoRAAdapter) throws(ModelError) -> ModelWeights {
        guard adapter.modelConfig == config else {
            throw .invalidConfig("the adapter was made for a different model shape (\(adapter.modelConfig)) than these weights (\(config))")
        }
        return ModelWeights(sharing: self, adapter: adapter)
    }
}
