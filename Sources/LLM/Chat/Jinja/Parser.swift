// A recursive-descent parser from tokens to the AST, following Jinja's own grammar and precedence
// (jinja2/parser.py): or < and < not < comparisons < + - < ~ < * / // % < ** < unary - + < filters, tests and
// calls < attribute and item access. Nesting is bounded so that a hostile template cannot exhaust the stack.

struct Parser {
    private let tokens: [Token]
    private var pos = 0
    private var depth = 0
    private let maxDepth: Int
    /// How many for loops enclose the current statement (break and continue need one).
    private var loopDepth = 0

    static func parse(_ tokens: [Token], maxDepth: Int) throws(TemplateFailure) -> [Node] {
        var parser = Parser(tokens: tokens, maxDepth: maxDepth)
        let (nodes, _) = try parser.parseBody(until: [])
        try Node.validate(nodes)
        return nodes
    }

    private init(tokens: [Token], maxDepth: Int) {
        self.tokens = tokens
        self.maxDepth = maxDepth
    }

    // MARK: - Tokens

    private var current: Token { tokens[pos] }
    private var line: Int { current.line }

    private func peek(_ offset: Int = 1) -> Token { tokens[min(pos + offset, tokens.count - 1)] }

    private mutating func advance() {
        if pos < tokens.count - 1 { pos += 1 }
    }

    private func isName(_ name: String, _ token: Token? = nil) -> Bool { (token ?? current).kind == .name(name) }
    private func isOp(_ op: Op) -> Bool { current.kind == .op(op) }

    private mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    private mutating func skipOp(_ op: Op) -> Bool {
        guard isOp(op) else { return false }
        advance()
        return true
    }

    private func describe(_ token: Token) -> String {
        switch token.kind {
        case let .text(s): "template data \(PythonText.stringRepr(String(s.prefix(20))))"
        case .variableBegin: "'{{'"
        case .variableEnd: "end of print statement"
        case .blockBegin: "'{%'"
        case .blockEnd: "end of statement block"
        case let .name(n): "'\(n)'"
        case let .string(s): "string \(PythonText.stringRepr(String(s.prefix(20))))"
        case let .integer(i): "'\(i)'"
        case let .float(d): "'\(PythonText.floatRepr(d))'"
        case let .op(op): "'\(op.rawValue)'"
        case .end: "end of template"
        }
    }

    private func unexpected(expected: String) -> TemplateFailure {
        .syntax("expected \(expected), got \(describe(current))", line: line)
    }

    private mutating func expect(_ kind: Token.Kind, _ what: String) throws(TemplateFailure) {
        guard current.kind == kind else { throw unexpected(expected: what) }
        advance()
    }

    private mutating func expectOp(_ op: Op) throws(TemplateFailure) { try expect(.op(op), "'\(op.rawValue)'") }
    private mutating func expectBlockEnd() throws(TemplateFailure) { try expect(.blockEnd, "end of statement block") }

    private mutating func expectName() throws(TemplateFailure) -> String {
        guard case let .name(n) = current.kind else { throw unexpected(expected: "a name") }
        advance()
        return n
    }

    private mutating func nest() throws(TemplateFailure) {
        depth += 1
        if depth > maxDepth { throw .init(kind: .limit, message: "template nested more than \(maxDepth) levels deep", line: line) }
    }

    // MARK: - Template structure

    /// Text, outputs and statements up to a `{% name %}` tag with `name` in `endTags` (consumed up to the name,
    /// so the caller reads the rest of that tag), or the end of the template when `endTags` is empty.
    private mutating func parseBody(until endTags: Set<String>) throws(TemplateFailure) -> ([Node], String?) {
        var nodes = [Node]()
        while true {
            switch current.kind {
            case let .text(s):
                nodes.append(.text(s))
                advance()
            case .variableBegin:
                let line = self.line
                advance()
                let value = try parseTuple()
                try expect(.variableEnd, "end of print statement")
                nodes.append(.output(value, line: line))
            case .blockBegin:
                if case let .name(tag) = peek().kind, endTags.contains(tag) {
                    advance()
                    advance()
                    return (nodes, tag)
                }
                advance()
                nodes.append(try parseStatement())
            case .end:
                guard endTags.isEmpty else {
                    let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw .syntax("unexpected end of template, expected \(expected)", line: line)
                }
                return (nodes, nil)
            default:
                throw .syntax("unexpected \(describe(current))", line: line)
            }
        }
    }

