import Foundation
import Testing
@testable import LLM

/// The Jinja interpreter on its own: small templates rendered by transformers' Jinja environment
/// (Fixtures/chat-templates/jinja-cases.json), errors with their lines, and the limits that stop hostile templates.
@Suite struct JinjaTests {
    static let now = Date(timeIntervalSince1970: 1_741_944_413)  // the fixture's 2025-03-14 09:26:53
    static let utc = TimeZone(identifier: "UTC")!

    func render(_ source: String, _ variables: [String: JinjaValue] = [:], limits: ChatTemplate.Limits = .init()) throws -> String {
        try ChatTemplate(source: source, limits: limits).render(variables: variables, now: Self.now, timeZone: Self.utc)
    }

    /// The error loading or rendering `source` throws (nil when it renders).
    func failure(_ source: String, _ variables: [String: JinjaValue] = [:], limits: ChatTemplate.Limits = .init()) -> ChatTemplateError? {
        do {
            _ = try ChatTemplate(source: source, limits: limits).render(variables: variables, now: Self.now, timeZone: Self.utc)
            return nil
        } catch {
            return error
        }
    }

    @Test func casesMatchTransformersJinja() throws {
        let text = try String(contentsOfFile: Fixtures.path("chat-templates", "jinja-cases.json"), encoding: .utf8)
        guard case let .object(root) = try JinjaValue(json: text), case let .array(cases)? = root["cases"] else {
            Issue.record("unexpected jinja-cases.json layout")
            return
        }
        #expect(cases.count > 150)
        for raw in cases {
            guard case let .object(c) = raw, case let .string(name)? = c["name"], case let .string(source)? = c["template"],
                case let .object(variables)? = c["variables"]
            else {
                Issue.record("unexpected case layout")
                continue
            }
            let vars = Dictionary(uniqueKeysWithValues: variables.entries.map { ($0.key, $0.value) })
            if case let .string(expected)? = c["expected"] {
                #expect(try render(source, vars) == expected, "\(name)")
            } else if let error = failure(source, vars) {
                if case let .object(e)? = c["error"], e["kind"] == "raised", case let .string(message)? = e["message"] {
                    #expect(error == .raised(message, line: 1), "\(name)")
                }
            } else {
                Issue.record("\(name): expected an error")
            }
        }
    }

    // MARK: - Errors

    @Test func syntaxErrorsHaveLines() {
        #expect(failure("ok\n{% if x %}\nno end") == .syntax("unexpected end of template, expected 'elif' or 'else' or 'endif'", line: 3))
        #expect(failure("{{ x") == .syntax("unexpected end of template inside a tag", line: 1))
        #expect(failure("a\n\n{{ 'unterminated }}") == .syntax("unterminated string literal", line: 3))
        #expect(failure("{# never closed") == .syntax("missing end of comment tag", line: 1))
        #expect(failure("{% endfor %}") == .syntax("unexpected 'endfor'", line: 1))
        #expect(failure("{% frobnicate %}") == .syntax("unknown tag 'frobnicate'", line: 1))
        #expect(failure("{{ (1 }}") == .syntax("unexpected '}', expected ')'", line: 1))
        #expect(failure("{{ 1 + }}") == .syntax("unexpected end of print statement", line: 1))
        #expect(failure("{% break %}") == .syntax("'break' outside of a for loop", line: 1))
        #expect(failure("{% set true = 1 %}") == .syntax("cannot assign to 'true'", line: 1))
        #expect(failure("{{ x is defined is defined }}") == .syntax("you cannot chain multiple tests with 'is'", line: 1))
        #expect(failure("{{ '\\xZZ' }}") == .syntax("truncated \\x escape", line: 1))
    }

    @Test func unsupportedFeaturesAreNamed() {
        let error = failure("line one\nline two\n{{ text | wordwrap(20) }}")
        #expect(error == .unsupported("unsupported filter 'wordwrap'", line: 3))
        #expect(error?.description == "unsupported filter 'wordwrap' at line 3")
        #expect(failure("{{ x is nosuchtest }}") == .unsupported("unsupported test 'nosuchtest'", line: 1))
        #expect(failure("{% for x in xs recursive %}{% endfor %}") == .unsupported("unsupported recursive for loop", line: 1))
        #expect(failure("{{ '%s' % 'x' }}") == .unsupported("unsupported %-formatting of a string", line: 1))
        #expect(failure("{{ lipsum() }}") == .unsupported("unsupported function 'lipsum'", line: 1))
        // Jinja only fails on these when they run: in an `if` that is not taken they are harmless.
        #expect(failure("{% if x %}\n{{ y|wordwrap }}{% include 'a' %}\n{% endif %}") == nil)
        #expect(failure("{% if true %}\n{% include 'a' %}\n{% endif %}") == .unsupported("unsupported tag 'include'", line: 2))
        #expect(failure("{% if true %}\n\n{{ y|wordwrap }}{% endif %}") == .unsupported("unsupported filter 'wordwrap'", line: 3))
    }

