// The results of `llm eval`: every task's score, CORE (the mean centred accuracy of the raw-text tasks) and
// ChatCORE (the same over the chat tasks), as JSON for programs and a Markdown table for people.
import Foundation

public struct EvaluationReport: Sendable, Equatable, Codable {
    public var model: String
    public var tasks: [TaskScore]
    public var bitsPerByte: BitsPerByte?
    /// Which kernels ran and whether the weights stayed quantized.
    public var kernels: String
    public var quantized: Bool

    public init(model: String, tasks: [TaskScore], bitsPerByte: BitsPerByte? = nil, kernels: String, quantized: Bool) {
        self.model = model
        self.tasks = tasks
        self.bitsPerByte = bitsPerByte
        self.kernels = kernels
        self.quantized = quantized
    }

    /// The mean centred accuracy of the raw-text tasks (nanochat's CORE when the tasks are CORE's), nil without one.
    public var core: Double? { meanCentered(tasks.filter { !$0.kind.isChat }) }
    /// The mean centred accuracy of the chat tasks (nanochat's ChatCORE), nil without one.
    public var chatCore: Double? { meanCentered(tasks.filter { $0.kind.isChat }) }

    private func meanCentered(_ scores: [TaskScore]) -> Double? {
        scores.isEmpty ? nil : scores.reduce(0) { $0 + $1.centered } / Double(scores.count)
    }

    /// A Markdown table: one row per task, then CORE, ChatCORE and bits per byte where there are any.
    public var markdown: String {
        var out = "| task | kind | examples | accuracy | baseline | centred | seconds |\n"
        out += "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"
        for t in tasks {
            out += "| \(t.task) | \(t.kind.rawValue) | \(t.examples) | \(String(format: "%.4f", t.accuracy)) | "
                + "\(String(format: "%.4f", t.baseline)) | \(String(format: "%.4f", t.centered)) | \(String(format: "%.1f", t.seconds)) |\n"
        }
        var summary = [String]()
        if let core { summary.append(String(format: "CORE %.4f", core)) }
        if let chatCore { summary.append(String(format: "ChatCORE %.4f", chatCore)) }
        if let b = bitsPerByte { summary.append(String(format: "%.4f bits per byte (%d tokens)", b.bitsPerByte, b.tokens)) }
        if !summary.isEmpty { out += "\n" + summary.joined(separator: " · ") + "\n" }
        return out
    }

    /// The report as JSON (snake_case keys, sorted; details per example included).
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(Summary(self))
    }

    /// Writes `contents` to `path` atomically (a temporary file beside it, synced, then renamed), so an
    /// interrupted run never leaves half a report.
    public static func write(_ contents: Data, to path: String) throws {
        try writeFileAtomically(path) { try $0.write([UInt8](contents)) }
    }

    /// What the JSON holds: the report plus the two summary numbers.
    private struct Summary: Encodable {
        var report: EvaluationReport
        init(_ report: EvaluationReport) { self.report = report }
        enum Keys: String, CodingKey { case model, tasks, bits_per_byte, core, chat_core, kernels, quantized }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(report.model, forKey: .model)
            try c.encode(report.tasks, forKey: .tasks)
            try c.encodeIfPresent(report.bitsPerByte, forKey: .bits_per_byte)
            try c.encodeIfPresent(report.core, forKey: .core)
            try c.encodeIfPresent(report.chatCore, forKey: .chat_core)
            try c.encode(report.kernels, forKey: .kernels)
            try c.encode(report.quantized, forKey: .quantized)
        }
    }
}
