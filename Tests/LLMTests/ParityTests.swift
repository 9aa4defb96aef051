// The whole model against PyTorch, tensor by tensor, on every committed fixture (reference/ made them).
import Testing
@testable import LLM

@Suite struct ParityTests {
    @Test(arguments: Fixtures.names, [1, 2])
    func forwardBackwardAndTrajectoryMatchPyTorch(fixture: String, threads: Int) throws {
        let weights = try LLMCCheckpoint.read(Fixtures.path(fixture, "model.bin"))
        let state = try DebugState.read(Fixtures.path(fixture, "state.bin"), config: weights.config)
        let trajectory = try Trajectory.read(Fixtures.path(fixture, "trajectory.json"))
        let model = try Transformer(weights: weights, batch: state.batch, seq: state.seq, parallel: ParallelFor(threads: threads))

        let checks = try Parity.checkForwardBackward(model, state: state)
        #expect(checks.count == 2 + 16)
        for check in checks { #expect(check.passed, "\(fixture) \(check.name): \(check.difference) > \(check.bound)") }

        let steps = try Parity.runTrajectory(model, state: state, trajectory: trajectory)
        #expect(steps.count == trajectory.steps)
        for s in steps {
            #expect(s.lossCheck.passed, "\(fixture) step \(s.step) loss \(s.loss) vs \(s.referenceLoss)")
            #expect(s.gradNormCheck.passed, "\(fixture) step \(s.step) grad norm \(s.gradNorm) vs \(s.referenceGradNorm)")
        }
        let reference = try LLMCCheckpoint.read(Fixtures.path(fixture, "final.bin"))
        for check in Parity.checkFinalWeights(model.weights, reference: reference, referenceGradients: state.gradients,
                                              trajectory: trajectory) {
            #expect(check.passed, "\(fixture) \(check.name): \(check.difference) > \(check.bound)")
        }
    }

    @Test func hfFolderGivesTheSameForwardAsTheCheckpoint() throws {
        let fixture = "deep-heads"
        let weights = try HuggingFaceFolder.read(folder: Fixtures.path(fixture, "hf"))
        let state = try DebugState.read(Fixtures.path(fixture, "state.bin"), config: weights.config)
        let model = try Transformer(weights: weights, batch: state.batch, seq: state.seq, parallel: ParallelFor(threads: 1))
        for check in try Parity.checkForwardBackward(model, state: state) { #expect(check.passed, "\(check.name)") }
    }

    /// The checks must be able to fail: one LayerNorm bias nudged by 0.05 breaks the logits and some gradients.
    @Test func aPerturbedModelFailsTheChecks() throws {
        let fixture = "odd-vocab"
        let weights = try LLMCCheckpoint.read(Fixtures.path(fixture, "model.bin"))
        let state = try DebugState.read(Fixtures.path(fixture, "state.bin"), config: weights.config)
        weights.arena[weights.layout.offset(.lnfb)] += 0.05
        let model = try Transformer(weights: weights, batch: state.batch, seq: state.seq, parallel: ParallelFor(threads: 1))
        let checks = try Parity.checkForwardBackward(model, state: state)
        #expect(!checks[0].passed, "logits should differ")
        #expect(checks.contains { !$0.passed && $0.name.hasPrefix("grad") })
    }

    @Test func trajectoryRejectsMalformedJSON() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/t.json"
            try writeBytes(Array(#"{"steps": 3, "losses": [1], "grad_norms_before_clip": [1]}"#.utf8), path)
            #expect(throws: FormatError.self) { try Trajectory.read(path) }
        }
    }
}
