// The interpreter's values and their Python semantics. Jinja runs on Python objects, so truthiness, equality,
// ordering and `str()` here follow Python's rules (1 == 1.0 == True, dicts equal in any order, strings compared
// code point by code point, `str([1, 'a'])` is "[1, 'a']"), which is what makes the output byte-identical.

/// A value inside a running template.
enum Value: Sendable {
    /// Jinja's default `Undefined`: falsy, prints as nothing, fails when used further. `hint` says why it is
    /// undefined ("'foo' is undefined"), for the error if it is used.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(Dict)
    /// A `namespace()` object: mutable and shared, so it is a handle into the interpreter's table.
    case namespace(Int)
    /// The `loop` variable inside a for loop.
    case loop(LoopInfo)
    case function(Function)

    static let emptyString = Value.string("")
}

/// What a template can call.
indirect enum Function: Sendable {
    /// A global function: `range`, `namespace`, `dict`, `raise_exception`, `strftime_now`, …
    case global(String)
    /// A Python method bound to its receiver: `message.content.strip`, `tool.items`, `loop.cycle`.
    case method(Value, String)
    /// A `{% macro %}`: a handle into the interpreter's table.
    case macro(Int)
}

/// `loop.index`, `loop.first`, …: computed from the items and the position, so it is a plain value.
struct LoopInfo: Sendable {
    let items: [Value]
    let index0: Int
}

/// A Python dict: insertion-ordered, keyed by hashable values with Python's key equality (1, 1.0 and True are
/// the same key; strings compare by code points).
struct Dict: Sendable {
    private(set) var keys: [Value] = []
    private(set) var values: [Value] = []
    private var index: [HashKey: Int] = [:]

    init() {}

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }
    var items: [(key: Value, value: Value)] { zip(keys, values).map { ($0, $1) } }

    /// nil when the key is unhashable (a list, a dict…), as Python raises TypeError there.
    func position(of key: Value) -> Int?? {
        guard let k = HashKey(key) else { return nil }
        return .some(index[k])
    }

    subscript(key: Value) -> Value? {
        guard let p = position(of: key), let i = p else { return nil }
        return values[i]
    }

    subscript(string key: String) -> Value? { self[.string(key)] }

    /// Inserts or replaces (keeping the first position). Returns false for an unhashable key.
    @discardableResult
    mutating func set(_ key: Value, _ value: Value) -> Bool {
        guard let k = HashKey(key) else { return false }
        if let i = index[k] {
            values[i] = value
        } else {
            index[k] = keys.count
            keys.append(key)
            values.append(value)
        }
        return true
    }
}

/// A hashable view of a dict key with Python's equality: numbers by value, strings by code points.
enum HashKey: Hashable {
    case none
    case int(Int)
    case double(UInt64)
    case string(ScalarString)
    case tuple([HashKey])

    init?(_ value: Value) {
        switch value {
        case .none: self = .none
        case let .bool(b): self = .int(b ? 1 : 0)
        case let .int(i): self = .int(i)
        case let .double(d):
            if let i = Int(exactly: d) { self = .int(i) } else { self = .double(d.isNaN ? Double.nan.bitPattern : d.bitPattern) }
        case let .string(s): self = .string(ScalarString(s))
        case let .tuple(items):
            var keys = [HashKey]()
            for item in items {
                guard let k = HashKey(item) else { return nil }
                keys.append(k)
            }
            self = .tuple(keys)
        case .namespace, .function, .loop, .undefined, .list, .dict: return nil
        }
    }
}

/// A string hashed and compared by its Unicode scalars, not by Swift's canonical equivalence (Python's `==`).
struct ScalarString: Hashable {
    let value: String
    init(_ value: String) { self.value = value }
    static func == (a: ScalarString, b: ScalarString) -> Bool { a.value.unicodeScalars.elementsEqual(b.value.unicodeScalars) }
    func hash(into hasher: inout Hasher) {
        for s in value.unicodeScalars { hasher.combine(s.value) }
    }
}

// MARK: - From the public values

extension Value {
    init(_ v: JinjaValue) {
        switch v {
        case .none: self = .none
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .int(i)
        case let .double(d): self = .double(d)
        case let .string(s): self = .string(s)
        case let .array(items): self = .list(items.map(Value.init))
        case let .object(o): self = .dict(Dict(o))
        }
    }
}

extension Dict {
    init(_ object: JinjaObject) {
        self.init()
        for (k, v) in object.entries { set(.string(k), Value(v)) }
    }

    init(_ pairs: [(String, Value)]) {
        self.init()
        for (k, v) in pairs { set(.string(k), v) }
    }
}

// MARK: - Python semantics

