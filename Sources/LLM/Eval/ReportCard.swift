// The report card of a pipeline, as nanochat writes one at the end of its speedrun: for each run (pretraining,
// fine-tuning) its model, tokenizer, data, losses, bits per byte, speed, wall time and last sample, with its loss
// curve; for each evaluation (`llm eval --json`) its tasks, CORE and ChatCORE, with a bar chart; and the machine.
// Markdown with SVG files beside it, readable on GitHub or in any browser.
import Foundation

public struct ReportCard {
    /// One run directory's summary, read from its config.json and log.jsonl.
    public struct Run: Sendable {
        public var name: String
        public var path: String
        public var config: RunConfig
        public var records: [RunLogRecord]

        /// "pretraining", "fine-tuning (SFT)" or "LoRA fine-tuning".
        public var stage: String {
            if config.rl != nil { return "RL (GRPO)" }
            if config.lora != nil { return "LoRA fine-tuning" }
            return config.training.conversations != nil ? "fine-tuning (SFT)" : "pretraining"
        }
        var train: [RunLogRecord] { records.filter { $0.kind == .train } }
        var evals: [RunLogRecord] { records.filter { $0.kind == .eval } }
        // A record's step counts the updates done (the log's train records run 1...steps).
        /// Seconds from the first record to the last.
        var wallSeconds: Double? {
            let times = records.compactMap(\.time)
            guard let first = times.min(), let last = times.max() else { return nil }
            return last - first
        }
    }

    public var runs: [Run]
    public var evaluations: [(name: String, report: EvaluationReport)]
    /// The machine the report was made on (the runs' machine, when made where they ran).
    public var machine: String

    public init(runs: [Run], evaluations: [(name: String, report: EvaluationReport)], machine: String = ReportCard.machineDescription()) {
        self.runs = runs
        self.evaluations = evaluations
        self.machine = machine
    }

    /// Reads run directories and `llm eval --json` files.
    public static func read(runs runPaths: [String], evaluations evalPaths: [String]) throws -> ReportCard {
        var runs = [Run]()
        for path in runPaths {
            let resolved = RunDirectory.resolvingLinks(path)
            let directory = RunDirectory(resolved)
            guard RunDirectory.isRun(resolved) else {
                throw RunLogError.unreadable(path: path, reason: "not a run directory (no config.json)")
            }
            let name = URL(fileURLWithPath: resolved).standardizedFileURL.lastPathComponent
            runs.append(Run(name: name, path: resolved, config: try directory.readConfig(),
                            records: try RunLog.read(directory.logPath)))
        }
        var evaluations = [(name: String, report: EvaluationReport)]()
        for path in evalPaths {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw RunLogError.unreadable(path: path, reason: "no such file")
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            do {
                let report = try decoder.decode(EvaluationReport.self, from: data)
                evaluations.append((URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, report))
            } catch {
                throw RunLogError.unreadable(path: path, reason: "not an `llm eval --json` report: \(EvalTask.describe(error))")
            }
        }
        return ReportCard(runs: runs, evaluations: evaluations)
    }

    /// The CPU's name, its cores and the kernels in use.
    public static func machineDescription() -> String {
        var cpu = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            cpu = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, kernels \(KernelVariant.current)"
    }

