// `llm pull`: download a model from the Hugging Face hub into its cache, where transformers finds it too.
import ArgumentParser
import Foundation
import LLM

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download a model from the Hugging Face hub into the hub cache; print its snapshot folder.",
        discussion: """
            The cache is huggingface_hub's ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), so \
            files transformers downloaded are not fetched again and transformers finds the files pulled here. An \
            interrupted pull resumes where it stopped; LFS files are checked against their SHA-256. HF_ENDPOINT \
            picks another hub; HF_TOKEN (or the token `hf auth login` saved) opens private and gated models.
            """)

    @Argument(help: "The model, ORG/NAME.") var model: String
    @Option(help: "A branch, tag or commit.") var revision = "main"
    @Option(help: "Only the files matching this glob (repeatable; '*' also matches '/'; 'DIR/' is a folder).")
    var include: [String] = []

    func validate() throws {
        do { _ = try HubRepoID(model) } catch let error as HubError { throw ValidationError(error.description) }
    }

    func run() throws {
        try reportingErrors {
            var pull = HubPull(repo: try HubRepoID(model), client: .fromEnvironment(),
                               cache: HubCache(root: HubCache.defaultRoot()))
            pull.revision = revision
            pull.include = include
            let display = PullDisplay(model: model)
            do {
                let result = try pull.run(events: display.show)
                display.finish(result)
                print(result.snapshotFolder)
            } catch let error as HubError {  // reported here, the bar's line ended first, as reportingErrors would
                display.interrupt()
                FileHandle.standardError.write(Data("llm: error: \(error.description)\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}

/// The pull's progress on stderr: a bar redrawn in place on a terminal, a plain line every few seconds otherwise.
private final class PullDisplay {
    private let model: String
    private let terminal = isatty(STDERR_FILENO) != 0
    private var start: Double?  // when the first byte arrived
    private var lastDraw = 0.0  // when the bar or line was last written
    private var barShown = false

    init(model: String) { self.model = model }

    func show(_ event: HubPullEvent) {
        switch event {
        case .resolved(let commit, let files, let cached, let bytes):
            line("pulling \(model) at \(commit): \(files) file(s), \(size(bytes)) to fetch, \(cached) already in the cache")
        case .notice(let text):
            line(text)
        case .progress(let p):
            let now = Date().timeIntervalSinceReferenceDate
            if start == nil { (start, lastDraw) = (now, now) }
            let done = p.completedBytes >= p.totalBytes
            guard now - lastDraw >= (terminal ? 0.1 : 5) || (done && terminal) else { return }
            lastDraw = now
            let speed = now > start! ? Double(p.receivedBytes) / (now - start!) : 0
            let fraction = p.totalBytes > 0 ? min(Double(p.completedBytes) / Double(p.totalBytes), 1) : 1
            let eta = speed > 0 ? duration(Double(p.totalBytes - p.completedBytes) / speed) : "?"
            let stats = "\(size(p.completedBytes)) / \(size(p.totalBytes)), "
                + String(format: "%.1f MB/s, ETA %@", speed / 1e6, eta)
            if terminal {
                let filled = Int(fraction * 24)
                let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: 24 - filled)
                write("\r\u{1B}[K[\(bar)] \(String(format: "%3.0f%%", fraction * 100)) \(stats)  \(p.file)")
                barShown = true
            } else {
                line(String(format: "%3.0f%% ", fraction * 100) + stats + " (\(p.file))")
            }
        }
    }

    func finish(_ result: HubPullResult) {
        interrupt()
        line("\(result.downloaded.count) file(s) downloaded, \(result.cached.count) found in the cache")
    }

    /// Ends the bar's line so that what follows starts on its own.
    func interrupt() {
        if barShown { write("\n") }
        barShown = false
    }

    private func line(_ text: String) {
        interrupt()
        write(text + "\n")
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    private func size(_ bytes: Int64) -> String {
        let b = Double(bytes)
        return b < 1e6 ? String(format: "%.1f kB", b / 1e3) : b < 1e9 ? String(format: "%.1f MB", b / 1e6) : String(format: "%.2f GB", b / 1e9)
    }

    private func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
