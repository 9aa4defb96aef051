// The chat format, nanochat's: the single place where a conversation becomes tokens, for training (with the
// loss mask) and for generation. Everything that trains on or talks to a chat model renders through here.
//
//   <|bos|> <|user_start|> …user… <|user_end|> <|assistant_start|> …assistant… <|assistant_end|> <|user_start|> …
//
// Supervised (mask true): the assistant's text tokens and its <|assistant_end|>, so the model learns to answer
// and to stop; never <|assistant_start|> (the renderer supplies it) nor anything the user wrote. An assistant's
// calculator call, <|python_start|> expression <|python_end|>, is supervised (the model learns to call);
// the call's output, <|output_start|> result <|output_end|>, is not (at inference the engine writes it).
import Foundation

/// The ids of the chat special tokens for one tokenizer.
///
/// The rule (`init(tokenizer:)`): each of nanochat's nine names (`BPETrainer.chatSpecialTokens`) that the
/// tokenizer has as a special token keeps its id, so a tokenizer trained with those specials uses its own.
/// `<|bos|>`, if missing, is the tokenizer's `<|endoftext|>`. Every name still missing takes the next id past
/// the tokenizer's vocabulary, in nanochat's order: for GPT-2 (only `<|endoftext|>` = 50256), `<|bos|>` is
/// 50256 and `<|user_start|>` … `<|output_end|>` are 50257 … 50264. Those ids fall in the model's padded
/// vocabulary rows, so the model needs `vocabSize >= requiredVocabSize` (50265 for GPT-2; its usual padded
/// 50304 is enough). The tokenizer itself never produces or decodes them; `ChatRenderer.decode` does.
public struct ChatTokens: Sendable, Equatable {
    public var bos: Int32
    public var userStart: Int32
    public var userEnd: Int32
    public var assistantStart: Int32
    public var assistantEnd: Int32
    public var pythonStart: Int32
    public var pythonEnd: Int32
    public var outputStart: Int32
    public var outputEnd: Int32
    /// The smallest model vocabulary that holds every id above and the tokenizer's own.
    public var requiredVocabSize: Int

    public init(tokenizer: Tokenizer) {
        var next = Int32(tokenizer.vocabSize)
        var ids = [Int32]()
        for name in BPETrainer.chatSpecialTokens {
            if let id = tokenizer.specialToken(name) ?? (name == "<|bos|>" ? tokenizer.specialToken("<|endoftext|>") : nil) {
                ids.append(id)
            } else {
                ids.append(next)
                next += 1
            }
        }
        bos = ids[0]; userStart = ids[1]; userEnd = ids[2]; assistantStart = ids[3]; assistantEnd = ids[4]
        pythonStart = ids[5]; pythonEnd = ids[6]; outputStart = ids[7]; outputEnd = ids[8]
        requiredVocabSize = max(tokenizer.vocabSize, Int(ids.max()!) + 1)
    }

    /// The nine ids in nanochat's order (`BPETrainer.chatSpecialTokens`).
    public var all: [Int32] {
        [bos, userStart, userEnd, assistantStart, assistantEnd, pythonStart, pythonEnd, outputStart, outputEnd]
    }

    /// The chat name of `id` ("<|user_start|>", …), or nil if it is not one of these tokens.
    public func name(of id: Int32) -> String? {
        all.firstIndex(of: id).map { BPETrainer.chatSpecialTokens[$0] }
    }
}

/// How one chat model's conversations become tokens: nanochat's own format (`ChatRenderer`, for models trained
/// here) or a model's Jinja chat template (`TemplateChatFormat`, for real models). Chat, serving, SFT and the
/// samples during training all go through this.
public protocol ChatFormat: Sendable {
    var tokenizer: Tokenizer { get }
    /// The ids of `conversation` and its loss mask (`mask[i]`: is `ids[i]` supervised: the assistant's turns),
    /// cut to the first `maxTokens`.
    func render(_ conversation: Conversation, maxTokens: Int) throws -> (ids: [Int32], mask: [Bool])
    /// The prompt for the assistant's next reply; the last message must be the user's.
    func renderForCompletion(_ conversation: Conversation) throws -> [Int32]
    /// The tokens that end the assistant's reply.
    var stopTokens: [Int32] { get }
    /// The text shown for a token that is not ordinary text (a chat or special token's name), nil for text.
    func specialName(of id: Int32) -> String?
    /// The input id that pads training rows.
    var paddingToken: Int32 { get }
    /// The smallest model vocabulary that holds every id this format uses.
    var requiredVocabSize: Int { get }
    /// The calculator tool, for a format with its tokens (nanochat's); nil for the others.
    var toolCalls: ToolCalls? { get }
}

extension ChatFormat {
    public var toolCalls: ToolCalls? { nil }

