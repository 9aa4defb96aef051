// A training run's log: one JSON object per line in RUN_DIR/log.jsonl (train steps, evaluations, samples,
// notes), appended as the run goes so that a killed run keeps everything it wrote, read back tolerantly
// (a line cut short by kill -9 is dropped), and cut back to a checkpoint's step when a run resumes.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors from the run log and the files made from it; each is one line naming the file.
public enum RunLogError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case malformedLine(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read: \(reason)"
        case let .writeFailed(path, reason): "\(path): cannot write: \(reason)"
        case let .malformedLine(path, line, reason): "\(path): line \(line): \(reason)"
        }
    }
}

/// One line of the log. On disk the keys are snake_case (`val_loss`, `grad_norm`, `tokens_per_second`,
/// `bits_per_byte`), absent fields are left out, and non-finite numbers are the strings "nan", "inf" and
/// "-inf", which JSON cannot otherwise hold.
public struct RunLogRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// One optimizer update: `loss`, `lr`, `gradNorm`, `ms`, `tokensPerSecond`.
        case train
        /// An evaluation: `valLoss`, perhaps `bitsPerByte`.
        case eval
        /// Generated `text`.
        case sample
        /// A note in `message`: configuration, resumption, anything a reader of the log should know.
        case info
    }

    public var kind: Kind
    /// The update this record belongs to (0 is the first).
    public var step: Int
    public var loss: Double?
    public var valLoss: Double?
    public var lr: Double?
    public var gradNorm: Double?
    /// Wall-clock milliseconds the step took.
    public var ms: Double?
    public var tokensPerSecond: Double?
    public var bitsPerByte: Double?
    /// Reinforcement learning: the mean reward of a step's samples (`train`), pass@1 on held-out problems (`eval`).
    public var reward: Double?
    public var accuracy: Double?
    public var text: String?
    public var message: String?
    /// Seconds since 1970 when the record was written; `RunLogWriter` fills it in when absent.
    public var time: Double?

    public init(kind: Kind, step: Int, loss: Double? = nil, valLoss: Double? = nil, lr: Double? = nil,
                gradNorm: Double? = nil, ms: Double? = nil, tokensPerSecond: Double? = nil,
                bitsPerByte: Double? = nil, reward: Double? = nil, accuracy: Double? = nil, text: String? = nil,
                message: String? = nil, time: Double? = nil) {
        self.kind = kind
        self.step = step
        self.loss = loss
        self.valLoss = valLoss
        self.lr = lr
        self.gradNorm = gradNorm
        self.ms = ms
        self.tokensPerSecond = tokensPerSecond
        self.bitsPerByte = bitsPerByte
        self.reward = reward
        self.accuracy = accuracy
        self.text = text
        self.message = message
        self.time = time
    }

    /// The record as one line of JSON without the newline, keys in a fixed order (kind and step first) so
    /// that `tail -f log.jsonl` reads well.
    func jsonLine() -> String {
        var fields = ["\"kind\":\"\(kind.rawValue)\"", "\"step\":\(step)"]
        let numbers: [(String, Double?)] = [("time", time), ("loss", loss), ("val_loss", valLoss), ("lr", lr),
                                            ("grad_norm", gradNorm), ("ms", ms), ("tokens_per_second", tokensPerSecond),
                                            ("bits_per_byte", bitsPerByte), ("reward", reward), ("accuracy", accuracy)]
        for case let (key, value?) in numbers { fields.append("\"\(key)\":\(jsonNumber(value))") }
        for case let (key, value?) in [("message", message), ("text", text)] { fields.append("\"\(key)\":\(jsonString(value))") }
        return "{" + fields.joined(separator: ",") + "}"
    }
}

/// Shortest round-tripping decimal, or the strings the decoder maps back to non-finite values.
private func jsonNumber(_ x: Double) -> String {
    if x.isNaN { return "\"nan\"" }
    if x.isInfinite { return x > 0 ? "\"inf\"" : "\"-inf\"" }
    return "\(x)"
}

private func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// Reading and rewriting RUN_DIR/log.jsonl.
public enum RunLog {
    public static let fileName = "log.jsonl"

    /// RUN_DIR/log.jsonl.
    public static func path(runDirectory: String) -> String { (runDirectory as NSString).appendingPathComponent(fileName) }

    /// The records of a log file, in file order. Blank lines are skipped, and so is a last line without its
    /// newline that is not valid JSON (what kill -9 during a write leaves); any other bad line is an error
    /// naming the file and the line.
    public static func read(_ path: String) throws(RunLogError) -> [RunLogRecord] {
        try lines(path).map(\.record)
    }

