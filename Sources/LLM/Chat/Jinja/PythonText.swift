// Python's string behaviour, which chat templates rely on: `str.strip()` and `\s` mean Python's whitespace,
// `len`, slicing and `split` count code points (not Swift's grapheme clusters), floats print as `repr` does,
// and `repr` of a string picks its quotes and escapes as CPython does.

enum PythonText {
    /// `str.isspace()` for one code point (what `strip()`, `split()` and the regex `\s` treat as whitespace).
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    /// `str.splitlines()`'s line boundaries.
    static func isLineBreak(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: true
        default: false
        }
    }

    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    static func string<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var utf8 = [UInt8]()
        utf8.reserveCapacity(scalars.underestimatedCount)
        for c in scalars { UTF8.encode(c) { utf8.append($0) } }
        return String(decoding: utf8, as: UTF8.self)
    }

    /// `str.strip(chars)`, `lstrip`, `rstrip`: `chars` nil strips whitespace.
    static func strip(_ s: String, _ chars: String?, leading: Bool = true, trailing: Bool = true) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isSpace(c) }
        let u = s.unicodeScalars
        var start = u.startIndex, end = u.endIndex
        if leading { while start < end, strippable(u[start]) { start = u.index(after: start) } }
        if trailing {
            while end > start {
                let before = u.index(before: end)
                guard strippable(u[before]) else { break }
                end = before
            }
        }
        return start == u.startIndex && end == u.endIndex ? s : String(u[start..<end])
    }

    /// Where `needle` first occurs in `hay` from `from` on (code point offsets). Knuth–Morris–Pratt, so the time
    /// is linear whatever the strings (a naive search is quadratic on "aaa…ab" in "aaa…a").
    static func find(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar], from: Int = 0) -> Int? {
        guard from >= 0, needle.count <= hay.count - min(from, hay.count) else { return nil }
        if needle.isEmpty { return from }
        // fallback[i]: the length of the longest proper prefix of needle[...i] that is also its suffix.
        var fallback = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<max(needle.count, 1) {
            while k > 0, needle[i] != needle[k] { k = fallback[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            fallback[i] = k
        }
        var matched = 0
        for i in from..<hay.count {
            while matched > 0, hay[i] != needle[matched] { matched = fallback[matched - 1] }
            if hay[i] == needle[matched] { matched += 1 }
            if matched == needle.count { return i - needle.count + 1 }
        }
        return nil
    }

    /// Where `needle` last occurs in `hay`.
    static func rfind(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> Int? {
        find(hay.reversed(), needle.reversed()).map { hay.count - $0 - needle.count }
    }

    static func contains(_ hay: String, _ needle: String) -> Bool { find(scalars(hay), scalars(needle)) != nil }

    static func count(_ hay: String, _ needle: String) -> Int {
        let h = scalars(hay), n = scalars(needle)
        if n.isEmpty { return h.count + 1 }
        var i = 0, found = 0
        while let at = find(h, n, from: i) {
            found += 1
            i = at + n.count
        }
        return found
    }

    /// `str.replace(old, new, count)`; an empty `old` inserts `new` around every code point, as Python does.
    static func replace(_ s: String, _ old: String, _ new: String, count limit: Int = -1) -> String {
        let h = scalars(s), o = scalars(old), n = scalars(new)
        var out = [Unicode.Scalar]()
        var done = 0
        if o.isEmpty {
            for c in h {
                if limit < 0 || done < limit { out += n; done += 1 }
                out.append(c)
            }
            if limit < 0 || done < limit { out += n }
            return string(out)
        }
        var i = 0
        while limit < 0 || done < limit, let at = find(h, o, from: i) {
            out += h[i..<at]
            out += n
            i = at + o.count
            done += 1
        }
        out += h[i...]
        return string(out)
    }

    /// `str.split(sep, maxsplit)`: nil `sep` splits on whitespace runs and drops empty parts.
    static func split(_ s: String, _ sep: String?, maxSplit: Int = -1) -> [String] {
        let u = scalars(s)
        guard let sep else {
            var parts = [String]()
            var i = 0
            while i < u.count {
                while i < u.count, isSpace(u[i]) { i += 1 }
                guard i < u.count else { break }
                if maxSplit >= 0, parts.count == maxSplit {
                    parts.append(string(u[i...]))
                    break
                }
                let start = i
                while i < u.count, !isSpace(u[i]) { i += 1 }
                parts.append(string(u[start..<i]))
            }
            return parts
        }
        let d = scalars(sep)
        var parts = [String]()
        var i = 0
        while maxSplit < 0 || parts.count < maxSplit, let at = find(u, d, from: i) {
            parts.append(string(u[i..<at]))
            i = at + d.count
        }
        parts.append(string(u[i...]))
        return parts
    }

    /// `str.rsplit(sep, maxsplit)`.
    static func rsplit(_ s: String, _ sep: String?, maxSplit: Int = -1) -> [String] {
        if maxSplit < 0 { return split(s, sep) }
        let reversed = string(scalars(s).reversed())
        let parts = split(reversed, sep.map { string(scalars($0).reversed()) }, maxSplit: maxSplit)
        return parts.reversed().map { string(scalars($0).reversed()) }
    }

    /// `str.splitlines(keepends)`.
    static func splitLines(_ s: String, keepEnds: Bool = false) -> [String] {
        let u = scalars(s)
        var lines = [String]()
        var start = 0, i = 0
        while i < u.count {
            if isLineBreak(u[i]) {
                var end = i + 1
                if u[i] == "\r", end < u.count, u[end] == "\n" { end += 1 }
                lines.append(string(u[start..<(keepEnds ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < u.count { lines.append(string(u[start...])) }
        return lines
    }

    /// Python's full-mapping `str.upper()` / `str.lower()` for one code point.
    static func upper(_ c: Unicode.Scalar) -> String { c.properties.uppercaseMapping }
    static func lower(_ c: Unicode.Scalar) -> String { c.properties.lowercaseMapping }

    /// `str.title()`: a cased character after a cased one is lowercased, any other is titlecased.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            out += previousCased ? c.properties.lowercaseMapping : c.properties.titlecaseMapping
            previousCased = c.properties.isCased
        }
        return out
    }

    /// `str.capitalize()`: the first code point titlecased, the rest lowercased.
    static func capitalize(_ s: String) -> String {
        var out = ""
        for (i, c) in s.unicodeScalars.enumerated() {
            out += i == 0 ? c.properties.titlecaseMapping : c.properties.lowercaseMapping
        }
        return out
    }

    /// Python's `repr(str)`: single quotes unless the text has a single quote and no double quote.
    static func stringRepr(_ s: String) -> String {
        let quote: Unicode.Scalar = s.unicodeScalars.contains("'") && !s.unicodeScalars.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for c in s.unicodeScalars {
            switch c {
            case quote, "\\": out += "\\" + String(c)
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    out += "\\x" + hex(c.value, width: 2)
                } else if c.value < 0x7F || isPrintable(c) {
                    out.unicodeScalars.append(c)
                } else if c.value <= 0xFF {
                    out += "\\x" + hex(c.value, width: 2)
                } else if c.value <= 0xFFFF {
                    out += "\\u" + hex(c.value, width: 4)
                } else {
                    out += "\\U" + hex(c.value, width: 8)
                }
            }
        }
        out.unicodeScalars.append(quote)
        return out
    }

    /// Python's `str.isprintable()` for one non-ASCII code point.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            false
        default: true
        }
    }

    static func hex(_ v: UInt32, width: Int) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Python's `repr(float)`: the shortest digits that round-trip, positional for decimal exponents from −4 to
    /// 15 ("1e-05", "0.0001", "1000000000000000.0", "1e+16").
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description also prints the shortest round-trip digits, in either form; take them apart.
        let text = "\(d.magnitude)"
        let parts = text.split(separator: "e", maxSplits: 1)
        let mantissa = String(parts[0])
        let exponent = parts.count > 1 ? Int(parts[1])! : 0
        var digits = mantissa.filter { $0 != "." }
        var point = (mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) }
            ?? mantissa.count) + exponent
        while digits.first == "0" {
            digits.removeFirst()
            point -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        let e = point - 1  // the exponent in d.ddd × 10^e
        let sign = d < 0 ? "-" : ""
        if e >= -4, e < 16 {
            if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + digits }
            if digits.count <= point { return sign + digits + String(repeating: "0", count: point - digits.count) + ".0" }
            return sign + digits.prefix(point) + "." + digits.dropFirst(point)
        }
        let head = String(digits.prefix(1)) + (digits.count > 1 ? "." + digits.dropFirst() : "")
        let expDigits = String(abs(e))
        return sign + head + "e" + (e < 0 ? "-" : "+") + (expDigits.count < 2 ? "0" : "") + expDigits
    }

    /// Python's `json` string encoding: `"` `\` and control characters escaped; with `ensureASCII`, every
    /// non-ASCII code point too (as surrogate pairs above U+FFFF).
    static func jsonString(_ s: String, ensureASCII: Bool) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 {
                    out += "\\u" + hex(c.value, width: 4)
                } else if ensureASCII, c.value > 0x7E {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += "\\u" + hex(0xD800 + (v >> 10), width: 4) + "\\u" + hex(0xDC00 + (v & 0x3FF), width: 4)
                    } else {
                        out += "\\u" + hex(c.value, width: 4)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
