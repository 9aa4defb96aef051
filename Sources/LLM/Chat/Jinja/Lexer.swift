// Splits a template into text and tag tokens the way Jinja's lexer does with transformers' settings
// (`trim_blocks=True`, `lstrip_blocks=True`, `keep_trailing_newline=False`):
//  - newlines are normalised to "\n" and one trailing newline is dropped;
//  - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`, `-}}`, `-#}` all whitespace after it;
//  - a block or comment tag alone on its line (only spaces or tabs before it) takes that indentation with it,
//    unless it starts with `{%+`, and a block or comment tag eats the one newline after it, unless it ends with `+%}`;
//  - string literals are decoded as Python's "unicode-escape" codec does.

/// Why a template failed, before the line is known everywhere: the interpreter fills `line` in on its way out.
struct TemplateFailure: Error {
    enum Kind { case syntax, unsupported, runtime, raised, limit }
    var kind: Kind
    var message: String
    var line: Int?

    static func syntax(_ message: String, line: Int) -> TemplateFailure { .init(kind: .syntax, message: message, line: line) }
    static func unsupported(_ message: String, line: Int? = nil) -> TemplateFailure {
        .init(kind: .unsupported, message: message, line: line)
    }
    static func runtime(_ message: String) -> TemplateFailure { .init(kind: .runtime, message: message) }
    static func limit(_ message: String) -> TemplateFailure { .init(kind: .limit, message: message) }
}

enum Op: String, Sendable, CaseIterable {
    case add = "+", sub = "-", mul = "*", div = "/", floordiv = "//", pow = "**", mod = "%", tilde = "~"
    case lbracket = "[", rbracket = "]", lparen = "(", rparen = ")", lbrace = "{", rbrace = "}"
    case eq = "==", ne = "!=", gt = ">", gteq = ">=", lt = "<", lteq = "<="
    case assign = "=", dot = ".", colon = ":", pipe = "|", comma = ",", semicolon = ";"

    /// Longest first, so that "//" wins over "/".
    static let byLength = allCases.sorted { $0.rawValue.count > $1.rawValue.count }
}

struct Token: Sendable {
    enum Kind: Equatable, Sendable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(Op)
        case end
    }

    let kind: Kind
    let line: Int
}

struct Lexer {
    private let src: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    /// Whether the last thing consumed ended a line (or nothing was consumed yet): a tag after only
    /// whitespace then counts as alone on its line.
    private var lineStarting = true
    private var tokens: [Token] = []

    static func tokenize(_ source: String) throws(TemplateFailure) -> [Token] {
        var lexer = Lexer(source)
        try lexer.run()
        return lexer.tokens
    }

    private init(_ source: String) {
        var scalars = [Unicode.Scalar]()
        scalars.reserveCapacity(source.unicodeScalars.count)
        var previousCR = false
        for c in source.unicodeScalars {
            if c == "\r" {
                scalars.append("\n")
            } else if !(c == "\n" && previousCR) {
                scalars.append(c)
            }
            previousCR = c == "\r"
        }
        if scalars.last == "\n" { scalars.removeLast() }
        src = scalars
    }

    private enum Tag { case variable, block, comment, raw(bodyStart: Int) }

    private mutating func run() throws(TemplateFailure) {
        while pos < src.count {
            guard let (start, tag) = nextTag() else {
                emitText(pos..<src.count)
                break
            }
            let sign: Unicode.Scalar? = start + 2 < src.count && (src[start + 2] == "-" || src[start + 2] == "+") ? src[start + 2] : nil
            var textEnd = start
            if case .variable = tag {
                if sign == "-" { textEnd = trimmedEnd(pos, start) }
            } else {
                textEnd = strippedTextEnd(pos, start, sign: sign)
            }
            emitText(pos..<textEnd)
            advance(to: start)
            switch tag {
            case .comment: try lexComment(from: start + 2 + (sign == nil ? 0 : 1))
            case let .raw(bodyStart): try lexRaw(from: bodyStart)
            case .block: try lexTag(from: start + 2 + (sign == nil ? 0 : 1), isBlock: true)
            case .variable: try lexTag(from: start + 2 + (sign == nil ? 0 : 1), isBlock: false)
            }
        }
        tokens.append(Token(kind: .end, line: line))
    }