    /// Drops every record after `step`, for a run resuming from the checkpoint of that step, and a cut-short
    /// last line. The kept lines are copied byte for byte into a temporary file that then replaces the log,
    /// so an interruption leaves either the old log or the new one. Call it before opening a `RunLogWriter`
    /// on the same log. Returns how many records were dropped.
    @discardableResult
    public static func truncate(_ path: String, afterStep step: Int) throws(RunLogError) -> Int {
        let all = try lines(path)
        let kept = all.filter { $0.record.step <= step }
        var bytes = [UInt8]()
        for line in kept { bytes += line.bytes + [UInt8(ascii: "\n")] }
        do {
            try writeFileAtomically(path) { try $0.write(bytes) }
        } catch {
            throw .writeFailed(path: path, reason: reason(error))
        }
        return all.count - kept.count
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()

    /// Each record with its line's bytes (without the newline).
    private static func lines(_ path: String) throws(RunLogError) -> [(record: RunLogRecord, bytes: [UInt8])] {
        let data: [UInt8]
        do { data = try readWholeFile(path) } catch {
            throw .unreadable(path: path, reason: reason(error))
        }
        var result: [(record: RunLogRecord, bytes: [UInt8])] = []
        var start = 0, lineNumber = 0
        while start < data.count {
            lineNumber += 1
            let newline = data[start...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? data.count
            let bytes = Array(data[start..<end])
            start = end + 1
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                result.append((try decoder.decode(RunLogRecord.self, from: Data(bytes)), bytes))
            } catch {
                if newline == nil { break }  // cut short while being written
                throw .malformedLine(path: path, line: lineNumber, reason: describe(error))
            }
        }
        return result
    }

    /// A file error's reason alone, without the path that `RunLogError` adds again.
    static func reason(_ error: any Error) -> String {
        switch error as? FormatError {
        case let .unreadable(_, reason)?, let .writeFailed(_, reason)?: reason
        default: "\(error)"
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case let .keyNotFound(key, _)?: "missing \"\(key.stringValue)\""
        case let .typeMismatch(_, context)?, let .valueNotFound(_, context)?:
            "bad value for \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        case let .dataCorrupted(context)?:
            context.codingPath.isEmpty ? "not valid JSON"
                : "bad value for \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        default: "\(error)"
        }
    }
}

/// Appends records to RUN_DIR/log.jsonl, one line each. Every line goes to the kernel in a single `write`
/// as soon as it is appended, with nothing buffered in the process, so a run killed at any point keeps every
/// record before the one being written (only a crash of the machine itself can lose recent lines).
public final class RunLogWriter {
    public let path: String
    private let fd: Int32

    /// Opens (creating if needed) the log in `runDirectory`, which must exist. A last line cut short by an
    /// earlier kill is removed first, so the next record starts on a line of its own.
    public init(runDirectory: String) throws(RunLogError) {
        path = RunLog.path(runDirectory: runDirectory)
        fd = open(path, O_RDWR | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        do { try dropPartialLastLine() } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Writes `record` as one line, stamping `time` with the current time if it has none.
    public func append(_ record: RunLogRecord) throws(RunLogError) {
        var record = record
        if record.time == nil { record.time = (Date().timeIntervalSince1970 * 1000).rounded() / 1000 }
        try writeLine(Array((record.jsonLine() + "\n").utf8))
    }

    private func writeLine(_ bytes: [UInt8]) throws(RunLogError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            done += n
        }
    }

    /// Ends the file on a newline: a last line without one is removed if it is not a valid record (it was
    /// cut short) and given its newline if it is.
    private func dropPartialLastLine() throws(RunLogError) {
        let size = Int(lseek(fd, 0, SEEK_END))
        var start = size  // of the last line, just after the last newline
        var chunk = [UInt8](repeating: 0, count: 4096)
        search: while start > 0 {
            let count = min(chunk.count, start)
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(start - count)) }
            guard n == count else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
            for i in stride(from: count - 1, through: 0, by: -1) {
                if chunk[i] == UInt8(ascii: "\n") { start -= count - 1 - i; break search }
            }
            start -= count
        }
        guard start < size else { return }
        var tail = [UInt8](repeating: 0, count: size - start)
        let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(start)) }
        guard n == tail.count else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        if (try? RunLog.decoder.decode(RunLogRecord.self, from: Data(tail))) != nil {
            try writeLine([UInt8(ascii: "\n")])
        } else if ftruncate(fd, off_t(start)) != 0 {
            throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
    }
}
