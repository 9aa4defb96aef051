// The linear layers and the token embedding of a model read from a GGUF file, kept in the file's quantized
// blocks (Q8_0, Q4_K, F16, …) instead of being expanded to float32: four to eight times less memory, and a
// decode step that reads that much less. The blocks are read in place from the memory-mapped file; only
// Llama's q and k rows, which the converter permuted, are copied (in their blocks) into the model's order.
//
// The float weights (ModelWeights) still hold every other tensor (norms, biases); their float slots for the
// tensors kept here are never touched, so they cost no memory (FloatArena maps its pages lazily). Generation
// (BatchedGenerator) computes these layers with Kernels/QuantizedMatmul.swift for a decode step's few rows and
// with Kernels/Matmul.swift, dequantizing while it packs, for a prompt.

/// One linear layer's weight as quantized matrices stacked by output rows: q, k and v for the fused qkv
/// projection, gate and up for a gated MLP, or a single matrix. Parts may have different block types.
struct QuantizedLinear: @unchecked Sendable {
    var parts: [QuantizedMatrix]

    /// Output rows (the sum of the parts').
    var rows: Int { parts.reduce(0) { $0 + $1.rows } }
}

/// The quantized tensors of a model, by parameter tensor and layer.
public final class QuantizedWeights: @unchecked Sendable {
    /// Keeps the mapping the matrices point into alive.
    private let file: GGUFFile
    /// Copies this object owns (Llama's q and k in the model's row order).
    private var owned: [UnsafeMutableRawPointer] = []
    /// layers[l][t]: the linear `t` (qkvw, attprojw, fcw or fcprojw) of layer l, when kept quantized.
    private(set) var layers: [[ParameterTensor: QuantizedLinear]]
    /// Whole-model matrices kept quantized: wte (V rows of C, also the tied head) and lmHead.
    private(set) var global: [ParameterTensor: QuantizedMatrix] = [:]

    init(file: GGUFFile, layers: Int) {
        self.file = file
        self.layers = Array(repeating: [:], count: layers)
    }

    deinit { for p in owned { p.deallocate() } }

    /// The tensors this can keep quantized: the linear layers' matrices and the embedding / head.
    static let quantizable: Set<ParameterTensor> = [.qkvw, .attprojw, .fcw, .fcprojw, .wte, .lmHead]

    /// Whether a GGUF tensor of `type` for `tensor` stays quantized: a type the quantized kernels compute from,
    /// other than F32 (which is simply read as floats).
    static func keeps(_ tensor: ParameterTensor, type: GGMLType) -> Bool {
        quantizable.contains(tensor) && type != .f32 && type.hasQuantizedDot
    }

    /// Adds `info`'s rows as the next part of `tensor` in `layer` (parts arrive in row order, as the placements
    /// list them). `rowOrder`, when given, maps each model row to the file's row (Llama's q and k): those rows
    /// are copied, whole blocks, into a buffer of this object.
    func add(_ tensor: ParameterTensor, layer: Int?, info: GGUFFile.TensorInfo, rows: Int, cols: Int,
             rowOrder: [Int]? = nil) {
        var base = file.tensorBase(info)
        if let rowOrder {
            let rowBytes = cols / info.type.blockSize * info.type.bytesPerBlock
            let copy = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 64)
            for (r, source) in rowOrder.enumerated() {
                (copy + r * rowBytes).copyMemory(from: base + source * rowBytes, byteCount: rowBytes)
            }
            owned.append(copy)
            base = UnsafeRawPointer(copy)
        }
        let matrix = QuantizedMatrix(type: info.type, base: base, rows: rows, cols: cols)
        if let layer {
            layers[layer][tensor, default: QuantizedLinear(parts: [])].parts.append(matrix)
        } else {
            global[tensor] = matrix
        }
    }

    /// Layer l's quantized linear `t`, if kept.
    func linear(_ t: ParameterTensor, layer l: Int) -> QuantizedLinear? { layers[l][t] }

    /// "Q4_1 ×210, Q8_0 ×1": the block types kept, with how many matrices of each.
    public var typeSummary: String {
        var counts: [String: Int] = [:]
        for m in global.values { counts[m.type.description, default: 0] += 1 }
        for layer in layers { for linear in layer.values { for m in linear.parts { counts[m.type.description, default: 0] += 1 } } }
        return counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }
}
