// The loss curve of a run as a standalone SVG, drawn from its log by the project itself (no plotting
// library): the raw train loss, its moving average, and the validation loss against the step, redrawn after
// every evaluation so RUN_DIR/loss.svg always shows the run so far in any browser.
import Foundation

/// Draws RUN_DIR/loss.svg from RUN_DIR/log.jsonl.
///
/// What is drawn: train losses (`train` records' `loss`) as a thin pale line, with an exponential moving
/// average over about 1/50 of them (5 to 100 points) as a thicker line once there are 20; validation losses
/// (`eval` records' `valLoss`, or `loss`) as dots joined by a line in another colour. Where a step appears
/// twice, the later record wins. NaN and infinite losses (and, on a log axis, losses ≤ 0) are left out and
/// counted under the title. The legend shows each series' last value.
///
/// The y range covers every plotted value, padded by 5%, with two exceptions for the start of the run (the
/// first 10% of the steps), where warm-up spikes would otherwise flatten everything after them:
/// 1. a train loss there counts only as far as the median of the five around it, so a lone spike is ignored;
/// 2. if the start, so counted, rises above the lowest value more than three times as far as the rest of the
///    run does, the axis stops at the rest's highest value.
/// Whatever is cut runs off the top, and the subtitle says how high it goes. So a loss that starts at
/// ln(50257) ≈ 10.8 and is down to 3.5 within a few percent of the run is shown at a scale where the rest of
/// the curve can be read, while a steadily falling curve is shown whole, and a spike later in the run is
/// always shown. A log axis applies the same rules to the logarithms; a flat curve gets a small range
/// around its value.
public enum LossPlot {
    public static let fileName = "loss.svg"

    /// RUN_DIR/loss.svg.
    public static func path(runDirectory: String) -> String { (runDirectory as NSString).appendingPathComponent(fileName) }

    /// Reads RUN_DIR/log.jsonl and writes RUN_DIR/loss.svg atomically, titled with the run folder's name.
    public static func write(runDirectory: String, logScale: Bool = false) throws(RunLogError) {
        let records = try RunLog.read(RunLog.path(runDirectory: runDirectory))
        let title = URL(fileURLWithPath: runDirectory).standardizedFileURL.lastPathComponent
        let path = path(runDirectory: runDirectory)
        let bytes = Array(svg(records: records, title: title, logScale: logScale).utf8)
        do {
            try writeFileAtomically(path) { try $0.write(bytes) }
        } catch {
            throw .writeFailed(path: path, reason: RunLog.reason(error))
        }
    }

    /// The plot as an SVG document.
    public static func svg(records: [RunLogRecord], title: String, logScale: Bool = false) -> String {
        var train = [Int: Double](), val = [Int: Double]()
        for r in records {
            if r.kind == .train, let loss = r.loss { train[r.step] = loss }
            if r.kind == .eval, let loss = r.valLoss ?? r.loss { val[r.step] = loss }
        }
        var chart = Chart(title: title, logScale: logScale)
        chart.train = chart.plottable(train)
        chart.val = chart.plottable(val)
        return chart.render()
    }
}

/// One series' points, sorted by step.
private typealias Points = [(x: Double, y: Double)]

/// The drawing: layout constants, the data once filtered, and the SVG it becomes.
private struct Chart {
    let title: String
    let logScale: Bool
    var train: Points = []
    var val: Points = []
    var nonFinite = 0
    var nonPositive = 0

    // Layout, in SVG user units.
    let width = 960.0, height = 540.0
    let left = 76.0, right = 932.0, top = 78.0, bottom = 478.0

    // Palette.
    let white = "#ffffff", panel = "#f9fafb", ink = "#111827", muted = "#6b7280", gridColor = "#e5e7eb", axisColor = "#9ca3af"
    let trainColor = "#2563eb", valColor = "#ea580c"

    init(title: String, logScale: Bool) {
        self.title = title
        self.logScale = logScale
    }

