// Runs a parsed template: statements write to an output buffer, expressions evaluate to `Value`s with
// Jinja's (Python's) semantics. Scoping follows Jinja: each for-loop iteration and each macro call gets a
// fresh scope, `if` does not, so `{% set %}` inside a loop is gone after the iteration (templates use
// `namespace()` to carry state out). Every statement, expression and loop iteration costs a step, bulk work
// (long strings, big lists) costs in proportion, and the output has a size cap, so no template runs forever.
import Foundation

/// Variables of one block of a running template; lookups walk out through the enclosing scopes. A scope holds
/// a handful of names, so two small arrays beat a dictionary (no hashing; an iteration's scope costs little).
final class Scope {
    private var names: [String] = []
    private var values: [Value] = []
    /// Built once a scope has many names (a template's top level, say), so lookups stay fast.
    private var index: [String: Int]?
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    private func position(_ name: String) -> Int? {
        if let index { return index[name] }
        return names.firstIndex(of: name)
    }

    /// This scope's own variable, not its parents'.
    func local(_ name: String) -> Value? { position(name).map { values[$0] } }

    func set(_ name: String, _ value: Value) {
        if let i = position(name) {
            values[i] = value
            return
        }
        names.append(name)
        values.append(value)
        if index != nil {
            index?[name] = names.count - 1
        } else if names.count > 16 {
            index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        }
    }

    func lookup(_ name: String) -> Value? {
        var scope: Scope? = self
        while let s = scope {
            if let i = s.position(name) { return s.values[i] }
            scope = s.parent
        }
        return nil
    }
}

final class Interpreter {
    let limits: ChatTemplate.Limits
    let now: Date
    let timeZone: TimeZone

    /// What the template has written so far (macro calls and `{% set %}` blocks swap in their own buffer).
    private var output = ""
    private var outputBytes = 0
    private var steps = 0
    private var callDepth = 0
    /// `namespace()` objects: values hold an index into this table, so they can be shared and mutated.
    private(set) var namespaces: [Dict] = []
    /// Macros with the scope they were defined in, which they read their free variables from when called.
    private var macros: [(Macro, Scope)] = []

    /// The deepest that containers may nest in a stored value, so that no recursive walk over a value (printing,
    /// comparing, freeing) can exhaust the stack.
    static let maxValueNesting = 200

    init(limits: ChatTemplate.Limits, now: Date, timeZone: TimeZone) {
        self.limits = limits
        self.now = now
        self.timeZone = timeZone
    }

    func render(_ template: [Node], context: [String: Value]) throws(TemplateFailure) -> String {
        let root = Scope(parent: nil)
        for (name, value) in context { root.set(name, value) }
        _ = try exec(template, root)
        return output
    }

    // MARK: - Budget

    func step() throws(TemplateFailure) {
        steps += 1
        if steps > limits.maxSteps { throw .limit("the template ran more than \(limits.maxSteps) steps") }
    }

    /// Charges for building a string of `size` bytes (a step per 64 bytes), and refuses one larger than the
    /// output cap.
    func charge(size: Int) throws(TemplateFailure) {
        if size > limits.maxOutputBytes { throw .limit("a value grew past \(limits.maxOutputBytes) bytes") }
        steps += size >> 6
        try step()
    }

    /// Charges for building or walking `count` list items (a step per 4), and refuses more items than the output
    /// cap has bytes.
    func charge(items count: Int) throws(TemplateFailure) {
        if count > limits.maxOutputBytes { throw .limit("a value grew past \(limits.maxOutputBytes) bytes") }
        steps += count >> 2
        try step()
    }

    private func emit(_ s: String) throws(TemplateFailure) {
        outputBytes += s.utf8.count
        if outputBytes > limits.maxOutputBytes { throw .limit("the output grew past \(limits.maxOutputBytes) bytes") }
        output += s
    }

    /// Runs `body` with an empty output buffer and returns what it wrote.
    private func capture(_ body: () throws(TemplateFailure) -> Flow) throws(TemplateFailure) -> (String, Flow) {
        let saved = output
        output = ""
        defer { output = saved }
        let flow = try body()
        return (output, flow)
    }