    /// The next `{{`, `{%` or `{#` from `pos` on; a `{% raw %}` tag is recognised as a whole.
    private func nextTag() -> (Int, Tag)? {
        var i = pos
        while i + 1 < src.count {
            if src[i] == "{" {
                switch src[i + 1] {
                case "{": return (i, .variable)
                case "#": return (i, .comment)
                case "%": return (i, rawBodyStart(i).map { .raw(bodyStart: $0) } ?? .block)
                default: break
                }
            }
            i += 1
        }
        return nil
    }

    /// `{%[-+]?\s*raw\s*(-%}\s*|%})` at `i`: where the raw text starts.
    private func rawBodyStart(_ i: Int) -> Int? {
        var j = i + 2
        if j < src.count, src[j] == "-" || src[j] == "+" { j += 1 }
        j = skipSpace(j)
        guard matches("raw", at: j) else { return nil }
        j = skipSpace(j + 3)
        if matches("-%}", at: j) { return skipSpace(j + 3) }
        if matches("%}", at: j) { return j + 2 }
        return nil
    }

    private func matches(_ s: String, at i: Int) -> Bool {
        var j = i
        for c in s.unicodeScalars {
            guard j < src.count, src[j] == c else { return false }
            j += 1
        }
        return true
    }

    private func skipSpace(_ i: Int) -> Int {
        var j = i
        while j < src.count, PythonText.isSpace(src[j]) { j += 1 }
        return j
    }

    /// The end of `start..<end` without its trailing whitespace (`{%-`).
    private func trimmedEnd(_ start: Int, _ end: Int) -> Int {
        var e = end
        while e > start, PythonText.isSpace(src[e - 1]) { e -= 1 }
        return e
    }

    /// Where the text before a block or comment tag ends: `-` strips all whitespace, otherwise (unless `+`)
    /// `lstrip_blocks` removes the whitespace between the line's start and the tag.
    private func strippedTextEnd(_ start: Int, _ end: Int, sign: Unicode.Scalar?) -> Int {
        if sign == "-" { return trimmedEnd(start, end) }
        if sign == "+" { return end }
        var lineStart = end
        while lineStart > start, src[lineStart - 1] != "\n" { lineStart -= 1 }
        guard lineStart > start || lineStarting, lineStart < end else { return end }
        return src[lineStart..<end].allSatisfy(PythonText.isSpace) ? lineStart : end
    }

    private mutating func emitText(_ range: Range<Int>) {
        if !range.isEmpty { tokens.append(Token(kind: .text(PythonText.string(src[range])), line: line)) }
    }

    private mutating func advance(to end: Int) {
        while pos < end {
            if src[pos] == "\n" { line += 1 }
            pos += 1
        }
    }

    /// Moves past a tag's end, noting whether it ended a line.
    private mutating func finishTag(at end: Int) {
        lineStarting = end > 0 && src[end - 1] == "\n"
        advance(to: end)
    }

    /// The end of a block or comment closing at `i` (`closer` is "%}" or "#}"), or nil: `+` keeps what follows,
    /// `-` strips all following whitespace, and a plain close eats one newline (`trim_blocks`).
    private func blockClose(_ closer: String, at i: Int) -> Int? {
        if matches("+" + closer, at: i) { return i + 3 }
        if matches("-" + closer, at: i) { return skipSpace(i + 3) }
        if matches(closer, at: i) { return i + 2 < src.count && src[i + 2] == "\n" ? i + 3 : i + 2 }
        return nil
    }

    private mutating func lexComment(from start: Int) throws(TemplateFailure) {
        var i = start
        while i < src.count {
            if let end = blockClose("#}", at: i) {
                finishTag(at: end)
                return
            }
            i += 1
        }
        throw .syntax("missing end of comment tag", line: line)
    }

