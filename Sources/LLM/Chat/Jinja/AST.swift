// The parsed form of a template: statements (`Node`) holding expressions (`Expr`). Filters and tests are
// resolved to enums when parsing. As in Jinja, an unknown one fails when the template is loaded, unless it sits in
// an `if` or an inline `x if c else y`: there it fails only if it runs (`validate`).

indirect enum Node: Sendable {
    case text(String)
    /// `{{ expr }}`.
    case output(Expr, line: Int)
    /// `{% if %}…{% elif %}…{% else %}…{% endif %}`: the first branch whose condition is true runs.
    case ifBlock(branches: [(condition: Expr, body: [Node])], otherwise: [Node], line: Int)
    case forLoop(ForLoop)
    /// `{% set target = value %}`.
    case set(Target, Expr, line: Int)
    /// `{% set target %}…{% endset %}`: the rendered body, through optional filters.
    case setBlock(Target, filters: [FilterCall], body: [Node], line: Int)
    case macro(Macro)
    /// `{% filter f %}…{% endfilter %}`.
    case filterBlock([FilterCall], body: [Node], line: Int)
    /// `{% with a = 1 %}…{% endwith %}`, and transformers' `{% generation %}` (a body in its own scope).
    case with([(Target, Expr)], body: [Node], line: Int)
    /// `{% call m(args) %}…{% endcall %}`: calls macro `m` with `caller` rendering the body.
    case callBlock(call: Expr, caller: Macro, line: Int)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
    /// Valid Jinja this interpreter does not run (`include`, `autoescape`, …): an error only if reached.
    case unsupported(String, line: Int)
}

struct ForLoop: Sendable {
    let target: Target
    let iterable: Expr
    /// `for x in xs if cond`: items failing it are skipped before the loop counts them.
    let filter: Expr?
    let body: [Node]
    /// Runs when no item was looped over.
    let otherwise: [Node]
    let line: Int
}

struct Macro: Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expr?)]
    let body: [Node]
    let line: Int
    /// Whether the body reads `varargs`, `kwargs` or `caller`: only then does the macro accept extra positional
    /// arguments, unknown keyword arguments or a call block (Jinja decides the same way).
    let readsVarargs: Bool
    let readsKwargs: Bool
    let readsCaller: Bool

    init(name: String, parameters: [(name: String, defaultValue: Expr?)], body: [Node], line: Int) {
        self.name = name
        self.parameters = parameters
        self.body = body
        self.line = line
        var names = Set<String>()
        for node in body {
            node.walk(soft: false, { expr in
                if case let .name(n) = expr { names.insert(n) }
            }, filters: { _, _, _, _ in })
        }
        readsVarargs = names.contains("varargs")
        readsKwargs = names.contains("kwargs")
        readsCaller = names.contains("caller")
    }
}

/// What `set` and `for` assign to.
indirect enum Target: Sendable {
    case name(String)
    /// `for k, v in …`: unpacks a sequence.
    case tuple([Target])
    /// `set ns.attr = …`: only namespaces accept it.
    case attribute(String, String)
}

indirect enum Expr: Sendable {
    case constant(Value)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(key: Expr, value: Expr)])
    /// `x.name`: an attribute, then an item (Jinja's `getattr`).
    case attribute(Expr, String)
    /// `x[key]`: an item, then an attribute (Jinja's `getitem`).
    case item(Expr, Expr)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
    case call(Expr, Arguments)
    case filter(Expr, FilterCall)
    case test(Expr, TestCall, negated: Bool)
    case negate(Expr)
    case plus(Expr)
    case not(Expr)
    case binary(BinaryOp, Expr, Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    /// `a < b <= c`: Python's chained comparison.
    case compare(Expr, [(CompareOp, Expr)])
    /// `a ~ b ~ c`.
    case concat([Expr])
    /// `a if cond else b` (without `else`, an undefined value when false).
    case conditional(condition: Expr, then: Expr, otherwise: Expr?)
}

enum BinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", floordiv = "//", mod = "%", pow = "**"
}

enum CompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", lteq = "<=", gt = ">", gteq = ">=", contains = "in", notContains = "not in"
}

struct Arguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(name: String, value: Expr)] = []
}

struct FilterCall: Sendable {
    let name: String
    /// nil for a filter this interpreter does not implement.
    let filter: Filter?
    let arguments: Arguments
}

struct TestCall: Sendable {
    let name: String
    /// nil for a test this interpreter does not implement.
    let test: Test?
    let arguments: Arguments
}

/// The filters this interpreter implements (aliases map to one case).
enum Filter: String, Sendable {
    case abs, attr, capitalize, `default`, dictsort, escape, first, float, indent, int, items, join, last, length, list
    case lower, map, max, min, reject, rejectattr, replace, reverse, round, safe, select, selectattr, sort, string, sum
    case title, tojson, trim, unique, upper

    init?(name: String) {
        switch name {
        case "d": self = .default
        case "e": self = .escape
        case "count": self = .length
        default: self.init(rawValue: name)
        }
    }
}

/// The tests (`x is defined`) this interpreter implements.
enum Test: String, Sendable {
    case boolean, callable, defined, divisibleby, eq, escaped, even, `false`, float, ge, gt, `in`, integer, iterable
    case le, lower, lt, mapping, ne, none, number, odd, sameas, sequence, string, `true`, undefined, upper

