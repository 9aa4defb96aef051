// SFT of a model with its own chat template: the template's rendering supervises the assistant's turns only, and
// a run started from a Hugging Face folder or GGUF file keeps the template and the tokenizer, resumes, and loads
// for chat with the same format.
import Foundation
import Testing
@testable import LLM

@Suite struct TemplateSFTTests {
    /// A small byte-level tokenizer with ChatML's tokens (<|endoftext|>, <|im_start|>, <|im_end|>).
    static func tokenizer() throws -> Tokenizer {
        try Tokenizer.loadHuggingFace(folder: Fixtures.path("tokenizers", "qwen2-style"))
    }

    static let chatML = ChatTemplate.builtin("chatml")!

    static func chatMLFormat(_ tokenizer: Tokenizer) -> TemplateChatFormat {
        TemplateChatFormat(template: chatML, tokenizer: tokenizer, origin: "built-in chatml", eos: [])
    }

    static let conversation = Conversation(messages: [
        .init(role: .system, content: "Be brief."),
        .init(role: .user, content: "What is two plus two?"),
        .init(role: .assistant, content: "Four."),
        .init(role: .user, content: "And three plus three?"),
        .init(role: .assistant, content: "It is six."),
    ])

    @Test func templateRenderingSupervisesTheAssistantTurnsOnly() throws {
        let tokenizer = try Self.tokenizer()
        let format = Self.chatMLFormat(tokenizer)
        let (ids, mask) = try format.render(Self.conversation, maxTokens: .max)
        #expect(ids.count == mask.count)
        // The whole rendering is the template's text.
        let text = try Self.chatML.render(messages: Self.conversation.messages, addGenerationPrompt: false,
                                          bosToken: format.bosText, eosToken: format.eosText)
        #expect(try format.decode(ids) == text)
        // The supervised runs of tokens are the assistant's replies, each with ChatML's end of turn.
        var spans = [[Int32]](), current = [Int32]()
        for (id, supervised) in zip(ids, mask) {
            if supervised { current.append(id) } else if !current.isEmpty { spans.append(current); current = [] }
        }
        if !current.isEmpty { spans.append(current) }
        #expect(try spans.map { try format.decode($0) } == ["Four.<|im_end|>\n", "It is six.<|im_end|>\n"])
        // The prompt for a reply is the rendering up to the assistant's turn.
        let prompt = try format.renderForCompletion(Conversation(messages: Array(Self.conversation.messages.prefix(2))))
        #expect(try format.decode(prompt).hasSuffix("What is two plus two?<|im_end|>\n<|im_start|>assistant\n"))
        #expect(format.stopTokens.contains(tokenizer.specialToken("<|im_end|>")!))
    }

    /// A tiny random Llama whose vocabulary holds the tokenizer's, written as a Hugging Face folder (with the
    /// tokenizer files and ChatML as chat_template.jinja) or as a GGUF file with the template in its metadata.
    static func writeModel(_ kind: String, in dir: String) throws -> String {
        let tokenizer = try Self.tokenizer()
        let c = try ModelPreset.llama(layers: 2, heads: 2, channels: 16, kvHeads: 1, vocabSize: 832, maxSeqLen: 128)
        let weights = ModelWeights.random(config: c, seed: 5)
        if kind == "gguf" {
            let path = dir + "/model.gguf"
            try GGUFModel.write(weights, tokenizer: tokenizer, chatTemplate: Self.chatML.source, name: "tiny",
                                type: .f32, to: path)
            return path
        }
        let folder = dir + "/hf"
        try HuggingFaceFolder.write(weights, to: folder)
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tokenizers", "qwen2-style/" + name),
                                             toPath: folder + "/" + name)
        }
        try writeBytes(Array(Self.chatML.source.utf8), folder + "/chat_template.jinja")
        return folder
    }

    @Test(arguments: ["hf", "gguf"])
    func fineTuningAChatModelKeepsItsTemplateAndTokenizer(kind: String) throws {
        try withTemporaryDirectory { dir in
            let model = try Self.writeModel(kind, in: dir)
            let data = dir + "/conv.jsonl"
            try Conversation.writeJSONL([Self.conversation] + SyntheticConversations.generate(count: 12, seed: 3), to: data)
            let original = try LoadedModel.load(model)
            let format = try #require(original.chatFormat as? TemplateChatFormat)

            var t = TrainingConfig(trainShards: "", valShards: nil, tokenizer: "")
            t.batch = 1
            t.steps = 3
            t.warmupSteps = 0
            t.evalEvery = 0
            t.sampleEvery = 1
            t.sampleTokens = 4
            t.checkpointEvery = 1
            var job = NewSFTRun(runDirectory: dir + "/run", initFrom: model, tokenizer: nil, data: data, valData: nil,
                                training: t)
            job.valFraction = 0.1
            job.seq = 48
            var messages = [String]()
            let trainer = try job.start(parallel: ParallelFor(threads: 1)) { messages.append($0) }
            // No vocabulary growth: the template's tokens are the model's own.
            #expect(trainer.config.model.vocabSize == 832)
            #expect(!messages.contains { $0.contains("grew the vocabulary") })
            #expect(trainer.config.training.tokenizer == "tokenizer.gguf")
            #expect(trainer.config.training.chatTemplate == .init(path: "chat_template.jinja", eos: []))
            #expect(try readBytes(dir + "/run/chat_template.jinja") == Array(Self.chatML.source.utf8))
            var samples = [String]()
            try trainer.train(stopAfter: 2) { event in
                if case let .sample(_, text) = event { samples.append(text) }
            }
            #expect(samples.count == 2 && samples.allSatisfy { $0.hasPrefix("user: ") && $0.contains("\nassistant: ") })

            // Resumed, it rebuilds the same tokenizer and format and finishes.
            let resumed = try Trainer.resume(run: RunDirectory(dir + "/run"), parallel: ParallelFor(threads: 1))
            #expect(resumed.step == 2)
            try resumed.train()
            #expect(resumed.step == 3)

            // The run loads for chat in the model's template, rendering as the original does.
            let loaded = try LoadedModel.load(dir + "/run")
            let runFormat = try #require(loaded.chatFormat as? TemplateChatFormat)
            let prompt = Conversation(messages: Array(Self.conversation.messages.prefix(4)))
            #expect(try runFormat.renderForCompletion(prompt) == (try format.renderForCompletion(prompt)))
            #expect(try runFormat.render(Self.conversation, maxTokens: .max).ids
                    == (try format.render(Self.conversation, maxTokens: .max).ids))
            #expect(try runFormat.render(Self.conversation, maxTokens: .max).mask
                    == (try format.render(Self.conversation, maxTokens: .max).mask))
            #expect(Set(runFormat.stopTokens) == Set(format.stopTokens))
            #expect(loaded.tokenizer.vocabSize == original.tokenizer.vocabSize)
        }
    }
}