    private mutating func lexRaw(from start: Int) throws(TemplateFailure) {
        advance(to: start)
        lineStarting = start > 0 && src[start - 1] == "\n"
        var i = start
        while i + 1 < src.count {
            if src[i] == "{", src[i + 1] == "%" {
                var j = i + 2
                let sign: Unicode.Scalar? = j < src.count && (src[j] == "-" || src[j] == "+") ? src[j] : nil
                if sign != nil { j += 1 }
                j = skipSpace(j)
                if matches("endraw", at: j), let end = blockClose("%}", at: skipSpace(j + 6)) {
                    emitText(start..<strippedTextEnd(start, i, sign: sign))
                    finishTag(at: end)
                    return
                }
            }
            i += 1
        }
        throw .syntax("missing end of raw directive", line: line)
    }

    /// The tokens of a `{% … %}` or `{{ … }}` tag, up to and including its end.
    private mutating func lexTag(from start: Int, isBlock: Bool) throws(TemplateFailure) {
        tokens.append(Token(kind: isBlock ? .blockBegin : .variableBegin, line: line))
        advance(to: start)
        var brackets = [Unicode.Scalar]()
        while pos < src.count {
            if brackets.isEmpty {
                let end: Int? =
                    isBlock
                    ? blockClose("%}", at: pos)
                    : (matches("-}}", at: pos) ? skipSpace(pos + 3) : matches("}}", at: pos) ? pos + 2 : nil)
                if let end {
                    tokens.append(Token(kind: isBlock ? .blockEnd : .variableEnd, line: line))
                    finishTag(at: end)
                    return
                }
            }
            let c = src[pos]
            if PythonText.isSpace(c) {
                advance(to: skipSpace(pos))
            } else if let (kind, end) = try number(at: pos) {
                tokens.append(Token(kind: kind, line: line))
                advance(to: end)
            } else if c == "_" || c.properties.isXIDStart {
                var end = pos + 1
                while end < src.count, src[end].properties.isXIDContinue { end += 1 }
                tokens.append(Token(kind: .name(PythonText.string(src[pos..<end])), line: line))
                advance(to: end)
            } else if c == "'" || c == "\"" {
                var end = pos + 1
                while end < src.count, src[end] != c { end += src[end] == "\\" ? 2 : 1 }
                guard end < src.count else { throw .syntax("unterminated string literal", line: line) }
                let value = try decodeEscapes(src[(pos + 1)..<end])
                tokens.append(Token(kind: .string(value), line: line))
                advance(to: end + 1)
            } else if let op = Op.byLength.first(where: { matches($0.rawValue, at: pos) }) {
                switch op {
                case .lparen: brackets.append(")")
                case .lbracket: brackets.append("]")
                case .lbrace: brackets.append("}")
                case .rparen, .rbracket, .rbrace:
                    guard let expected = brackets.popLast() else { throw .syntax("unexpected '\(op.rawValue)'", line: line) }
                    guard expected == Unicode.Scalar(op.rawValue) else {
                        throw .syntax("unexpected '\(op.rawValue)', expected '\(expected)'", line: line)
                    }
                default: break
                }
                tokens.append(Token(kind: .op(op), line: line))
                advance(to: pos + op.rawValue.unicodeScalars.count)
            } else {
                throw .syntax("unexpected character '\(c)'", line: line)
            }
        }
        throw .syntax("unexpected end of template inside a tag", line: line)
    }