    init?(name: String) {
        switch name {
        case "==", "equalto": self = .eq
        case "!=": self = .ne
        case "<", "lessthan": self = .lt
        case "<=": self = .le
        case ">", "greaterthan": self = .gt
        case ">=": self = .ge
        default: self.init(rawValue: name)
        }
    }
}

// MARK: - Walking the tree

/// What `walk` reports for each filter or test it passes: its name, whether it is a filter (or a test), whether it
/// sits in a soft frame, and the line of the statement around it.
typealias FilterVisit = (_ name: String, _ isFilter: Bool, _ soft: Bool, _ line: Int) -> Void

extension Node {
    var line: Int? {
        switch self {
        case .text: nil
        case let .output(_, line), let .ifBlock(_, _, line), let .set(_, _, line), let .setBlock(_, _, _, line),
            let .filterBlock(_, _, line), let .with(_, _, line), let .callBlock(_, _, line), let .breakLoop(line),
            let .continueLoop(line), let .unsupported(_, line):
            line
        case let .forLoop(loop): loop.line
        case let .macro(macro): macro.line
        }
    }

    /// Visits every expression under this node and every filter and test. Jinja compiles `if` tests and bodies
    /// and inline if expressions in a "soft" frame, where an unknown filter or test is an error only when it runs;
    /// a for loop, macro, set block, filter block or with body starts a new frame that is not soft.
    func walk(soft: Bool, line enclosingLine: Int = 1, _ visit: (Expr) -> Void, filters: FilterVisit) {
        let line = self.line ?? enclosingLine
        func exprs(_ es: [Expr], _ soft: Bool) { for e in es { e.walk(soft: soft, line: line, visit, filters: filters) } }
        func nodes(_ ns: [Node], _ soft: Bool) { for n in ns { n.walk(soft: soft, line: line, visit, filters: filters) } }
        func filterCalls(_ calls: [FilterCall]) {
            for f in calls {
                filters(f.name, true, false, line)
                exprs(f.arguments.all, false)
            }
        }
        switch self {
        case .text, .breakLoop, .continueLoop, .unsupported: break
        case let .output(e, _), let .set(_, e, _): exprs([e], soft)
        case let .ifBlock(branches, otherwise, _):
            for (condition, body) in branches {
                exprs([condition], true)
                nodes(body, true)
            }
            nodes(otherwise, true)
        case let .forLoop(loop):
            exprs([loop.iterable], soft)
            exprs(loop.filter.map { [$0] } ?? [], false)
            nodes(loop.body, false)
            nodes(loop.otherwise, soft)
        case let .setBlock(_, calls, body, _), let .filterBlock(calls, body, _):
            filterCalls(calls)
            nodes(body, false)
        case let .macro(m):
            exprs(m.parameters.compactMap(\.defaultValue), false)
            nodes(m.body, false)
        case let .with(assignments, body, _):
            exprs(assignments.map(\.1), soft)
            nodes(body, false)
        case let .callBlock(call, caller, _):
            exprs([call], soft)
            exprs(caller.parameters.compactMap(\.defaultValue), false)
            nodes(caller.body, false)
        }
    }

    /// Throws for an unknown filter or test outside a soft frame, as Jinja does when it compiles the template.
    static func validate(_ template: [Node]) throws(TemplateFailure) {
        var failure: TemplateFailure?
        for node in template {
            node.walk(soft: false, { _ in }) { name, isFilter, soft, line in
                guard !soft, failure == nil else { return }
                let known = isFilter ? Filter(name: name) != nil : Test(name: name) != nil
                if !known { failure = .unsupported("unsupported \(isFilter ? "filter" : "test") '\(name)'", line: line) }
            }
            if let failure { throw failure }
        }
    }
}

extension Expr {
    func walk(soft: Bool, line: Int, _ visit: (Expr) -> Void, filters: FilterVisit) {
        visit(self)
        func exprs(_ es: [Expr], _ soft: Bool) { for e in es { e.walk(soft: soft, line: line, visit, filters: filters) } }
        switch self {
        case .constant, .name: break
        case let .list(items), let .tuple(items), let .concat(items): exprs(items, soft)
        case let .dict(pairs): exprs(pairs.flatMap { [$0.key, $0.value] }, soft)
        case let .attribute(e, _), let .negate(e), let .plus(e), let .not(e): exprs([e], soft)
        case let .item(e, key): exprs([e, key], soft)
        case let .slice(e, start, stop, step): exprs([e] + [start, stop, step].compactMap { $0 }, soft)
        case let .call(e, arguments): exprs([e] + arguments.all, soft)
        case let .filter(e, call):
            filters(call.name, true, soft, line)
            exprs([e] + call.arguments.all, soft)
        case let .test(e, call, _):
            filters(call.name, false, soft, line)
            exprs([e] + call.arguments.all, soft)
        case let .binary(_, a, b), let .and(a, b), let .or(a, b): exprs([a, b], soft)
        case let .compare(first, operations): exprs([first] + operations.map(\.1), soft)
        case let .conditional(condition, then, otherwise): exprs([condition, then] + (otherwise.map { [$0] } ?? []), true)
        }
    }
}

extension Arguments {
    var all: [Expr] { positional + keyword.map(\.value) }
}