    /// Text for ids, special tokens shown by name; invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int32]) throws(TokenizerError) -> String {
        var bytes = [UInt8]()
        for id in ids {
            if let name = specialName(of: id) { bytes.append(contentsOf: name.utf8) } else { try tokenizer.appendBytes(of: id, to: &bytes) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Renders conversations in nanochat's chat format (see the top of this file).
public struct ChatRenderer: ChatFormat {
    public let tokenizer: Tokenizer
    public let tokens: ChatTokens
    /// The calculator, on nanochat's python and output tokens.
    public let toolCalls: ToolCalls?

    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
        tokens = ChatTokens(tokenizer: tokenizer)
        toolCalls = ToolCalls(tokens: tokens, tokenizer: tokenizer)
    }

    /// The ids of `conversation` and its loss mask (`mask[i]`: is `ids[i]` supervised).
    ///
    /// `<|bos|>`, then each message: a user's as `<|user_start|> text <|user_end|>`, an assistant's as
    /// `<|assistant_start|> parts <|assistant_end|>`, each part in order: text as it is, a calculator call as
    /// `<|python_start|> expression <|python_end|>`, its output as `<|output_start|> output <|output_end|>`
    /// (each part encoded on its own, as nanochat does). A system message first is merged into the message
    /// after it: its content, a blank line ("\n\n"), then that message's content. (Any other system message,
    /// which `validate()` rejects, is rendered like a user's; a user's message is its `content`.) Text is
    /// encoded with special tokens not allowed, so a user who types "<|user_end|>" gets those characters as
    /// text. `mask` is true exactly for the assistant's text and call tokens (the call's python tokens
    /// included) and its `<|assistant_end|>`; never for a call's output.
    ///
    /// Truncation: if the rendering is longer than `maxTokens`, the first `maxTokens` ids (and mask entries) are
    /// kept and the end is cut, so positions never shift and the conversation always starts at `<|bos|>`.
    public func render(_ conversation: Conversation, maxTokens: Int = .max) -> (ids: [Int32], mask: [Bool]) {
        precondition(maxTokens >= 0, "maxTokens must not be negative")
        var ids: [Int32] = [tokens.bos]
        var mask = [false]
        func add(_ new: [Int32], _ supervised: Bool) {
            ids.append(contentsOf: new)
            mask.append(contentsOf: repeatElement(supervised, count: new.count))
        }
        for m in Self.merged(conversation.messages) {
            if m.role == .assistant {
                add([tokens.assistantStart], false)
                for part in m.parts {
                    let text = tokenizer.encode(part.text, allowSpecial: false)
                    switch part.kind {
                    case .text: add(text, true)
                    case .python: add([tokens.pythonStart] + text + [tokens.pythonEnd], true)
                    case .pythonOutput: add([tokens.outputStart] + text + [tokens.outputEnd], false)
                    }
                }
                add([tokens.assistantEnd], true)
            } else {
                add([tokens.userStart], false)
                add(tokenizer.encode(m.content, allowSpecial: false), false)
                add([tokens.userEnd], false)
            }
        }
        if ids.count > maxTokens {
            ids.removeSubrange(maxTokens...)
            mask.removeSubrange(maxTokens...)
        }
        return (ids, mask)
    }

    /// The prompt for generating the assistant's next reply: `render(conversation).ids` then
    /// `<|assistant_start|>`, never truncated. The last message must be from the user (after a system
    /// prompt is merged into it).
    public func renderForCompletion(_ conversation: Conversation) throws(ChatFormatError) -> [Int32] {
        let last = Self.merged(conversation.messages).last
        guard last?.role == .user else { throw .completionNeedsUserLast(lastRole: last?.role) }
        return render(conversation).ids + [tokens.assistantStart]
    }

    /// <|assistant_end|>, and <|bos|> (a model that starts a new conversation has ended this one).
    public var stopTokens: [Int32] { [tokens.assistantEnd, tokens.bos] }

    /// The chat tokens' names (e.g. "<|assistant_end|>"), which the tokenizer may not know (GPT-2's).
    public func specialName(of id: Int32) -> String? { tokens.name(of: id) }

    public var paddingToken: Int32 { tokens.bos }

    public var requiredVocabSize: Int { tokens.requiredVocabSize }


    /// A training row from a rendering: `inputs = ids[0..<n-1]`, `targets[i] = mask[i+1] ? ids[i+1] : -1`
    /// (-1: ignored by the loss), cut to `length` if longer and padded to `length` with `<|bos|>` inputs and
    /// -1 targets.
    public func trainingRow(ids: [Int32], mask: [Bool], length: Int) -> (inputs: [Int32], targets: [Int32]) {
        Self.trainingRow(ids: ids, mask: mask, length: length, padding: tokens.bos)
    }

    /// `trainingRow` with the input padding id given.
    public static func trainingRow(ids: [Int32], mask: [Bool], length: Int, padding: Int32) -> (inputs: [Int32], targets: [Int32]) {
        precondition(ids.count == mask.count, "ids and mask differ in length: \(ids.count) and \(mask.count)")
        precondition(length >= 0, "length must not be negative")
        var inputs = [Int32](repeating: padding, count: length)
        var targets = [Int32](repeating: -1, count: length)
        for i in 0..<min(length, max(ids.count - 1, 0)) {
            inputs[i] = ids[i]
            targets[i] = mask[i + 1] ? ids[i + 1] : -1
        }
        return (inputs, targets)
    }

    /// The messages with a leading system message merged into the one after it (nanochat's rule).
    static func merged(_ messages: [Conversation.Message]) -> [Conversation.Message] {
        guard messages.count >= 2, messages[0].role == .system else { return messages }
        var rest = Array(messages.dropFirst())
        rest[0].content = messages[0].content + "\n\n" + rest[0].content
        return rest
    }
}
