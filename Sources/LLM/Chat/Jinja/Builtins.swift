// The global functions transformers' Jinja environment provides (`range`, `namespace`, `dict`,
// `raise_exception`, `strftime_now`) and the Python methods templates call on strings, dicts and lists
// (`content.strip()`, `tool.items()`, `message.get('x')`), with Python's argument rules.
import Foundation

extension Interpreter {
    /// Global names, looked up after the template's own variables (Jinja's `lipsum`, `cycler` and `joiner` exist
    /// but are not implemented).
    static let globals: Set<String> = ["range", "namespace", "dict", "raise_exception", "strftime_now", "lipsum", "cycler", "joiner"]

    /// Jinja's sandbox caps `range()` at this many items.
    static let maxRange = 100_000

    func callGlobal(_ name: String, _ positional: [Value], _ keyword: [(String, Value)]) throws(TemplateFailure) -> Value {
        switch name {
        case "range":
            guard keyword.isEmpty else { throw .runtime("range() takes no keyword arguments") }
            guard (1...3).contains(positional.count) else {
                throw .runtime("range expected at most 3 arguments, got \(positional.count)")
            }
            var ints = [Int]()
            for v in positional {
                guard let i = v.asInt else { throw .runtime("'\(v.typeName)' object cannot be interpreted as an integer") }
                ints.append(i)
            }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            guard step != 0 else { throw .runtime("range() arg 3 must not be zero") }
            let (span, overflow) = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
            let stride = step == .min ? Int.max : Swift.abs(step)
            let count = overflow ? Int.max : span <= 0 ? 0 : (span - 1) / stride + 1
            guard count <= Self.maxRange else {
                throw .runtime("range too big: the sandbox blocks ranges larger than \(Self.maxRange)")
            }
            try charge(items: count)
            return .list((0..<count).map { .int(start + $0 * step) })
        case "namespace", "dict":
            var attributes = Dict()
            if positional.count > 1 { throw .runtime("\(name) expected at most 1 positional argument") }
            if let first = positional.first {
                switch first {
                case let .dict(d): attributes = d
                case let .list(pairs), let .tuple(pairs):
                    for pair in pairs {
                        switch pair {
                        case let .list(kv) where kv.count == 2, let .tuple(kv) where kv.count == 2:
                            guard attributes.set(kv[0], kv[1]) else { throw .runtime("unhashable type: '\(kv[0].typeName)'") }
                        default:
                            throw .runtime("\(name) needs a mapping or a sequence of key, value pairs")
                        }
                    }
                default: throw .runtime("'\(first.typeName)' object is not iterable")
                }
            }
            for (k, v) in keyword { attributes.set(.string(k), v) }
            return name == "dict" ? .dict(attributes) : try makeNamespace(attributes)
        case "raise_exception":
            let args = try bind("raise_exception", ["message"], positional, keyword)
            throw TemplateFailure(kind: .raised, message: str(args[0] ?? .none))
        case "strftime_now":
            let args = try bind("strftime_now", ["format"], positional, keyword)
            guard case let .string(format)? = args[0] else { throw .runtime("strftime_now() needs a format string") }
            return .string(Self.strftime(format, now, timeZone))
        default:
            throw .unsupported("unsupported function '\(name)'")
        }
    }

    /// Binds call arguments to parameter names as Python does (positional first, then by keyword); a missing
    /// argument is nil. `minimum` arguments are required.
    func bind(
        _ function: String, _ names: [String], _ positional: [Value], _ keyword: [(String, Value)], minimum: Int? = nil
    ) throws(TemplateFailure) -> [Value?] {
        guard positional.count <= names.count else {
            throw .runtime("\(function)() takes at most \(names.count) argument(s) (\(positional.count) given)")
        }
        var bound = [Value?](repeating: nil, count: names.count)
        for (i, v) in positional.enumerated() { bound[i] = v }
        for (name, v) in keyword {
            guard let i = names.firstIndex(of: name) else { throw .runtime("\(function)() got an unexpected keyword argument '\(name)'") }
            guard bound[i] == nil else { throw .runtime("\(function)() got multiple values for argument '\(name)'") }
            bound[i] = v
        }
        let required = minimum ?? names.count
        if let missing = (0..<required).first(where: { bound[$0] == nil }) {
            throw .runtime("\(function)() missing required argument '\(names[missing])'")
        }
        return bound
    }

