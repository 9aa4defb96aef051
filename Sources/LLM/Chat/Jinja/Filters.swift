// Jinja's filters (`x | trim`) and tests (`x is defined`) as jinja2/filters.py and jinja2/tests.py define
// them, with transformers' own `tojson` (Python's `json.dumps` with `ensure_ascii=False`, so no HTML escaping,
// and `indent`, `separators`, `sort_keys` passed through).
import Foundation

extension Interpreter {
    func applyFilter(_ call: FilterCall, to value: Value, _ scope: Scope) throws(TemplateFailure) -> Value {
        guard let f = call.filter else { throw .unsupported("unsupported filter '\(call.name)'") }
        let (positional, keyword) = try evalArguments(call.arguments, scope)
        return try filter(f, value, positional, keyword)
    }

    func filter(_ filter: Filter, _ value: Value, _ positional: [Value], _ keyword: [(String, Value)]) throws(TemplateFailure) -> Value {
        func args(_ names: [String], minimum: Int = 0) throws(TemplateFailure) -> [Value?] {
            try bind(filter.rawValue, names, positional, keyword, minimum: minimum)
        }
        func text(_ s: String) throws(TemplateFailure) -> Value {
            try charge(size: s.utf8.count)
            return .string(s)
        }
        switch filter {
        case .abs:
            _ = try args([])
            switch value {
            case let .int(i) where i != .min: return .int(Swift.abs(i))
            case let .bool(b): return .int(b ? 1 : 0)
            case let .double(d): return .double(d.magnitude)
            default: throw .runtime("bad operand type for abs(): '\(value.typeName)'")
            }
        case .attr:
            let a = try args(["name"], minimum: 1)
            return try pythonAttribute(of: value, str(a[0]!))
        case .capitalize:
            _ = try args([])
            return try text(PythonText.capitalize(str(value)))
        case .default:
            let a = try args(["default_value", "boolean"])
            let useDefault = value.isUndefined || ((a[1]?.truthy ?? false) && !value.truthy)
            return useDefault ? a[0] ?? .emptyString : value
        case .dictsort:
            let a = try args(["case_sensitive", "by", "reverse"])
            guard case let .dict(d) = value else { throw .runtime("'\(value.typeName)' object has no attribute 'items'") }
            let by = a[1].map(str) ?? "key"
            guard by == "key" || by == "value" else { throw .runtime("you can only sort by either \"key\" or \"value\"") }
            let caseSensitive = a[0]?.truthy ?? false
            let pairs = d.items.map { Value.tuple([$0.key, $0.value]) }
            let keys = d.items.map { pair in Self.ignoringCase(by == "key" ? pair.key : pair.value, unless: caseSensitive) }
            return .list(try sorted(pairs, keys: keys, reverse: a[2]?.truthy ?? false))
        case .escape:
            _ = try args([])
            var out = ""
            for c in str(value).unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "'": out += "&#39;"
                case "\"": out += "&#34;"
                default: out.unicodeScalars.append(c)
                }
            }
            return try text(out)
        case .first:
            _ = try args([])
            return try iterate(value).first ?? .undefined(hint: "no first item, sequence was empty")
        case .last:
            _ = try args([])
            switch value {
            case .list, .tuple, .string, .dict, .undefined:
                return try iterate(value).last ?? .undefined(hint: "no last item, sequence was empty")
            default: throw .runtime("'\(value.typeName)' object is not reversible")
            }
        case .float:
            let a = try args(["default"])
            if case let .undefined(hint) = value { throw .runtime(hint) }
            return Self.pythonFloat(value).map { .double($0) } ?? a[0] ?? .double(0)
        case .int:
            let a = try args(["default", "base"])
            if case let .undefined(hint) = value { throw .runtime(hint) }
            let base = a[1]?.asInt ?? 10
            if case let .string(s) = value, let i = Self.pythonInt(s, base: base) { return .int(i) }
            if case .string = value {} else if let i = value.asInt { return .int(i) }
            if let d = Self.pythonFloat(value), d.isFinite, let i = Int(exactly: d.rounded(.towardZero)) { return .int(i) }
            return a[0] ?? .int(0)
        case .indent:
            let a = try args(["width", "first", "blank"])
            var indentation = "    "
            if let width = a[0] {
                if case let .string(s) = width { indentation = s } else if let n = width.asInt {
                    try charge(size: n)
                    indentation = String(repeating: " ", count: max(0, n))
                } else {
                    throw .runtime("indent width must be an integer or a string")
                }
            }
            // Jinja appends "\n" to the value, which only a string (or markup) survives.
            guard case let .string(original) = value else {
                if case let .undefined(hint) = value { throw .runtime(hint) }
                throw .runtime("unsupported operand type(s) for +=: '\(value.typeName)' and 'str'")
            }
            let lines = PythonText.splitLines(original + "\n")
            try charge(size: lines.count * indentation.utf8.count)
            var out: String
            if a[2]?.truthy ?? false {
                out = lines.joined(separator: "\n" + indentation)
            } else {
                out = lines.first ?? ""
                let rest = lines.dropFirst()
                if !rest.isEmpty { out += "\n" + rest.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n") }
            }
            if a[1]?.truthy ?? false { out = indentation + out }
            return try text(out)
        case .items:
            _ = try args([])
            switch value {
            case .undefined: return .list([])
            case let .dict(d): return .list(d.items.map { .tuple([$0.key, $0.value]) })
            default: throw .runtime("can only get item pairs from a mapping")
            }
        case .join:
            let a = try args(["d", "attribute"])
            var items = try iterate(value)
            if let attribute = a[1] { items = try items.map { v throws(TemplateFailure) in try attributePath(v, attribute) } }
            let joined = items.map(str).joined(separator: a[0].map(str) ?? "")
            return try text(joined)
        case .length:
            _ = try args([])
            switch value {
            case let .string(s): return .int(s.unicodeScalars.count)
            case let .list(items), let .tuple(items): return .int(items.count)
            case let .dict(d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw .runtime("object of type '\(value.typeName)' has no len()")
            }
        case .list:
            _ = try args([])
            return .list(try iterate(value))
        case .lower, .upper:
            _ = try args([])
            let mapping = filter == .lower ? PythonText.lower : PythonText.upper
            return try text(str(value).unicodeScalars.map(mapping).joined())
        case .map:
            let items = value.truthy ? try iterate(value) : []
            if positional.isEmpty, let attribute = keyword.first(where: { $0.0 == "attribute" })?.1 {
                let defaultValue = keyword.first { $0.0 == "default" }?.1
                if let extra = keyword.first(where: { $0.0 != "attribute" && $0.0 != "default" }) {
                    throw .runtime("unexpected keyword argument '\(extra.0)'")
                }
                return .list(try items.map { v throws(TemplateFailure) in try attributePath(v, attribute, default: defaultValue) })
            }
            guard let first = positional.first else { throw .runtime("map requires a filter argument") }
            let name = str(first)
            guard let mapped = Filter(name: name) else { throw .unsupported("unsupported filter '\(name)'") }
            let rest = Array(positional.dropFirst())
            return .list(try items.map { v throws(TemplateFailure) in try self.filter(mapped, v, rest, keyword) })
        case .max, .min:
            let a = try args(["case_sensitive", "attribute"])
            let items = try iterate(value)
            guard !items.isEmpty else { return .undefined(hint: "no aggregated item, sequence was empty") }
            let keys = try items.map { v throws(TemplateFailure) in
                Self.ignoringCase(try attributePath(v, a[1]), unless: a[0]?.truthy ?? false)
            }
            var best = 0
            for i in 1..<items.count {
                let better = filter == .min ? keys[i].pyLess(keys[best]) : keys[best].pyLess(keys[i])
                guard let better else {
                    throw .runtime("'<' not supported between instances of '\(keys[i].typeName)' and '\(keys[best].typeName)'")
                }
                if better { best = i }
            }
            return items[best]
        case .select, .reject, .selectattr, .rejectattr:
            let byAttribute = filter == .selectattr || filter == .rejectattr
            let wanted = filter == .select || filter == .selectattr
            var rest = positional
            var attribute: Value?
            if byAttribute {
                guard !rest.isEmpty else { throw .runtime("missing parameter for attribute name") }
                attribute = rest.removeFirst()
            }
            var test: Test?
            if !rest.isEmpty {
                let name = str(rest.removeFirst())
                guard let t = Test(name: name) else { throw .unsupported("unsupported test '\(name)'") }
                test = t
            }
            var kept = [Value]()
            for item in value.truthy ? try iterate(value) : [] {
                try step()
                let subject = try attributePath(item, attribute)
                let passed = try test.map { t throws(TemplateFailure) in try applyTest(t, subject, rest, keyword) } ?? subject.truthy
                if passed == wanted { kept.append(item) }
            }
            return .list(kept)
        case .replace:
            let a = try args(["old", "new", "count"], minimum: 2)
            let s = str(value), old = str(a[0]!), new = str(a[1]!)
            let count: Int
            if let c = a[2], !(c.pyEquals(.none)) {
                guard let n = c.asInt else { throw .runtime("'\(c.typeName)' object cannot be interpreted as an integer") }
                count = n
            } else {
                count = -1
            }
            let occurrences = old.isEmpty ? s.unicodeScalars.count + 1 : PythonText.count(s, old)
            try charge(size: s.utf8.count + new.utf8.count * occurrences)
            return .string(PythonText.replace(s, old, new, count: count))
        case .reverse:
            _ = try args([])
            if case let .string(s) = value { return try text(PythonText.string(s.unicodeScalars.reversed())) }
            return .list(try iterate(value).reversed())
        case .round:
            let a = try args(["precision", "method"])
            let precision = a[0]?.asInt ?? 0
            let method = a[1].map(str) ?? "common"
            guard ["common", "ceil", "floor"].contains(method) else { throw .runtime("method must be common, ceil or floor") }
            if method == "common", let i = value.asInt, precision >= 0 { return .int(i) }
            guard let x = value.asNumber else { throw .runtime("type \(value.typeName) doesn't define __round__ method") }
            let scale = Foundation.pow(10, Double(precision))
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrEven
            return .double((x * scale).rounded(rule) / scale)
        case .safe, .string:
            _ = try args([])
            return .string(str(value))
        case .sort:
            let a = try args(["reverse", "case_sensitive", "attribute"])
            let items = try iterate(value)
            let attributes: [Value?] = a[2].map { attribute -> [Value?] in
                guard case let .string(s) = attribute else { return [attribute] }
                return s.split(separator: ",").map { .string(String($0)) }
            } ?? [nil]
            let keys = try items.map { v throws(TemplateFailure) -> Value in
                let parts = try attributes.map { attribute throws(TemplateFailure) in
                    Self.ignoringCase(try attributePath(v, attribute), unless: a[1]?.truthy ?? false)
                }
                return parts.count == 1 ? parts[0] : .list(parts)
            }
            return .list(try sorted(items, keys: keys, reverse: a[0]?.truthy ?? false))
        case .sum:
            let a = try args(["attribute", "start"])
            var total = a[1] ?? .int(0)
            for item in try iterate(value) {
                if case .string = total { throw .runtime("sum() can't sum strings [use ''.join(seq) instead]") }
                total = try binary(.add, total, try attributePath(item, a[0]))
            }
            return total
        case .title:
            _ = try args([])
            // Jinja's own title: each word (split at runs of "-", whitespace, "(", "{", "[", "<") gets its first
            // character uppercased and the rest lowercased.
            var out = ""
            var atWordStart = true
            for c in str(value).unicodeScalars {
                let isSeparator = c == "-" || c == "(" || c == "{" || c == "[" || c == "<" || PythonText.isSpace(c)
                if isSeparator {
                    out.unicodeScalars.append(c)
                    atWordStart = true
                } else {
                    out += atWordStart ? PythonText.upper(c) : PythonText.lower(c)
                    atWordStart = false
                }
            }
            return try text(out)
        case .tojson:
            let a = try args(["ensure_ascii", "indent", "separators", "sort_keys"])
            var indent: String?
            if let i = a[1], !i.pyEquals(.none) {
                if case let .string(s) = i { indent = s } else if let n = i.asInt {
                    try charge(size: n)
                    indent = String(repeating: " ", count: max(0, n))
                } else {
                    throw .runtime("indent must be an integer, a string or None")
                }
            }
            var separators = (item: indent == nil ? ", " : ",", key: ": ")
            switch a[2] {
            case nil, .none?: break
            case let .list(pair)?, let .tuple(pair)?:
                guard pair.count == 2, case let .string(item) = pair[0], case let .string(key) = pair[1] else {
                    throw .runtime("separators must be a pair of strings")
                }
                separators = (item, key)
            case let other?: throw .runtime("separators must be a pair of strings, not \(other.typeName)")
            }
            var out = ""
            let options = JSONOptions(
                ensureASCII: a[0]?.truthy ?? false, indent: indent, itemSeparator: separators.item,
                keySeparator: separators.key, sortKeys: a[3]?.truthy ?? false)
            try writeJSON(value, options, level: 0, into: &out)
            return .string(out)
        case .trim:
            let a = try args(["chars"])
            var chars: String?
            if let c = a[0], !c.pyEquals(.none) {
                guard case let .string(s) = c else { throw .runtime("strip arg must be None or str") }
                chars = s
            }
            return try text(PythonText.strip(str(value), chars))
        case .unique:
            let a = try args(["case_sensitive", "attribute"])
            var seen = Dict()
            var kept = [Value]()
            for item in try iterate(value) {
                let key = Self.ignoringCase(try attributePath(item, a[1]), unless: a[0]?.truthy ?? false)
                guard seen.position(of: key) != nil else { throw .runtime("unhashable type: '\(key.typeName)'") }
                if seen[key] == nil {
                    seen.set(key, .none)
                    kept.append(item)
                }
            }
            return .list(kept)
        }
    }

