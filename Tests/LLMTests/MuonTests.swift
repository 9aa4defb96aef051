// Muon: the Newton–Schulz orthogonalisation against a Double reference and its singular values, ten steps of
// nanochat's Muon + AdamW against PyTorch (reference/make_muon_fixture.py), the momentum schedule, the memory it
// claims, and the optimizer state's kind checked on resume.
import Foundation
import Testing
@testable import LLM

@Suite struct MuonTests {
    /// A seeded (rows, cols) matrix of values in [-1, 1), plus `diagonal` on its diagonal.
    static func matrix(_ rows: Int, _ cols: Int, seed: UInt64, diagonal: Float = 0) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<rows * cols).map { i in
            Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) + (i / cols == i % cols ? diagonal : 0)
        }
    }

    /// nanochat's iteration in Double, written out plainly: X = G/(‖G‖+1e-7) (transposed when tall), then
    /// A = XXᵀ, B = bA + cA², X = aX + BX, five times.
    static func newtonSchulzReference(_ g: [Float], rows: Int, cols: Int, steps: Int = 5) -> [Double] {
        let (a, b, c) = (3.4445, -4.7750, 2.0315), tall = rows > cols
        let m = min(rows, cols), n = max(rows, cols)
        let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() + 1e-7
        var x = (0..<m * n).map { i in Double(tall ? g[(i % n) * cols + i / n] : g[i]) / norm }
        func product(_ p: [Double], _ q: [Double], _ r: Int, _ k: Int, _ s: Int, transposeQ: Bool = false) -> [Double] {
            (0..<r * s).map { i in
                (0..<k).reduce(0.0) { $0 + p[i / s * k + $1] * (transposeQ ? q[i % s * k + $1] : q[$1 * s + i % s]) }
            }
        }
        for _ in 0..<steps {
            let am = product(x, x, m, n, m, transposeQ: true)
            let aa = product(am, am, m, m, m)
            let bm = zip(am, aa).map { b * $0 + c * $1 }
            let bx = product(bm, x, m, m, n)
            x = zip(x, bx).map { a * $0 + $1 }
        }
        return (0..<rows * cols).map { i in tall ? x[(i % cols) * rows + i / cols] : x[i] }
    }

    /// The singular values of a (rows, cols) matrix: square roots of the eigenvalues of the smaller Gram matrix,
    /// by cyclic Jacobi rotations in Double.
    static func singularValues(_ x: [Float], rows: Int, cols: Int) -> [Double] {
        let m = min(rows, cols)
        func at(_ i: Int, _ k: Int) -> Double { Double(rows <= cols ? x[i * cols + k] : x[k * cols + i]) }
        var s = (0..<m * m).map { i in (0..<max(rows, cols)).reduce(0.0) { $0 + at(i / m, $1) * at(i % m, $1) } }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<m { for q in 0..<m where p != q { off += s[p * m + q] * s[p * m + q] } }
            if off < 1e-24 { break }
            for p in 0..<m - 1 {
                for q in p + 1..<m where abs(s[p * m + q]) > 1e-300 {
                    let theta = (s[q * m + q] - s[p * m + p]) / (2 * s[p * m + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let cs = 1 / (t * t + 1).squareRoot(), sn = t * cs
                    for k in 0..<m {  // S ← Jᵀ S J, columns then rows
                        let (sp, sq) = (s[k * m + p], s[k * m + q])
                        (s[k * m + p], s[k * m + q]) = (cs * sp - sn * sq, sn * sp + cs * sq)
                    }
                    for k in 0..<m {
                        let (sp, sq) = (s[p * m + k], s[q * m + k])
                        (s[p * m + k], s[q * m + k]) = (cs * sp - sn * sq, sn * sp + cs * sq)
                    }
                }
            }
        }
        return (0..<m).map { max(0, s[$0 * m + $0]).squareRoot() }.sorted()
    }

    /// Runs the kernel on `g`, returning the (rows, cols) result.
    static func orthogonalize(_ g: [Float], rows: Int, cols: Int, threads: Int,
                              variant: KernelVariant = .current) -> [Float] {
        let scratch = MuonScratch(maxElements: rows * cols, maxShortSide: min(rows, cols))
        var out = [Float](repeating: 0, count: rows * cols)
        g.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                newtonSchulz5(src.baseAddress!, into: dst.baseAddress!, rows: rows, cols: cols, steps: 5, scratch: scratch,
                              gemm: MatmulScratch(threads: threads), parallel: ParallelFor(threads: threads),
                              variant: variant)
            }
        }
        return out
    }

    /// Tall (transposed first), wide, square, and one longer than a GEMM k-block (256), with every kernel
    /// variant the CPU runs, against the Double reference; the same bits with 1 and 3 threads.
    @Test(arguments: [(24, 8), (8, 24), (16, 16), (5, 300), (37, 11)])
    func newtonSchulzMatchesADoubleReference(shape: (rows: Int, cols: Int)) {
        let (rows, cols) = shape
        let g = Self.matrix(rows, cols, seed: UInt64(rows * 1000 + cols))
        let reference = Self.newtonSchulzReference(g, rows: rows, cols: cols)
        for variant in KernelVariant.supported {
            let ours = Self.orthogonalize(g, rows: rows, cols: cols, threads: 1, variant: variant)
            let worst = zip(ours, reference).map { abs(Double($0) - $1) }.max()!
            #expect(worst < 2e-5, "\(rows)×\(cols) \(variant): max |ours − Double| = \(worst)")
            #expect(Self.orthogonalize(g, rows: rows, cols: cols, threads: 3, variant: variant) == ours)
        }
    }

    /// NS5 does not converge to an exactly orthogonal matrix: its coefficients trade that for speed, leaving
    /// every singular value roughly within 0.7…1.2 (for singular values of G not too far below its largest).
    @Test(arguments: [(24, 8), (8, 24), (16, 16), (40, 12)])
    func orthogonalisedSingularValuesAreNearOne(shape: (rows: Int, cols: Int)) {
        let (rows, cols) = shape
        // A square random matrix has singular values near 0, which five steps cannot lift: give it a diagonal.
        let g = Self.matrix(rows, cols, seed: 77 + UInt64(rows), diagonal: rows == cols ? 8 : 0)
        let before = Self.singularValues(g, rows: rows, cols: cols)
        #expect(before.first! / before.last! > 0.1, "a well enough conditioned input")
        let sigma = Self.singularValues(Self.orthogonalize(g, rows: rows, cols: cols, threads: 2), rows: rows, cols: cols)
        #expect(sigma.count == min(rows, cols))
        #expect(sigma.allSatisfy { (0.68...1.2).contains($0) }, "\(rows)×\(cols): singular values \(sigma)")
    }

    @Test func momentumWarmsUpAsNanochats() {
        let c = MuonConfig()
        #expect(c.momentum(atStep: 0) == 0.85)
        #expect(abs(c.momentum(atStep: 150) - 0.90) < 1e-15)
        #expect(c.momentum(atStep: 300) == 0.95 && c.momentum(atStep: 10_000) == 0.95)
        #expect(MuonConfig.embeddingScale(channels: 768) == 1)
    }

    /// A run's Muon settings are checked with the rest of its config, naming the setting.
    @Test func badMuonSettingsAreRefused() {
        var t = TrainingConfig(trainShards: "x", valShards: nil, tokenizer: "gpt2")
        t.muon = MuonConfig()
        #expect(throws: Never.self) { try t.validate() }
        for change in [{ (m: inout MuonConfig) in m.momentum = 1 }, { $0.matrixLR = 0 }, { $0.newtonSchulzSteps = 0 },
                       { $0.adamEps = .nan }, { $0.momentumWarmupSteps = -1 }] {
            var m = MuonConfig()
            change(&m)
            t.muon = m
            #expect(throws: TrainingError.self) { try t.validate() }
        }
        #expect(t.optimizer == .muon && TrainingConfig(trainShards: "", valShards: nil, tokenizer: "").optimizer == .adamw)
    }

    /// Every block matrix is stepped, each part of a fused one on its own, and nothing else.
    @Test func theMatricesAreTheBlocksPartsAndTheGroupsNanochats() throws {
        let llama = try ModelPreset.llama(layers: 2, heads: 4, channels: 32, kvHeads: 2, vocabSize: 40, maxSeqLen: 16)
        let layout = ParameterLayout(config: llama), parts = layout.muonMatrices
        let F = llama.hiddenSize
        #expect(parts.map { [$0.rows, $0.cols] } == Array(repeating: [[32, 32], [16, 32], [16, 32], [32, 32], [F, 32],
                                                                       [F, 32], [32, F]], count: 2).flatMap { $0 })
        let matrices = [ParameterTensor.qkvw, .attprojw, .fcw, .fcprojw]
        #expect(parts.map(\.count).reduce(0, +) == matrices.map { layout.count($0) }.reduce(0, +))
        #expect(Set(parts.map(\.offset)).count == parts.count)
        #expect(MuonGroup(.wte, tiedEmbeddings: false) == .embedding && MuonGroup(.wte, tiedEmbeddings: true) == .head)
        #expect(MuonGroup(.lmHead, tiedEmbeddings: false) == .head && MuonGroup(.ln1w, tiedEmbeddings: false) == .scalar)
        #expect(MuonGroup(.qkvb, tiedEmbeddings: false) == .scalar && MuonGroup(.wpe, tiedEmbeddings: true) == .embedding)
    }

    /// One fixture of reference/make_muon_fixture.py: the weights before and after, the batches, and
    /// trajectory.json (decoded with JSONDecoder, which reads every double exactly).
    struct Fixture {
        struct Trajectory: Decodable {
            struct Batch: Decodable { let B: Int, T: Int }
            struct Optimizer: Decodable {
                let matrix_lr, embedding_lr, unembedding_lr, scalar_lr, momentum, momentum_start: Double
                let adam_beta1, adam_beta2, adam_eps, adam_weight_decay, grad_clip: Double
                let momentum_warmup_steps, ns_steps: Int
                let muon_matrices: [String]
            }
            let batch: Batch, optimizer: Optimizer
            let lr_multipliers, momenta, losses, grad_norms_before_clip: [Double]
        }
        let weights: ModelWeights, final: ModelWeights
        let inputs: [Int32], targets: [Int32]
        let trajectory: Trajectory, muon: MuonConfig

        init(_ name: String) throws {
            weights = try HuggingFaceFolder.read(folder: Fixtures.path(name, "hf"))
            final = try loadWeights(Fixtures.path(name, "final"))
            let batches = try SafeTensorsFile.read(Fixtures.path(name, "batches.safetensors"))
            (inputs, targets) = (try batches.int32s("inputs"), try batches.int32s("targets"))
            trajectory = try JSONDecoder().decode(Trajectory.self, from: Data(Fixtures.bytes(name, "trajectory.json")))
            let o = trajectory.optimizer
            var c = MuonConfig()
            (c.matrixLR, c.embeddingLR, c.unembeddingLR) = (o.matrix_lr, o.embedding_lr, o.unembedding_lr)
            (c.momentum, c.momentumStart, c.momentumWarmupSteps) = (o.momentum, o.momentum_start, o.momentum_warmup_steps)
            c.newtonSchulzSteps = o.ns_steps
            (c.adamBeta1, c.adamBeta2, c.adamEps, c.adamWeightDecay) = (o.adam_beta1, o.adam_beta2, o.adam_eps,
                                                                        o.adam_weight_decay)
            muon = c
        }
    }

    /// Ten steps of nanochat's Muon + AdamW from PyTorch's initial weights on its batches: each step's loss and
    /// gradient norm, then every final weight. With 1 and 2 threads.
    @Test(arguments: ["muon-nanochat", "muon-llama"], [1, 2])
    func tenStepsMatchPyTorch(fixture name: String, threads: Int) throws {
        let f = try Fixture(name), t = f.trajectory, o = t.optimizer
        let start = f.weights.copy()
        let model = try Transformer(weights: f.weights, batch: t.batch.B, seq: t.batch.T,
                                    parallel: ParallelFor(threads: threads), optimizer: .muon)
        #expect(model.muonMatrices.count == o.muon_matrices.count)
        let n = t.batch.B * t.batch.T
        var worstLoss = 0.0
        for step in 0..<t.losses.count {
            #expect(f.muon.momentum(atStep: step) == t.momenta[step], "step \(step + 1)'s momentum")
            let range = step * n..<(step + 1) * n
            let loss = try #require(try model.forward(inputs: Array(f.inputs[range]), targets: Array(f.targets[range])))
            model.zeroGradients()
            try model.backward()
            let lrm = t.lr_multipliers[step]
            let adamW = AdamWConfig(learningRate: o.scalar_lr * lrm, beta1: o.adam_beta1, beta2: o.adam_beta2,
                                    eps: o.adam_eps, weightDecay: o.adam_weight_decay, gradClip: o.grad_clip)
            let norm = try model.update(adamW, muon: f.muon, learningRateScale: lrm, step: step + 1)
            let lossError = abs(Double(loss) - t.losses[step]) / t.losses[step]
            let normError = abs(norm - t.grad_norms_before_clip[step]) / t.grad_norms_before_clip[step]
            worstLoss = max(worstLoss, lossError)
            #expect(lossError < 1e-5, "\(name) step \(step + 1): loss \(loss) vs \(t.losses[step]) (rel \(lossError))")
            #expect(normError < 1e-4, "\(name) step \(step + 1): grad norm \(norm) vs \(t.grad_norms_before_clip[step])")
        }
        // Each tensor within 1e-5 of its largest final magnitude (at least 1): the embedding moves by up to 5 at
        // AdamW's ~1 learning rate, where float32 rounding in tiny gradients decides the sign of some updates.
        let layout = model.weights.layout
        var report = [String]()
        for p in layout.present {
            let ours = model.weights.arena.array(layout.range(p)), theirs = f.final.arena.array(layout.range(p))
            let moved = zip(start.arena.array(layout.range(p)), theirs).map { abs($0 - $1) }.max()!
            let worst = zip(ours, theirs).map { abs($0 - $1) }.max()!, scale = max(1, theirs.map(abs).max()!)
            report.append("\(p) \(worst) (moved \(moved))")
            #expect(worst <= 1e-5 * scale, "\(name) \(p): max |ours − PyTorch| = \(worst) (the steps moved it up to \(moved))")
        }
        print("\(name), \(threads) threads: worst loss rel \(worstLoss); " + report.joined(separator: ", "))
    }

    /// What `requiredBytes` promises is what a Muon model allocates, and an AdamW model's state is refused by it.
    @Test func muonsMemoryIsAccountedAndItsStateIsItsOwn() throws {
        let config = try ModelPreset.llama(layers: 2, heads: 4, channels: 32, kvHeads: 2, vocabSize: 40, maxSeqLen: 16)
        let weights = ModelWeights.random(config: config, seed: 5)
        let parallel = ParallelFor(threads: 2)
        let muon = try Transformer(weights: weights, batch: 2, seq: 8, parallel: parallel, optimizer: .muon)
        let adamW = try Transformer(weights: weights, batch: 2, seq: 8, parallel: parallel)
        #expect(Transformer.requiredBytes(config: config, batch: 2, seq: 8, parallel: parallel, optimizer: .muon)
                == muon.allocatedBytes)
        #expect(muon.allocatedBytes > adamW.allocatedBytes)
        try withTemporaryDirectory { dir in
            try adamW.writeOptimizerState(to: dir + "/adamw.bin")
            try muon.writeOptimizerState(to: dir + "/muon.bin")
            #expect(throws: FormatError.self) { try muon.readOptimizerState(from: dir + "/adamw.bin") }
            #expect(throws: FormatError.self) { try adamW.readOptimizerState(from: dir + "/muon.bin") }
            try muon.readOptimizerState(from: dir + "/muon.bin")
        }
    }

    /// A LoRA adapter trains with AdamW only: Muon refuses it in one line.
    @Test func muonRefusesALoRAAdapter() throws {
        let config = try ModelPreset.llama(layers: 1, heads: 2, channels: 16, kvHeads: 1, vocabSize: 40, maxSeqLen: 16)
        let base = ModelWeights.random(config: config, seed: 2)
        let adapter = try LoRAAdapter(config: LoRAConfig(rank: 2, targets: [LoRAConfig.allLinear]), model: config)
        #expect(throws: ModelError.self) {
            _ = try Transformer(weights: try base.withAdapter(adapter), batch: 1, seq: 4, optimizer: .muon)
        }
    }
}
