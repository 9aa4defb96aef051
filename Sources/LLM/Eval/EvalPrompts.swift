// How an evaluation example becomes text and tokens: nanochat's CORE prompts (few-shot examples separated by a
// blank line, then the question; the continuation found as the options' common token prefix or suffix) and its
// ChatCORE multiple-choice question. reference/eval_reference.py renders the same prompts independently, so the
// rules here are spelled out exactly.
import Foundation

enum EvalPrompts {
    /// The few-shot examples for example `index` of `count`: `k` distinct other indices, drawn by a partial
    /// Fisher–Yates shuffle of the other indices (in order) with SplitMix64 seeded with 1234 + index:
    /// for j in 0..<k, swap position j with j + next() mod (count - 1 - j).
    static func fewshotIndices(for index: Int, count: Int, k: Int) -> [Int] {
        guard k > 0 else { return [] }
        var others = Array(0..<count)
        others.remove(at: index)
        var rng = SplitMix64(seed: 1234 &+ UInt64(index))
        for j in 0..<k {
            let r = j + Int(rng.next() % UInt64(others.count - j))
            others.swapAt(j, r)
        }
        return Array(others[0..<k])
    }

    /// The texts whose tokens are scored, one per option (multiple choice, schema) or, for language modelling,
    /// two: the prompt without the continuation (trimmed) and with it.
    static func texts(for e: EvalTask.Example, shots: [EvalTask.Example], task: EvalTask) -> [String] {
        let d = task.delimiter
        switch task.kind {
        case .multipleChoice:
            let prefix = shots.map { $0.query! + d + $0.choices![$0.gold!] + "\n\n" }.joined()
            return e.choices!.map { prefix + e.query! + d + $0 }
        case .schema:
            let prefix = shots.map { $0.contextOptions![$0.gold!] + d + $0.continuation! + "\n\n" }.joined()
            return e.contextOptions!.map { prefix + $0 + d + e.continuation! }
        case .languageModeling:
            let prefix = shots.map { trim($0.context!) + d + $0.continuation! + "\n\n" }.joined()
            let without = prefix + trim(e.context!) + d
            return [trim(without), without + e.continuation!]
        case .chatChoice, .chatAnswer:
            preconditionFailure("chat tasks are rendered through the chat format")
        }
    }

    /// Python's str.strip(): whitespace off both ends.
    static func trim(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// The token sequences of an example and the span [start, end) of each that is scored: the tokens after
    /// the options' common prefix (multiple choice), the options' common suffix (schema), or what the
    /// continuation adds (language modelling). `first` (the model's start-of-document token) goes before each.
    /// A span starts at 1 or later (a token must come before it) and is never empty. Sequences longer than
    /// `maxLength` lose tokens from the front.
    static func sequences(texts: [String], kind: EvalTask.Kind, tokenizer: Tokenizer, first: Int32?,
                          maxLength: Int) -> [(tokens: [Int32], start: Int, end: Int)] {
        let head = first.map { [$0] } ?? []
        let encoded = texts.map { head + tokenizer.encode($0) }
        var spans = [(tokens: [Int32], start: Int, end: Int)]()
        switch kind {
        case .multipleChoice:
            let shortest = encoded.map(\.count).min()!
            let start = min(commonLength(encoded, fromEnd: false), shortest - 1)
            spans = encoded.map { ($0, start, $0.count) }
        case .schema:
            let shortest = encoded.map(\.count).min()!
            let suffix = max(1, min(commonLength(encoded, fromEnd: true), shortest - 1))
            spans = encoded.map { ($0, $0.count - suffix, $0.count) }
        case .languageModeling:
            let with = encoded[1]
            let start = min(commonLength([encoded[0], with], fromEnd: false), with.count - 1)
            spans = [(with, start, with.count)]
        case .chatChoice, .chatAnswer:
            preconditionFailure("chat tasks are rendered through the chat format")
        }
        return spans.map { s in
            var (tokens, start, end) = s
            if tokens.count > maxLength {
                let crop = tokens.count - maxLength
                tokens.removeFirst(crop)
                start -= crop
                end -= crop
            }
            return (tokens, max(1, min(start, end - 1)), end)
        }
    }

    /// The length of the longest prefix (or suffix) all sequences share.
    static func commonLength(_ sequences: [[Int32]], fromEnd: Bool) -> Int {
        let shortest = sequences.map(\.count).min() ?? 0
        let first = sequences[0]
        for i in 0..<shortest {
            let token = fromEnd ? first[first.count - 1 - i] : first[i]
            for s in sequences.dropFirst() where (fromEnd ? s[s.count - 1 - i] : s[i]) != token { return i }
        }
        return shortest
    }

    /// The letters of a chat_choice question's options: A, B, C, …
    static func letters(_ count: Int) -> [String] {
        (0..<count).map { String(UnicodeScalar(UInt8(65 + $0))) }
    }

    /// nanochat's multiple-choice question for a chat model: each choice followed by "=" and its letter (a small
    /// model binds the letter better after the choice), and the letter asked for alone, with no space before it.
    static func chatQuestion(_ question: String, choices: [String]) -> String {
        var text = "Multiple Choice question: \(question)\n"
        for (letter, choice) in zip(letters(choices.count), choices) { text += "- \(choice)=\(letter)\n" }
        return text + "\nRespond only with the letter of the correct answer."
    }

    /// The answer in a chat_answer reply: the first number after the last "####" (GSM8K's marker), else the
    /// last number in the reply; a number is `-?[0-9][0-9,]*(\.[0-9]+)?` with its commas dropped. nil when
    /// there is none.
    static func extractAnswer(_ reply: String) -> String? {
        if let marker = reply.range(of: "####", options: .backwards) {
            return numbers(in: String(reply[marker.upperBound...])).first
        }
        return numbers(in: reply).last
    }

    /// Compares an extracted answer with the expected one: equal as text, or as numbers ("5.0" and "5").
    static func answersMatch(_ found: String, _ expected: String) -> Bool {
        let e = expected.replacingOccurrences(of: ",", with: "").trimmingCharacters(in: .whitespaces)
        if found == e { return true }
        if let a = Double(found), let b = Double(e) { return a == b }
        return false
    }

    private static let number = try! NSRegularExpression(pattern: "-?[0-9][0-9,]*(?:\\.[0-9]+)?")

    private static func numbers(in text: String) -> [String] {
        let matches = number.matches(in: text, range: NSRange(text.startIndex..., in: text))
        return matches.compactMap { Range($0.range, in: text).map { text[$0].replacingOccurrences(of: ",", with: "") } }
    }
}