    /// `strftime(3)` on a wall-clock time, with Python's handling of `%f`, `%z` and `%Z` for a naive datetime
    /// (microseconds; empty offset and zone name).
    static func strftime(_ format: String, _ date: Date, _ timeZone: TimeZone) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micros = Int(((date.timeIntervalSince1970 - seconds) * 1_000_000).rounded(.down))
        var expanded = ""
        var scalars = format.unicodeScalars.makeIterator()
        while let c = scalars.next() {
            guard c == "%" else {
                expanded.unicodeScalars.append(c)
                continue
            }
            guard let d = scalars.next() else {
                expanded += "%"
                break
            }
            switch d {
            case "f": expanded += String(format: "%06d", micros)
            case "z", "Z": break
            default: expanded += "%" + String(d)
            }
        }
        var time = time_t(seconds) + time_t(timeZone.secondsFromGMT(for: date))
        var parts = tm()
        gmtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: expanded.utf8.count * 32 + 256)
        let length = expanded.withCString { Foundation.strftime(&buffer, buffer.count, $0, &parts) }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - Methods

    private static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
        "title", "capitalize", "replace", "find", "rfind", "count", "join", "isdigit", "isalpha", "isalnum",
        "isspace", "islower", "isupper",
    ]
    private static let dictMethods: Set<String> = ["items", "keys", "values", "get"]
    private static let listMethods: Set<String> = ["count", "index"]

    /// The Python methods a value has that templates may call.
    static func methods(of value: Value) -> Set<String> {
        switch value {
        case .string: stringMethods
        case .dict: dictMethods
        case .list, .tuple: listMethods
        default: []
        }
    }

    func callMethod(_ receiver: Value, _ name: String, _ positional: [Value], _ keyword: [(String, Value)]) throws(TemplateFailure) -> Value {
        switch receiver {
        case let .string(s): return try callStringMethod(s, name, positional, keyword)
        case let .dict(d):
            switch name {
            case "items":
                _ = try bind("items", [], positional, keyword)
                return .list(d.items.map { .tuple([$0.key, $0.value]) })
            case "keys":
                _ = try bind("keys", [], positional, keyword)
                return .list(d.keys)
            case "values":
                _ = try bind("values", [], positional, keyword)
                return .list(d.values)
            default:
                guard keyword.isEmpty else { throw .runtime("get() takes no keyword arguments") }
                let args = try bind("get", ["key", "default"], positional, [], minimum: 1)
                return d[args[0]!] ?? args[1] ?? .none
            }
        case let .list(items), let .tuple(items):
            let args = try bind(name, ["value"], positional, keyword)
            if name == "count" { return .int(items.count(where: { $0.pyEquals(args[0]!) })) }
            guard let i = items.firstIndex(where: { $0.pyEquals(args[0]!) }) else {
                throw .runtime("\(args[0]!.repr(namespaces: namespaces)) is not in \(receiver.typeName)")
            }
            return .int(i)
        case let .loop(info):
            if name == "changed" { throw .unsupported("unsupported loop.changed()") }
            guard keyword.isEmpty, !positional.isEmpty else { throw .runtime("no items for cycling given") }
            return positional[info.index0 % positional.count]
        default:
            throw .runtime("'\(receiver.typeName)' object has no method '\(name)'")
        }
    }

    private func callStringMethod(_ s: String, _ name: String, _ positional: [Value], _ keyword: [(String, Value)]) throws(TemplateFailure) -> Value {
        try charge(size: s.utf8.count)
        /// An optional string argument (None allowed).
        func optionalString(_ v: Value?) throws(TemplateFailure) -> String? {
            switch v {
            case nil, .none?: return nil
            case let .string(x)?: return x
            case let other?: throw .runtime("\(name)() argument must be str or None, not \(other.typeName)")
            }
        }
        func string(_ v: Value?) throws(TemplateFailure) -> String {
            guard case let .string(x)? = v else { throw .runtime("\(name)() argument must be str, not \(v?.typeName ?? "nothing")") }
            return x
        }
        func int(_ v: Value?, _ defaultValue: Int) throws(TemplateFailure) -> Int {
            guard let v else { return defaultValue }
            guard let i = v.asInt else { throw .runtime("'\(v.typeName)' object cannot be interpreted as an integer") }
            return i
        }
        func predicate(_ test: (Unicode.Scalar) -> Bool) throws(TemplateFailure) -> Value {
            _ = try bind(name, [], positional, keyword)
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(test))
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let args = try bind(name, ["chars"], positional, keyword, minimum: 0)
            return .string(PythonText.strip(s, try optionalString(args[0]), leading: name != "rstrip", trailing: name != "lstrip"))
        case "split", "rsplit":
            let args = try bind(name, ["sep", "maxsplit"], positional, keyword, minimum: 0)
            let sep = try optionalString(args[0])
            if sep == "" { throw .runtime("empty separator") }
            let maxSplit = try int(args[1], -1)
            let parts = name == "split" ? PythonText.split(s, sep, maxSplit: maxSplit) : PythonText.rsplit(s, sep, maxSplit: maxSplit)
            return .list(parts.map { .string($0) })
        case "splitlines":
            let args = try bind(name, ["keepends"], positional, keyword, minimum: 0)
            return .list(PythonText.splitLines(s, keepEnds: args[0]?.truthy ?? false).map { .string($0) })
        case "startswith", "endswith":
            let args = try bind(name, ["prefix", "start", "end"], positional, keyword, minimum: 1)
            let all = PythonText.scalars(s)
            var (lo, hi) = (try int(args[1], 0), try int(args[2], all.count))
            if lo < 0 { lo = max(0, lo + all.count) }
            if hi < 0 { hi = max(0, hi + all.count) }
            hi = min(hi, all.count)
            guard lo <= hi else { return .bool(false) }
            let part = all[lo..<hi]
            let candidates: [Value]
            switch args[0]! {
            case let .tuple(items): candidates = items
            case .string: candidates = [args[0]!]
            case let other: throw .runtime("\(name) first arg must be str or a tuple of str, not \(other.typeName)")
            }
            for candidate in candidates {
                let affix = PythonText.scalars(try string(candidate))
                if name == "startswith" ? part.starts(with: affix) : part.reversed().starts(with: affix.reversed()) {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "upper", "lower", "title", "capitalize":
            _ = try bind(name, [], positional, keyword)
            switch name {
            case "upper": return .string(s.unicodeScalars.map(PythonText.upper).joined())
            case "lower": return .string(s.unicodeScalars.map(PythonText.lower).joined())
            case "title": return .string(PythonText.title(s))
            default: return .string(PythonText.capitalize(s))
            }
        case "replace":
            let args = try bind(name, ["old", "new", "count"], positional, keyword, minimum: 2)
            let new = try string(args[1])
            let old = try string(args[0])
            let count = try int(args[2], -1)
            let estimate = s.utf8.count + new.utf8.count * (old.isEmpty ? s.unicodeScalars.count + 1 : s.utf8.count / max(old.utf8.count, 1))
            try charge(size: estimate)
            return .string(PythonText.replace(s, old, new, count: count))
        case "find", "rfind":
            let args = try bind(name, ["sub"], positional, keyword)
            let hay = PythonText.scalars(s), needle = PythonText.scalars(try string(args[0]))
            return .int((name == "find" ? PythonText.find(hay, needle) : PythonText.rfind(hay, needle)) ?? -1)
        case "count":
            let args = try bind(name, ["sub"], positional, keyword)
            return .int(PythonText.count(s, try string(args[0])))
        case "join":
            let args = try bind(name, ["iterable"], positional, keyword)
            var parts = [String]()
            for item in try iterate(args[0]!) {
                guard case let .string(part) = item else {
                    throw .runtime("sequence item \(parts.count): expected str instance, \(item.typeName) found")
                }
                parts.append(part)
            }
            let joined = parts.joined(separator: s)
            try charge(size: joined.utf8.count)
            return .string(joined)
        case "isdigit": return try predicate { $0.properties.numericType == .digit || $0.properties.numericType == .decimal }
        case "isalpha": return try predicate { $0.properties.isAlphabetic && $0.properties.generalCategory.isLetter }
        case "isalnum": return try predicate { $0.properties.generalCategory.isLetter || $0.properties.numericType != nil }
        case "isspace": return try predicate(PythonText.isSpace)
        case "islower", "isupper":
            _ = try bind(name, [], positional, keyword)
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            let want: (Unicode.Scalar) -> Bool = name == "islower" ? { $0.properties.isLowercase } : { $0.properties.isUppercase }
            return .bool(!cased.isEmpty && cased.allSatisfy(want))
        default:
            throw .runtime("'str' object has no method '\(name)'")
        }
    }
}

extension Unicode.GeneralCategory {
    var isLetter: Bool {
        switch self {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }
}