    func str(_ v: Value) -> String { v.str(namespaces: namespaces) }

    // MARK: - Statements

    enum Flow { case normal, breakLoop, continueLoop }

    private func exec(_ nodes: [Node], _ scope: Scope) throws(TemplateFailure) -> Flow {
        for node in nodes {
            let flow = try exec(node, scope)
            if flow != .normal { return flow }
        }
        return .normal
    }

    /// One statement; an error without a line gets this statement's.
    private func exec(_ node: Node, _ scope: Scope) throws(TemplateFailure) -> Flow {
        do {
            try step()
            return try run(node, scope)
        } catch {
            var failure = error
            if failure.line == nil { failure.line = node.line }
            throw failure
        }
    }

    private func run(_ node: Node, _ scope: Scope) throws(TemplateFailure) -> Flow {
        switch node {
        case let .text(s):
            try emit(s)
        case let .output(expr, _):
            try emit(str(try eval(expr, scope)))
        case let .ifBlock(branches, otherwise, _):
            for branch in branches where try eval(branch.condition, scope).truthy {
                return try exec(branch.body, scope)
            }
            return try exec(otherwise, scope)
        case let .forLoop(loop):
            return try runFor(loop, scope)
        case let .set(target, expr, _):
            try assign(target, try checkedNesting(try eval(expr, scope)), in: scope)
        case let .setBlock(target, filters, body, _):
            let (text, flow) = try capture { () throws(TemplateFailure) -> Flow in try exec(body, scope) }
            var value = Value.string(text)
            for f in filters { value = try applyFilter(f, to: value, scope) }
            try assign(target, try checkedNesting(value), in: scope)
            return flow
        case let .macro(macro):
            macros.append((macro, scope))
            scope.set(macro.name, .function(.macro(macros.count - 1)))
        case let .filterBlock(filters, body, _):
            let (text, flow) = try capture { () throws(TemplateFailure) -> Flow in try exec(body, scope) }
            var value = Value.string(text)
            for f in filters { value = try applyFilter(f, to: value, scope) }
            try emit(str(value))
            return flow
        case let .with(assignments, body, _):
            let inner = Scope(parent: scope)
            for (target, expr) in assignments { try assign(target, try checkedNesting(try eval(expr, scope)), in: inner) }
            return try exec(body, inner)
        case let .callBlock(call, caller, _):
            guard case let .call(callee, arguments) = call else { return .normal }
            let function = try eval(callee, scope)
            let (positional, keyword) = try evalArguments(arguments, scope)
            guard case let .function(.macro(id)) = function else {
                if case let .undefined(hint) = function { throw .runtime(hint) }
                throw .runtime("a call block needs a macro, not a \(function.typeName)")
            }
            macros.append((caller, scope))
            let callerValue = Value.function(.macro(macros.count - 1))
            try emit(str(try callMacro(id, positional, keyword, caller: callerValue)))
        case let .unsupported(message, _):
            throw .unsupported(message)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func runFor(_ loop: ForLoop, _ scope: Scope) throws(TemplateFailure) -> Flow {
        var items = try iterate(try eval(loop.iterable, scope))
        if let filter = loop.filter {
            var kept = [Value]()
            for item in items {
                try step()
                let inner = Scope(parent: scope)
                try assign(loop.target, item, in: inner)
                if try eval(filter, inner).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty { return try exec(loop.otherwise, scope) }
        for (i, item) in items.enumerated() {
            try step()
            let inner = Scope(parent: scope)
            inner.set("loop", .loop(LoopInfo(items: items, index0: i)))
            try assign(loop.target, item, in: inner)
            if try exec(loop.body, inner) == .breakLoop { break }
        }
        return .normal
    }

    private func assign(_ target: Target, _ value: Value, in scope: Scope) throws(TemplateFailure) {
        switch target {
        case let .name(name):
            scope.set(name, value)
        case let .tuple(targets):
            let items = try unpack(value, count: targets.count)
            for (t, v) in zip(targets, items) { try assign(t, v, in: scope) }
        case let .attribute(name, attribute):
            guard case let .namespace(id)? = scope.lookup(name) else {
                throw .runtime("cannot assign attribute on non-namespace object '\(name)'")
            }
            guard !attribute.hasPrefix("_") else {
                throw .runtime("chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(attribute)'")
            }
            namespaces[id].set(.string(attribute), value)
        }
    }

    /// Python's sequence unpacking (`for k, v in …`).
    private func unpack(_ value: Value, count: Int) throws(TemplateFailure) -> [Value] {
        let items: [Value]
        switch value {
        case let .list(xs), let .tuple(xs): items = xs
        case .string, .dict: items = try iterate(value)
        default: throw .runtime("cannot unpack non-iterable \(value.typeName) object")
        }
        if items.count > count { throw .runtime("too many values to unpack (expected \(count))") }
        if items.count < count { throw .runtime("not enough values to unpack (expected \(count), got \(items.count))") }
        return items
    }

    /// Refuses values nested deeper than `maxValueNesting` before they are stored.
    private func checkedNesting(_ value: Value) throws(TemplateFailure) -> Value {
        var visited = 0
        let depth = value.nestingDepth(limit: Self.maxValueNesting, visited: &visited)
        try charge(items: visited)
        if depth > Self.maxValueNesting { throw .limit("a value nested more than \(Self.maxValueNesting) levels deep") }
        return value
    }

    /// Python's `iter(x)` as a list: characters of a string, keys of a dict, nothing for an undefined value.
    func iterate(_ value: Value) throws(TemplateFailure) -> [Value] {
        switch value {
        case let .list(items), let .tuple(items): return items
        case let .string(s):
            try charge(items: s.unicodeScalars.count)
            return s.unicodeScalars.map { .string(String($0)) }
        case let .dict(d): return d.keys
        case .undefined: return []
        default: throw .runtime("'\(value.typeName)' object is not iterable")
        }
    }

    // MARK: - Expressions

    func eval(_ expr: Expr, _ scope: Scope) throws(TemplateFailure) -> Value {
        try step()
        switch expr {
        case let .constant(v):
            return v
        case let .name(name):
            if let value = scope.lookup(name) { return value }
            return Self.globals.contains(name) ? .function(.global(name)) : .undefined(hint: "'\(name)' is undefined")
        case let .list(items):
            return .list(try items.map { e throws(TemplateFailure) in try eval(e, scope) })
        case let .tuple(items):
            return .tuple(try items.map { e throws(TemplateFailure) in try eval(e, scope) })
        case let .dict(pairs):
            var d = Dict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                guard d.set(key, try eval(v, scope)) else { throw .runtime("unhashable type: '\(key.typeName)'") }
            }
            return .dict(d)
        case let .attribute(object, name):
            return try attribute(of: try eval(object, scope), name)
        case let .item(object, key):
            return try item(of: try eval(object, scope), try eval(key, scope))
        case let .slice(object, start, stop, step):
            let value = try eval(object, scope)
            return try slice(value, try start.map { e throws(TemplateFailure) in try eval(e, scope) },
                             try stop.map { e throws(TemplateFailure) in try eval(e, scope) },
                             try step.map { e throws(TemplateFailure) in try eval(e, scope) })
        case let .call(callee, arguments):
            let function = try eval(callee, scope)
            let (positional, keyword) = try evalArguments(arguments, scope)
            return try call(function, positional, keyword)
        case let .filter(value, filter):
            return try applyFilter(filter, to: try eval(value, scope), scope)
        case let .test(value, call, negated):
            guard let test = call.test else { throw .unsupported("unsupported test '\(call.name)'") }
            let subject = try eval(value, scope)
            let (positional, keyword) = try evalArguments(call.arguments, scope)
            let result = try applyTest(test, subject, positional, keyword)
            return .bool(result != negated)
        case let .negate(e):
            let v = try eval(e, scope)
            switch v {
            case let .int(i) where i != .min: return .int(-i)
            case let .bool(b): return .int(b ? -1 : 0)
            case let .double(d): return .double(-d)
            case let .undefined(hint): throw .runtime(hint)
            default: throw .runtime("bad operand type for unary -: '\(v.typeName)'")
            }
        case let .plus(e):
            let v = try eval(e, scope)
            switch v {
            case .int, .double: return v
            case let .bool(b): return .int(b ? 1 : 0)
            case let .undefined(hint): throw .runtime(hint)
            default: throw .runtime("bad operand type for unary +: '\(v.typeName)'")
            }
        case let .not(e):
            return .bool(!(try eval(e, scope).truthy))
        case let .binary(op, a, b):
            return try binary(op, try eval(a, scope), try eval(b, scope))
        case let .and(a, b):
            let left = try eval(a, scope)
            return left.truthy ? try eval(b, scope) : left
        case let .or(a, b):
            let left = try eval(a, scope)
            return left.truthy ? left : try eval(b, scope)
        case let .compare(first, operations):
            var left = try eval(first, scope)
            for (op, e) in operations {
                let right = try eval(e, scope)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .concat(parts):
            var s = ""
            for part in parts { s += str(try eval(part, scope)) }
            try charge(size: s.utf8.count)
            return .string(s)
        case let .conditional(condition, then, otherwise):
            if try eval(condition, scope).truthy { return try eval(then, scope) }
            return try otherwise.map { e throws(TemplateFailure) in try eval(e, scope) }
                ?? .undefined(hint: "the inline if-expression evaluated to false and has no else section")
        }
    }

    func evalArguments(_ arguments: Arguments, _ scope: Scope) throws(TemplateFailure) -> ([Value], [(String, Value)]) {
        let positional = try arguments.positional.map { e throws(TemplateFailure) in try eval(e, scope) }
        var keyword = [(String, Value)]()
        for (name, e) in arguments.keyword { keyword.append((name, try eval(e, scope))) }
        return (positional, keyword)
    }

    // MARK: - Attributes and items

    /// `x.name`: Jinja tries a Python attribute (a method) first, then an item.
    func attribute(of object: Value, _ name: String) throws(TemplateFailure) -> Value {
        switch object {
        case let .undefined(hint):
            throw .runtime(hint)
        case let .dict(d):
            if Self.methods(of: object).contains(name) { return .function(.method(object, name)) }
            if let v = d[string: name] { return v }
        case let .namespace(id):
            if let v = namespaces[id][string: name] { return v }
            return .undefined(hint: "'Namespace object' has no attribute '\(name)'")
        case let .loop(info):
            if let v = loopAttribute(info, name) { return v }
        default:
            if Self.methods(of: object).contains(name) { return .function(.method(object, name)) }
        }
        return .undefined(hint: "'\(object.objectDescription)' has no attribute '\(name)'")
    }

    /// `x[key]`: Jinja tries an item first, then (for a string key) an attribute.
    func item(of object: Value, _ key: Value) throws(TemplateFailure) -> Value {
        switch object {
        case let .undefined(hint):
            throw .runtime(hint)
        case let .dict(d):
            if let v = d[key] { return v }
        case let .list(items), let .tuple(items):
            if let i = key.asInt {
                let j = i < 0 ? i + items.count : i
                if j >= 0, j < items.count { return items[j] }
                return .undefined(hint: "'\(object.objectDescription)' has no element \(key.repr())")
            }
        case let .string(s):
            if let i = key.asInt {
                let scalars = s.unicodeScalars
                let j = i < 0 ? i + scalars.count : i
                if j >= 0, j < scalars.count { return .string(String(scalars[scalars.index(scalars.startIndex, offsetBy: j)])) }
                return .undefined(hint: "'str object' has no element \(key.repr())")
            }
        default:
            break
        }
        if case let .string(name) = key { return try attribute(of: object, name) }
        return .undefined(hint: "'\(object.objectDescription)' has no element \(key.repr())")
    }

    /// `x[start:stop:step]` on a list, tuple or string, with Python's index rules.
    private func slice(_ object: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws(TemplateFailure) -> Value {
        func index(_ v: Value?) throws(TemplateFailure) -> Int? {
            guard let v else { return nil }
            if case .none = v { return nil }
            guard let i = v.asInt else { throw .runtime("slice indices must be integers or None") }
            return i
        }
        let (a, b, c) = (try index(start), try index(stop), try index(step) ?? 1)
        guard c != 0 else { throw .runtime("slice step cannot be zero") }
        func indices(_ count: Int) -> [Int] {
            func adjust(_ v: Int?, _ defaultValue: Int) -> Int {
                guard var v else { return defaultValue }
                if v < 0 {
                    v += count
                    if v < 0 { v = c < 0 ? -1 : 0 }
                } else if v >= count {
                    v = c < 0 ? count - 1 : count
                }
                return v
            }
            var i = adjust(a, c < 0 ? count - 1 : 0)
            let end = adjust(b, c < 0 ? -1 : count)
            var result = [Int]()
            while c > 0 ? i < end : i > end {
                result.append(i)
                let (next, overflow) = i.addingReportingOverflow(c)
                if overflow { break }
                i = next
            }
            return result
        }
        switch object {
        case let .undefined(hint): throw .runtime(hint)
        case let .list(items):
            try charge(items: items.count)
            return .list(indices(items.count).map { items[$0] })
        case let .tuple(items):
            try charge(items: items.count)
            return .tuple(indices(items.count).map { items[$0] })
        case let .string(s):
            let scalars = Array(s.unicodeScalars)
            try charge(size: scalars.count)
            return .string(PythonText.string(indices(scalars.count).map { scalars[$0] }))
        default:
            return .undefined(hint: "'\(object.objectDescription)' cannot be sliced")
        }
    }

    private func loopAttribute(_ info: LoopInfo, _ name: String) -> Value? {
        let count = info.items.count
        switch name {
        case "index": return .int(info.index0 + 1)
        case "index0": return .int(info.index0)
        case "revindex": return .int(count - info.index0)
        case "revindex0": return .int(count - info.index0 - 1)
        case "first": return .bool(info.index0 == 0)
        case "last": return .bool(info.index0 == count - 1)
        case "length": return .int(count)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem":
            return info.index0 > 0 ? info.items[info.index0 - 1] : .undefined(hint: "there is no previous item")
        case "nextitem":
            return info.index0 + 1 < count ? info.items[info.index0 + 1] : .undefined(hint: "there is no next item")
        case "cycle", "changed": return .function(.method(.loop(info), name))
        default: return nil
        }
    }

    // MARK: - Calls

    func call(_ function: Value, _ positional: [Value], _ keyword: [(String, Value)]) throws(TemplateFailure) -> Value {
        switch function {
        case let .function(.global(name)): return try callGlobal(name, positional, keyword)
        case let .function(.method(receiver, name)): return try callMethod(receiver, name, positional, keyword)
        case let .function(.macro(id)): return try callMacro(id, positional, keyword)
        case let .undefined(hint): throw .runtime(hint)
        default: throw .runtime("'\(function.typeName)' object is not callable")
        }
    }

    /// Calls a macro: parameters from the arguments or their defaults (missing ones undefined), extra
    /// arguments in `varargs` and `kwargs` when the body reads them, and `caller` for a call block.
    private func callMacro(
        _ id: Int, _ positional: [Value], _ keyword: [(String, Value)], caller: Value? = nil
    ) throws(TemplateFailure) -> Value {
        let (macro, definitionScope) = macros[id]
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > limits.maxCallDepth { throw .limit("macro calls nested more than \(limits.maxCallDepth) deep") }
        let count = macro.parameters.count
        if positional.count > count, !macro.readsVarargs {
            throw .runtime("macro '\(macro.name)' takes not more than \(count) argument(s)")
        }
        let scope = Scope(parent: definitionScope)
        var extraKeywords = Dict()
        for (name, value) in keyword {
            guard let i = macro.parameters.firstIndex(where: { $0.name == name }) else {
                guard macro.readsKwargs else { throw .runtime("macro '\(macro.name)' takes no keyword argument '\(name)'") }
                extraKeywords.set(.string(name), value)
                continue
            }
            if i < positional.count { throw .runtime("macro '\(macro.name)' got multiple values for argument '\(name)'") }
            scope.set(name, value)
        }
        if macro.readsVarargs { scope.set("varargs", .tuple(Array(positional.dropFirst(count)))) }
        if macro.readsKwargs { scope.set("kwargs", .dict(extraKeywords)) }
        if macro.readsCaller { scope.set("caller", caller ?? .undefined(hint: "'caller' is undefined")) }
        for (i, parameter) in macro.parameters.enumerated() {
            if i < positional.count {
                scope.set(parameter.name, positional[i])
            } else if scope.local(parameter.name) == nil {
                scope.set(
                    parameter.name,
                    try parameter.defaultValue.map { e throws(TemplateFailure) in try eval(e, scope) }
                        ?? .undefined(hint: "parameter '\(parameter.name)' was not provided"))
            }
        }
        let (text, _) = try capture { () throws(TemplateFailure) -> Flow in try exec(macro.body, scope) }
        return .string(text)
    }

    /// Makes a new namespace from `namespace(…)`'s arguments.
    func makeNamespace(_ attributes: Dict) throws(TemplateFailure) -> Value {
        for key in attributes.keys {
            if case let .string(name) = key, name.hasPrefix("_") {
                throw .runtime("chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(name)'")
            }
        }
        namespaces.append(attributes)
        return .namespace(namespaces.count - 1)
    }

    // MARK: - Operators

    func binary(_ op: BinaryOp, _ a: Value, _ b: Value) throws(TemplateFailure) -> Value {
        if case let .undefined(hint) = a { throw .runtime(hint) }
        if case let .undefined(hint) = b { throw .runtime(hint) }
        func unsupported() -> TemplateFailure {
            .runtime("unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'")
        }
        func overflow() -> TemplateFailure { .runtime("integer overflow in \(op.rawValue)") }
        if let x = a.asInt, let y = b.asInt {
            switch op {
            case .add:
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw overflow() }
                return .int(r)
            case .sub:
                let (r, o) = x.subtractingReportingOverflow(y)
                if o { throw overflow() }
                return .int(r)
            case .mul:
                let (r, o) = x.multipliedReportingOverflow(by: y)
                if o { throw overflow() }
                return .int(r)
            case .div:
                guard y != 0 else { throw .runtime("division by zero") }
                return .double(Double(x) / Double(y))
            case .floordiv, .mod:
                guard y != 0 else { throw .runtime("integer division or modulo by zero") }
                if x == .min, y == -1 { throw overflow() }
                var q = x / y, r = x % y
                if r != 0, (r < 0) != (y < 0) {
                    q -= 1
                    r += y
                }
                return .int(op == .floordiv ? q : r)
            case .pow:
                if y < 0 {
                    guard x != 0 else { throw .runtime("0.0 cannot be raised to a negative power") }
                    return .double(Foundation.pow(Double(x), Double(y)))
                }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow() }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (sq, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow() }
                        base = sq
                    }
                }
                return .int(result)
            }
        }
        if let x = a.asNumber, let y = b.asNumber {
            switch op {
            case .add: return .double(x + y)
            case .sub: return .double(x - y)
            case .mul: return .double(x * y)
            case .div:
                guard y != 0 else { throw .runtime("float division by zero") }
                return .double(x / y)
            case .floordiv, .mod:
                guard y != 0 else { throw .runtime("float floor division by zero") }
                let (q, r) = Self.pythonDivMod(x, y)
                return .double(op == .floordiv ? q : r)
            case .pow:
                if x == 0, y < 0 { throw .runtime("0.0 cannot be raised to a negative power") }
                if x < 0, y != y.rounded() { throw .runtime("negative number cannot be raised to a fractional power") }
                return .double(Foundation.pow(x, y))
            }
        }
        switch (op, a, b) {
        case let (.add, .string(x), .string(y)):
            try charge(size: x.utf8.count + y.utf8.count)
            return .string(x + y)
        case let (.add, .list(x), .list(y)):
            try charge(items: x.count + y.count)
            return .list(x + y)
        case let (.add, .tuple(x), .tuple(y)):
            try charge(items: x.count + y.count)
            return .tuple(x + y)
        case (.add, .string, _), (.add, .list, _), (.add, .tuple, _):
            throw .runtime("can only concatenate \(a.typeName) (not \"\(b.typeName)\") to \(a.typeName)")
        case (.mul, .string, _), (.mul, .list, _), (.mul, .tuple, _):
            if let n = b.asInt { return try repeated(a, n) }
        case (.mul, _, .string), (.mul, _, .list), (.mul, _, .tuple):
            if let n = a.asInt { return try repeated(b, n) }
        case (.mod, .string, _):
            throw .unsupported("unsupported %-formatting of a string")
        default:
            break
        }
        throw unsupported()
    }

    /// `s * n` and `xs * n`.
    private func repeated(_ value: Value, _ n: Int) throws(TemplateFailure) -> Value {
        var times = max(0, n)
        switch value {
        case let .string(s) where s.isEmpty: times = 0
        case let .list(items) where items.isEmpty, let .tuple(items) where items.isEmpty: times = 0
        default: break
        }
        switch value {
        case let .string(s):
            let (size, o) = s.utf8.count.multipliedReportingOverflow(by: times)
            try charge(size: o ? .max : size)
            return .string(String(repeating: s, count: times))
        case let .list(items), let .tuple(items):
            let (size, o) = items.count.multipliedReportingOverflow(by: times)
            try charge(items: o ? .max : size)
            let all = Array([[Value]](repeating: items, count: times).joined())
            if case .tuple = value { return .tuple(all) }
            return .list(all)
        default:
            return value
        }
    }

    /// Python's float `divmod`: the remainder takes the divisor's sign.
    static func pythonDivMod(_ x: Double, _ y: Double) -> (Double, Double) {
        var mod = fmod(x, y)
        var div = (x - mod) / y
        if mod != 0 {
            if (y < 0) != (mod < 0) {
                mod += y
                div -= 1
            }
        } else {
            mod = copysign(0, y)
        }
        var floorDiv: Double
        if div != 0 {
            floorDiv = div.rounded(.down)
            if div - floorDiv > 0.5 { floorDiv += 1 }
        } else {
            floorDiv = copysign(0, x / y)
        }
        return (floorDiv, mod)
    }

    func compare(_ op: CompareOp, _ a: Value, _ b: Value) throws(TemplateFailure) -> Bool {
        switch op {
        case .eq: return a.pyEquals(b)
        case .ne: return !a.pyEquals(b)
        case .contains: return try contains(b, a)
        case .notContains: return !(try contains(b, a))
        case .lt, .lteq, .gt, .gteq:
            if case let .undefined(hint) = a { throw .runtime(hint) }
            if case let .undefined(hint) = b { throw .runtime(hint) }
            let (x, y) = op == .lt || op == .lteq ? (a, b) : (b, a)
            guard let less = x.pyLess(y) else {
                throw .runtime("'\(op.rawValue)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
            }
            return op == .lt || op == .gt ? less : less || x.pyEquals(y)
        }
    }

    /// Python's `needle in container`.
    func contains(_ container: Value, _ needle: Value) throws(TemplateFailure) -> Bool {
        switch container {
        case let .string(s):
            guard case let .string(n) = needle else {
                throw .runtime("'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            try charge(size: s.utf8.count)
            return PythonText.contains(s, n)
        case let .list(items), let .tuple(items):
            try charge(items: items.count)
            return items.contains { $0.pyEquals(needle) }
        case let .dict(d):
            guard let position = d.position(of: needle) else { throw .runtime("unhashable type: '\(needle.typeName)'") }
            return position != nil
        case .undefined:
            return false
        default:
            throw .runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }
}
