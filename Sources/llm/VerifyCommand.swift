// `llm verify`: checks the engine against a PyTorch parity fixture, tensor by tensor.
import ArgumentParser
import Foundation
import LLM

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check forward, gradients and optimizer steps against a PyTorch reference fixture.",
        discussion: "Exits 0 only if every check holds. See reference/ for how fixtures are made.")

    @Option(help: "Initial weights: an llm.c .bin checkpoint or a Hugging Face folder.")
    var model: String
    @Option(help: "llm.c debug state (.bin) with the batch, logits, loss and gradients.")
    var state: String
    @Option(help: "Optimizer trajectory (JSON) to replay on the same batch.")
    var trajectory: String?
    @Option(help: "Reference weights after the trajectory (default: final.bin beside the trajectory, if present).")
    var final: String?
    @Option(help: "Write the weights after the last step to this .bin checkpoint.")
    var saveFinal: String?
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @OptionGroup var device: DeviceOption

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if saveFinal != nil && trajectory == nil { throw ValidationError("--save-final needs --trajectory") }
    }

    func run() throws {
        try reportingErrors {
            try device.check()
            let weights = try loadWeights(model)
            let c = weights.config
            let st = try DebugState.read(state, config: c)
            let traj = try trajectory.map(Trajectory.read)
            if let b = traj?.batch, b.B != st.batch || b.T != st.seq {
                throw FormatError.mismatch(path: trajectory!, reason: "batch \(b.B)x\(b.T) differs from the state's \(st.batch)x\(st.seq)")
            }
            let net = try Transformer(weights: weights, batch: st.batch, seq: st.seq,
                               parallel: threads.map { ParallelFor(threads: $0) } ?? .allCores)
            print("model  \(model)  (\(c), \(String(format: "%.2fM", Double(c.parameterCount) / 1e6)) parameters)")
            print("state  \(state)  (B=\(st.batch) T=\(st.seq))")
            var allPassed = true
            func show(_ check: ParityCheck) {
                allPassed = allPassed && check.passed
                print(pad(check.name, 52) + pad(sci(check.difference), 12) + pad(sci(check.bound), 12)
                      + (check.passed ? "OK" : "FAIL"))
            }
            print(pad("check", 52) + pad("max|diff|", 12) + pad("bound", 12))
            for check in try Parity.checkForwardBackward(net, state: st) { show(check) }
            if let traj {
                print("\n" + pad("step", 6) + pad("loss", 12) + pad("reference", 12) + pad("|diff|", 11)
                      + pad("grad norm", 12) + pad("reference", 12) + pad("rel diff", 11))
                for s in try Parity.runTrajectory(net, state: st, trajectory: traj) {
                    allPassed = allPassed && s.passed
                    print(pad("\(s.step)", 6) + pad(fmt(s.loss), 12) + pad(fmt(s.referenceLoss), 12)
                          + pad(sci(s.lossCheck.difference), 11) + pad(fmt(s.gradNorm), 12)
                          + pad(fmt(s.referenceGradNorm), 12)
                          + pad(sci(s.gradNormCheck.difference / max(abs(s.referenceGradNorm), 1e-30)), 11)
                          + (s.passed ? "OK" : "FAIL"))
                }
                if let finalPath = final ?? defaultFinal(beside: trajectory!) {
                    print("")
                    let ref = try LLMCCheckpoint.read(finalPath)
                    guard ref.config == c else {
                        throw FormatError.mismatch(path: finalPath, reason: "shape \(ref.config) differs from the model's")
                    }
                    for check in Parity.checkFinalWeights(net.weights, reference: ref, referenceGradients: st.gradients,
                                                         trajectory: traj) { show(check) }
                }
                if let saveFinal {
                    try LLMCCheckpoint.write(net.weights, to: saveFinal)
                    print("wrote \(saveFinal)")
                }
            }
            print(allPassed ? "\nall checks passed" : "\nSOME CHECKS FAILED")
            if !allPassed { throw ExitCode.failure }
        }
    }

    private func defaultFinal(beside trajectory: String) -> String? {
        let path = URL(fileURLWithPath: trajectory).deletingLastPathComponent().appendingPathComponent("final.bin").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
private func sci(_ x: Double) -> String { String(format: "%.2e", x) }
private func fmt(_ x: Double) -> String { String(format: "%.6f", x) }