    /// A float or integer literal at `i`, as Jinja's regexes read them (underscores between digits allowed;
    /// `0b`, `0o`, `0x` prefixes; no float right after a dot, so `x.0.1` is two subscripts).
    private func number(at i: Int) throws(TemplateFailure) -> (Token.Kind, Int)? {
        func isDigit(_ j: Int) -> Bool { j < src.count && src[j].value >= 0x30 && src[j].value <= 0x39 }
        /// `(\d+_)*\d+` from j: its end, or nil.
        func digits(_ j: Int) -> Int? {
            guard isDigit(j) else { return nil }
            var k = j
            while true {
                while isDigit(k) { k += 1 }
                guard k < src.count, src[k] == "_", isDigit(k + 1) else { return k }
                k += 1
            }
        }
        guard let intEnd = digits(i) else { return nil }
        if i == 0 || src[i - 1] != "." {
            var end: Int? = nil
            if intEnd < src.count, src[intEnd] == ".", let fracEnd = digits(intEnd + 1) { end = fracEnd }
            let mantissaEnd = end ?? intEnd
            if mantissaEnd < src.count, src[mantissaEnd] == "e" || src[mantissaEnd] == "E" {
                var j = mantissaEnd + 1
                if j < src.count, src[j] == "+" || src[j] == "-" { j += 1 }
                if let expEnd = digits(j) { end = expEnd }
            }
            if let end {
                let text = PythonText.string(src[i..<end].filter { $0 != "_" })
                guard let d = Double(text) else { throw .syntax("invalid float literal '\(text)'", line: line) }
                return (.float(d), end)
            }
        }
        if src[i] == "0", i + 2 < src.count {
            let radix: Int? =
                switch src[i + 1] {
                case "b", "B": 2
                case "o", "O": 8
                case "x", "X": 16
                default: nil
                }
            if let radix {
                var j = i + 2
                var text = ""
                while j < src.count {
                    if src[j] == "_", j + 1 < src.count, Int(String(src[j + 1]), radix: radix) != nil {
                        j += 1
                        continue
                    }
                    guard Int(String(src[j]), radix: radix) != nil else { break }
                    text.unicodeScalars.append(src[j])
                    j += 1
                }
                if !text.isEmpty {
                    guard let v = Int(text, radix: radix) else { throw .syntax("integer literal too large", line: line) }
                    return (.integer(v), j)
                }
            }
        }
        // `0(_?0)*` or `[1-9](_?\d)*`: a leading zero only before more zeros.
        var end = intEnd
        if src[i] == "0" {
            end = i + 1
            while end < src.count, src[end] == "0" || (src[end] == "_" && end + 1 < src.count && src[end + 1] == "0") { end += 1 }
        }
        let text = PythonText.string(src[i..<end].filter { $0 != "_" })
        guard let v = Int(text) else { throw .syntax("integer literal too large", line: line) }
        return (.integer(v), end)
    }

    /// A string literal's body with Python's escapes decoded (Jinja runs it through "unicode-escape").
    private func decodeEscapes(_ body: ArraySlice<Unicode.Scalar>) throws(TemplateFailure) -> String {
        var out = String.UnicodeScalarView()
        var i = body.startIndex
        func hexValue(_ count: Int) throws(TemplateFailure) -> UInt32 {
            guard body.endIndex - (i + 2) >= count else { throw .syntax("truncated \\\(body[i + 1]) escape", line: line) }
            var v: UInt32 = 0
            for c in body[(i + 2)..<(i + 2 + count)] {
                guard let d = UInt32(String(c), radix: 16) else { throw .syntax("truncated \\\(body[i + 1]) escape", line: line) }
                v = v * 16 + d
            }
            return v
        }
        while i < body.endIndex {
            let c = body[i]
            guard c == "\\", i + 1 < body.endIndex else {
                out.append(c)
                i += 1
                continue
            }
            let e = body[i + 1]
            var consumed = 2
            switch e {
            case "\n": break
            case "\\", "'", "\"": out.append(e)
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var v: UInt32 = 0
                var j = i + 1
                while j < body.endIndex, j < i + 4, ("0"..."7").contains(body[j]) {
                    v = v * 8 + (body[j].value - 0x30)
                    j += 1
                }
                out.append(Unicode.Scalar(v)!)
                consumed = j - i
            case "x", "u", "U":
                let count = e == "x" ? 2 : e == "u" ? 4 : 8
                let v = try hexValue(count)
                guard v <= 0x10FFFF else { throw .syntax("illegal Unicode character in string literal", line: line) }
                // Python strings may hold lone surrogates; Swift strings cannot.
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                consumed = 2 + count
            case "N": throw .unsupported("\\N{…} escapes in string literals", line: line)
            default:
                out.append("\\")
                if e.value < 0x80 {
                    out.append(e)
                } else {
                    // "ascii"/"backslashreplace" turned the character into an escape whose backslash the "\\"
                    // before it consumed: what is left is the escape's text.
                    let v = e.value
                    let text = v <= 0xFF ? "x" + PythonText.hex(v, width: 2)
                        : v <= 0xFFFF ? "u" + PythonText.hex(v, width: 4) : "U" + PythonText.hex(v, width: 8)
                    out.append(contentsOf: text.unicodeScalars)
                }
            }
            i += consumed
        }
        return String(out)
    }
}
