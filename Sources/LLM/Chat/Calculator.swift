// The calculator a chat model calls between <|python_start|> and <|python_end|> (nanochat's tool use): a small
// arithmetic evaluator with Python's semantics and Python's way of printing numbers, since models are trained
// on what Python's eval printed. It parses and evaluates; it never executes anything, and every input ends
// in an answer or an error, quickly: the input, the nesting and the numbers are all bounded.
//
// The language (a subset of a Python expression):
//
//   expr    := term (('+' | '-') term)*
//   term    := factor (('*' | '/' | '//' | '%') factor)*
//   factor  := ('+' | '-') factor | power
//   power   := atom ['**' factor]                       (so -2**2 is -4 and 2**-1 is 0.5, as in Python)
//   atom    := number | '(' expr ')' | string '.count(' string ')'
//   number  := digits ['.' digits*] | '.' digits         (no exponent, no underscores; 007 is an error as in Python)
//   string  := '…' or "…" without backslashes
//
// Commas outside strings are dropped first, as nanochat's `use_calculator` does, so "1,234 * 5" is 6170.
// Integers are exact 64-bit integers (Python's are unbounded: here a result past ±2^63 is an error); `/` and
// any float operand give a Double, printed as Python's repr ("2.5", "3.0", "1e-05", "1e+16"). Errors where
// Python raises (division by zero, a negative number to a fractional power) and where Python would print
// "inf" or "nan" (a float overflow) alike. `"strawberry".count("r")` is Python's str.count over Unicode scalars
// (non-overlapping; an empty needle counts len + 1). nanochat's calculator refuses `**` and `%`; this one
// takes them, bounded.
import Foundation

/// A number the calculator computed: a Python int (bounded to 64 bits) or float.
public enum CalculatorValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int64)
    case float(Double)

    /// As Python's `str` prints it: "7", "-3", "2.5", "3.0", "1e-05", "1.5e+16".
    public var description: String {
        switch self {
        case .int(let i): String(i)
        case .float(let d): pythonRepr(d)
        }
    }

    var asDouble: Double {
        switch self {
        case .int(let i): Double(i)
        case .float(let d): d
        }
    }
}

/// Why the calculator gave no answer.
public enum CalculatorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input is longer than `Calculator.maxInputBytes`.
    case tooLong(bytes: Int)
    /// Parentheses and unary signs nest deeper than `Calculator.maxDepth`.
    case tooDeep
    /// Not an expression of the calculator's language; `at` is the byte offset of the problem.
    case syntax(String, at: Int)
    case divisionByZero
    /// An integer past 64 bits, or a float past Double's range (Python would print inf).
    case overflow
    /// A result that is not a real number: a negative base to a fractional power, or NaN.
    case notReal

    public var description: String {
        switch self {
        case let .tooLong(bytes): "the expression is \(bytes) bytes; the calculator takes at most \(Calculator.maxInputBytes)"
        case .tooDeep: "the expression nests deeper than \(Calculator.maxDepth) levels"
        case let .syntax(what, at): "\(what) at byte \(at)"
        case .divisionByZero: "division by zero"
        case .overflow: "the result is too large"
        case .notReal: "the result is not a real number"
        }
    }
}

/// The calculator tool (see the top of this file).
public enum Calculator {
    /// The longest expression it evaluates, in UTF-8 bytes.
    public static let maxInputBytes = 256
    /// The deepest nesting of parentheses and unary signs.
    public static let maxDepth = 32

    /// Evaluates `expression`, or says why it cannot. Never traps; time is linear in the input (a count is at
    /// most 256 × 256 comparisons).
    public static func evaluate(_ expression: String) -> Result<CalculatorValue, CalculatorError> {
        let bytes = Array(expression.utf8)
        guard bytes.count <= maxInputBytes else { return .failure(.tooLong(bytes: bytes.count)) }
        var parser = ExpressionParser(bytes: bytes)
        do { return .success(try parser.parseAll()) } catch { return .failure(error) }
    }

    /// The text fed back to the model after <|output_start|>, as nanochat's `str(result)`: nil on any error
    /// (nanochat forces no output then, and the model carries on).
    public static func output(for expression: String) -> String? {
        try? evaluate(expression).get().description
    }
}

// MARK: - Parsing and evaluating in one pass