extension Value {
    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Python's `bool(x)`.
    var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case let .bool(b): b
        case let .int(i): i != 0
        case let .double(d): d != 0
        case let .string(s): !s.isEmpty
        case let .list(items), let .tuple(items): !items.isEmpty
        case let .dict(d): !d.isEmpty
        case .namespace, .loop, .function: true
        }
    }

    /// The Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .namespace: "Namespace"
        case .loop: "LoopContext"
        case .function: "function"
        }
    }

    /// Jinja's description of an object in "has no attribute" messages: "'dict object'", "'None'".
    var objectDescription: String {
        if case .none = self { return "None" }
        return "\(typeName) object"
    }

    /// A number as a Double when it is one (bool counts, as in Python).
    var asNumber: Double? {
        switch self {
        case let .bool(b): b ? 1 : 0
        case let .int(i): Double(i)
        case let .double(d): d
        default: nil
        }
    }

    /// An integer when it is one (bool counts, as in Python).
    var asInt: Int? {
        switch self {
        case let .bool(b): b ? 1 : 0
        case let .int(i): i
        default: nil
        }
    }

    var isNumber: Bool { asNumber != nil }

    /// Python's `==`.
    func pyEquals(_ other: Value) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pyEquals($1) }
        case let (.dict(a), .dict(b)):
            guard a.count == b.count else { return false }
            for (k, v) in a.items {
                guard let w = b[k], v.pyEquals(w) else { return false }
            }
            return true
        case let (.namespace(a), .namespace(b)): return a == b
        case let (.function(.macro(a)), .function(.macro(b))): return a == b
        case let (.function(.global(a)), .function(.global(b))): return a == b
        default:
            if let x = asInt, let y = other.asInt { return x == y }
            if let x = asNumber, let y = other.asNumber { return x == y }
            return false
        }
    }

    /// Python's `<` (nil when the types cannot be ordered, where Python raises TypeError).
    func pyLess(_ other: Value) -> Bool? {
        switch (self, other) {
        case let (.string(a), .string(b)):
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            for (x, y) in zip(a, b) where !x.pyEquals(y) { return x.pyLess(y) }
            return a.count < b.count
        default:
            if let x = asInt, let y = other.asInt { return x < y }
            if let x = asNumber, let y = other.asNumber { return x < y }
            return nil
        }
    }
}

// MARK: - str() and repr()

extension Value {
    /// Python's `str(x)`, which is how `{{ x }}` prints (an undefined value prints as nothing). `namespaces` is
    /// the interpreter's namespace table, for printing `namespace()` objects.
    func str(namespaces: [Dict] = []) -> String {
        switch self {
        case .undefined: return ""
        case let .string(s): return s
        default:
            var printing = Set<Int>()
            return repr(namespaces, &printing)
        }
    }

    /// Python's `repr(x)`.
    func repr(namespaces: [Dict] = []) -> String {
        var printing = Set<Int>()
        return repr(namespaces, &printing)
    }

    /// `printing` holds the namespaces being printed, so a namespace that contains itself prints as "..."
    /// (values are trees, but namespaces are shared handles and can form cycles).
    private func repr(_ namespaces: [Dict], _ printing: inout Set<Int>) -> String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return PythonText.floatRepr(d)
        case let .string(s): return PythonText.stringRepr(s)
        case let .list(items):
            var parts = [String]()
            for item in items { parts.append(item.repr(namespaces, &printing)) }
            return "[" + parts.joined(separator: ", ") + "]"
        case let .tuple(items):
            var parts = [String]()
            for item in items { parts.append(item.repr(namespaces, &printing)) }
            return parts.count == 1 ? "(" + parts[0] + ",)" : "(" + parts.joined(separator: ", ") + ")"
        case let .dict(d):
            var parts = [String]()
            for (k, v) in d.items { parts.append(k.repr(namespaces, &printing) + ": " + v.repr(namespaces, &printing)) }
            return "{" + parts.joined(separator: ", ") + "}"
        case let .namespace(id):
            guard id < namespaces.count, !printing.contains(id) else { return "<Namespace ...>" }
            printing.insert(id)
            defer { printing.remove(id) }
            return "<Namespace " + Value.dict(namespaces[id]).repr(namespaces, &printing) + ">"
        case let .loop(info): return "<LoopContext \(info.index0 + 1)/\(info.items.count)>"
        case let .function(f):
            switch f {
            case let .global(name): return "<function \(name)>"
            case let .method(_, name): return "<built-in method \(name)>"
            case .macro: return "<Macro>"
            }
        }
    }

    /// How deeply containers nest inside this value, counting up to `limit + 1` (then it stops looking).
    /// `visited` counts the containers looked at, so the caller can charge for the walk.
    func nestingDepth(limit: Int, visited: inout Int) -> Int {
        let children: [Value]
        switch self {
        case let .list(items), let .tuple(items): children = items
        case let .dict(d): children = d.keys + d.values
        case let .loop(info): children = info.items
        case let .function(.method(receiver, _)): children = [receiver]
        default: return 0
        }
        visited += 1
        guard limit > 0 else { return 1 }
        var deepest = 0
        for child in children {
            deepest = max(deepest, child.nestingDepth(limit: limit - 1, visited: &visited))
            if deepest >= limit { break }
        }
        return deepest + 1
    }
}