    /// The points worth drawing, counting the ones left out.
    mutating func plottable(_ byStep: [Int: Double]) -> Points {
        var points = Points()
        for (step, y) in byStep.sorted(by: { $0.key < $1.key }) {
            if !y.isFinite { nonFinite += 1 } else if logScale && y <= 0 { nonPositive += 1 } else { points.append((Double(step), y)) }
        }
        return points
    }

    func render() -> String {
        var svg = SVG(width: width, height: height)
        svg.add("<title>\(escape(title)) loss</title>")
        svg.add(#"<rect width="100%" height="100%" fill="\#(white)"/>"#)
        svg.text(escape(title), x: left, y: 34, size: 19, weight: 600, color: ink)
        guard !train.isEmpty || !val.isEmpty else {
            svg.add(#"<rect x="\#(f(left))" y="\#(f(top))" width="\#(f(right - left))" height="\#(f(bottom - top))" fill="\#(panel)" stroke="\#(gridColor)"/>"#)
            svg.text("no data yet", x: (left + right) / 2, y: (top + bottom) / 2 + 6, size: 16, color: muted, anchor: "middle")
            return svg.finish()
        }
        let ema = train.count >= 20 ? movingAverage(train) : []
        let xRange = xDomain()
        let (yRange, clippedAbove) = yDomain()
        let x = Scale(domain: xRange, pixels: (left, right), log: false)
        let y = Scale(domain: yRange, pixels: (bottom, top), log: logScale)

        // Grid, ticks and axes.
        let yTicks = logScale ? logTicks(yRange) : linearTicks(yRange, count: 6)
        for t in yTicks {
            let py = y(t.value)
            svg.add(#"<line x1="\#(f(left))" x2="\#(f(right))" y1="\#(f(py))" y2="\#(f(py))" stroke="\#(gridColor)" stroke-width="1"/>"#)
            svg.text(t.label, x: left - 10, y: py + 4, size: 12, color: muted, anchor: "end")
        }
        for t in stepTicks(xRange) {
            let px = x(t.value)
            svg.add(#"<line x1="\#(f(px))" x2="\#(f(px))" y1="\#(f(top))" y2="\#(f(bottom))" stroke="\#(gridColor)" stroke-width="1"/>"#)
            svg.add(#"<line x1="\#(f(px))" x2="\#(f(px))" y1="\#(f(bottom))" y2="\#(f(bottom + 5))" stroke="\#(axisColor)" stroke-width="1"/>"#)
            svg.text(t.label, x: px, y: bottom + 20, size: 12, color: muted, anchor: "middle")
        }
        svg.add(#"<path d="M\#(f(left)),\#(f(top))V\#(f(bottom))H\#(f(right))" fill="none" stroke="\#(axisColor)" stroke-width="1"/>"#)
        svg.text("step", x: (left + right) / 2, y: bottom + 46, size: 13, color: muted, anchor: "middle")
        svg.add(#"<text x="0" y="0" transform="translate(\#(f(left - 52)),\#(f((top + bottom) / 2))) rotate(-90)" font-size="13" fill="\#(muted)" text-anchor="middle">\#(logScale ? "loss (log scale)" : "loss")</text>"#)

        // The data, clipped to the plot area.
        svg.add(#"<clipPath id="plot-area"><rect x="\#(f(left - 5))" y="\#(f(top - 1))" width="\#(f(right - left + 10))" height="\#(f(bottom - top + 2))"/></clipPath>"#)
        svg.add(#"<g clip-path="url(#plot-area)" fill="none" stroke-linejoin="round" stroke-linecap="round">"#)
        let columns = Int(right - left)
        if !train.isEmpty {  // thin and pale under its average, if there is one
            svg.polyline(id: "train", points: decimate(train, columns: columns), x: x, y: y, color: trainColor,
                         width: ema.isEmpty ? 1.75 : 1, opacity: ema.isEmpty ? 1 : 0.3)
        }
        if !ema.isEmpty {
            svg.polyline(id: "train-ema", points: decimate(ema, columns: columns), x: x, y: y, color: trainColor, width: 2.25)
        }
        if train.count == 1 { svg.dot(train[0], x: x, y: y, color: trainColor, fill: trainColor) }
        if !val.isEmpty {
            svg.polyline(id: "val", points: val, x: x, y: y, color: valColor, width: 1.75)
            if val.count <= 200 { for p in val { svg.dot(p, x: x, y: y, color: valColor, fill: white) } }
        }
        svg.add("</g>")

        // Legend (right of the title) and notes (under it).
        var entries: [(label: String, value: Double, swatch: Swatch)] = []
        if let last = train.last { entries.append(("train", last.y, ema.isEmpty ? .line(trainColor, 1.75, 1) : .line(trainColor, 1, 0.3))) }
        if let last = ema.last { entries.append(("train (EMA)", last.y, .line(trainColor, 2.25, 1))) }
        if let last = val.last { entries.append(("val", last.y, .dot(valColor))) }
        var lx = right
        for e in entries.reversed() {
            let valueText = number(e.value)
            svg.add(#"<text x="\#(f(lx))" y="34" font-size="13" fill="\#(muted)" text-anchor="end">\#(e.label)<tspan dx="6" font-weight="600" fill="\#(ink)">\#(valueText)</tspan></text>"#)
            lx -= textWidth(e.label + " " + valueText, size: 13) + 30
            svg.swatch(e.swatch, x: lx, y: 29.5)
            lx -= 24
        }
        var notes = ["step \(Int((train + val).map(\.x).max()!))"]
        if let best = val.min(by: { $0.y < $1.y }) { notes.append("best val \(number(best.y)) at step \(Int(best.x))") }
        if let clippedAbove { notes.append("y axis cut at \(number(yRange.hi)); early losses reach \(number(clippedAbove))") }
        if nonFinite > 0 { notes.append("\(nonFinite) NaN/inf loss\(nonFinite == 1 ? "" : "es") not shown") }
        if nonPositive > 0 { notes.append("\(nonPositive) loss\(nonPositive == 1 ? "" : "es") ≤ 0 not shown on the log axis") }
        svg.text(escape(notes.joined(separator: "  ·  ")), x: left, y: 56, size: 12.5, color: muted)
        return svg.finish()
    }

    /// The steps covered by the data; a single step gets a unit-wide range.
    func xDomain() -> (lo: Double, hi: Double) {
        let xs = train.map(\.x) + val.map(\.x)
        let lo = xs.min()!, hi = xs.max()!
        return hi > lo ? (lo, hi) : (lo, lo + 1)
    }

    /// The y range by the rule in `LossPlot`'s documentation, and the largest value cut off, if any.
    func yDomain() -> (range: (lo: Double, hi: Double), clippedAbove: Double?) {
        let t: (Double) -> Double = logScale ? log10 : { $0 }
        let (xlo, xhi) = xDomain()
        let bodyStart = xlo + 0.1 * (xhi - xlo)
        // The start: validation losses, and train losses with lone spikes removed by a 5-point running median.
        let smoothed = train.indices.map { i in
            let window = train[max(0, i - 2)...min(train.count - 1, i + 2)].map(\.y).sorted()
            return (x: train[i].x, y: window[window.count / 2])
        }
        let start = (smoothed + val).filter { $0.x <= bodyStart }.map { t($0.y) }
        let body = (train + val).filter { $0.x > bodyStart }.map { t($0.y) }
        let all = (train + val).map { t($0.y) }
        var lo = all.min()!
        var hi = max(start.max() ?? -.infinity, body.max() ?? -.infinity)
        if let bodyHi = body.max(), bodyHi > lo, hi - lo > 3 * (bodyHi - lo) { hi = bodyHi }
        let clipped = all.max()! > hi ? (train + val).map(\.y).max()! : nil
        if hi - lo < 1e-9 * max(1, abs(hi)) {
            let half = logScale ? 0.02 : max(abs(hi) * 0.02, 0.01)
            lo -= half
            hi += half
        } else {
            let pad = 0.05 * (hi - lo)
            lo -= pad
            hi += pad
        }
        let u: (Double) -> Double = logScale ? { pow(10, $0) } : { $0 }
        return ((u(lo), u(hi)), clipped)
    }

    /// An exponential moving average started at the first value, over a window of about 1/50 of the points.
    func movingAverage(_ points: Points) -> Points {
        let window = min(max(Double(points.count) / 50, 5), 100)
        let alpha = 2 / (window + 1)
        var avg = points[0].y
        return points.map { p in
            avg += alpha * (p.y - avg)
            return (p.x, avg)
        }
    }
}

// MARK: Scales and ticks

/// Maps data values to pixels, linearly or by their logarithm.
private struct Scale {
    let domain: (lo: Double, hi: Double)
    let pixels: (Double, Double)
    let log: Bool

    func callAsFunction(_ v: Double) -> Double {
        let (a, b, x) = log ? (log10(domain.lo), log10(domain.hi), log10(v)) : (domain.lo, domain.hi, v)
        return pixels.0 + (x - a) / (b - a) * (pixels.1 - pixels.0)
    }
}

private struct Tick {
    let value: Double
    let label: String
}

/// 1, 2 or 5 times a power of ten, near `rough`.
private func niceStep(_ rough: Double) -> Double {
    let power = pow(10, floor(log10(rough)))
    let m = rough / power
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * power
}

/// Round values inside `range`, about `count` of them, labelled with as many decimals as the step needs.
private func linearTicks(_ range: (lo: Double, hi: Double), count: Int) -> [Tick] {
    let step = niceStep((range.hi - range.lo) / Double(count))
    let decimals = max(0, Int(-floor(log10(step) + 1e-9)))
    return stride(from: ceil(range.lo / step - 1e-9), through: floor(range.hi / step + 1e-9), by: 1).map { k in
        let v = k * step + 0  // + 0 turns -0 into 0
        return Tick(value: v, label: String(format: "%.\(decimals)f", v))
    }
}

/// 1, 2 and 5 times powers of ten (only the powers when that is too many) where the range spans a decade
/// or more; round linear values otherwise.
private func logTicks(_ range: (lo: Double, hi: Double)) -> [Tick] {
    let a = log10(range.lo), b = log10(range.hi)
    guard b - a >= 1 else { return linearTicks(range, count: 5) }
    let mantissas: [Double] = b - a > 4 ? [1] : [1, 2, 5]
    var ticks: [Tick] = []
    for e in Int(floor(a))...Int(ceil(b)) {
        for m in mantissas {
            let v = m * pow(10, Double(e))
            if v >= range.lo * (1 - 1e-9) && v <= range.hi * (1 + 1e-9) {
                ticks.append(Tick(value: v, label: String(format: "%.\(max(0, -e))f", v)))
            }
        }
    }
    return ticks
}

/// Whole-number steps about a ninth of the range apart, written as thousands ("12k") past 10,000.
private func stepTicks(_ range: (lo: Double, hi: Double)) -> [Tick] {
    let step = max(1, niceStep((range.hi - range.lo) / 9))
    let thousands = range.hi >= 10_000
    let decimals = thousands ? max(0, Int(-floor(log10(step / 1000) + 1e-9))) : 0
    return stride(from: ceil(range.lo / step - 1e-9), through: floor(range.hi / step + 1e-9), by: 1).map { k in
        let v = k * step + 0  // + 0 turns -0 into 0
        return Tick(value: v, label: thousands ? String(format: "%.\(decimals)fk", v / 1000) : String(Int(v)))
    }
}

/// At most two points (the lowest and highest, in step order) per pixel column, so a long run's curve keeps
/// its spikes without a point for every step.
private func decimate(_ points: Points, columns: Int) -> Points {
    guard points.count > 2 * columns, let first = points.first, let last = points.last else { return points }
    let span = max(last.x - first.x, 1)
    var out = Points()
    var i = 0
    while i < points.count {
        let column = Int((points[i].x - first.x) / span * Double(columns - 1))
        var lo = i, hi = i, j = i
        while j < points.count && Int((points[j].x - first.x) / span * Double(columns - 1)) == column {
            if points[j].y < points[lo].y { lo = j }
            if points[j].y > points[hi].y { hi = j }
            j += 1
        }
        for k in lo == hi ? [lo] : [min(lo, hi), max(lo, hi)] { out.append(points[k]) }
        i = j
    }
    return out
}

// MARK: SVG text

private enum Swatch {
    case line(String, Double, Double)  // colour, width, opacity
    case dot(String)
}

/// An SVG document built line by line.
private struct SVG {
    private var lines: [String]

    init(width: Double, height: Double) {
        lines = [#"<?xml version="1.0" encoding="UTF-8"?>"#,
                 #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(f(width))" height="\#(f(height))" viewBox="0 0 \#(f(width)) \#(f(height))" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif">"#]
    }

    mutating func add(_ line: String) { lines.append(line) }

    /// `content` must already be escaped.
    mutating func text(_ content: String, x: Double, y: Double, size: Double, weight: Int = 400, color: String,
                       anchor: String = "start") {
        let weightAttribute = weight == 400 ? "" : #" font-weight="\#(weight)""#
        lines.append(#"<text x="\#(f(x))" y="\#(f(y))" font-size="\#(f(size))"\#(weightAttribute) fill="\#(color)" text-anchor="\#(anchor)">\#(content)</text>"#)
    }

    mutating func polyline(id: String, points: Points, x: Scale, y: Scale, color: String, width: Double, opacity: Double = 1) {
        let coordinates = points.map { "\(f(x($0.x))),\(f(y($0.y)))" }.joined(separator: " ")
        let opacityAttribute = opacity == 1 ? "" : #" stroke-opacity="\#(f(opacity))""#
        lines.append(#"<polyline id="\#(id)" points="\#(coordinates)" stroke="\#(color)" stroke-width="\#(f(width))"\#(opacityAttribute)/>"#)
    }

    mutating func dot(_ p: (x: Double, y: Double), x: Scale, y: Scale, color: String, fill: String) {
        lines.append(#"<circle cx="\#(f(x(p.x)))" cy="\#(f(y(p.y)))" r="3" fill="\#(fill)" stroke="\#(color)" stroke-width="1.5"/>"#)
    }

    mutating func swatch(_ s: Swatch, x: Double, y: Double) {
        switch s {
        case let .line(color, width, opacity):
            lines.append(#"<line x1="\#(f(x))" x2="\#(f(x + 22))" y1="\#(f(y))" y2="\#(f(y))" stroke="\#(color)" stroke-width="\#(f(width))" stroke-opacity="\#(f(opacity))" stroke-linecap="round"/>"#)
        case let .dot(color):
            lines.append(#"<line x1="\#(f(x))" x2="\#(f(x + 22))" y1="\#(f(y))" y2="\#(f(y))" stroke="\#(color)" stroke-width="1.75" stroke-linecap="round"/>"#)
            lines.append(#"<circle cx="\#(f(x + 11))" cy="\#(f(y))" r="3" fill="white" stroke="\#(color)" stroke-width="1.5"/>"#)
        }
    }

    func finish() -> String { (lines + ["</svg>"]).joined(separator: "\n") + "\n" }
}

/// A coordinate with at most one decimal, without a trailing ".0".
private func f(_ v: Double) -> String {
    let s = String(format: "%.1f", v)
    return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
}

/// A loss for people: three decimals (one from 100 up).
private func number(_ v: Double) -> String { String(format: abs(v) < 100 ? "%.3f" : "%.1f", v) }

/// How wide `s` is, at most, in common sans-serif fonts of `size` (DejaVu Sans, the widest, as the yardstick):
/// enough to place the legend's swatches without overlapping their labels.
private func textWidth(_ s: String, size: Double) -> Double {
    s.reduce(0) { sum, c in sum + size * ("iljtfr.,:;()[] ".contains(c) ? 0.36 : c.isNumber ? 0.66 : c.isUppercase ? 0.72 : 0.62) }
}

/// Text safe inside an XML element or attribute.
private func escape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case _ where c.unicodeScalars.contains { $0.value < 0x20 }: out += " "  // not allowed in XML
        default: out.append(c)
        }
    }
    return out
}
