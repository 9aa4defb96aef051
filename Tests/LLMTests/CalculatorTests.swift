// The chat models' calculator: Python's answers on a table Python's eval made (reference/
// make_calculator_cases.py), Python's way of printing floats, the documented limits and departures, and that
// no input, however hostile, traps or takes long.
import Foundation
import Testing
@testable import LLM

@Suite struct CalculatorTests {
    private struct Case: Decodable {
        var expression: String
        var output: String?
    }

    @Test func agreesWithPythonsEvalOnTheTable() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("calculator", "cases.jsonl")))
        let lines = data.split(separator: 0x0A)
        #expect(lines.count > 1500)
        var answered = 0
        for line in lines {
            let c = try JSONDecoder().decode(Case.self, from: line)
            let got = Calculator.output(for: c.expression)
            #expect(got == c.output, "\(c.expression): \(String(describing: Calculator.evaluate(c.expression)))")
            if got != nil { answered += 1 }
        }
        #expect(answered > 1400)
    }

    @Test func printsLikePython() {
        let cases: [(String, String)] = [
            ("7", "7"), ("-7", "-7"), ("5/2", "2.5"), ("6/2", "3.0"), ("0.1+0.2", "0.30000000000000004"),
            ("1/3", "0.3333333333333333"), ("123*45", "5535"), ("0.00001", "1e-05"), ("0.0001", "0.0001"),
            ("10000000000000000.0", "1e+16"), ("1000000000000000.0", "1000000000000000.0"), ("2**-10", "0.0009765625"),
            ("1/1024/1024/1024/1024", "9.094947017729282e-13"), ("-0.0", "-0.0"), ("12/60", "0.2"), ("0.2*50", "10.0"),
        ]
        for (expression, printed) in cases { #expect(Calculator.output(for: expression) == printed, "\(expression)") }
        #expect(pythonRepr(1.5e300) == "1.5e+300" && pythonRepr(-2.5e-7) == "-2.5e-07" && pythonRepr(5e-324) == "5e-324")
        #expect(pythonRepr(123456789012345678) == "1.2345678901234568e+17" && pythonRepr(.infinity) == "inf")
    }

    @Test func pythonsIntegerAndFloatRules() {
        let cases: [(String, CalculatorValue)] = [
            ("-7//2", .int(-4)), ("7//-2", .int(-4)), ("-7%3", .int(2)), ("7%-3", .int(-2)), ("-7.5%2", .float(0.5)),
            ("-7.5//2", .float(-4)), ("-2**2", .int(-4)), ("(-2)**2", .int(4)), ("2**3**2", .int(512)),
            ("2**-1", .float(0.5)), ("0**0", .int(1)), ("--3", .int(3)), ("1,234*5", .int(6170)),
            ("'strawberry'.count('r')", .int(3)), ("\"banana\".count(\"an\")", .int(2)), ("'aaaa'.count('aa')", .int(2)),
            ("'abc'.count('')", .int(4)), ("'a,b'.count(',')", .int(1)), ("2 * 'hello world'.count('o') + 1", .int(5)),
            ("'naïve café'.count('é')", .int(1)), ("(-9223372036854775807-1)%-1", .int(0)), ("1**4000000000000000000", .int(1)),
            ("(-1)**4000000000000000001", .int(-1)), (" ( 1 +\t2 ) ", .int(3)),
        ]
        for (expression, value) in cases { #expect(Calculator.evaluate(expression) == .success(value), "\(expression)") }
    }

    @Test func errorsInsteadOfTraps() {
        let cases: [(String, CalculatorError)] = [
            ("1/0", .divisionByZero), ("1//0", .divisionByZero), ("1%0", .divisionByZero), ("1.5%0.0", .divisionByZero),
            ("0**-1", .divisionByZero), ("0.0**-2.5", .divisionByZero),
            ("2**63", .overflow), ("9223372036854775807+1", .overflow), ("3037000500*3037000500", .overflow),
            ("(-9223372036854775807-1)//-1", .overflow), ("-(-9223372036854775807-1)", .overflow),
            ("9223372036854775808", .overflow), ("10.0**400", .overflow), ("99999999999999999999.0**20", .overflow),
            ("2**99999999999999", .overflow), ("(-8)**0.5", .notReal), ("(-8.0)**(1/3)", .notReal),
            (String(repeating: "(", count: 40) + "1" + String(repeating: ")", count: 40), .tooDeep),
            (String(repeating: "-", count: 40) + "1", .tooDeep),
            (String(repeating: "1", count: 257), .tooLong(bytes: 257)),
        ]
        for (expression, error) in cases {
            #expect(Calculator.evaluate(expression) == .failure(error), "\(expression)")
        }
        // Not in the language (Python would take some of these; nanochat's calculator refuses them too).
        for expression in ["", " ", "1e5", "1_000", "007", "x", "abs(-1)", "__import__('os')", "'abc'", "'abc'.upper()",
                           "'abc'.count(a)", "'a\\'b'.count('b')", "1 2", "2(3)", "(1", "1)", "()", "1+", "*2", "2***3",
                           "1 if 1 else 2", "[1]", "1<2", "5..", "'abc.count('a')", "3j", "1=2", "\u{0}", "１+１"] {
            guard case .failure(.syntax) = Calculator.evaluate(expression) else {
                Issue.record("\(expression.debugDescription): \(Calculator.evaluate(expression))")
                continue
            }
        }
        #expect(Calculator.output(for: "1/0") == nil)
    }

    /// Random strings over the calculator's alphabet and a few hostile bytes: every one gives a value or an
    /// error, each quickly.
    @Test func randomInputsNeverTrapAndFinishQuickly() {
        var rng = SplitMix64(seed: 16)
        let alphabet = Array("0123456789012345678901234567890123456789+-*/%().,. **//''\"\"count.count(abc)e_x\t\u{0}é")
            .map(String.init) + ["**", "//", "(", ")", "9223372036854775807", "'strawberry'.count('r')", ".count("]
        let start = Date()
        var values = 0, slowest = 0.0
        for _ in 0..<20_000 {
            var s = ""
            for _ in 0..<Int(rng.next() % 40) { s += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            let t0 = Date()
            if case .success = Calculator.evaluate(s) { values += 1 }
            slowest = max(slowest, Date().timeIntervalSince(t0))
        }
        // Long inputs at the size limit, the worst case for counting and nesting.
        let long = [String(repeating: "9", count: 256), "'" + String(repeating: "a", count: 120) + "'.count('" + String(repeating: "a", count: 60) + "')",
                    String(repeating: "(", count: 32) + String(repeating: ")", count: 32),
                    String(repeating: "2**", count: 80) + "2", String(repeating: "1+", count: 127) + "1",
                    String(repeating: "-", count: 255) + "1"]
        for s in long {
            let t0 = Date()
            _ = Calculator.evaluate(s)
            slowest = max(slowest, Date().timeIntervalSince(t0))
        }
        #expect(values > 100, "some random inputs should be valid expressions (\(values))")
        #expect(slowest < 0.05, "the slowest input took \(slowest) s")
        #expect(Date().timeIntervalSince(start) < 20)
    }
}
