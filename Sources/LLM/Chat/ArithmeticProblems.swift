// Arithmetic problems with answers a program can check: the questions of the synthetic tool-use
// conversations (`llm chat-data`), and, reused as they are, prompts whose replies can be scored for evaluation
// or rewarded in reinforcement learning (nanochat does both with GSM8K). Seeded: a seed gives the same problems.
import Foundation

/// One problem: the question a user asks, the calculator expression that solves it, and the answer.
public struct ArithmeticProblem: Sendable, Equatable {
    public var question: String
    /// What a model should pass to the calculator ("123*45").
    public var expression: String
    /// `Calculator.evaluate(expression)`.
    public var answer: CalculatorValue

    /// The answer as a person writes it: an integer-valued float without its ".0" ("24", "2.5").
    public var answerText: String {
        if case .float(let d) = answer, d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return answer.description
    }

    /// Whether `reply`'s last number (commas between digits allowed, "1,234") equals the answer, to a relative
    /// 1e-9: the check a GSM8K-style evaluation makes.
    public func isCorrect(_ reply: String) -> Bool {
        guard let given = ArithmeticProblems.lastNumber(in: reply) else { return false }
        let expected = answer.asDouble
        return abs(given - expected) <= 1e-9 * max(1, abs(expected))
    }
}

public enum ArithmeticProblems {
    /// `count` problems from `seed`: products, sums, differences, exact quotients and two-step expressions,
    /// as bare arithmetic and as short word problems. Every expression is one the calculator answers.
    public static func generate(count: Int, seed: UInt64) -> [ArithmeticProblem] {
        precondition(count >= 0, "count must not be negative")
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in problem(&rng) }
    }

    /// One problem drawn from `rng`.
    static func problem(_ rng: inout SplitMix64) -> ArithmeticProblem {
        func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
        func pick(_ options: [String]) -> String { options[Int(rng.next() % UInt64(options.count))] }
        let question: String, expression: String
        switch rng.next() % 8 {
        case 0:
            let a = number(12...999), b = number(12...999)
            question = pick(["What is \(a) times \(b)?", "What is \(a) * \(b)?", "Compute \(a) × \(b).",
                             "Multiply \(a) by \(b)."])
            expression = "\(a)*\(b)"
        case 1:
            let a = number(100...99_999), b = number(100...99_999)
            question = pick(["What is \(a) plus \(b)?", "What is \(a) + \(b)?", "Add \(a) and \(b)."])
            expression = "\(a)+\(b)"
        case 2:
            let a = number(100...99_999), b = number(100...99_999)
            question = pick(["What is \(a) minus \(b)?", "What is \(a) - \(b)?", "Subtract \(b) from \(a)."])
            expression = "\(a)-\(b)"
        case 3:
            let b = number(2...99), q = number(2...999)
            question = pick(["What is \(b * q) divided by \(b)?", "What is \(b * q) / \(b)?"])
            expression = "\(b * q)/\(b)"
        case 4:
            let a = number(3...60), b = number(3...250)
            let thing = pick(["apples", "books", "marbles", "stickers", "pencils"])
            question = "There are \(a) boxes with \(b) \(thing) in each. How many \(thing) are there in all?"
            expression = "\(a)*\(b)"
        case 5:
            let price = number(2...99), n = number(2...40)
            question = "A ticket costs $\(price). How much do \(n) tickets cost, in dollars?"
            expression = "\(price)*\(n)"
        case 6:
            let size = number(2...12), groups = number(2...40)
            question = "\(size * groups) students split into groups of \(size). How many groups are there?"
            expression = "\(size * groups)/\(size)"
        default:
            let a = number(2...99), b = number(2...99), c = number(2...30)
            question = pick(["What is (\(a) + \(b)) times \(c)?", "What is (\(a) + \(b)) * \(c)?"])
            expression = "(\(a)+\(b))*\(c)"
        }
        // Every expression above is small and well formed, so the calculator always answers it.
        let answer = try! Calculator.evaluate(expression).get()
        return ArithmeticProblem(question: question, expression: expression, answer: answer)
    }

    /// The last number in `text` ("-3", "1,234", "2.5"), nil if there is none.
    static func lastNumber(in text: String) -> Double? {
        let pattern = /-?\d+(?:,\d{3})*(?:\.\d+)?/
        guard let match = text.matches(of: pattern).last else { return nil }
        return Double(match.output.replacingOccurrences(of: ",", with: ""))
    }
}