    /// One statement, from its tag name to the end of its closing tag.
    private mutating func parseStatement() throws(TemplateFailure) -> Node {
        try nest()
        defer { depth -= 1 }
        let line = self.line
        guard case let .name(tag) = current.kind else { throw unexpected(expected: "a statement name") }
        advance()
        switch tag {
        case "if": return try parseIf(line: line)
        case "for": return try parseFor(line: line)
        case "set": return try parseSet(line: line)
        case "macro": return try parseMacro(line: line)
        case "filter":
            let filters = try parseFilters(startInline: true)
            try expectBlockEnd()
            let body = try parseBlockBody(until: "endfilter")
            return .filterBlock(filters, body: body, line: line)
        case "with":
            var assignments = [(Target, Expr)]()
            while current.kind != .blockEnd {
                if !assignments.isEmpty { try expectOp(.comma) }
                let target = try parseAssignTarget(extraEnd: [])
                try expectOp(.assign)
                assignments.append((target, try parseExpression()))
            }
            try expectBlockEnd()
            return .with(assignments, body: try parseBlockBody(until: "endwith"), line: line)
        case "generation":
            // transformers' extension marking assistant text; rendering it is rendering its body.
            try expectBlockEnd()
            return .with([], body: try parseBlockBody(until: "endgeneration"), line: line)
        case "print":
            let value = try parseTuple()
            try expectBlockEnd()
            return .output(value, line: line)
        case "break", "continue":
            guard loopDepth > 0 else { throw .syntax("'\(tag)' outside of a for loop", line: line) }
            try expectBlockEnd()
            return tag == "break" ? .breakLoop(line: line) : .continueLoop(line: line)
        case "call":
            let parameters = isOp(.lparen) ? try parseSignature() : []
            let call = try parseExpression()
            guard case .call = call else { throw .syntax("expected a call after 'call'", line: line) }
            try expectBlockEnd()
            let body = try parseBlockBody(until: "endcall")
            return .callBlock(call: call, caller: Macro(name: "caller", parameters: parameters, body: body, line: line), line: line)
        case "include", "import", "from", "extends":
            // Valid Jinja, but transformers' environment has no loader: they fail when they run.
            while current.kind != .blockEnd, current.kind != .end { advance() }
            try expectBlockEnd()
            return .unsupported("unsupported tag '\(tag)'", line: line)
        case "block", "autoescape":
            while current.kind != .blockEnd, current.kind != .end { advance() }
            try expectBlockEnd()
            _ = try parseBody(until: ["end" + tag])
            while current.kind != .blockEnd, current.kind != .end { advance() }
            try expectBlockEnd()
            return .unsupported("unsupported tag '\(tag)'", line: line)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endfilter", "endwith", "endgeneration":
            throw .syntax("unexpected '\(tag)'", line: line)
        default:
            throw .syntax("unknown tag '\(tag)'", line: line)
        }
    }

    /// A body up to `{% end %}`, whose `%}` is consumed too.
    private mutating func parseBlockBody(until end: String) throws(TemplateFailure) -> [Node] {
        let (body, _) = try parseBody(until: [end])
        try expectBlockEnd()
        return body
    }

    private mutating func parseIf(line: Int) throws(TemplateFailure) -> Node {
        var condition = try parseTuple(withCondexpr: false)
        try expectBlockEnd()
        var branches = [(condition: Expr, body: [Node])]()
        while true {
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            switch end {
            case "elif":
                condition = try parseTuple(withCondexpr: false)
                try expectBlockEnd()
            case "else":
                try expectBlockEnd()
                return .ifBlock(branches: branches, otherwise: try parseBlockBody(until: "endif"), line: line)
            default:
                try expectBlockEnd()
                return .ifBlock(branches: branches, otherwise: [], line: line)
            }
        }
    }