/// A recursive-descent parser that computes as it goes. Its recursion is bounded by `Calculator.maxDepth`.
private struct ExpressionParser {
    let bytes: [UInt8]
    var i = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = Self.droppingCommas(bytes) }

    /// The bytes without commas outside string literals (nanochat drops every comma: "1,234" is 1234).
    static func droppingCommas(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](), quote: UInt8?
        out.reserveCapacity(bytes.count)
        for b in bytes {
            if let q = quote {
                if b == q { quote = nil }
            } else if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") {
                quote = b
            } else if b == UInt8(ascii: ",") {
                continue
            }
            out.append(b)
        }
        return out
    }

    mutating func parseAll() throws(CalculatorError) -> CalculatorValue {
        let value = try expr()
        skipSpaces()
        guard i == bytes.count else { throw .syntax("unexpected \(describe(i))", at: i) }
        return value
    }

    // expr := term (('+' | '-') term)*
    mutating func expr() throws(CalculatorError) -> CalculatorValue {
        var value = try term()
        while true {
            if eat("+") { value = try add(value, try term()) }
            else if eat("-") { value = try subtract(value, try term()) }
            else { return value }
        }
    }

    // term := factor (('*' | '/' | '//' | '%') factor)*
    mutating func term() throws(CalculatorError) -> CalculatorValue {
        var value = try factor()
        while true {
            if eat("*") { value = try multiply(value, try factor()) }
            else if eat("//") { value = try floorDivide(value, try factor()) }
            else if eat("/") { value = try divide(value, try factor()) }
            else if eat("%") { value = try modulo(value, try factor()) }
            else { return value }
        }
    }

    // factor := ('+' | '-') factor | power
    mutating func factor() throws(CalculatorError) -> CalculatorValue {
        if eat("-") {
            try enter()
            defer { depth -= 1 }
            return try negate(try factor())
        }
        if eat("+") {
            try enter()
            defer { depth -= 1 }
            return try factor()
        }
        return try power()
    }

    // power := atom ['**' factor]
    mutating func power() throws(CalculatorError) -> CalculatorValue {
        let base = try atom()
        guard eat("**") else { return base }
        try enter()
        defer { depth -= 1 }
        return try raise(base, try factor())
    }

    // atom := number | '(' expr ')' | string '.count(' string ')'
    mutating func atom() throws(CalculatorError) -> CalculatorValue {
        skipSpaces()
        guard i < bytes.count else { throw .syntax("the expression ends too soon", at: i) }
        let b = bytes[i]
        if b == UInt8(ascii: "(") {
            i += 1
            try enter()
            defer { depth -= 1 }
            let value = try expr()
            guard eat(")") else { throw .syntax("expected ) but found \(describe(i))", at: i) }
            return value
        }
        if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") { return try count() }
        if isDigit(b) || b == UInt8(ascii: ".") { return try number() }
        throw .syntax("unexpected \(describe(i))", at: i)
    }

    mutating func number() throws(CalculatorError) -> CalculatorValue {
        let start = i
        while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        let intEnd = i
        var isFloat = false
        if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
            isFloat = true
            i += 1
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard text != "." else { throw .syntax("a lone .", at: start) }
        if i < bytes.count, isLetter(bytes[i]) || bytes[i] == UInt8(ascii: "_") {
            throw .syntax("unexpected \(describe(i)) after a number", at: i)
        }
        if !isFloat {
            // Python rejects leading zeros in a nonzero integer literal ("007").
            if intEnd - start > 1, bytes[start] == UInt8(ascii: "0"), bytes[start..<intEnd].contains(where: { $0 != UInt8(ascii: "0") }) {
                throw .syntax("leading zeros in an integer", at: start)
            }
            guard let value = Int64(text) else { throw .overflow }
            return .int(value)
        }
        guard let value = Double(text), value.isFinite else { throw .overflow }
        return .float(value)
    }

    /// `string.count(string)`, as Python's str.count: non-overlapping occurrences, counted over Unicode scalars.
    mutating func count() throws(CalculatorError) -> CalculatorValue {
        let haystack = try string()
        guard eat(".count") else { throw .syntax("a string must be followed by .count(…)", at: i) }
        guard eat("(") else { throw .syntax("expected ( after .count", at: i) }
        skipSpaces()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "'") || bytes[i] == UInt8(ascii: "\"") else {
            throw .syntax(".count takes one string", at: i)
        }
        let needle = try string()
        guard eat(")") else { throw .syntax("expected ) after .count's string", at: i) }
        let h = Array(haystack.unicodeScalars), n = Array(needle.unicodeScalars)
        if n.isEmpty { return .int(Int64(h.count + 1)) }
        var found = 0, k = 0
        while k + n.count <= h.count {
            if h[k..<k + n.count].elementsEqual(n) {
                found += 1
                k += n.count
            } else {
                k += 1
            }
        }
        return .int(Int64(found))
    }

    /// A quoted string without escapes (a backslash is an error, rather than Python's escapes half done).
    mutating func string() throws(CalculatorError) -> String {
        skipSpaces()
        let quote = bytes[i], start = i + 1
        var j = start
        while j < bytes.count && bytes[j] != quote {
            if bytes[j] == UInt8(ascii: "\\") { throw .syntax("backslashes in strings are not supported", at: j) }
            j += 1
        }
        guard j < bytes.count else { throw .syntax("an unterminated string", at: i) }
        i = j + 1
        return String(decoding: bytes[start..<j], as: UTF8.self)
    }

    // MARK: Helpers

    /// Goes one level deeper (the caller steps back out), refusing to pass the limit.
    mutating func enter() throws(CalculatorError) {
        depth += 1
        guard depth <= Calculator.maxDepth else { throw .tooDeep }
    }

    mutating func skipSpaces() {
        while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
    }

    /// Whether the next bytes (after spaces) are `token`.
    mutating func peek(_ token: StaticString) -> Bool {
        skipSpaces()
        let n = token.utf8CodeUnitCount
        guard i + n <= bytes.count else { return false }
        return token.withUTF8Buffer { bytes[i..<i + n].elementsEqual($0) }
    }

    /// Consumes `token` if it comes next. "*" does not match the start of "**", nor "/" of "//".
    mutating func eat(_ token: StaticString) -> Bool {
        guard peek(token) else { return false }
        let n = token.utf8CodeUnitCount
        if n == 1, i + 1 < bytes.count, bytes[i + 1] == bytes[i], bytes[i] == UInt8(ascii: "*") || bytes[i] == UInt8(ascii: "/") {
            return false
        }
        i += n
        return true
    }

    func describe(_ at: Int) -> String {
        guard at < bytes.count else { return "the end" }
        let end = min(at + 1, bytes.count)
        return "\"\(String(decoding: bytes[at..<end], as: UTF8.self))\""
    }
}