    /// Python's `getattr` alone, without the item fallback (the `attr` filter).
    private func pythonAttribute(of value: Value, _ name: String) throws(TemplateFailure) -> Value {
        switch value {
        case let .undefined(hint): throw .runtime(hint)
        case .namespace, .loop: return try attribute(of: value, name)
        default:
            if Self.methods(of: value).contains(name) { return .function(.method(value, name)) }
            return .undefined(hint: "'\(value.objectDescription)' has no attribute '\(name)'")
        }
    }

    /// Jinja's `make_attrgetter`: "a.b.0" looks up `a`, then `b`, then item 0, each as `x[part]`. A nil or None
    /// attribute is the item itself; `default` replaces an undefined result.
    func attributePath(_ item: Value, _ attribute: Value?, default defaultValue: Value? = nil) throws(TemplateFailure) -> Value {
        guard let attribute, !attribute.pyEquals(.none) else { return item }
        let parts: [Value]
        if case let .string(path) = attribute {
            parts = path.split(separator: ".", omittingEmptySubsequences: false).map { part in
                part.allSatisfy(\.isASCIIDigitCharacter) && !part.isEmpty ? .int(Int(part) ?? 0) : .string(String(part))
            }
        } else {
            parts = [attribute]
        }
        var current = item
        for part in parts {
            current = try self.item(of: current, part)
            if let defaultValue, current.isUndefined { current = defaultValue }
        }
        return current
    }