    private mutating func parseFor(line: Int) throws(TemplateFailure) -> Node {
        let target = try parseAssignTarget(extraEnd: ["in"])
        guard skipName("in") else { throw unexpected(expected: "'in'") }
        let iterable = try parseTuple(withCondexpr: false, extraEnd: ["recursive"])
        var filter: Expr?
        if skipName("if") { filter = try parseExpression() }
        if isName("recursive") { throw .unsupported("unsupported recursive for loop", line: line) }
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try parseBody(until: ["endfor", "else"])
        loopDepth -= 1
        try expectBlockEnd()
        let otherwise = end == "else" ? try parseBlockBody(until: "endfor") : []
        return .forLoop(ForLoop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: line))
    }

    private mutating func parseSet(line: Int) throws(TemplateFailure) -> Node {
        let target: Target
        if case let .name(namespace) = current.kind, peek().kind == .op(.dot) {
            advance()
            advance()
            target = .attribute(namespace, try expectName())
        } else {
            target = try parseAssignTarget(extraEnd: [])
        }
        if skipOp(.assign) {
            let value = try parseTuple()
            try expectBlockEnd()
            return .set(target, value, line: line)
        }
        let filters = try parseFilters(startInline: false)
        try expectBlockEnd()
        return .setBlock(target, filters: filters, body: try parseBlockBody(until: "endset"), line: line)
    }

    private mutating func parseMacro(line: Int) throws(TemplateFailure) -> Node {
        let name = try expectName()
        let parameters = try parseSignature()
        try expectBlockEnd()
        let outerLoops = loopDepth
        loopDepth = 0
        defer { loopDepth = outerLoops }
        let body = try parseBlockBody(until: "endmacro")
        return .macro(Macro(name: name, parameters: parameters, body: body, line: line))
    }

    /// `(a, b=default, …)` after a macro's name or `call`.
    private mutating func parseSignature() throws(TemplateFailure) -> [(name: String, defaultValue: Expr?)] {
        let line = self.line
        try expectOp(.lparen)
        var parameters = [(name: String, defaultValue: Expr?)]()
        while !isOp(.rparen) {
            if !parameters.isEmpty { try expectOp(.comma) }
            if isOp(.rparen) { break }
            let parameter = try expectName()
            if skipOp(.assign) {
                parameters.append((parameter, try parseExpression()))
            } else {
                guard parameters.allSatisfy({ $0.defaultValue == nil }) else {
                    throw .syntax("non-default argument follows default argument", line: line)
                }
                parameters.append((parameter, nil))
            }
        }
        try expectOp(.rparen)
        return parameters
    }

    /// A name or a (possibly parenthesised) tuple of names, as `for` and `set` assign to.
    private mutating func parseAssignTarget(extraEnd: Set<String>) throws(TemplateFailure) -> Target {
        var targets = [Target]()
        var isTuple = false
        while true {
            if !targets.isEmpty { try expectOp(.comma) }
            if isTupleEnd(extraEnd) { break }
            targets.append(try parseTargetPrimary())
            guard isOp(.comma) else { break }
            isTuple = true
        }
        guard isTuple || targets.count == 1 else { throw unexpected(expected: "an assignment target") }
        return isTuple ? .tuple(targets) : targets[0]
    }

    private mutating func parseTargetPrimary() throws(TemplateFailure) -> Target {
        if skipOp(.lparen) {
            try nest()
            defer { depth -= 1 }
            let target = try parseAssignTarget(extraEnd: [])
            try expectOp(.rparen)
            return target
        }
        let name = try expectName()
        guard !["true", "false", "none", "True", "False", "None"].contains(name) else {
            throw .syntax("cannot assign to '\(name)'", line: line)
        }
        return .name(name)
    }

    // MARK: - Expressions

    private func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .op(.rparen): true
        case let .name(n): extraEnd.contains(n)
        default: false
        }
    }

    /// Comma-separated expressions: one is itself, several (or a trailing comma) a tuple.
    private mutating func parseTuple(
        withCondexpr: Bool = true, extraEnd: Set<String> = [], explicitParentheses: Bool = false
    ) throws(TemplateFailure) -> Expr {
        var items = [Expr]()
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(.comma) }
            if isTupleEnd(extraEnd) { break }
            items.append(try parseExpression(withCondexpr: withCondexpr))
            guard isOp(.comma) else { break }
            isTuple = true
        }
        if !isTuple {
            if let only = items.first { return only }
            guard explicitParentheses else { throw unexpected(expected: "an expression") }
        }
        return .tuple(items)
    }

    private mutating func parseExpression(withCondexpr: Bool = true) throws(TemplateFailure) -> Expr {
        try nest()
        defer { depth -= 1 }
        return withCondexpr ? try parseConditional() : try parseOr()
    }

    private mutating func parseConditional() throws(TemplateFailure) -> Expr {
        var expr = try parseOr()
        while skipName("if") {
            let condition = try parseOr()
            let otherwise = skipName("else") ? try parseExpression() : nil
            expr = .conditional(condition: condition, then: expr, otherwise: otherwise)
        }
        return expr
    }

    private mutating func parseOr() throws(TemplateFailure) -> Expr {
        var left = try parseAnd()
        while skipName("or") { left = .or(left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws(TemplateFailure) -> Expr {
        var left = try parseNot()
        while skipName("and") { left = .and(left, try parseNot()) }
        return left
    }

    private mutating func parseNot() throws(TemplateFailure) -> Expr {
        guard isName("not") else { return try parseCompare() }
        advance()
        try nest()
        defer { depth -= 1 }
        return .not(try parseNot())
    }

    private mutating func parseCompare() throws(TemplateFailure) -> Expr {
        let first = try parseMath1()
        var operations = [(CompareOp, Expr)]()
        while true {
            let op: CompareOp
            switch current.kind {
            case .op(.eq): op = .eq
            case .op(.ne): op = .ne
            case .op(.lt): op = .lt
            case .op(.lteq): op = .lteq
            case .op(.gt): op = .gt
            case .op(.gteq): op = .gteq
            case .name("in"): op = .contains
            case .name("not") where isName("in", peek()):
                advance()
                op = .notContains
            default:
                return operations.isEmpty ? first : .compare(first, operations)
            }
            advance()
            operations.append((op, try parseMath1()))
        }
    }

    private mutating func parseMath1() throws(TemplateFailure) -> Expr {
        var left = try parseConcat()
        while true {
            if skipOp(.add) {
                left = .binary(.add, left, try parseConcat())
            } else if skipOp(.sub) {
                left = .binary(.sub, left, try parseConcat())
            } else {
                return left
            }
        }
    }

    private mutating func parseConcat() throws(TemplateFailure) -> Expr {
        var parts = [try parseMath2()]
        while skipOp(.tilde) { parts.append(try parseMath2()) }
        return parts.count == 1 ? parts[0] : .concat(parts)
    }

    private mutating func parseMath2() throws(TemplateFailure) -> Expr {
        var left = try parsePow()
        while true {
            let op: BinaryOp
            switch current.kind {
            case .op(.mul): op = .mul
            case .op(.div): op = .div
            case .op(.floordiv): op = .floordiv
            case .op(.mod): op = .mod
            default: return left
            }
            advance()
            left = .binary(op, left, try parsePow())
        }
    }

    private mutating func parsePow() throws(TemplateFailure) -> Expr {
        var left = try parseUnary()
        while skipOp(.pow) { left = .binary(.pow, left, try parseUnary()) }
        return left
    }

    private mutating func parseUnary(withFilters: Bool = true) throws(TemplateFailure) -> Expr {
        var node: Expr
        if skipOp(.sub) {
            try nest()
            defer { depth -= 1 }
            node = .negate(try parseUnary(withFilters: false))
        } else if skipOp(.add) {
            try nest()
            defer { depth -= 1 }
            node = .plus(try parseUnary(withFilters: false))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilters { node = try parseFilterExpression(node) }
        return node
    }

    private mutating func parsePrimary() throws(TemplateFailure) -> Expr {
        switch current.kind {
        case let .name(name):
            advance()
            switch name {
            case "true", "True": return .constant(.bool(true))
            case "false", "False": return .constant(.bool(false))
            case "none", "None": return .constant(.none)
            default: return .name(name)
            }
        case let .string(s):
            advance()
            var value = s
            while case let .string(more) = current.kind {
                value += more
                advance()
            }
            return .constant(.string(value))
        case let .integer(i):
            advance()
            return .constant(.int(i))
        case let .float(d):
            advance()
            return .constant(.double(d))
        case .op(.lparen):
            advance()
            let value = try parseTuple(explicitParentheses: true)
            try expectOp(.rparen)
            return value
        case .op(.lbracket):
            advance()
            var items = [Expr]()
            while !isOp(.rbracket) {
                if !items.isEmpty { try expectOp(.comma) }
                if isOp(.rbracket) { break }
                items.append(try parseExpression())
            }
            try expectOp(.rbracket)
            return .list(items)
        case .op(.lbrace):
            advance()
            var items = [(key: Expr, value: Expr)]()
            while !isOp(.rbrace) {
                if !items.isEmpty { try expectOp(.comma) }
                if isOp(.rbrace) { break }
                let key = try parseExpression()
                try expectOp(.colon)
                items.append((key, try parseExpression()))
            }
            try expectOp(.rbrace)
            return .dict(items)
        default:
            throw .syntax("unexpected \(describe(current))", line: line)
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws(TemplateFailure) -> Expr {
        var node = start
        while true {
            switch current.kind {
            case .op(.dot), .op(.lbracket): node = try parseSubscript(node)
            case .op(.lparen): node = .call(node, try parseCallArguments())
            default: return node
            }
        }
    }

    private mutating func parseFilterExpression(_ start: Expr) throws(TemplateFailure) -> Expr {
        var node = start
        while true {
            switch current.kind {
            case .op(.pipe): node = try parseFilters(applyingTo: node)
            case .name("is"): node = try parseTest(node)
            case .op(.lparen): node = .call(node, try parseCallArguments())
            default: return node
            }
        }
    }

    private mutating func parseSubscript(_ node: Expr) throws(TemplateFailure) -> Expr {
        if skipOp(.dot) {
            switch current.kind {
            case let .name(name):
                advance()
                return .attribute(node, name)
            case let .integer(i):
                advance()
                return .item(node, .constant(.int(i)))
            default:
                throw unexpected(expected: "a name or number after '.'")
            }
        }
        try expectOp(.lbracket)
        var keys = [Expr]()
        var slice: (Expr?, Expr?, Expr?)?
        while !isOp(.rbracket) {
            if !keys.isEmpty || slice != nil { try expectOp(.comma) }
            var start: Expr?
            if !isOp(.colon) {
                start = try parseExpression()
                guard isOp(.colon) else {
                    keys.append(start!)
                    continue
                }
            }
            advance()
            guard slice == nil, keys.isEmpty else { throw .unsupported("unsupported slice inside a tuple subscript", line: line) }
            let stop = isOp(.colon) || isOp(.rbracket) || isOp(.comma) ? nil : try parseExpression()
            var step: Expr?
            if skipOp(.colon), !isOp(.rbracket), !isOp(.comma) { step = try parseExpression() }
            slice = (start, stop, step)
        }
        try expectOp(.rbracket)
        if let (start, stop, step) = slice {
            guard keys.isEmpty else { throw .unsupported("unsupported slice inside a tuple subscript", line: line) }
            return .slice(node, start: start, stop: stop, step: step)
        }
        guard !keys.isEmpty else { throw unexpected(expected: "a subscript") }
        return .item(node, keys.count == 1 ? keys[0] : .tuple(keys))
    }

    private mutating func parseCallArguments() throws(TemplateFailure) -> Arguments {
        try expectOp(.lparen)
        var arguments = Arguments()
        while !isOp(.rparen) {
            if !arguments.positional.isEmpty || !arguments.keyword.isEmpty {
                try expectOp(.comma)
                if isOp(.rparen) { break }
            }
            if isOp(.mul) || isOp(.pow) { throw .unsupported("unsupported *args or **kwargs in a call", line: line) }
            if case let .name(name) = current.kind, peek().kind == .op(.assign) {
                advance()
                advance()
                arguments.keyword.append((name, try parseExpression()))
            } else {
                guard arguments.keyword.isEmpty else { throw .syntax("positional argument follows keyword argument", line: line) }
                arguments.positional.append(try parseExpression())
            }
        }
        try expectOp(.rparen)
        return arguments
    }

    /// `| name(args) | name …`; with `startInline` the first filter has no `|` (`{% filter upper %}`).
    private mutating func parseFilters(startInline: Bool) throws(TemplateFailure) -> [FilterCall] {
        var filters = [FilterCall]()
        var inline = startInline
        while inline || skipOp(.pipe) {
            inline = false
            let name = try parseDottedName()
            let arguments = isOp(.lparen) ? try parseCallArguments() : Arguments()
            filters.append(FilterCall(name: name, filter: Filter(name: name), arguments: arguments))
        }
        return filters
    }

    private mutating func parseFilters(applyingTo node: Expr) throws(TemplateFailure) -> Expr {
        try parseFilters(startInline: false).reduce(node) { .filter($0, $1) }
    }

    private mutating func parseTest(_ node: Expr) throws(TemplateFailure) -> Expr {
        let line = self.line
        advance()
        let negated = skipName("not")
        let name = try parseDottedName()
        var arguments = Arguments()
        switch current.kind {
        case .op(.lparen):
            arguments = try parseCallArguments()
        case .name("else"), .name("or"), .name("and"):
            break
        case .name("is"):
            throw .syntax("you cannot chain multiple tests with 'is'", line: line)
        case .name, .string, .integer, .float, .op(.lbracket), .op(.lbrace):
            arguments.positional = [try parsePostfix(try parsePrimary())]
        default:
            break
        }
        return .test(node, TestCall(name: name, test: Test(name: name), arguments: arguments), negated: negated)
    }

    /// A filter or test name, which Jinja allows to be dotted.
    private mutating func parseDottedName() throws(TemplateFailure) -> String {
        var name = try expectName()
        while skipOp(.dot) { name += "." + (try expectName()) }
        return name
    }
}
