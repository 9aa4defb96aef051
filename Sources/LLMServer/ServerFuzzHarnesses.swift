// The server's fuzz harness (see LLM's FuzzHarness): a request body of /v1/chat/completions and /v1/completions,
// decoded and checked as the handlers do, then turned into a job, for a model in nanochat's chat format and one
// with a chat template. Every refusal is an `APIError` (a 400 naming the field), never a crash.
import Foundation
import LLM

public enum ServerFuzzHarnesses {
    public static let all: [FuzzHarness] = [
        FuzzHarness(name: "openai-request", maxLength: 16384, expecting: { $0 is APIError }) { data in
            let served = try models.get(), limits = ServerLimits()
            // A body is for one endpoint or the other: it is refused when both refuse it.
            var refusals = [any Error]()
            for model in served {
                do { _ = try decodeJSON(ChatCompletionRequest.self, from: data).job(model: model, limits: limits) } catch {
                    refusals.append(error)
                }
            }
            do { _ = try decodeJSON(CompletionRequest.self, from: data).job(model: served[0], limits: limits) } catch {
                refusals.append(error)
            }
            if let untyped = refusals.first(where: { !($0 is APIError) }) { throw untyped }
            if refusals.count > served.count { throw refusals[0] }
        },
    ]

    /// GPT-2's tokenizer with nanochat's chat tokens, and with ChatML's template.
    private static let models = Result { () throws -> [ServedModel] in
        let tokenizer = try FuzzHarness.gpt2()
        let config = try ModelConfig.gpt2(maxSeqLen: 128, vocabSize: ChatTokens(tokenizer: tokenizer).requiredVocabSize,
                                          numLayers: 1, numHeads: 1, channels: 4)
        let template = TemplateChatFormat(template: ChatTemplate.builtin("chatml")!, tokenizer: tokenizer,
                                          origin: "chatml", eos: [50256])
        return [ServedModel(name: "nanochat", tokenizer: tokenizer, config: config),
                ServedModel(name: "chatml", tokenizer: tokenizer, config: config, format: template)]
    }
}
