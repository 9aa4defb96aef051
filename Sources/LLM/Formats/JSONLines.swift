// JSON Lines: one JSON value per line. The line splitting shared by every JSONL reader (conversations, tasks).
import Foundation

/// Calls `body` with each line of `data` that holds more than spaces, tabs and carriage returns, and its
/// 1-based line number (blank lines are counted, so errors name the line an editor shows).
func forEachJSONLine<E: Error>(in data: Data, _ body: (Data.SubSequence, Int) throws(E) -> Void) throws(E) {
    var lineNumber = 0
    var start = data.startIndex
    while start < data.endIndex {
        let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
        lineNumber += 1
        let line = data[start..<end]
        start = end < data.endIndex ? end + 1 : end
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
        try body(line, lineNumber)
    }
}
