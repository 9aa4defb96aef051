// The learning-rate schedules at hand-computed steps, the run log's round trip and its tolerance of a killed
// writer, and the loss plot as well-formed SVG, including its edge cases.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import LLM

@Suite struct ScheduleAndPlotTests {
    // MARK: Learning-rate schedule

    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-12 * max(1, abs(b)) }

    @Test func cosineAtHandComputedSteps() throws {
        // Warmup 10, then a decay over steps 10...110 (r = (step − 10) / 100), from 6e-4 to 6e-5.
        let s = try LearningRateSchedule(kind: .cosine, maxLR: 6e-4, warmupSteps: 10, totalSteps: 111, finalFraction: 0.1)
        #expect(close(s.learningRate(at: 0), 6e-5))         // 6e-4 · 1/10
        #expect(close(s.learningRate(at: 4), 3e-4))         // 6e-4 · 5/10
        #expect(close(s.learningRate(at: 9), 6e-4))         // end of warmup
        #expect(close(s.learningRate(at: 10), 6e-4))        // r = 0
        #expect(close(s.learningRate(at: 60), 3.3e-4))      // r = 0.5: min + 0.5 · (max − min)
        #expect(close(s.learningRate(at: 35), 6e-5 + 0.5 * (1 + cos(Double.pi / 4)) * 5.4e-4))
        #expect(close(s.learningRate(at: 110), 6e-5))       // the last update: maxLR · finalFraction
        #expect(close(s.learningRate(at: 500), 6e-5))       // past the end
        #expect(close(s.learningRate(at: -3), 6e-5))        // before the start: step 0
    }

    @Test func linearAtHandComputedSteps() throws {
        let s = try LearningRateSchedule(kind: .linear, maxLR: 6e-4, warmupSteps: 10, totalSteps: 111, finalFraction: 0.1)
        #expect(close(s.learningRate(at: 0), 6e-5))
        #expect(close(s.learningRate(at: 10), 6e-4))
        #expect(close(s.learningRate(at: 35), 6e-4 - 0.25 * 5.4e-4))
        #expect(close(s.learningRate(at: 60), 3.3e-4))
        #expect(close(s.learningRate(at: 110), 6e-5))
    }

    @Test func constantIgnoresTheFinalFraction() throws {
        let s = try LearningRateSchedule(kind: .constant, maxLR: 1e-3, warmupSteps: 4, totalSteps: 50, finalFraction: 0.1)
        #expect(close(s.learningRate(at: 0), 2.5e-4))
        #expect(close(s.learningRate(at: 3), 1e-3))
        #expect(s.learningRate(at: 4) == 1e-3 && s.learningRate(at: 25) == 1e-3 && s.learningRate(at: 49) == 1e-3)
    }

    @Test func wsdPlateauThenLinearDecay() throws {
        // The last 21 of 100 steps decay: 79 (still 1e-3) ... 99 (1e-4), r = (step − 79) / 20.
        let s = try LearningRateSchedule(kind: .wsd, maxLR: 1e-3, warmupSteps: 5, totalSteps: 100, finalFraction: 0.1,
                                         decayFraction: 0.21)
        #expect(s.decayStart == 79)
        #expect(close(s.learningRate(at: 0), 2e-4))
        #expect(close(s.learningRate(at: 4), 1e-3))
        #expect(s.learningRate(at: 5) == 1e-3 && s.learningRate(at: 50) == 1e-3 && s.learningRate(at: 78) == 1e-3)
        #expect(close(s.learningRate(at: 79), 1e-3))
        #expect(close(s.learningRate(at: 80), 1e-3 - 0.05 * 9e-4))
        #expect(close(s.learningRate(at: 89), 5.5e-4))
        #expect(close(s.learningRate(at: 99), 1e-4))
        // No decay at all: WSD is constant; all decay: WSD is linear after warmup.
        let flat = try LearningRateSchedule(kind: .wsd, maxLR: 1e-3, totalSteps: 10, decayFraction: 0)
        #expect((0..<10).allSatisfy { flat.learningRate(at: $0) == 1e-3 })
        let all = try LearningRateSchedule(kind: .wsd, maxLR: 1e-3, warmupSteps: 2, totalSteps: 10, decayFraction: 1)
        let linear = try LearningRateSchedule(kind: .linear, maxLR: 1e-3, warmupSteps: 2, totalSteps: 10)
        #expect((0..<10).allSatisfy { close(all.learningRate(at: $0), linear.learningRate(at: $0)) })
    }

    @Test func noWarmupStartsAtTheMaximum() throws {
        for kind in LearningRateSchedule.Kind.allCases {
            let s = try LearningRateSchedule(kind: kind, maxLR: 3e-4, totalSteps: 20, finalFraction: 0)
            #expect(s.learningRate(at: 0) == 3e-4, "\(kind)")
        }
        let one = try LearningRateSchedule(kind: .cosine, maxLR: 3e-4, totalSteps: 1, finalFraction: 0.5)
        #expect(close(one.learningRate(at: 0), 1.5e-4))  // the only step is also the last
    }

    @Test func warmupRisesAndDecayFalls() throws {
        for kind in LearningRateSchedule.Kind.allCases {
            let s = try LearningRateSchedule(kind: kind, maxLR: 1e-3, warmupSteps: 37, totalSteps: 1000, finalFraction: 0.05)
            let lrs = (0..<1000).map(s.learningRate(at:))
            #expect(zip(lrs[..<37], lrs[1..<37]).allSatisfy { $0 < $1 }, "\(kind) warmup")
            #expect(zip(lrs[36...], lrs[37...]).allSatisfy { $0 >= $1 }, "\(kind) decay")
            #expect(lrs.allSatisfy { $0 > 0 && $0 <= 1e-3 }, "\(kind) bounds")
            #expect(close(lrs[999], s.minLR), "\(kind) last step")
        }
    }

    @Test func invalidSchedulesAreRejected() throws {
        func rejects(_ expected: ScheduleError, _ make: () throws -> LearningRateSchedule) {
            #expect(throws: expected) { try make() }
            #expect(!expected.description.contains("\n") && expected.description.hasPrefix("learning rate schedule: "))
        }
        rejects(.nonPositiveLearningRate(0)) { try LearningRateSchedule(maxLR: 0, totalSteps: 10) }
        rejects(.nonPositiveLearningRate(-1e-3)) { try LearningRateSchedule(maxLR: -1e-3, totalSteps: 10) }
        rejects(.tooFewSteps(total: 0)) { try LearningRateSchedule(maxLR: 1e-3, totalSteps: 0) }
        rejects(.tooFewSteps(total: -5)) { try LearningRateSchedule(maxLR: 1e-3, totalSteps: -5) }
        rejects(.negativeWarmup(-1)) { try LearningRateSchedule(maxLR: 1e-3, warmupSteps: -1, totalSteps: 10) }
        rejects(.warmupExceedsTotal(warmup: 11, total: 10)) { try LearningRateSchedule(maxLR: 1e-3, warmupSteps: 11, totalSteps: 10) }
        rejects(.fractionOutOfRange(name: "final fraction", value: 1.5)) {
            try LearningRateSchedule(maxLR: 1e-3, totalSteps: 10, finalFraction: 1.5)
        }
        rejects(.fractionOutOfRange(name: "final fraction", value: -0.1)) {
            try LearningRateSchedule(maxLR: 1e-3, totalSteps: 10, finalFraction: -0.1)
        }
        rejects(.fractionOutOfRange(name: "decay fraction", value: 2)) {
            try LearningRateSchedule(kind: .wsd, maxLR: 1e-3, totalSteps: 10, decayFraction: 2)
        }
        #expect(throws: ScheduleError.self) { try LearningRateSchedule(maxLR: .nan, totalSteps: 10) }
        #expect(throws: ScheduleError.self) { try LearningRateSchedule(maxLR: 1e-3, totalSteps: 10, finalFraction: .nan) }
        // Warmup over the whole run is allowed: it just never decays.
        let allWarmup = try LearningRateSchedule(maxLR: 1e-3, warmupSteps: 10, totalSteps: 10)
        #expect(close(allWarmup.learningRate(at: 9), 1e-3))
    }

    @Test func scheduleRoundTripsThroughJSONAndIsValidatedOnDecode() throws {
        let s = try LearningRateSchedule(kind: .wsd, maxLR: 2e-3, warmupSteps: 3, totalSteps: 30, finalFraction: 0.2,
                                         decayFraction: 0.4)
        #expect(try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(s)) == s)
        let old = #"{"kind":"cosine","maxLR":0.001,"warmupSteps":0,"totalSteps":5,"finalFraction":0}"#
        #expect(try JSONDecoder().decode(LearningRateSchedule.self, from: Data(old.utf8)).decayFraction == 0.2)
        let bad = #"{"kind":"cosine","maxLR":0.001,"warmupSteps":9,"totalSteps":5,"finalFraction":0}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(LearningRateSchedule.self, from: Data(bad.utf8)) }
    }

    // MARK: Run log

    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
    }

    func appendRaw(_ text: String, to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        handle.closeFile()
    }

    @Test func runLogRoundTrip() throws {
        try withTemporaryDirectory { dir in
            let records = [
                RunLogRecord(kind: .info, step: 0, message: "d12, B=4 T=64", time: 1_700_000_000.5),
                RunLogRecord(kind: .train, step: 0, loss: 10.987654321, lr: 6e-5, gradNorm: 12.5, ms: 812.25,
                             tokensPerSecond: 315.5, time: 1_700_000_001),
                RunLogRecord(kind: .eval, step: 0, valLoss: 10.95, bitsPerByte: 3.25, time: 1_700_000_002),
                RunLogRecord(kind: .sample, step: 0, text: "quote \" backslash \\ newline\n tab\t bell\u{7} émoji 🙂",
                             time: 1_700_000_003),
            ]
            let writer = try RunLogWriter(runDirectory: dir)
            for r in records { try writer.append(r) }
            try writer.append(RunLogRecord(kind: .train, step: 1, loss: 10.5))  // stamped with the time
            let back = try RunLog.read(RunLog.path(runDirectory: dir))
            #expect(Array(back.prefix(4)) == records)
            #expect(back.count == 5 && back[4].step == 1 && back[4].loss == 10.5)
            #expect(abs(try #require(back[4].time) - Date().timeIntervalSince1970) < 60)
            // One line per record, kind and step first, snake_case keys, absent fields left out.
            let text = String(decoding: try readBytes(RunLog.path(runDirectory: dir)), as: UTF8.self)
            let lines = text.split(separator: "\n")
            #expect(lines.count == 5 && text.hasSuffix("\n"))
            #expect(lines[1] == #"{"kind":"train","step":0,"time":1700000001.0,"loss":10.987654321,"lr":6e-05,"grad_norm":12.5,"ms":812.25,"tokens_per_second":315.5}"#)
            #expect(lines[2].contains(#""val_loss":10.95"#) && lines[2].contains(#""bits_per_byte":3.25"#))
            #expect(try JSONSerialization.jsonObject(with: Data(lines[3].utf8)) is [String: Any])
        }
    }

    @Test func nonFiniteValuesRoundTrip() throws {
        try withTemporaryDirectory { dir in
            let writer = try RunLogWriter(runDirectory: dir)
            try writer.append(RunLogRecord(kind: .train, step: 3, loss: .nan, gradNorm: .infinity, ms: -.infinity))
            let back = try RunLog.read(RunLog.path(runDirectory: dir))
            #expect(back.count == 1 && back[0].loss!.isNaN && back[0].gradNorm == .infinity && back[0].ms == -.infinity)
        }
    }

    @Test func reopeningAppends() throws {
        try withTemporaryDirectory { dir in
            try RunLogWriter(runDirectory: dir).append(RunLogRecord(kind: .train, step: 0, loss: 5))
            try RunLogWriter(runDirectory: dir).append(RunLogRecord(kind: .train, step: 1, loss: 4))
            #expect(try RunLog.read(RunLog.path(runDirectory: dir)).map(\.step) == [0, 1])
        }
    }

    @Test func truncatedLastLineIsTolerated() throws {
        try withTemporaryDirectory { dir in
            let path = RunLog.path(runDirectory: dir)
            let writer = try RunLogWriter(runDirectory: dir)
            for step in 0..<3 { try writer.append(RunLogRecord(kind: .train, step: step, loss: 4)) }
            try appendRaw(#"{"kind":"train","step":3,"lo"#, to: path)  // kill -9 in the middle of a write
            #expect(try RunLog.read(path).map(\.step) == [0, 1, 2])
            // A new writer removes the partial line, so the next record starts a line of its own.
            try RunLogWriter(runDirectory: dir).append(RunLogRecord(kind: .train, step: 3, loss: 3.9))
            #expect(try RunLog.read(path).map(\.step) == [0, 1, 2, 3])
            // A complete record that only lacks its newline is kept, and the writer ends its line.
            try appendRaw(#"{"kind":"train","step":4,"loss":3.8}"#, to: path)
            #expect(try RunLog.read(path).map(\.step) == [0, 1, 2, 3, 4])
            try RunLogWriter(runDirectory: dir).append(RunLogRecord(kind: .train, step: 5, loss: 3.7))
            #expect(try RunLog.read(path).map(\.step) == [0, 1, 2, 3, 4, 5])
        }
    }

    @Test func badMiddleLineIsReportedWithFileAndLine() throws {
        try withTemporaryDirectory { dir in
            let path = RunLog.path(runDirectory: dir)
            let good = #"{"kind":"train","step":0,"loss":4}"#
            for (middle, reason) in [("{not json", "not valid JSON"), (#"{"kind":"train"}"#, #"missing "step""#),
                                     (#"{"kind":"bogus","step":1}"#, #"bad value for "kind""#),
                                     (#"{"kind":"train","step":1"#, "not valid JSON")] {
                try writeBytes(Array("\(good)\n\n\(middle)\n\(good)\n".utf8), path)
                #expect(throws: RunLogError.malformedLine(path: path, line: 3, reason: reason)) { try RunLog.read(path) }
            }
            #expect(RunLogError.malformedLine(path: path, line: 3, reason: "not valid JSON").description
                        == "\(path): line 3: not valid JSON")
            // A bad last line that does end in a newline was written whole: an error too.
            try writeBytes(Array("\(good)\n{oops}\n".utf8), path)
            #expect(throws: RunLogError.self) { try RunLog.read(path) }
            #expect(throws: RunLogError.self) { try RunLog.read(dir + "/missing.jsonl") }
        }
    }

    @Test func truncateDropsRecordsAfterTheStep() throws {
        try withTemporaryDirectory { dir in
            let path = RunLog.path(runDirectory: dir)
            let writer = try RunLogWriter(runDirectory: dir)
            for step in 0..<10 {
                try writer.append(RunLogRecord(kind: .train, step: step, loss: 10 - Double(step)))
                if step % 5 == 0 { try writer.append(RunLogRecord(kind: .eval, step: step, valLoss: 10.5 - Double(step))) }
            }
            try appendRaw(#"{"kind":"tr"#, to: path)
            let before = try readBytes(path)
            #expect(try RunLog.truncate(path, afterStep: 5) == 4)  // train 6...9; the cut-short line is not a record
            let after = try readBytes(path)
            let kept = try RunLog.read(path)
            #expect(kept.map(\.step) == [0, 0, 1, 2, 3, 4, 5, 5] && kept.last?.kind == .eval)
            #expect(Array(before.prefix(after.count)) == after)  // kept lines byte for byte
            #expect(try leftovers(dir).isEmpty)
            // Appending after truncation continues the log.
            try RunLogWriter(runDirectory: dir).append(RunLogRecord(kind: .train, step: 6, loss: 4.5))
            #expect(try RunLog.read(path).map(\.step).suffix(2) == [5, 6])
            #expect(try RunLog.truncate(path, afterStep: -1) == 9)
            #expect(try RunLog.read(path).isEmpty)
        }
    }

    // MARK: Loss plot

    /// Parses `svg` as XML; returns the elements' names with their `id` attributes, and all the text.
    func parse(_ svg: String) throws -> (elements: [(name: String, id: String?)], text: String) {
        final class Collector: NSObject, XMLParserDelegate {
            var elements: [(name: String, id: String?)] = []
            var text = ""
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                elements.append((name, attributes["id"]))
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = Collector()
        parser.delegate = collector
        #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        #expect(collector.elements.first?.name == "svg")
        return (collector.elements, collector.text)
    }

    /// 500 steps of noisy train loss falling from 10.8 to 3.5, with validation every 50 steps.
    func fakeLog(steps: Int = 500) -> [RunLogRecord] {
        var rng = SplitMix64(seed: 7)
        var records: [RunLogRecord] = []
        for step in 0..<steps {
            let base = 3.5 + 7.3 * exp(-Double(step) / 70)
            let noise = Double(rng.next() % 1000) / 1000 * 0.3 - 0.15
            records.append(RunLogRecord(kind: .train, step: step, loss: base + noise, lr: 6e-4))
            if step % 50 == 0 || step == steps - 1 { records.append(RunLogRecord(kind: .eval, step: step, valLoss: base + 0.1)) }
        }
        return records
    }

    @Test func plotIsWellFormedSVGWithBothSeries() throws {
        let svg = LossPlot.svg(records: fakeLog(), title: "d12 <shakespeare> & co", logScale: false)
        let (elements, text) = try parse(svg)
        let ids = Set(elements.compactMap(\.id))
        #expect(ids.isSuperset(of: ["train", "train-ema", "val"]))
        #expect(text.contains("d12 <shakespeare> & co"))
        #expect(text.contains("step") && text.contains("loss") && text.contains("val"))
        #expect(svg.contains(#"viewBox="0 0 960 540""#) && svg.contains("sans-serif"))
        #expect(!svg.contains("nan") && !svg.contains("inf"))
        // Round tick values on both axes.
        for label in ["100", "200", "400", "4", "6", "10"] { #expect(text.contains(label)) }
        #expect(try parse(LossPlot.svg(records: fakeLog(), title: "log", logScale: true)).text.contains("log scale"))
    }

    @Test func earlySpikesAreCutOffTheYAxis() throws {
        var records = fakeLog()
        records[3].loss = 80  // a lone spike at step 2 or 3
        let (_, text) = try parse(LossPlot.svg(records: records, title: "spike"))
        #expect(text.contains("y axis cut at") && text.contains("80.000"))
        let (_, plain) = try parse(LossPlot.svg(records: fakeLog(), title: "plain"))
        #expect(!plain.contains("cut"))  // a steadily falling curve is shown whole
    }

    @Test func plotEdgeCases() throws {
        let empty = try parse(LossPlot.svg(records: [], title: "empty"))
        #expect(empty.text.contains("no data yet") && empty.text.contains("empty"))
        #expect(try parse(LossPlot.svg(records: [RunLogRecord(kind: .info, step: 0, message: "hi")], title: "x"))
                    .text.contains("no data yet"))

        let one = try parse(LossPlot.svg(records: [RunLogRecord(kind: .train, step: 0, loss: 10.9)], title: "one"))
        #expect(one.elements.contains { $0.name == "circle" } && one.text.contains("10.900"))

        var withNaN = fakeLog(steps: 100)
        withNaN[10].loss = .nan
        withNaN[20].loss = .infinity
        let nan = LossPlot.svg(records: withNaN, title: "nan")
        #expect(try parse(nan).text.contains("2 NaN/inf losses not shown"))
        #expect(!nan.contains("nan\"") && !nan.contains("NaN,") && !nan.contains("inf,"))

        let valOnly = try parse(LossPlot.svg(records: fakeLog(steps: 200).filter { $0.kind == .eval }, title: "val"))
        #expect(valOnly.elements.contains { $0.id == "val" } && !valOnly.elements.contains { $0.id == "train" })

        let flat = LossPlot.svg(records: (0..<30).map { RunLogRecord(kind: .train, step: $0, loss: 3.5) }, title: "flat")
        #expect(try parse(flat).text.contains("3.50"))
        #expect(!flat.contains("nan") && !flat.contains("inf"))

        let zero = [RunLogRecord(kind: .train, step: 0, loss: 0), RunLogRecord(kind: .train, step: 1, loss: 1)]
        #expect(try parse(LossPlot.svg(records: zero, title: "zero", logScale: true)).text.contains("≤ 0 not shown"))

        // A resumed run logged steps 3 and 4 twice: the later records win.
        let resumed = (0..<5).map { RunLogRecord(kind: .train, step: $0, loss: 5) }
            + (3..<6).map { RunLogRecord(kind: .train, step: $0, loss: 4) }
        #expect(try parse(LossPlot.svg(records: resumed, title: "resumed")).text.contains("4.000"))

        // A long run is drawn with a bounded number of points.
        let long = LossPlot.svg(records: (0..<100_000).map { RunLogRecord(kind: .train, step: $0, loss: 3 + Double($0 % 7) / 10) },
                                title: "long")
        #expect(long.utf8.count < 200_000)
        _ = try parse(long)
    }

    @Test func writeDrawsTheRunDirectorysLog() throws {
        try withTemporaryDirectory { dir in
            let run = dir + "/my-run"
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            #expect(throws: RunLogError.self) { try LossPlot.write(runDirectory: run) }  // no log yet
            let writer = try RunLogWriter(runDirectory: run)
            try LossPlot.write(runDirectory: run)
            #expect(try parse(String(decoding: readBytes(LossPlot.path(runDirectory: run)), as: UTF8.self)).text
                        .contains("no data yet"))
            for r in fakeLog(steps: 60) { try writer.append(r) }
            try LossPlot.write(runDirectory: run)
            let (elements, text) = try parse(String(decoding: readBytes(run + "/loss.svg"), as: UTF8.self))
            #expect(text.contains("my-run") && elements.contains { $0.id == "train-ema" })
            #expect(try leftovers(run).isEmpty)
        }
    }
}
