// `llm verify`: checks the engine against a PyTorch parity fixture, tensor by tensor.
import ArgumentParser
import Foundation
import LLM

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check forward, gradients and optimizer steps against a PyTorch reference fixture.",
        discussion: """
            Give a fixture folder: llm.c's format for GPT-2 (model.bin, state.bin, trajectory.json, final.bin) or the \
            generic one for any architecture (hf/, state.safetensors, trajectory.json, final/), or a LoRA fixture made \
            with PEFT (hf/, adapter/, state.safetensors, trajectory.json, final/: reference/make_lora_fixture.py). \
            Or give --model and \
            --state for llm.c files kept elsewhere. Exits 0 only if every check holds. See reference/ for how \
            fixtures are made.

            With --greedy REFERENCE.json and --model MODEL (a GGUF file, a Hugging Face folder, …): checks greedy \
            decoding against transformers' (reference/real_model_greedy.py writes the file): each case's prompt ids \
            (rendered with the model's tokenizer and chat template) and every new token.
            """)

    @Argument(help: "A fixture folder, in either format.")
    var fixture: String?
    @Option(help: "Initial weights: an llm.c .bin checkpoint or a Hugging Face folder (instead of a fixture folder).")
    var model: String?
    @Option(help: "llm.c debug state (.bin) with the batch, logits, loss and gradients.")
    var state: String?
    @Option(help: "Optimizer trajectory (JSON) to replay on the same batch.")
    var trajectory: String?
    @Option(help: "Reference weights after the trajectory (default: final.bin beside the trajectory, if present).")
    var final: String?
    @Option(help: "Write the weights after the last step (a .bin checkpoint, or a Hugging Face folder).")
    var saveFinal: String?
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?
    @Option(help: "Greedy replies of a real model from reference/real_model_greedy.py, to check --model against.")
    var greedy: String?

    @OptionGroup var device: DeviceOption

    func validate() throws {
        try checkThreads(threads)
        if greedy != nil {
            if model == nil || fixture != nil || state != nil { throw ValidationError("--greedy needs --model and nothing else") }
            return
        }
        if (fixture == nil) == (model == nil || state == nil) {
            throw ValidationError("give a fixture folder, or --model and --state (not both)")
        }
        if fixture != nil && (trajectory != nil || final != nil) {
            throw ValidationError("a fixture folder brings its own trajectory and final weights")
        }
        if saveFinal != nil && trajectory == nil && fixture == nil {
            throw ValidationError("--save-final needs --trajectory")
        }
    }

    func run() throws {
        try reportingErrors {
            try device.check()
            if let greedy { return try verifyGreedy(greedy) }
            if let fixture, LoRAParityFixture.isLoRA(fixture) { return try verifyLoRA(fixture) }
            let loaded = try loadFixture()
            let (weights, st, traj, finalWeights) = (loaded.weights, loaded.state, loaded.trajectory, loaded.final)
            let c = weights.config
            let net = try Transformer(weights: weights, batch: st.batch, seq: st.seq,
                               parallel: threads.map { ParallelFor(threads: $0) } ?? .allCores)
            print("model  \(loaded.path)  (\(c), \(String(format: "%.2fM", Double(c.parameterCount) / 1e6)) parameters)")
            print("state  B=\(st.batch) T=\(st.seq), \(net.parallel.threads) threads")
            var allPassed = true
            func show(_ check: ParityCheck) { allPassed = printCheck(check, width: 52) && allPassed }
            print(pad("check", 52) + pad("max|diff|", 12) + pad("bound", 12))
            for check in try Parity.checkForwardBackward(net, state: st) { show(check) }
            if let traj {
                allPassed = printSteps(try Parity.runTrajectory(net, state: st, trajectory: traj)) && allPassed
                if let ref = finalWeights {
                    print("")
                    for check in Parity.checkFinalWeights(net.weights, reference: ref, referenceGradients: st.gradients,
                                                         trajectory: traj) { show(check) }
                }
                if let saveFinal {
                    try saveWeights(net.weights, to: saveFinal)
                    print("wrote \(saveFinal)")
                }
            }
            print(allPassed ? "\nall checks passed" : "\nSOME CHECKS FAILED")
            if !allPassed { throw ExitCode.failure }
        }
    }

    /// A LoRA fixture (reference/make_lora_fixture.py): PEFT's adapter gradients, trajectory and final adapter.
    private func verifyLoRA(_ folder: String) throws {
        let fixture = try LoRAParityFixture.load(folder)
        let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
        let c = fixture.base.config
        print("model  \(folder)/hf  (\(c)), frozen; adapter \(folder)/adapter (PEFT LoRA)")
        print("state  B=\(fixture.batch) T=\(fixture.seq), \(parallel.threads) threads")
        let (checks, steps, final, trained) = try Parity.checkLoRA(fixture, parallel: parallel)
        var allPassed = true
        func show(_ check: ParityCheck) { allPassed = printCheck(check, width: 60) && allPassed }
        print(pad("check", 60) + pad("max|diff|", 12) + pad("bound", 12))
        for check in checks { show(check) }
        allPassed = printSteps(steps) && allPassed
        print("")
        for check in final { show(check) }
        if let saveFinal {
            try trained.write(folder: saveFinal, baseModel: folder + "/hf")
            print("wrote \(saveFinal) (the adapter after the trajectory, PEFT's format)")
        }
        print(allPassed ? "\nall checks passed" : "\nSOME CHECKS FAILED")
        if !allPassed { throw ExitCode.failure }
    }

    private func verifyGreedy(_ reference: String) throws {
        let loaded = try LoadedModel.load(model!)
        print("model  \(loaded.weightsPath)  (\(loaded.weights.config))")
        print(pad("case", 16) + pad("prompt", 9) + pad("tokens", 12) + "result")
        let results = try GreedyCheck.run(model: loaded, referencePath: reference,
                                          parallel: threads.map { ParallelFor(threads: $0) } ?? .allCores) { r in
            let outcome = r.passed ? "OK" : r.marginAtDivergence.map { "FAIL at token \(r.matchingTokens + 1) (our top-2 margin \(sci(Double($0))))" } ?? "FAIL"
            print(pad(r.name, 16) + pad(r.promptMatches ? "same" : "DIFFERS", 9)
                  + pad("\(r.matchingTokens)/\(r.referenceTokens)", 12) + outcome)
            if let d = r.promptDifference { print("    prompt differs \(d)") }
            print("    " + r.text.replacingOccurrences(of: "\n", with: "\\n"))
        }
        let passed = results.filter { $0.passed }.count
        print("\(passed)/\(results.count) cases equal to the reference")
        if passed != results.count { throw ExitCode.failure }
    }

    /// The fixture folder, or the llm.c files given one by one.
    private func loadFixture() throws -> ParityFixture {
        if let fixture { return try ParityFixture.load(fixture) }
        let weights = try loadWeights(model!)
        let st = try DebugState.read(state!, config: weights.config)
        let traj = try trajectory.map(Trajectory.read)
        if let b = traj?.batch, b.B != st.batch || b.T != st.seq {
            throw FormatError.mismatch(path: trajectory!, reason: "batch \(b.B)x\(b.T) differs from the state's \(st.batch)x\(st.seq)")
        }
        var finalWeights: ModelWeights?
        if let trajectory, let path = final ?? defaultFinal(beside: trajectory) {
            let ref = try LLMCCheckpoint.read(path)
            guard ref.config == weights.config else {
                throw FormatError.mismatch(path: path, reason: "shape \(ref.config) differs from the model's")
            }
            finalWeights = ref
        }
        return ParityFixture(path: model!, weights: weights, state: st, trajectory: traj, final: finalWeights)
    }

    private func defaultFinal(beside trajectory: String) -> String? {
        let path = URL(fileURLWithPath: trajectory).deletingLastPathComponent().appendingPathComponent("final.bin").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// One row of the check table; returns whether it passed.
private func printCheck(_ check: ParityCheck, width: Int) -> Bool {
    print(pad(check.name, width) + pad(sci(check.difference), 12) + pad(sci(check.bound), 12)
          + (check.passed ? "OK" : "FAIL"))
    return check.passed
}

/// The optimizer steps beside the reference's, under their own header; returns whether all passed.
private func printSteps(_ steps: [ParityStep]) -> Bool {
    print("\n" + pad("step", 6) + pad("loss", 12) + pad("reference", 12) + pad("|diff|", 11) + pad("grad norm", 12)
          + pad("reference", 12) + pad("rel diff", 11))
    for s in steps {
        print(pad("\(s.step)", 6) + pad(fmt(s.loss), 12) + pad(fmt(s.referenceLoss), 12)
              + pad(sci(s.lossCheck.difference), 11) + pad(fmt(s.gradNorm), 12) + pad(fmt(s.referenceGradNorm), 12)
              + pad(sci(s.gradNormCheck.difference / max(abs(s.referenceGradNorm), 1e-30)), 11)
              + (s.passed ? "OK" : "FAIL"))
    }
    return steps.allSatisfy(\.passed)
}

private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
private func sci(_ x: Double) -> String { String(format: "%.2e", x) }
private func fmt(_ x: Double) -> String { String(format: "%.6f", x) }