private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
private func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }

// MARK: - Python's arithmetic

/// A finite Double, or the error Python's would be (or would print as inf/nan).
private func finite(_ d: Double) throws(CalculatorError) -> CalculatorValue {
    if d.isNaN { throw .notReal }
    guard d.isFinite else { throw .overflow }
    return .float(d)
}

/// An Int64 result, or `.overflow` past 64 bits.
private func checked(_ r: (partialValue: Int64, overflow: Bool)) throws(CalculatorError) -> CalculatorValue {
    guard !r.overflow else { throw .overflow }
    return .int(r.partialValue)
}

private func negate(_ a: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    switch a {
    case .int(let x): try checked(Int64(0).subtractingReportingOverflow(x))
    case .float(let x): .float(-x)
    }
}

private func add(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    if case .int(let x) = a, case .int(let y) = b { return try checked(x.addingReportingOverflow(y)) }
    return try finite(a.asDouble + b.asDouble)
}

private func subtract(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    if case .int(let x) = a, case .int(let y) = b { return try checked(x.subtractingReportingOverflow(y)) }
    return try finite(a.asDouble - b.asDouble)
}

private func multiply(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    if case .int(let x) = a, case .int(let y) = b { return try checked(x.multipliedReportingOverflow(by: y)) }
    return try finite(a.asDouble * b.asDouble)
}

/// Python's `/`: always a float.
private func divide(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    guard b.asDouble != 0 else { throw .divisionByZero }
    return try finite(a.asDouble / b.asDouble)
}

/// Python's `//`: floors (toward -∞), an int for ints.
private func floorDivide(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    if case .int(let x) = a, case .int(let y) = b {
        guard y != 0 else { throw .divisionByZero }
        let (q, overflow) = x.dividedReportingOverflow(by: y)
        guard !overflow else { throw .overflow }
        return .int(q * y != x && (x < 0) != (y < 0) ? q - 1 : q)
    }
    return try finite(try floatDivmod(a.asDouble, b.asDouble).div)
}

