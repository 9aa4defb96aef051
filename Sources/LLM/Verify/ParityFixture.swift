// A parity fixture folder in either format: llm.c's (model.bin, state.bin, trajectory.json, final.bin; GPT-2)
// or the generic one for any architecture (hf/, state.safetensors, trajectory.json, final/).
import Foundation

public struct ParityFixture {
    public let path: String
    /// The initial weights.
    public let weights: ModelWeights
    /// The batch with the reference's logits, loss and gradients.
    public let state: DebugState
    /// The optimizer run, if the fixture has one.
    public let trajectory: Trajectory?
    /// The weights after the trajectory, if the fixture has them.
    public let final: ModelWeights?

    public init(path: String, weights: ModelWeights, state: DebugState, trajectory: Trajectory?, final: ModelWeights?) {
        (self.path, self.weights, self.state, self.trajectory, self.final) = (path, weights, state, trajectory, final)
    }

    /// Whether `folder` holds a fixture in the generic format.
    public static func isGeneric(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: folder + "/state.safetensors")
    }

    /// Reads a fixture folder, telling the format by its files.
    public static func load(_ folder: String) throws -> ParityFixture {
        let fm = FileManager.default
        let generic = isGeneric(folder)
        if !generic && !fm.fileExists(atPath: folder + "/state.bin") {
            throw FormatError.unreadable(path: folder, reason: "not a parity fixture (no state.safetensors or state.bin)")
        }
        let weights = generic ? try HuggingFaceFolder.read(folder: folder + "/hf")
                              : try LLMCCheckpoint.read(folder + "/model.bin")
        let state = generic ? try DebugState.readSafetensors(folder + "/state.safetensors", config: weights.config)
                            : try DebugState.read(folder + "/state.bin", config: weights.config)
        let trajectoryPath = folder + "/trajectory.json"
        let trajectory = fm.fileExists(atPath: trajectoryPath) ? try Trajectory.read(trajectoryPath) : nil
        if let b = trajectory?.batch, b.B != state.batch || b.T != state.seq {
            throw FormatError.mismatch(path: trajectoryPath, reason: "batch \(b.B)x\(b.T) differs from the state's \(state.batch)x\(state.seq)")
        }
        let finalPath = folder + (generic ? "/final" : "/final.bin")
        let final = fm.fileExists(atPath: finalPath) ? try loadWeights(finalPath) : nil
        if let final, final.config != weights.config {
            throw FormatError.mismatch(path: finalPath, reason: "shape \(final.config) differs from the initial model's \(weights.config)")
        }
        return ParityFixture(path: folder, weights: weights, state: state, trajectory: trajectory, final: final)
    }
}
