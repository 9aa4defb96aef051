// The dense bfloat16 tensor-core peak of the GPUs we know, the denominator of model FLOPs utilisation (MFU) in
// `llm bench --device cuda` and the training log: achieved model FLOP/s ÷ peak. Dense figures from NVIDIA's data
// sheets (the "with sparsity" figures are twice these and are never the denominator). A GPU not listed has no MFU:
// its report says "unknown peak" rather than guess.

public enum GPUPeak {
    /// Words of the name the driver reports (cuDeviceGetName), most specific first, and the peak in TFLOP/s.
    static let table: [(words: [String], teraflops: Double)] = [
        (["h100", "pcie"], 756),
        (["h100", "nvl"], 835),
        (["h100"], 989),  // "NVIDIA H100 80GB HBM3": the SXM part
        (["gh200"], 989),
        (["h200"], 989),
        (["a100"], 312),
        (["l40s"], 362),
        (["a10"], 125),
        (["l4"], 121),
    ]

    /// The dense bfloat16 peak of the GPU named `name`, in FLOP/s; nil for a GPU not in the table. Names match word
    /// by word ("NVIDIA A100-SXM4-80GB" is an A100, "NVIDIA L40" is not an L4).
    public static func bf16FlopsPerSecond(gpuName name: String) -> Double? {
        let words = name.lowercased().split { !$0.isLetter && !$0.isNumber }.map(String.init)
        for entry in table where words.indices.contains(where: { words[$0...].starts(with: entry.words) }) {
            return entry.teraflops * 1e12
        }
        return nil
    }

    /// "41.3% MFU", or "unknown peak" for a GPU not in the table.
    public static func describeUtilization(flopsPerSecond: Double, gpuName: String) -> String {
        guard let peak = bf16FlopsPerSecond(gpuName: gpuName) else { return "unknown peak" }
        let percent = (flopsPerSecond / peak * 1000).rounded() / 10
        return "\(percent)% MFU"
    }
}