    /// Jinja's `ignore_case`: strings compare lowercased unless the filter asks for case sensitivity.
    static func ignoringCase(_ v: Value, unless caseSensitive: Bool) -> Value {
        guard !caseSensitive, case let .string(s) = v else { return v }
        return .string(s.unicodeScalars.map(PythonText.lower).joined())
    }

    /// Python's stable `sorted(items, key=…, reverse=…)`.
    private func sorted(_ items: [Value], keys: [Value], reverse: Bool) throws(TemplateFailure) -> [Value] {
        try charge(items: items.count * 8)
        var failure: TemplateFailure?
        let order = items.indices.sorted { i, j in
            let (a, b) = reverse ? (keys[j], keys[i]) : (keys[i], keys[j])
            guard let less = a.pyLess(b) else {
                failure = failure ?? .runtime("'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
                return i < j
            }
            if less { return true }
            if b.pyLess(a) == true { return false }
            return i < j
        }
        if let failure { throw failure }
        return order.map { items[$0] }
    }

    /// Python's `float(x)` (nil where it raises).
    static func pythonFloat(_ v: Value) -> Double? {
        switch v {
        case let .string(s):
            let t = PythonText.strip(s, nil).lowercased()
            guard !t.isEmpty, !t.hasPrefix("_"), !t.hasSuffix("_"), !t.contains("__") else { return nil }
            let cleaned = t.replacingOccurrences(of: "_", with: "")
            guard cleaned.allSatisfy({ $0.isASCII }), !cleaned.hasPrefix("0x"), !cleaned.hasPrefix("-0x") else { return nil }
            return Double(cleaned)
        default:
            return v.asNumber
        }
    }

    /// Python's `int(s, base)` for a string (nil where it raises).
    static func pythonInt(_ s: String, base: Int) -> Int? {
        var t = Substring(PythonText.strip(s, nil))
        var negative = false
        if t.first == "-" || t.first == "+" {
            negative = t.first == "-"
            t = t.dropFirst()
        }
        var radix = base
        let lower = t.lowercased()
        for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == r || base == 0) {
            radix = r
            t = t.dropFirst(2)
            if t.first == "_" { t = t.dropFirst() }
        }
        if radix == 0 { radix = 10 }
        guard (2...36).contains(radix), !t.isEmpty, t.first != "_", t.last != "_", !t.contains("__") else { return nil }
        guard let magnitude = Int(t.replacingOccurrences(of: "_", with: ""), radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    // MARK: - tojson

    struct JSONOptions {
        let ensureASCII: Bool
        let indent: String?
        let itemSeparator: String
        let keySeparator: String
        let sortKeys: Bool
    }

    /// Python's `json.dumps` for one value.
    private func writeJSON(_ value: Value, _ o: JSONOptions, level: Int, into out: inout String) throws(TemplateFailure) {
        try step()
        let indentBytes = (o.indent?.utf8.count ?? 0) * (level + 1) + o.itemSeparator.utf8.count
        if out.utf8.count + indentBytes > limits.maxOutputBytes {
            throw .limit("a value grew past \(limits.maxOutputBytes) bytes")
        }
        func open(_ bracket: String) {
            out += bracket
            if let indent = o.indent { out += "\n" + String(repeating: indent, count: level + 1) }
        }
        func separate() {
            out += o.itemSeparator
            if let indent = o.indent { out += "\n" + String(repeating: indent, count: level + 1) }
        }
        func close(_ bracket: String) {
            if let indent = o.indent { out += "\n" + String(repeating: indent, count: level) }
            out += bracket
        }
        switch value {
        case .none: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d): out += Self.jsonFloat(d)
        case let .string(s):
            try charge(size: s.utf8.count)
            out += PythonText.jsonString(s, ensureASCII: o.ensureASCII)
        case let .list(items), let .tuple(items):
            guard !items.isEmpty else {
                out += "[]"
                return
            }
            open("[")
            for (i, item) in items.enumerated() {
                if i > 0 { separate() }
                try writeJSON(item, o, level: level + 1, into: &out)
            }
            close("]")
        case let .dict(d):
            guard !d.isEmpty else {
                out += "{}"
                return
            }
            var pairs = d.items
            if o.sortKeys {
                let keys = pairs.map(\.key)
                let order = try sorted(keys, keys: keys, reverse: false)
                pairs = order.map { k in (k, d[k]!) }
            }
            open("{")
            for (i, (key, item)) in pairs.enumerated() {
                if i > 0 { separate() }
                let name: String
                switch key {
                case let .string(s): name = s
                case let .int(n): name = String(n)
                case let .double(x): name = Self.jsonFloat(x)
                case let .bool(b): name = b ? "true" : "false"
                case .none: name = "null"
                default: throw .runtime("keys must be str, int, float, bool or None, not \(key.typeName)")
                }
                out += PythonText.jsonString(name, ensureASCII: o.ensureASCII) + o.keySeparator
                try writeJSON(item, o, level: level + 1, into: &out)
            }
            close("}")
        default:
            throw .runtime("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private static func jsonFloat(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return PythonText.floatRepr(d)
    }

    // MARK: - Tests

    func applyTest(_ test: Test, _ value: Value, _ positional: [Value], _ keyword: [(String, Value)]) throws(TemplateFailure) -> Bool {
        func other() throws(TemplateFailure) -> Value { try bind(test.rawValue, ["other"], positional, keyword)[0]! }
        func noArguments() throws(TemplateFailure) { _ = try bind(test.rawValue, [], positional, keyword) }
        switch test {
        case .divisibleby: return try binary(.mod, value, try other()).pyEquals(.int(0))
        case .even: return try binary(.mod, value, .int(2)).pyEquals(.int(0))
        case .odd: return try binary(.mod, value, .int(2)).pyEquals(.int(1))
        case .eq: return value.pyEquals(try other())
        case .ne: return !value.pyEquals(try other())
        case .lt: return try compare(.lt, value, try other())
        case .le: return try compare(.lteq, value, try other())
        case .gt: return try compare(.gt, value, try other())
        case .ge: return try compare(.gteq, value, try other())
        case .in: return try contains(try other(), value)
        case .sameas:
            let o = try other()
            switch (value, o) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.int(a), .int(b)): return a == b && (-5...256).contains(a)
            case let (.namespace(a), .namespace(b)): return a == b
            default: return false
            }
        default: break
        }
        try noArguments()
        switch test {
        case .boolean: if case .bool = value { return true } else { return false }
        case .callable:
            switch value {
            case .function, .undefined: return true  // Jinja's Undefined has a __call__ (that fails)
            default: return false
            }
        case .defined: return !value.isUndefined
        case .undefined: return value.isUndefined
        case .escaped: return false
        case .false: if case .bool(false) = value { return true } else { return false }
        case .true: if case .bool(true) = value { return true } else { return false }
        case .float: if case .double = value { return true } else { return false }
        case .integer: if case .int = value { return true } else { return false }
        case .none: if case .none = value { return true } else { return false }
        case .number: return value.isNumber
        case .string: if case .string = value { return true } else { return false }
        case .mapping: if case .dict = value { return true } else { return false }
        case .iterable, .sequence:
            switch value {
            case .string, .list, .tuple, .dict, .undefined: return true
            case .loop: return test == .iterable
            default: return false
            }
        case .lower, .upper:
            let cased = str(value).unicodeScalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { test == .lower ? $0.properties.isLowercase : $0.properties.isUppercase }
        case .divisibleby, .even, .odd, .eq, .ne, .lt, .le, .gt, .ge, .in, .sameas:
            return false
        }
    }
}

extension Character {
    var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
