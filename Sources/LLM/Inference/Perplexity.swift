// Perplexity of a model on a text, computed as llama.cpp's `llama-perplexity` does, so the two can be compared
// on the same file: the text's tokens (with the model's BOS first when its tokenizer adds one) are cut into
// chunks of `context` tokens; each chunk starts a fresh cache, its first token replaced by BOS where the model
// uses one; only the second half of each chunk is scored (every scored token sees at least context/2 before it),
// and the perplexity is exp of the mean negative log-likelihood over all scored tokens.
//
// It runs on the generation path (`Generator`): the first half of a chunk as one prefill, then one token per
// decode step, so a model kept in quantized blocks is measured on the kernels it decodes with.
import Foundation

public struct PerplexityResult: Sendable, Equatable {
    /// exp(mean negative log-likelihood).
    public var perplexity: Double
    /// The mean negative log-likelihood, in nats per token.
    public var meanNLL: Double
    /// Tokens scored.
    public var scored: Int
    /// Chunks evaluated.
    public var chunks: Int
    /// Perplexity after each chunk (llama-perplexity prints the same running values).
    public var running: [Double]
}

public enum Perplexity {
    /// Evaluates `tokens` (already with the model's BOS first, if it adds one) in chunks of `context` tokens, at
    /// most `maxChunks` of them; `bos` replaces each chunk's first token when given. `progress` is called after
    /// each chunk with its index and the running perplexity.
    public static func evaluate(generator: Generator, tokens: [Int32], context: Int, maxChunks: Int? = nil,
                                bos: Int32? = nil,
                                progress: (Int, Double) -> Void = { _, _ in }) throws -> PerplexityResult {
        precondition(context >= 4, "a context of at least 4 tokens")
        let chunks = min(tokens.count / context, maxChunks ?? .max)
        precondition(chunks >= 1, "the text has fewer than \(context) tokens")
        let first = context / 2
        var nll = 0.0, scored = 0, running = [Double]()
        for chunk in 0..<chunks {
            var ids = Array(tokens[chunk * context..<(chunk + 1) * context])
            if let bos { ids[0] = bos }
            // The logits at position j predict token j + 1; positions first...context-2 are scored.
            try generator.forward(ids[0...first], at: 0)
            for j in first...(context - 2) {
                if j > first { try generator.forward(ids[j...j]) }
                nll -= generator.withLogits { logSoftmax($0, at: Int(ids[j + 1])) }
                scored += 1
            }
            running.append(exp(nll / Double(scored)))
            progress(chunk, running.last!)
        }
        return PerplexityResult(perplexity: exp(nll / Double(scored)), meanNLL: nll / Double(scored), scored: scored,
                                chunks: chunks, running: running)
    }

    /// log softmax(logits)[index], in Double.
    static func logSoftmax(_ logits: UnsafeBufferPointer<Float>, at index: Int) -> Double {
        var maxValue = -Float.infinity
        for v in logits { maxValue = max(maxValue, v) }
        var sum = 0.0
        for v in logits { sum += exp(Double(v - maxValue)) }
        return Double(logits[index] - maxValue) - log(sum)
    }
}
