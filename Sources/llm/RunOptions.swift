// The options `llm train` and `llm sft` share: where the run goes, how often it evaluates, samples and
// checkpoints, and how it reports.
import ArgumentParser
import Foundation
import LLM

struct RunOptions: ParsableArguments {
    @Option(help: "Run directory (default: runs/<name>-<time>, and the link runs/latest then points at it).") var out: String?
    @Option(help: "Continue the run in this directory (or the one a link such as runs/latest points at) from its latest checkpoint.")
    var resume: String?
    @Option(help: "Steps between validation passes (0: never).") var evalEvery = 50
    @Option(help: "Batches per validation pass.") var evalBatches = 10
    @Option(help: "Steps between text samples (0: never).") var sampleEvery = 100
    @Option(help: "Tokens per sample.") var sampleTokens = 96
    @Option(help: "Steps between checkpoints (0: only at the end).") var checkpointEvery = 100
    @Option(help: "Checkpoints to keep.") var keepCheckpoints = 2
    @Option(help: "Stop after this many steps in this invocation (the run can be resumed).") var stopAfter: Int?
    @Option(help: "The machine's peak GFLOP/s, to print MFU.") var peakGflops: Double?
    @Flag(help: "Skip steps whose loss or gradient norm is not finite instead of stopping.") var skipNonfinite = false
    @Flag(help: "Print only results, no progress.") var quiet = false
    @Flag(help: "At the end, print where a step's time went, per kind of operation (communication included under mpirun).")
    var profile = false
    @Option(help: "Worker threads (default: all cores; under mpirun, per rank, and the cores shared among this machine's ranks).")
    var threads: Int?
    @Option(help: "Under mpirun: 1 shards AdamW's moments over the ranks (ZeRO-1: each keeps and updates 1/N of them).")
    var zero = 0

    /// The flags' own ranges; the full set (with the command's) is checked by `TrainingConfig.validate()`
    /// from each command's `validate()`.
    func validate() throws {
        try checkThreads(threads)
        if let stopAfter { try checkRange(stopAfter, "--stop-after", 1...Int.max) }
        if let peakGflops, !(peakGflops.isFinite && peakGflops > 0) {
            throw ValidationError("--peak-gflops \(peakGflops) must be a finite number above 0")
        }
    }

    var parallel: ParallelFor {
        if let threads { return ParallelFor(threads: threads) }
        // Under mpirun, the ranks on this machine share its cores rather than each taking them all.
        if let local = MPICommunicator.localRanks(), local > 1 {
            return ParallelFor(threads: max(1, ParallelFor.allCores.threads / local))
        }
        return .allCores
    }

    /// Copies the eval, sample and checkpoint settings into a training config.
    func apply(to t: inout TrainingConfig) {
        t.evalEvery = evalEvery
        t.evalBatches = evalBatches
        t.sampleEvery = sampleEvery
        t.sampleTokens = sampleTokens
        t.checkpointEvery = checkpointEvery
        t.keepCheckpoints = keepCheckpoints
        t.skipNonFinite = skipNonfinite
        t.zeroStage = zero == 0 ? nil : zero
    }

    /// The new run's directory for its status line, with `(runs/latest)` where that link now points at it.
    func runName(_ trainer: Trainer) -> String {
        guard out == nil else { return trainer.run.path }
        let link = (trainer.run.path as NSString).deletingLastPathComponent + "/" + RunDirectory.latestLinkName
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) ?? ""
        return target == (trainer.run.path as NSString).lastPathComponent ? "\(trainer.run.path) (\(link))" : trainer.run.path
    }

    /// Trains to the end (or --stop-after steps), showing progress, then prints the run, the final model and
    /// the last validation loss on stdout.
    func train(_ trainer: Trainer, progress: TrainingProgress) throws {
        // Saturating: --stop-after beyond the run's end just means to the end.
        let stop = stopAfter.map { trainer.step.addingReportingOverflow($0).overflow ? Int.max : trainer.step + $0 }
        // The first SIGINT/SIGTERM/SIGHUP finishes the step and writes a checkpoint; a second one exits at once.
        let interrupt = StopRequest(message: "finishing this step and writing a checkpoint")
        interrupt.install()
        if let line = Ranks.describe(trainer) { progress.status(line) }
        let ops = profile ? OpProfile() : nil
        trainer.model.profile = ops
        let firstStep = trainer.step
        try trainer.train(stopAfter: stop, observer: { progress.show($0, trainer: trainer) },
                          shouldStop: { interrupt.isRequested })
        progress.finish()
        Ranks.finish()
        guard trainer.communicator.isMain else { return }  // rank 0 reports
        if let ops, trainer.step > firstStep {
            let steps = trainer.step - firstStep, total = ops.entries.reduce(0) { $0 + $1.milliseconds }
            print("per step (mean of \(steps)\(trainer.communicator.size > 1 ? ", rank 0" : ""); evals included):")
            for e in ops.entries {
                let name = e.op.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                print(String(format: "  %@ %9.1f ms  %5.1f%%", name, e.milliseconds / Double(steps), 100 * e.milliseconds / total))
            }
        }
        if interrupt.isRequested && trainer.step < trainer.config.training.steps {
            print("stopped at step \(trainer.step); continue with: llm \(trainer.config.training.conversations == nil ? "train" : "sft") --resume \(trainer.run.path)")
        }
        print("run: \(trainer.run.path)")
        if trainer.step == trainer.config.training.steps {
            print("\(trainer.config.lora == nil ? "model" : "adapter"): \(trainer.run.finalOutputPath(trainer.config))")
        }
        if let last = progress.lastEval {
            print(String(format: "step %d: val loss %.4f%@", last.step, last.loss,
                         last.bitsPerByte.map { String(format: ", %.4f bits/byte", $0) } ?? ""))
        }
    }
}

/// `runs/<name>-<yyyyMMdd-HHmmss>`.
func timestampedRunDirectory(name: String) -> String {
    let f = DateFormatter()
    f.dateFormat = "yyyyMMdd-HHmmss"
    return "runs/\(name)-\(f.string(from: Date()))"
}