    @Test func runtimeErrorsHaveTheStatementsLine() {
        #expect(failure("{% for m in messages %}\n{{ m.content.text }}\n{% endfor %}", ["messages": [["role": "user"]]])
            == .runtime("'dict object' has no attribute 'content'", line: 2))
        #expect(failure("\n{{ 1 // 0 }}") == .runtime("integer division or modulo by zero", line: 2))
        #expect(failure("{{ 2 ** 100 }}") == .runtime("integer overflow in **", line: 1))
        #expect(failure("{{ x.y }}") == .runtime("'x' is undefined", line: 1))
        #expect(failure("{{ [] < 1 }}") == .runtime("'<' not supported between instances of 'list' and 'int'", line: 1))
        #expect(failure("{{ {[1]: 2} }}") == .runtime("unhashable type: 'list'", line: 1))
        #expect(failure("{% set ns = namespace() %}{% set ns._x = 1 %}")
            == .runtime("chat templates cannot store underscore-prefixed attributes on a namespace, but got '_x'", line: 1))
        #expect(failure("{{ raise_exception('No system messages, please.') }}") == .raised("No system messages, please.", line: 1))
    }

    // MARK: - Limits on hostile templates

    @Test func loopsStopAtTheStepBudget() {
        var limits = ChatTemplate.Limits()
        limits.maxSteps = 200_000
        let nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        #expect(failure(nested, limits: limits) == .limitExceeded("the template ran more than 200000 steps", line: 1))
        // Every range call is paid for in proportion to its length, iterated or not.
        let ranges = "{% for i in range(100000) %}{% set r = range(100000) %}{% endfor %}"
        #expect(failure(ranges, limits: limits) == .limitExceeded("the template ran more than 200000 steps", line: 1))
    }

    @Test func outputAndValuesAreCapped() {
        var limits = ChatTemplate.Limits()
        limits.maxOutputBytes = 1 << 16
        #expect(failure("{% for i in range(10000) %}0123456789{% endfor %}", limits: limits)
            == .limitExceeded("the output grew past 65536 bytes", line: 1))
        let doubling = "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        #expect(failure(doubling, limits: limits) == .limitExceeded("a value grew past 65536 bytes", line: 1))
        #expect(failure("{{ 'a' * 1000000000000 }}", limits: limits) == .limitExceeded("a value grew past 65536 bytes", line: 1))
        #expect(failure("{{ [1] * (2 ** 62) }}", limits: limits) == .limitExceeded("a value grew past 65536 bytes", line: 1))
        #expect(failure("{{ 'x'|indent(1000000000) }}", limits: limits) == .limitExceeded("a value grew past 65536 bytes", line: 1))
    }

    @Test func recursionAndNestingAreBounded() {
        #expect(failure("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
            == .limitExceeded("macro calls nested more than 50 deep", line: 1))
        let parentheses = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(failure("{{ \(parentheses) }}") == .limitExceeded("template nested more than 64 levels deep", line: 1))
        let blocks = String(repeating: "{% if true %}", count: 500) + String(repeating: "{% endif %}", count: 500)
        #expect(failure(blocks) == .limitExceeded("template nested more than 64 levels deep", line: 1))
        #expect(failure("{{ " + String(repeating: "not ", count: 5000) + "x }}")
            == .limitExceeded("template nested more than 64 levels deep", line: 1))
        let deepValue = "{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}"
        #expect(failure(deepValue) == .limitExceeded("a value nested more than 200 levels deep", line: 1))
    }

    @Test func hostileStringsStayFast() throws {
        // A naive substring search would compare ~10^11 characters here.
        let search = "{% set a = 'a' * 1000000 %}{% set b = 'a' * 500000 ~ 'b' %}{{ b in a }} {{ a.count(b) }} {{ a.find(b) }} {{ a.split(b)|length }}"
        #expect(try render(search) == "False 0 -1 1")
        #expect(try render("{{ ('' * 1000000000000)|length }} {{ ([] * 1000000000000)|length }}") == "0 0")
        var limits = ChatTemplate.Limits()
        limits.maxOutputBytes = 1 << 20
        #expect(failure("{{ [[[[1]]]]|tojson(indent='x' * 500000) }}", limits: limits)
            == .limitExceeded("a value grew past 1048576 bytes", line: 1))
    }

    @Test func substringSearch() {
        func s(_ x: String) -> [Unicode.Scalar] { Array(x.unicodeScalars) }
        #expect(PythonText.find(s("aabaabaaab"), s("aaab")) == 6)
        #expect(PythonText.find(s("abcabc"), s("bc"), from: 2) == 4)
        #expect(PythonText.find(s("abc"), s(""), from: 3) == 3)
        #expect(PythonText.find(s("abc"), s("abcd")) == nil)
        #expect(PythonText.rfind(s("abcabc"), s("bc")) == 4)
        #expect(PythonText.rfind(s("abc"), s("")) == 3)
        #expect(PythonText.count("aaaa", "aa") == 2)
        #expect(PythonText.replace("aaaa", "aa", "b") == "bb")
        #expect(PythonText.split("a--b----c", "--") == ["a", "b", "", "c"])
        #expect(PythonText.rsplit("  a b  c  ", nil, maxSplit: 1) == ["  a b", "c"])
        #expect(PythonText.split("  a b  c  ", nil, maxSplit: 1) == ["a", "b  c  "])
    }

    @Test func selfReferencingNamespacePrints() throws {
        #expect(try render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}") == "<Namespace {'a': 1, 'me': <Namespace ...>}>")
    }

    // MARK: - Pieces

    @Test func floatsPrintAsPython() {
        let cases: [(Double, String)] = [
            (1, "1.0"), (0.1, "0.1"), (-2.5, "-2.5"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1e-4, "0.0001"),
            (1e-5, "1e-05"), (123456789.125, "123456789.125"), (.leastNonzeroMagnitude, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"), (.infinity, "inf"), (.nan, "nan"), (2.5e-7, "2.5e-07"), (1234.5e20, "1.2345e+23"),
        ]
        for (value, text) in cases { #expect(PythonText.floatRepr(value) == text, "\(value)") }
    }

    @Test func stringsReprAsPython() {
        #expect(PythonText.stringRepr("it's") == #""it's""#)
        #expect(PythonText.stringRepr(#"both ' and ""#) == #"'both \' and "'"#)
        #expect(PythonText.stringRepr("tab\t\u{1}\u{7F}é\u{200B}\u{10FFFF}🌍") == #"'tab\t\x01\x7fé\u200b\U0010ffff🌍'"#)
    }

    @Test func codePointsNotGraphemes() throws {
        // "é" as e + combining accent is two code points in Python, one Character in Swift.
        #expect(try render("{{ s|length }} {{ s[0] }} {{ s[::-1]|length }} {{ 'e' in s }} {{ s == t }}", ["s": "e\u{301}", "t": "\u{E9}"])
            == "2 e 2 True False")
    }

    @Test func jsonKeepsKeyOrder() throws {
        let value = try JinjaValue(json: #"{"z": 1, "a": [true, null, 2.5, -3, "\u00e9\ud83c\udf0d"], "m": {}}"#)
        guard case let .object(o) = value else {
            Issue.record("not an object")
            return
        }
        #expect(o.keys == ["z", "a", "m"])
        #expect(o["a"] == [true, nil, 2.5, -3, "é🌍"])
        #expect(try render("{{ v|tojson }}", ["v": value]) == #"{"z": 1, "a": [true, null, 2.5, -3, "é🌍"], "m": {}}"#)
        #expect(throws: ChatTemplateError.self) { try JinjaValue(json: "{\"a\": }") }
        #expect(throws: ChatTemplateError.self) { try JinjaValue(json: "[1, 2") }
        #expect(throws: ChatTemplateError.self) { try JinjaValue(json: String(repeating: "[", count: 10_000)) }
    }

    @Test func objectsBehaveAsPythonDicts() {
        var o: JinjaObject = ["b": 1, "a": 2]
        o["b"] = 3
        o["c"] = 4
        #expect(o.keys == ["b", "a", "c"])
        o["a"] = nil
        #expect(o.keys == ["b", "c"] && o.count == 2)
        #expect(o == ["c": 4, "b": 3])
    }
}