/// Python's `%`: the remainder takes the divisor's sign.
private func modulo(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    if case .int(let x) = a, case .int(let y) = b {
        guard y != 0 else { throw .divisionByZero }
        if y == -1 { return .int(0) }  // Int64.min % -1 overflows in Swift; it is 0
        let r = x % y
        return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
    }
    return try finite(try floatDivmod(a.asDouble, b.asDouble).mod)
}

/// CPython's float_divmod: floor division and modulo of floats, with its corrections.
private func floatDivmod(_ vx: Double, _ wx: Double) throws(CalculatorError) -> (div: Double, mod: Double) {
    guard wx != 0 else { throw .divisionByZero }
    var mod = fmod(vx, wx)
    var div = (vx - mod) / wx
    if mod != 0 {
        if (wx < 0) != (mod < 0) {
            mod += wx
            div -= 1
        }
    } else {
        mod = copysign(0, wx)
    }
    var floordiv: Double
    if div != 0 {
        floordiv = floor(div)
        if div - floordiv > 0.5 { floordiv += 1 }
    } else {
        floordiv = copysign(0, vx / wx)
    }
    return (floordiv, mod)
}

/// Python's `**`: an int for an int to a non-negative int power (exact, by squaring, so a huge exponent costs
/// at most 64 steps before it overflows), else a float.
private func raise(_ a: CalculatorValue, _ b: CalculatorValue) throws(CalculatorError) -> CalculatorValue {
    if case .int(let base) = a, case .int(let exponent) = b, exponent >= 0 {
        if base == 0 || base == 1 { return .int(exponent == 0 ? 1 : base) }
        if base == -1 { return .int(exponent % 2 == 0 ? 1 : -1) }
        var result: Int64 = 1, square = base, e = exponent
        while true {
            if e & 1 == 1 { result = try checkedInt(result.multipliedReportingOverflow(by: square)) }
            e >>= 1
            if e == 0 { return .int(result) }
            square = try checkedInt(square.multipliedReportingOverflow(by: square))
        }
    }
    let x = a.asDouble, y = b.asDouble
    if x == 0 && y < 0 { throw .divisionByZero }
    if x < 0 && y != y.rounded() { throw .notReal }  // Python gives a complex number
    return try finite(pow(x, y))
}

private func checkedInt(_ r: (partialValue: Int64, overflow: Bool)) throws(CalculatorError) -> Int64 {
    guard !r.overflow else { throw .overflow }
    return r.partialValue
}

// MARK: - Python's repr of a float

/// `repr(d)` as Python 3 writes it: the shortest digits that read back as `d` (Swift's description finds
/// them), fixed-point when the decimal exponent is in -4 ..< 16 (always with a fractional part: "3.0"), else
/// scientific with a signed exponent of at least two digits ("1e-05", "1.5e+16").
func pythonRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description holds the shortest round-trip digits, in "123.45" or "1.2345e-07" form.
    let text = "\(d.magnitude)"
    var mantissa = Substring(text), exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        mantissa = text[..<e]
        exponent = Int(text[text.index(after: e)...]) ?? 0
    }
    let point = mantissa.firstIndex(of: ".")
    let intPart = point.map { mantissa[..<$0] } ?? mantissa
    let fracPart = point.map { mantissa[mantissa.index(after: $0)...] } ?? ""
    var digits = Array(intPart + fracPart)
    // Value = 0.d1d2…dn × 10^decpt.
    var decpt = intPart.count + exponent
    while let first = digits.first, first == "0", digits.count > 1 {
        digits.removeFirst()
        decpt -= 1
    }
    while digits.count > 1, digits.last == "0" { digits.removeLast() }
    let sign = d < 0 ? "-" : ""
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 { return sign + "0." + String(repeating: "0", count: -decpt) + String(digits) }
        if decpt >= digits.count { return sign + String(digits) + String(repeating: "0", count: decpt - digits.count) + ".0" }
        return sign + String(digits[..<decpt]) + "." + String(digits[decpt...])
    }
    let e = decpt - 1
    let body = digits.count == 1 ? String(digits) : String(digits[0]) + "." + String(digits[1...])
    return sign + body + "e" + (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
}
