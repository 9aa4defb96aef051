// Text generation: prefill the prompt, then sample a token and feed it back, one position at a time,
// streaming each token to the caller. The loop after the prefill allocates nothing.
import Dispatch

/// What one `generate` call produced, why it stopped, and how long it took.
public struct GenerationResult: Sendable {
    public enum StopReason: Sendable, Equatable {
        case maxNewTokens
        /// A stop token was sampled (it is not among `tokens`).
        case stopToken(Int32)
        /// Prompt and generated tokens fill the model's context (maxT); there is no room for another.
        case contextFull
        /// `onToken` returned false.
        case cancelled
    }

    /// The generated tokens, without the prompt.
    public var tokens: [Int32]
    public var stopReason: StopReason
    public var promptTokens: Int
    /// The forward pass over the prompt.
    public var prefillSeconds: Double
    /// Everything after the prefill: sampling, decode steps and the `onToken` calls.
    public var decodeSeconds: Double

    /// Generated tokens per second after the prefill.
    public var tokensPerSecond: Double { decodeSeconds > 0 ? Double(tokens.count) / decodeSeconds : 0 }
}

extension Generator {
    /// Continues `prompt`: prefills it, then samples up to `parameters.maxNewTokens` tokens, calling `onToken`
    /// with each as soon as it is chosen (return false to stop). Prompt and new tokens together never pass the
    /// context (maxT): generation stops there with `.contextFull` rather than sliding the window. Starts from an
    /// empty cache. With `tools`, a calculator call the model writes is answered: its output tokens are fed
    /// and delivered as if sampled (see ToolCalls.swift), counting towards `maxNewTokens`. Throws
    /// `sequenceTooLong` for a prompt longer than maxT (see `croppedPrompt`) and `tokenOutOfRange` for a prompt
    /// token, or a tool's token, not below V.
    public func generate(prompt: [Int32], parameters: GenerateParameters, tools: ToolCalls? = nil,
                         onToken: (Int32) -> Bool) throws(ModelError) -> GenerationResult {
        precondition(parameters.isValid, "generation settings out of range: \(parameters)")
        precondition(!prompt.isEmpty, "a prompt needs at least one token (start from the document separator)")
        let maxT = config.maxSeqLen
        guard prompt.count <= maxT else { throw .sequenceTooLong(seq: prompt.count, maxSeqLen: maxT) }
        try tools?.check(vocabSize: config.vocabSize)
        var toolState = tools.map { _ in ToolCallState() }
        var sampler = Sampler(parameters: parameters, vocabSize: config.vocabSize)
        var sequence = [Int32]()
        sequence.reserveCapacity(maxT)
        sequence.append(contentsOf: prompt)

        let start = DispatchTime.now().uptimeNanoseconds
        reset()
        try forward(sequence[...], at: 0)
        let prefillEnd = DispatchTime.now().uptimeNanoseconds
        var stopReason = GenerationResult.StopReason.maxNewTokens
        while true {
            let generated = sequence.count - prompt.count
            if generated == parameters.maxNewTokens { break }
            if sequence.count == maxT {
                stopReason = .contextFull
                break
            }
            if generated > 0 {  // feed the token chosen last
                if parameters.useKVCache {
                    try forward(sequence[(sequence.count - 1)...])
                } else {
                    try forward(sequence[...], at: 0)
                }
            }
            let next: Int32
            if let forced = toolState?.takeForced() {
                next = forced
            } else {
                next = withLogits { sampler.sample($0) }
                if parameters.stopTokens.contains(next) {
                    stopReason = .stopToken(next)
                    break
                }
            }
            sequence.append(next)
            if let tools { toolState?.observe(next, tools: tools) }
            if !onToken(next) {
                stopReason = .cancelled
                break
            }
        }
        let end = DispatchTime.now().uptimeNanoseconds
        return GenerationResult(tokens: Array(sequence[prompt.count...]), stopReason: stopReason,
                                promptTokens: prompt.count, prefillSeconds: Double(prefillEnd - start) / 1e9,
                                decodeSeconds: Double(end - prefillEnd) / 1e9)
    }
}

/// The prompt `generate` should get to make room for `maxNewTokens` within a context of `maxSeqLen`: its last
/// maxSeqLen - maxNewTokens tokens (at least one) when prompt and new tokens would not fit, else the prompt.
public func croppedPrompt(_ prompt: [Int32], maxNewTokens: Int, maxSeqLen: Int) -> [Int32] {
    let keep = max(1, maxSeqLen - maxNewTokens)
    return prompt.count + maxNewTokens <= maxSeqLen ? prompt : Array(prompt.suffix(keep))
}
