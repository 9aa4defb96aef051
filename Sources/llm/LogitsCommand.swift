// `llm logits`: a model's logits for given tokens, printed (top 5 of the last position) and optionally saved, to
// compare with another implementation (reference/hf_logits.py --compare FILE runs transformers on them).
import ArgumentParser
import Foundation
import LLM

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Run tokens through a model and print or save its logits.",
        discussion: """
            Prints the last position's five largest logits. With --out FILE.safetensors, saves `inputs` (int32, T) \
            and `logits` (f32, T×V) for every position: `python3 reference/hf_logits.py MODEL --compare FILE` then \
            checks transformers computes the same from the same folder.
            """)

    @Option(help: "Weights: an llm.c .bin, a Hugging Face folder, a GGUF file, or a run directory (its newest weights).")
    var model: String
    @Option(help: "Comma-separated token ids.") var tokens: String
    @Option(help: "Save inputs and logits here (safetensors).") var out: String?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "A LoRA adapter (PEFT folder) to run on top of the model.") var adapter: String?

    func validate() throws {
        try checkThreads(threads)
        if ids == nil { throw ValidationError("--tokens wants comma-separated integers, e.g. 1,2,3") }
    }

    private var ids: [Int32]? {
        let parts = tokens.split(separator: ",").map { Int32($0.trimmingCharacters(in: .whitespaces)) }
        return parts.isEmpty || parts.contains(nil) ? nil : parts.map { $0! }
    }

    func run() throws {
        try reportingErrors {
            let path = RunDirectory.isRun(model) ? try RunDirectory(model).latestWeightsPath() : model
            // A LoRA run is its base with its adapter; --adapter puts one on any model.
            let weights = try LoadedModel.weights(model, adapter: adapter)
            let parallel = threads.map { ParallelFor(threads: $0) } ?? .allCores
            let ids = ids!, V = weights.config.vocabSize
            let logits = try weights.logits(for: ids, parallel: parallel)
            let last = Array(logits[(ids.count - 1) * V..<ids.count * V])
            let top = last.indices.sorted { last[$0] > last[$1] }.prefix(5)
            print("\(path): \(weights.config)")
            print("last position, top 5: " + top.map { "\($0): \(String(format: "%.5f", last[$0]))" }.joined(separator: "  "))
            if let out {
                try weights.writeLogits(for: ids, to: out, parallel: parallel)
                print("wrote \(out)")
            }
        }
    }
}
