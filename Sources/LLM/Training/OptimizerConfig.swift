// Which optimizer a run trains with, and nanochat's Muon settings: Muon for the blocks' matrices, AdamW for the
// embeddings, the LM head and the 1-D tensors (norm weights, biases), each group with its own learning rate.

/// The optimizer of a run (`--optimizer`).
public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    /// AdamW for every tensor (weight decay on the 2-D ones).
    case adamw
    /// nanochat's mix: Muon for each block's matrices, AdamW for the rest (`MuonConfig`).
    case muon
}

/// nanochat's optimizer settings (classic nanochat's `setup_optimizers` and `base_train.py`, before its
/// Polar Express / NorMuon version). Each group's learning rate is multiplied by the run's schedule
/// (lr(step) / peak lr) every step, as nanochat multiplies every group's by its lrm:
///   Muon, each block matrix (each part of a fused q|k|v or gate|up on its own):  matrixLR · √max(1, rows/cols)
///   AdamW, token (and learned position) embeddings:  embeddingLR · (C/768)^-0.5
///   AdamW, LM head (a tied embedding too):           unembeddingLR · (C/768)^-0.5
///   AdamW, norm weights, biases and other 1-D tensors: the run's --lr (nanochat's models have none)
/// All AdamW groups use `adamBeta1`, `adamBeta2`, `adamEps` and `adamWeightDecay` (on the 2-D ones), not the run's
/// AdamW settings. Muon has no weight decay. Its momentum warms up linearly from `momentumStart` at step 0 to
/// `momentum` at step `momentumWarmupSteps` (nanochat: 0.85 → 0.95 over 300 steps); Nesterov always.
public struct MuonConfig: Codable, Sendable, Equatable {
    public var matrixLR = 0.02
    public var embeddingLR = 0.2
    public var unembeddingLR = 0.004
    public var momentum = 0.95
    public var momentumStart = 0.85
    public var momentumWarmupSteps = 300
    /// Newton–Schulz steps (`newtonSchulz5`'s quintic iteration).
    public var newtonSchulzSteps = 5
    public var adamBeta1 = 0.8
    public var adamBeta2 = 0.95
    public var adamEps = 1e-10
    public var adamWeightDecay = 0.0

    public init() {}

    /// For fine-tuning (`llm sft`): nanochat's chat_sft starts every group at 2 % of its pretraining learning
    /// rate (init_lr_frac 0.02, in the nanochat this Muon comes from).
    public static var fineTuning: MuonConfig {
        var c = MuonConfig()
        c.matrixLR *= 0.02
        c.embeddingLR *= 0.02
        c.unembeddingLR *= 0.02
        return c
    }

    /// Muon's momentum at optimizer step `step` (counting from 0, as nanochat's `it`).
    public func momentum(atStep step: Int) -> Double {
        let frac = momentumWarmupSteps > 0 ? min(Double(step) / Double(momentumWarmupSteps), 1) : 1
        return (1 - frac) * momentumStart + frac * momentum
    }

    /// nanochat's dmodel_lr_scale, (C/768)^-0.5: the embedding and head learning rates were tuned at C = 768.
    public static func embeddingScale(channels: Int) -> Double { pow(Double(channels) / 768, -0.5) }

    /// Messages name the setting and the accepted range.
    public func validate() throws(TrainingError) {
        func fail(_ s: String) -> TrainingError { .invalidConfig("muon.\(s)") }
        for (name, lr) in [("matrixLR", matrixLR), ("embeddingLR", embeddingLR), ("unembeddingLR", unembeddingLR)]
        where !(lr.isFinite && lr > 0) {
            throw fail("\(name) \(lr) must be a finite number above 0")
        }
        for (name, m) in [("momentum", momentum), ("momentumStart", momentumStart), ("adamBeta1", adamBeta1),
                          ("adamBeta2", adamBeta2)] where !(m.isFinite && (0..<1).contains(m)) {
            throw fail("\(name) \(m) must be in [0, 1)")
        }
        if momentumWarmupSteps < 0 { throw fail("momentumWarmupSteps \(momentumWarmupSteps) must be ≥ 0") }
        if !(1...20).contains(newtonSchulzSteps) { throw fail("newtonSchulzSteps \(newtonSchulzSteps) must be between 1 and 20") }
        if !(adamEps.isFinite && adamEps > 0) { throw fail("adamEps \(adamEps) must be a finite number above 0") }
        if !(adamWeightDecay.isFinite && adamWeightDecay >= 0) {
            throw fail("adamWeightDecay \(adamWeightDecay) must be a finite number ≥ 0")
        }
    }
}

/// Which of nanochat's groups a parameter tensor trains in under Muon.
enum MuonGroup: Equatable {
    case matrix, embedding, head, scalar

    init(_ t: ParameterTensor, tiedEmbeddings: Bool) {
        switch t {
        case .qkvw, .attprojw, .fcw, .fcprojw: self = .matrix
        case .wte: self = tiedEmbeddings ? .head : .embedding  // tied: the head's (smaller) rate, as it is one
        case .wpe: self = .embedding
        case .lmHead: self = .head
        default: self = .scalar
        }
    }
}

/// One matrix Muon orthogonalises: a block of rows of a parameter tensor, at `offset` in the arena.
struct MuonMatrix: Equatable {
    let offset: Int, rows: Int, cols: Int
    var count: Int { rows * cols }
}

extension ParameterLayout {
    /// Every matrix Muon steps, layer by layer: the fused q|k|v as its q, k and v rows, the attention output, the
    /// MLP's gate and up rows (or its one input matrix) and its output, each as nanochat's separate Linear layers.
    var muonMatrices: [MuonMatrix] {
        let c = config, C = c.channels, d = c.headSize, F = c.hiddenSize
        var out = [MuonMatrix]()
        for l in 0..<c.numLayers {
            var at = offset(.qkvw) + l * c.qkvWidth * C
            for rows in [c.numHeads * d, c.numKVHeads * d, c.numKVHeads * d] {
                out.append(MuonMatrix(offset: at, rows: rows, cols: C))
                at += rows * C
            }
            out.append(MuonMatrix(offset: offset(.attprojw) + l * C * c.attentionWidth, rows: C, cols: c.attentionWidth))
            at = offset(.fcw) + l * c.fcWidth * C
            for _ in 0..<c.fcWidth / F {
                out.append(MuonMatrix(offset: at, rows: F, cols: C))
                at += F * C
            }
            out.append(MuonMatrix(offset: offset(.fcprojw) + l * C * F, rows: C, cols: F))
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