    /// The files of the report: "report.md" and one SVG per run and per evaluation, by name.
    public func files(date: Date = Date()) -> [(name: String, contents: String)] {
        var files = [(name: String, contents: String)]()
        var md = "# Report card\n\n"
        let stamp = ISO8601DateFormatter().string(from: date)
        md += "Made \(stamp) on \(machine).\n\n"
        if !runs.isEmpty {
            md += "| run | stage | model | parameters | steps | final train loss | last val loss | bits per byte | tokens/s | wall time |\n"
            md += "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            for run in runs {
                let c = run.config.model
                let lastVal = run.evals.last(where: { $0.valLoss != nil })
                let speeds = run.train.compactMap(\.tokensPerSecond)
                md += "| \(run.name) | \(run.stage) | \(c.architecture.rawValue) L\(c.numLayers) C\(c.channels) | "
                    + "\(Self.count(c.parameterCount)) | \(run.train.last.map { "\($0.step)" } ?? "–") | "
                    + "\(Self.number(run.train.last?.loss)) | \(Self.number(lastVal?.valLoss)) | "
                    + "\(Self.number(run.evals.last(where: { $0.bitsPerByte != nil })?.bitsPerByte)) | "
                    + "\(speeds.isEmpty ? "–" : String(format: "%.0f", speeds.reduce(0, +) / Double(speeds.count))) | "
                    + "\(run.wallSeconds.map(Self.duration) ?? "–") |\n"
            }
            md += "\n"
        }
        for run in runs {
            let t = run.config.training
            md += "## \(run.name): \(run.stage)\n\n"
            md += "- Model: \(run.config.model.architecture.rawValue), \(run.config.model.numLayers) layers, "
                + "\(run.config.model.channels) channels, \(run.config.model.numHeads) heads, context \(run.config.model.maxSeqLen), "
                + "vocabulary \(run.config.model.vocabSize), \(Self.count(run.config.model.parameterCount)) parameters\n"
            md += "- Tokenizer: \(t.tokenizer)\n"
            md += "- Data: \(t.conversations != nil ? "conversations" : t.trainShards)\n"
            md += "- Batch \(t.batch)×\(t.seq)\(t.totalBatchTokens.map { ", \($0) tokens per step" } ?? ""), "
                + "\(t.steps) steps, \(t.muon != nil ? "Muon + AdamW" : "AdamW"), lr \(t.learningRate) (\(t.schedule.rawValue))\n"
            if let from = run.config.initializedFrom { md += "- Initialized from: \(from)\n" }
            let svgName = "loss-\(run.name).svg"
            if let rl = run.config.rl {
                // An RL run's curve: the mean reward of each step's samples, and pass@1 on held-out problems.
                let rewards = run.train.compactMap(\.reward), passes = run.evals.compactMap(\.accuracy)
                md += "- RL: \(rl.steps) steps of \(rl.problemsPerStep) problems × \(rl.samplesPerProblem) samples, lr \(rl.learningRate)\n"
                if let first = rewards.first, let last = rewards.last {
                    md += "- Mean reward: \(Self.number(first)) at the first step, \(Self.number(last)) at the last\n"
                }
                if let first = passes.first, let last = passes.last {
                    md += "- pass@1 on \(rl.evalProblems) held-out problems: \(Self.number(first)) before, \(Self.number(last)) after\n"
                }
                let plotted = run.records.map { r -> RunLogRecord in
                    var r = r
                    (r.loss, r.valLoss) = (r.reward, r.accuracy)
                    return r
                }
                files.append((svgName, LossPlot.svg(records: plotted, title: "\(run.name): mean reward (line), pass@1 (dots)")))
                md += "\n![reward of \(run.name)](\(svgName))\n\n"
            } else {
                files.append((svgName, LossPlot.svg(records: run.records, title: run.name)))
                md += "\n![loss of \(run.name)](\(svgName))\n\n"
            }
            if let sample = run.records.last(where: { $0.kind == .sample })?.text {
                md += "Last sample (after step \(run.records.last(where: { $0.kind == .sample })!.step)):\n\n"
                md += sample.split(separator: "\n", omittingEmptySubsequences: false).map { "> " + $0 }.joined(separator: "\n") + "\n\n"
            }
        }
        for (name, report) in evaluations {
            md += "## Evaluation: \(name)\n\n"
            md += "Model \(report.model), kernels \(report.kernels)\(report.quantized ? ", quantized" : "").\n\n"
            md += report.markdown + "\n"
            if !report.tasks.isEmpty {
                let svgName = "eval-\(name).svg"
                files.append((svgName, Self.accuracyChart(report, title: name)))
                md += "![accuracy per task, \(name)](\(svgName))\n\n"
            }
        }
        files.insert(("report.md", md), at: 0)
        return files
    }

    /// Writes the report's files into `folder` (created if needed), each atomically.
    public func write(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, contents) in files() {
            try writeFileAtomically((folder as NSString).appendingPathComponent(name)) { try $0.write(Array(contents.utf8)) }
        }
    }

    /// Accuracy per task as horizontal bars, each with a tick at the task's random baseline.
    static func accuracyChart(_ report: EvaluationReport, title: String) -> String {
        let rowHeight = 26.0, left = 170.0, width = 360.0, top = 40.0
        let height = top + rowHeight * Double(report.tasks.count) + 30
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(left + width + 70))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="10" y="22" font-size="14" font-weight="bold">\(escape(title)): accuracy per task (tick: chance)</text>

            """
        for (i, task) in report.tasks.enumerated() {
            let y = top + rowHeight * Double(i)
            let colour = task.kind.isChat ? "#d9822b" : "#2b6cb0"
            svg += "<text x=\"\(left - 8)\" y=\"\(y + 15)\" text-anchor=\"end\">\(escape(task.task))</text>\n"
            svg += "<rect x=\"\(left)\" y=\"\(y + 4)\" width=\"\(width)\" height=\"16\" fill=\"#eee\"/>\n"
            svg += "<rect x=\"\(left)\" y=\"\(y + 4)\" width=\"\(String(format: "%.1f", width * task.accuracy))\" height=\"16\" fill=\"\(colour)\"/>\n"
            let b = left + width * task.baseline
            svg += "<line x1=\"\(String(format: "%.1f", b))\" x2=\"\(String(format: "%.1f", b))\" y1=\"\(y + 1)\" y2=\"\(y + 23)\" stroke=\"black\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(left + width + 6)\" y=\"\(y + 15)\">\(String(format: "%.2f", task.accuracy))</text>\n"
        }
        svg += "<text x=\"\(left)\" y=\"\(height - 8)\" fill=\"#555\">blue: raw text (CORE) · orange: chat (ChatCORE)</text>\n"
        return svg + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    static func number(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "–" }

    static func count(_ n: Int) -> String {
        n >= 1_000_000 ? String(format: "%.1fM", Double(n) / 1e6) : n >= 1000 ? String(format: "%.1fk", Double(n) / 1e3) : "\(n)"
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h \(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m \(s % 60)s" : "\(s)s"
    }
}
