// A real model's chat format: its own Jinja chat template (ChatTemplate), rendered to text as transformers'
// `apply_chat_template` does, then encoded with the model's tokenizer, special tokens in the text matched as
// special tokens (as Hugging Face tokenizers always do) and no BOS added (the template writes its own, which is
// why transformers encodes with add_special_tokens=False).
//
// For fine-tuning, each assistant turn is found by rendering the conversation up to it: the text after
// "everything before, plus the generation prompt" and up to the end of "everything up to this turn" is the
// assistant's, and only its tokens are supervised. Segments are encoded one by one, so a token never straddles
// a turn boundary.
import Foundation

/// Why a template-based chat format cannot render a conversation.
public enum TemplateChatFormatError: Error, CustomStringConvertible, Equatable {
    case completionNeedsUserLast
    case notPrefixStable(turn: Int)

    public var description: String {
        switch self {
        case .completionNeedsUserLast: "the last message must be the user's to generate a reply"
        case let .notPrefixStable(turn):
            "the chat template renders the conversation before message \(turn + 1) differently once that message follows, so the assistant's turns cannot be told apart for training"
        }
    }
}

public struct TemplateChatFormat: ChatFormat {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    /// Where the template came from, for messages: "the model's template", "built-in chatml", ….
    public let origin: String
    /// The text the template gets as `bos_token` and `eos_token`.
    public let bosText: String
    public let eosText: String
    public let stopTokens: [Int32]
    public let paddingToken: Int32
    private let specialNames: [Int32: String]

    /// The names of end-of-turn tokens that stop a reply in the common templates, when the vocabulary has them.
    public static let endOfTurnNames = ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>", "<|eom_id|>"]

    /// A format rendering `template` for `tokenizer`. The stops are `eos` (the model's end tokens) and every
    /// end-of-turn token the vocabulary has.
    public init(template: ChatTemplate, tokenizer: Tokenizer, origin: String, eos: [Int32]) {
        self.template = template
        self.tokenizer = tokenizer
        self.origin = origin
        var names = [Int32: String]()
        for (name, id) in tokenizer.specialTokens { names[id] = name }
        specialNames = names
        bosText = tokenizer.bos.flatMap { names[$0] ?? (try? tokenizer.decodeString([$0])) } ?? ""
        let firstEOS = eos.first ?? tokenizer.eos.first
        eosText = firstEOS.flatMap { names[$0] ?? (try? tokenizer.decodeString([$0])) } ?? ""
        var stops = eos + tokenizer.eos
        for name in Self.endOfTurnNames { if let id = tokenizer.specialTokens[name] { stops.append(id) } }
        var seen = Set<Int32>()
        stopTokens = stops.filter { seen.insert($0).inserted }
        paddingToken = tokenizer.eos.first ?? eos.first ?? 0
    }

    public var requiredVocabSize: Int { tokenizer.vocabSize }

    public func specialName(of id: Int32) -> String? { specialNames[id] }

    /// The template's text for `messages`.
    public func text(_ messages: [Conversation.Message], addGenerationPrompt: Bool) throws -> String {
        try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: bosText, eosToken: eosText)
    }

    private func encode(_ text: Substring) -> [Int32] { tokenizer.encode(String(text), allowSpecial: true) }

    public func renderForCompletion(_ conversation: Conversation) throws -> [Int32] {
        guard conversation.messages.last?.role == .user else { throw TemplateChatFormatError.completionNeedsUserLast }
        return encode(Substring(try text(conversation.messages, addGenerationPrompt: true)))
    }

    public func render(_ conversation: Conversation, maxTokens: Int) throws -> (ids: [Int32], mask: [Bool]) {
        let messages = conversation.messages
        let full = try text(messages, addGenerationPrompt: false)
        let bytes = Array(full.utf8)
        // Byte offsets where supervised spans start and end.
        var cuts: [(start: Int, end: Int)] = []
        for (i, m) in messages.enumerated() where m.role == .assistant {
            let before = Array(try text(Array(messages[..<i]), addGenerationPrompt: true).utf8)
            let through = Array(try text(Array(messages[...i]), addGenerationPrompt: false).utf8)
            guard bytes.starts(with: before), bytes.starts(with: through), through.count >= before.count else {
                throw TemplateChatFormatError.notPrefixStable(turn: i)
            }
            cuts.append((before.count, through.count))
        }
        var ids = [Int32](), mask = [Bool]()
        var at = 0
        func add(_ range: Range<Int>, _ supervised: Bool) {
            guard !range.isEmpty else { return }
            let piece = String(decoding: bytes[range], as: UTF8.self)
            let t = encode(Substring(piece))
            ids += t
            mask += repeatElement(supervised, count: t.count)
        }
        for cut in cuts where cut.start >= at {
            add(at..<cut.start, false)
            add(cut.start..<cut.end, true)
            at = cut.end
        }
        add(at..<bytes.count, false)
        if ids.count > maxTokens {
            ids.removeSubrange(maxTokens...)
            mask.removeSubrange(maxTokens...)
        }
        return (ids, mask)
    }
}
