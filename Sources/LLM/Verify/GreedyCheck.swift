// Greedy decoding checked against a reference: for each case of a file that reference/real_model_greedy.py writes
// (transformers running a real model in float32), render the prompt with this model's tokenizer and chat
// template, compare its ids with the reference's, then decode greedily and compare every new token. Where the
// tokens part, the margin between our two best logits says whether it was a near tie (a difference of summation
// order) or a real disagreement.
import Foundation

public struct GreedyCase: Sendable {
    public var name: String
    /// The prompt ids match the reference's.
    public var promptMatches: Bool
    public var referenceTokens: Int
    /// New tokens equal to the reference's before the first difference (all of them when `passed`).
    public var matchingTokens: Int
    /// At the first difference: our best logit minus our second best.
    public var marginAtDivergence: Float?
    public var text: String
    /// Where the prompts part, when they do: the position and both sides' ids from there.
    public var promptDifference: String?
    public var passed: Bool { promptMatches && matchingTokens == referenceTokens && marginAtDivergence == nil }
}

public enum GreedyCheck {
    /// Runs every case of `referencePath` on `model`; `onCase` sees each result as it is done.
    public static func run(model: LoadedModel, referencePath: String, parallel: ParallelFor = .allCores,
                           onCase: (GreedyCase) -> Void = { _ in }) throws -> [GreedyCase] {
        let bytes = try readWholeFile(referencePath)
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let cases = json["cases"] as? [[String: Any]] else {
            throw FormatError.malformed(path: referencePath, reason: "expected {\"cases\": [...]}")
        }
        let casesPath = (referencePath as NSString).deletingLastPathComponent
        let inputs = try loadInputs(json: json, referencePath: referencePath, folder: casesPath)
        let generator = Generator(weights: model.weights, parallel: parallel)
        let stops = Set(model.endTokens)
        var results = [GreedyCase]()
        for c in cases {
            guard let name = c["name"] as? String, let want = (c["output_ids"] as? [NSNumber])?.map({ $0.int32Value }),
                  let wantPrompt = (c["prompt_ids"] as? [NSNumber])?.map({ $0.int32Value }) else {
                throw FormatError.malformed(path: referencePath, reason: "a case lacks name, prompt_ids or output_ids")
            }
            guard let input = inputs[name] else {
                throw FormatError.malformed(path: referencePath, reason: "case \(name) is not in the cases file")
            }
            let prompt = try self.prompt(input, model: model)
            var result = GreedyCase(name: name, promptMatches: prompt == wantPrompt, referenceTokens: want.count,
                                    matchingTokens: 0, marginAtDivergence: nil, text: "")
            if prompt != wantPrompt {
                let at = (0..<min(prompt.count, wantPrompt.count)).first { prompt[$0] != wantPrompt[$0] } ?? min(prompt.count, wantPrompt.count)
                result.promptDifference = "from token \(at): ours \(Array(prompt[at...].prefix(8))), reference \(Array(wantPrompt[at...].prefix(8)))"
            }
            // Generate from the reference's prompt, so that a tokenizer difference does not hide a model one.
            generator.reset()
            try generator.forward(wantPrompt[...])
            var out = [Int32]()
            for k in 0..<want.count {
                let (best, margin) = generator.withLogits { top2($0, count: model.weights.config.vocabSize) }
                if best != want[k] {
                    result.marginAtDivergence = margin
                    break
                }
                out.append(best)
                result.matchingTokens = k + 1
                if stops.contains(best) || k == want.count - 1 { break }
                try generator.forward([best][...])
            }
            result.text = (try? model.tokenizer.decodeString(out.filter { !stops.contains($0) })) ?? ""
            onCase(result)
            results.append(result)
        }
        return results
    }

    /// The prompt of one case, as `llm chat` / `llm sample` would build it.
    static func prompt(_ input: [String: Any], model: LoadedModel) throws -> [Int32] {
        if let messages = input["messages"] as? [[String: String]] {
            guard let format = model.chatFormat else {
                throw FormatError.mismatch(path: model.weightsPath, reason: "the model has no chat format")
            }
            let conversation = Conversation(messages: try messages.map { m in
                guard let role = m["role"].flatMap(Conversation.Role.init(rawValue:)), let content = m["content"] else {
                    throw FormatError.malformed(path: model.weightsPath, reason: "a message lacks role or content")
                }
                return Conversation.Message(role: role, content: content)
            })
            return try format.renderForCompletion(conversation)
        }
        let text = input["text"] as? String ?? ""
        let t = model.tokenizer
        return (t.addBOS ? [t.bos].compactMap { $0 } : []) + t.encode(text, allowSpecial: true)
    }

    /// The cases' inputs (messages or text) by name, from the cases file the reference names (`cases_file`,
    /// beside it), else `<stem>-cases.json` for a `<stem>-greedy.json`.
    static func loadInputs(json: [String: Any], referencePath: String, folder: String) throws -> [String: [String: Any]] {
        let stem = ((referencePath as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = json["cases_file"] as? String ?? stem.replacingOccurrences(of: "-greedy", with: "-cases") + ".json"
        let path = (folder as NSString).appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = obj["cases"] as? [[String: Any]] else {
            throw FormatError.unreadable(path: path, reason: "the cases file for \(referencePath) is missing or malformed")
        }
        return Dictionary(list.compactMap { c in (c["name"] as? String).map { ($0, c) } }, uniquingKeysWith: { a, _ in a })
    }

    /// The largest logit's index and its lead over the second largest.
    static func top2(_ logits: UnsafeBufferPointer<Float>, count: Int) -> (Int32, Float) {
        var best = 0, second = -Float.infinity
        for i in 1..<min(count, logits.count) {
            if logits[i] > logits[best] {
                second = logits[best]
                best = i
            } else if logits[i] > second {
                second = logits[i]
            }
        }
        return (Int32(best), logits[best] - second)
    }
}
