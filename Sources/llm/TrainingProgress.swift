// What `llm train` shows while it runs: one line per step (redrawn in place on a terminal, plain lines
// otherwise), evals and samples as they happen; all on stderr, so stdout carries only results.
import Foundation
import LLM

final class TrainingProgress {
    private let quiet: Bool
    private let peakGflops: Double?
    private let tty = isatty(STDERR_FILENO) != 0
    private var lineOpen = false
    private var recentMs: [Double] = []
    private(set) var lastEval: EvalReport?

    init(quiet: Bool, peakGflops: Double?) {
        self.quiet = quiet
        self.peakGflops = peakGflops
    }

    func status(_ message: String) {
        guard !quiet else { return }
        write(message + "\n", newLine: true)
    }

    func show(_ event: TrainingEvent, trainer: Trainer) {
        switch event {
        case .step(let r):
            recentMs.append(r.milliseconds)
            if recentMs.count > 20 { recentMs.removeFirst() }
            guard !quiet else { return }
            let ms = recentMs.reduce(0, +) / Double(recentMs.count)
            let gflops = r.flops / (r.milliseconds / 1e3) / 1e9
            var line = String(format: "step %*d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f ms | %.0f tok/s | %.1f GFLOP/s",
                              String(r.totalSteps).count, r.step, r.totalSteps, r.loss, r.learningRate, r.gradNorm,
                              r.milliseconds, Double(r.tokens) / (r.milliseconds / 1e3), gflops)
            if let peakGflops { line += String(format: " | MFU %.1f%%", 100 * gflops / peakGflops) }
            line += " | ETA " + Self.duration(Double(r.totalSteps - r.step) * ms / 1e3)
            if r.skipped { line += " | SKIPPED (non-finite)" }
            write(tty ? "\r\u{1B}[2K" + line : line + "\n", newLine: !tty)
            lineOpen = tty
        case .eval(let e):
            lastEval = e
            guard !quiet else { return }
            write(String(format: "step %d: val loss %.4f%@\n", e.step, e.loss,
                         e.bitsPerByte.map { String(format: " | %.4f bits/byte", $0) } ?? ""), newLine: true)
        case let .sample(step, text):
            guard !quiet else { return }
            write("step \(step) sample:\n\(text)\n---\n", newLine: true)
        case let .checkpoint(step, path):
            guard !quiet else { return }
            write("step \(step): checkpoint \(path)\n", newLine: true)
        }
    }

    func finish() {
        if lineOpen { FileHandle.standardError.write(Data("\n".utf8)) }
        lineOpen = false
    }

    /// Writes to stderr, first ending an in-place step line if a full line follows.
    private func write(_ s: String, newLine: Bool) {
        if newLine && lineOpen {
            FileHandle.standardError.write(Data("\n".utf8))
            lineOpen = false
        }
        FileHandle.standardError.write(Data(s.utf8))
    }

    /// "4m05s", "2h13m"; a time no Int holds (Int.max steps of a slow model) is a number of years, not a crash.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds < 1e15 else { return seconds.isNaN ? "?" : String(format: "%.1e years", seconds / 31_557_600) }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s / 60 % 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
