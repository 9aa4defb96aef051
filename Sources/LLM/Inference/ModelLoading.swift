// What the chat front ends (`llm chat`, `llm serve`) and `llm sample` load: weights and the tokenizer that
// goes with them, from a checkpoint, a Hugging Face folder or a run directory.
import Foundation

/// A model ready for inference: its weights and its tokenizer.
public struct LoadedModel: Sendable {
    public let weights: ModelWeights
    public let tokenizer: Tokenizer
    /// The weights file or folder actually read (a run directory's newest weights, say).
    public let weightsPath: String

    public init(weights: ModelWeights, tokenizer: Tokenizer, weightsPath: String) {
        self.weights = weights
        self.tokenizer = tokenizer
        self.weightsPath = weightsPath
    }

    /// Loads `path`: an llm.c `.bin` checkpoint, a Hugging Face folder, or a run directory from `llm train` or
    /// `llm sft` (its newest weights and the tokenizer its config names). `tokenizer` overrides the tokenizer:
    /// "gpt2" (bundled) or a tokenizer file; without it a checkpoint or folder gets GPT-2's. Throws if the
    /// tokenizer has more tokens than the model's vocabulary.
    public static func load(_ path: String, tokenizer tokenizerName: String? = nil) throws -> LoadedModel {
        let run = RunDirectory.isRun(path) ? RunDirectory(path) : nil
        let weightsPath = try run?.latestWeightsPath() ?? path
        let weights = try loadWeights(weightsPath)
        let tokenizer: Tokenizer
        if let tokenizerName {
            tokenizer = tokenizerName == "gpt2" ? try Tokenizer.gpt2() : try Tokenizer.load(tokenizerName)
        } else if let run {
            tokenizer = try Trainer.loadTokenizer(try run.readConfig().training.tokenizer, run: run)
        } else {
            tokenizer = try Tokenizer.gpt2()
        }
        guard tokenizer.vocabSize <= weights.config.vocabSize else {
            throw TrainingError.shapeMismatch("the tokenizer has \(tokenizer.vocabSize) tokens but the model in \(weightsPath) only \(weights.config.vocabSize); give the model's own tokenizer")
        }
        return LoadedModel(weights: weights, tokenizer: tokenizer, weightsPath: weightsPath)
    }
}
