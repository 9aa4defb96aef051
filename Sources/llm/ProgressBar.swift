// A one-line progress bar on stderr, redrawn in place on a terminal and silent otherwise.
import Foundation

final class ProgressBar {
    private let label: String
    private let enabled = isatty(STDERR_FILENO) != 0
    private let start = DispatchTime.now().uptimeNanoseconds

    init(label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let fraction = Double(done) / Double(total)
        let width = 30, filled = Int(fraction * Double(width))
        let seconds = max(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, 1e-9)
        let line = String(format: "\r%@ [%@%@] %3.0f%% %.1f MB/s", label, String(repeating: "#", count: filled),
                          String(repeating: " ", count: width - filled), fraction * 100, Double(done) / 1e6 / seconds)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
