// Parity of LoRA training against PEFT (reference/make_lora_fixture.py): a frozen base (hf/), an adapter in PEFT's
// format (adapter/), one batch with its logits, loss and the gradient of every lora_A and lora_B
// (state.safetensors), ten AdamW steps on the adapter alone (trajectory.json) and the adapter they end at (final/,
// with its logits as `final_logits`).
import Foundation

public struct LoRAParityFixture {
    public let path: String
    public let base: ModelWeights
    public let batch: Int, seq: Int
    public let inputs: [Int32], targets: [Int32]
    public let logits: [Float], loss: Float, finalLogits: [Float]
    /// grad.<PEFT tensor name> → the reference's gradient at the first step.
    public let gradients: [String: [Float]]
    public let trajectory: Trajectory

    /// Whether `folder` holds a LoRA fixture (an adapter/ folder beside hf/).
    public static func isLoRA(_ folder: String) -> Bool { LoRAAdapter.isAdapterFolder(folder + "/adapter") }

    /// A fresh copy of the fixture's initial (`final`: trained) adapter, attached to the base.
    public func weights(final: Bool = false) throws -> ModelWeights {
        try base.withAdapter(try LoRAAdapter.read(folder: path + (final ? "/final" : "/adapter"), model: base.config))
    }

    public static func load(_ folder: String) throws -> LoRAParityFixture {
        let base = try HuggingFaceFolder.read(folder: folder + "/hf")
        let c = base.config
        let statePath = folder + "/state.safetensors"
        let file = try SafeTensorsFile.read(statePath)
        guard let shape = file.entries["inputs"]?.shape, shape.count == 2, shape[0] > 0, shape[1] > 0,
              file.entries["targets"]?.shape == shape, shape[1] <= c.maxSeqLen else {
            throw FormatError.malformed(path: statePath, reason: "inputs and targets must both be (B,T), T ≤ the model's context")
        }
        let (B, T, V) = (shape[0], shape[1], c.vocabSize)
        for name in ["logits", "final_logits"] where file.entries[name]?.shape != [B, T, V] {
            throw FormatError.malformed(path: statePath, reason: "\(name) must be (\(B),\(T),\(V))")
        }
        let adapter = try LoRAAdapter.read(folder: folder + "/adapter", model: c)
        var gradients = [String: [Float]]()
        for part in adapter.parts {
            let names = LoRAAdapter.tensorNames(part)
            for name in [names.a, names.b] { gradients[name] = try file.floats("grad." + name) }
        }
        let trajectory = try Trajectory.read(folder + "/trajectory.json")
        return LoRAParityFixture(path: folder, base: base, batch: B, seq: T, inputs: try file.int32s("inputs"),
                                 targets: try file.int32s("targets"), logits: try file.floats("logits"),
                                 loss: try file.floats("loss")[0], finalLogits: try file.floats("final_logits"),
                                 gradients: gradients, trajectory: trajectory)
    }
}

extension Parity {
    /// Forward, every adapter gradient, the trajectory, the trained adapter against PEFT's, and both adapters' logits
    /// (ours after training, and PEFT's final/ read back and run here) against the reference's final logits.
    /// Also returns the adapter as trained here.
    public static func checkLoRA(_ fixture: LoRAParityFixture, parallel: ParallelFor)
        throws -> (checks: [ParityCheck], steps: [ParityStep], final: [ParityCheck], trained: LoRAAdapter) {
        let weights = try fixture.weights()
        let adapter = weights.adapter!
        let model = try Transformer(weights: weights, batch: fixture.batch, seq: fixture.seq, parallel: parallel)
        var checks = try forwardChecks(model, fixture, reference: fixture.logits, loss: fixture.loss)
        model.zeroGradients()
        try model.backward()
        for part in adapter.parts {
            let names = LoRAAdapter.tensorNames(part)
            for (name, range) in [(names.a, part.a), (names.b, part.b)] {
                let (diff, scale) = maxAbsDiff(model.adapterGradient(range), fixture.gradients[name]!)
                checks.append(ParityCheck(name: "grad " + name.dropFirst(LoRAAdapter.tensorPrefix.count),
                                          difference: diff, bound: gradientRelativeBound * scale))
            }
        }
        let steps = try runTrajectory(model, inputs: fixture.inputs, targets: fixture.targets, batch: fixture.batch,
                                      seq: fixture.seq, trajectory: fixture.trajectory)
        // The trained adapter, element by element (as checkFinalWeights: gradients below Adam's eps are noise).
        let reference = try LoRAAdapter.read(folder: fixture.path + "/final", model: fixture.base.config)
        let eps = Float(fixture.trajectory.optimizer.eps)
        var worst = 0.0, worstNoisy = 0.0
        for part in adapter.parts {
            let names = LoRAAdapter.tensorNames(part)
            for (name, range) in [(names.a, part.a), (names.b, part.b)] {
                let ours = adapter.arena.array(range), theirs = reference.arena.array(range)
                let g = fixture.gradients[name]!
                for i in ours.indices {
                    let diff = ours[i].isFinite ? Double(abs(ours[i] - theirs[i])) : .nan
                    if g[i] == 0 || abs(g[i]) >= eps { if !(diff <= worst) { worst = diff } }
                    else if !(diff <= worstNoisy) { worstNoisy = diff }
                }
            }
        }
        var final = [ParityCheck(name: "final adapter", difference: worst, bound: finalWeightsBound),
                     ParityCheck(name: "final adapter, 0 < |grad| < eps", difference: worstNoisy,
                                 bound: noiseDominatedBound(lr: fixture.trajectory.optimizer.lr,
                                                            steps: fixture.trajectory.steps))]
        let trained = try forwardChecks(model, fixture, reference: fixture.finalLogits, loss: nil)
        final.append(ParityCheck(name: "logits, adapter trained here", difference: trained[0].difference,
                                 bound: trained[0].bound))
        let theirs = try Transformer(weights: try fixture.weights(final: true), batch: fixture.batch, seq: fixture.seq,
                                     parallel: parallel)
        let peft = try forwardChecks(theirs, fixture, reference: fixture.finalLogits, loss: nil)
        final.append(ParityCheck(name: "logits, PEFT's trained adapter run here", difference: peft[0].difference,
                                 bound: peft[0].bound))
        return (checks, steps, final, adapter)
    }

    /// Logits (and the loss, when given) of a forward pass on the fixture's batch.
    private static func forwardChecks(_ model: Transformer, _ f: LoRAParityFixture, reference: [Float],
                                      loss: Float?) throws -> [ParityCheck] {
        let V = model.config.vocabSize, Vp = model.config.paddedVocabSize
        let ours = try model.forward(inputs: f.inputs, targets: f.targets, batch: f.batch, seq: f.seq)!
        let logits = model.logits()
        var worst = 0.0
        for n in 0..<f.batch * f.seq {
            for i in 0..<V { worst = max(worst, Double(abs(logits[n * Vp + i] - reference[n * V + i]))) }
            if logits[n * Vp..<n * Vp + V].contains(where: { !$0.isFinite }) { worst = .nan }
        }
        var checks = [ParityCheck(name: "logits", difference: worst, bound: logitsBound)]
        if let loss { checks.append(ParityCheck(name: "loss", difference: Double(abs(ours - loss)), bound: lossBound)) }
        return checks
    }
}
