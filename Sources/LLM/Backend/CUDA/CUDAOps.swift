// The host side of every kernel launch in Resources/cuda: the grid, block and shared memory each kernel's comment
// documents, and its scalar arguments, formed the way the CPU kernel of the same name forms them. Pointers are
// device addresses; each function only queues work on the launcher (a GPU stream, or the CPU emulator in tests).
//
// Reductions are deterministic: column sums (bias, LayerNorm parameters) go through partial sums over fixed chunks
// of rows, and the gradient norm through a fixed number of partial sums, so a result depends on the shapes only,
// not on the GPU or on scheduling.
import Foundation

/// The kernels' side of the CUDA backend, one function per kernel family.
public struct CUDAOps {
    public let launcher: any KernelLauncher

    public init(launcher: any KernelLauncher) { self.launcher = launcher }

    /// Threads per block of the elementwise and grid-stride kernels.
    static let elementwiseBlock = 256
    /// The most blocks a grid-stride launch uses; beyond it each thread loops.
    static let maxGridStrideBlocks = 1 << 16
    /// Partial sums of the global gradient norm (fixed, so the sum is the same on every GPU).
    public static let normPartials = 256
    /// Row chunks of the column sums, at most.
    static let maxColumnChunks = 256

    private func launch(_ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedMemory: Int = 0,
                        _ arguments: [KernelArgument]) throws(CUDAError) {
        try launcher.launch(kernel, grid: grid, block: block, sharedMemory: sharedMemory, arguments)
    }

    private static func blocks(_ count: Int, of size: Int) -> Int { max(1, (count + size - 1) / size) }

    private func gridStride(_ kernel: String, count: Int, _ arguments: [KernelArgument]) throws(CUDAError) {
        let grid = min(Self.blocks(count, of: Self.elementwiseBlock), Self.maxGridStrideBlocks)
        try launch(kernel, grid: (grid, 1, 1), block: (Self.elementwiseBlock, 1, 1), arguments)
    }

    private static func int(_ v: Int) -> KernelArgument { .int32(Int32(v)) }

    // MARK: Column sums

    /// How N rows are cut into chunks for the column sums: rows per chunk, and the number of chunks.
    public static func columnChunks(rows N: Int) -> (rowsPerChunk: Int, chunks: Int) {
        let rowsPerChunk = max(1, (N + maxColumnChunks - 1) / maxColumnChunks)
        return (rowsPerChunk, max(1, (N + rowsPerChunk - 1) / rowsPerChunk))
    }

    /// Floats of scratch the column sums of N rows × `columns` need (LayerNorm's backward sums 2C columns).
    public static func columnScratchCount(rows N: Int, columns: Int) -> Int { columnChunks(rows: N).chunks * columns }

    // MARK: Embedding

    /// out = wte[tokens] + wpe[t] over (B,T,C). `tokens` is (B,T) int32 on the device, each < V.
    public func encoderForward(out: CUdeviceptr, tokens: CUdeviceptr, wte: CUdeviceptr, wpe: CUdeviceptr, B: Int, T: Int,
                               C: Int) throws(CUDAError) {
        try launch("encoder_forward", grid: (Self.blocks(B * T * C, of: 256), 1, 1), block: (256, 1, 1),
                   [.pointer(out), .pointer(tokens), .pointer(wte), .pointer(wpe), Self.int(B), Self.int(T), Self.int(C)])
    }

    /// The buckets encoder_backward_wte reads: positions grouped by token, made on the host from the (B,T) inputs.
    public struct TokenBuckets: Equatable, Sendable {
        /// The distinct tokens, increasing.
        public var tokens: [Int32] = []
        /// Bucket k's positions are positions[starts[k] ..< starts[k+1]].
        public var starts: [Int32] = [0]
        public var positions: [Int32] = []

        /// A counting sort of `inputs`: each token's positions, in increasing order.
        public init(inputs: [Int32]) {
            var byToken = [Int32: [Int32]]()
            for (p, token) in inputs.enumerated() { byToken[token, default: []].append(Int32(p)) }
            for token in byToken.keys.sorted() {
                tokens.append(token)
                positions += byToken[token]!
                starts.append(Int32(positions.count))
            }
        }
    }

    /// dwpe += Σ_b dout[b,t,:]; dwte[token] += Σ dout over the positions of that token (`buckets` on the device,
    /// `bucketCount` of them).
    public func encoderBackward(dwte: CUdeviceptr, dwpe: CUdeviceptr?, dout: CUdeviceptr, bucketTokens: CUdeviceptr,
                                bucketStarts: CUdeviceptr, positions: CUdeviceptr, bucketCount: Int, B: Int, T: Int,
                                C: Int) throws(CUDAError) {
        if let dwpe {
            try launch("encoder_backward_wpe", grid: (Self.blocks(T * C, of: 256), 1, 1), block: (256, 1, 1),
                       [.pointer(dwpe), .pointer(dout), Self.int(B), Self.int(T), Self.int(C)])
        }
        guard bucketCount > 0 else { return }
        try launch("encoder_backward_wte", grid: (bucketCount, Self.blocks(C, of: 256), 1), block: (256, 1, 1),
                   [.pointer(dwte), .pointer(dout), .pointer(bucketTokens), .pointer(bucketStarts), .pointer(positions),
                    Self.int(bucketCount), Self.int(C)])
    }

    // MARK: LayerNorm

    /// out = (x − mean)·rstd·weight + bias per row of C; mean and rstd (float, N each) are saved for the backward.
    public func layerNormForward(out: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr, inp: CUdeviceptr,
                                 weight: CUdeviceptr, bias: CUdeviceptr, N: Int, C: Int) throws(CUDAError) {
        try launch("layernorm_forward", grid: (Self.blocks(N, of: 4), 1, 1), block: (128, 1, 1),
                   [.pointer(out), .pointer(mean), .pointer(rstd), .pointer(inp), .pointer(weight), .pointer(bias),
                    Self.int(N), Self.int(C)])
    }

    /// Adds into dinp, dweight and dbias. `scratch` holds columnScratchCount(rows: N, columns: 2C) floats.
    public func layerNormBackward(dinp: CUdeviceptr, dweight: CUdeviceptr, dbias: CUdeviceptr, dout: CUdeviceptr,
                                  inp: CUdeviceptr, weight: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr,
                                  scratch: CUdeviceptr, N: Int, C: Int) throws(CUDAError) {
        try launch("layernorm_backward_input", grid: (Self.blocks(N, of: 4), 1, 1), block: (128, 1, 1),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(weight), .pointer(mean), .pointer(rstd),
                    Self.int(N), Self.int(C)])
        let (rowsPerChunk, chunks) = Self.columnChunks(rows: N)
        try launch("layernorm_backward_params_partial", grid: (Self.blocks(C, of: 32), chunks, 1), block: (32, 8, 1),
                   [.pointer(scratch), .pointer(dout), .pointer(inp), .pointer(mean), .pointer(rstd), Self.int(N),
                    Self.int(C), Self.int(rowsPerChunk)])
        try columnSumFinish(out: dweight, partial: scratch, chunks: chunks, ld: 2 * C, offset: 0, columns: C)
        try columnSumFinish(out: dbias, partial: scratch, chunks: chunks, ld: 2 * C, offset: C, columns: C)
    }

    private func columnSumFinish(out: CUdeviceptr, partial: CUdeviceptr, chunks: Int, ld: Int, offset: Int,
                                 columns: Int) throws(CUDAError) {
        try launch("column_sum_finish", grid: (Self.blocks(columns, of: 256), 1, 1), block: (256, 1, 1),
                   [.pointer(out), .pointer(partial), Self.int(chunks), Self.int(ld), Self.int(offset), Self.int(columns)])
    }

    // MARK: RMSNorm

    /// out = x·rstd·gain over `groups` groups of C at the start of each of N rows of `stride` values (QK-norm: the
    /// heads of a fused q|k|v row); rstd (float, N·groups) is saved for the backward. `weight` is unused for `.none`.
    public func rmsNormForward(out: CUdeviceptr, rstd: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr?,
                               kind: RMSNormWeight, eps: Float, N: Int, C: Int, groups: Int = 1,
                               stride: Int? = nil) throws(CUDAError) {
        try launch("rmsnorm_forward", grid: (Self.blocks(N * groups, of: 4), 1, 1), block: (128, 1, 1),
                   [.pointer(out), .pointer(rstd), .pointer(inp), .pointer(weight ?? 0), Self.int(Self.code(kind)),
                    .float(eps), Self.int(N), Self.int(C), Self.int(groups), Self.int(stride ?? C)])
    }

    /// Adds into dinp, and into dweight unless the kind has no weight. `scratch` holds
    /// columnScratchCount(rows: N·groups, columns: C) floats.
    public func rmsNormBackward(dinp: CUdeviceptr, dweight: CUdeviceptr?, dout: CUdeviceptr, inp: CUdeviceptr,
                                weight: CUdeviceptr?, rstd: CUdeviceptr, scratch: CUdeviceptr, kind: RMSNormWeight,
                                N: Int, C: Int, groups: Int = 1, stride: Int? = nil) throws(CUDAError) {
        let stride = stride ?? C
        try launch("rmsnorm_backward_input", grid: (Self.blocks(N * groups, of: 4), 1, 1), block: (128, 1, 1),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(weight ?? 0), .pointer(rstd),
                    Self.int(Self.code(kind)), Self.int(N), Self.int(C), Self.int(groups), Self.int(stride)])
        guard kind != .none, let dweight else { return }
        let (itemsPerChunk, chunks) = Self.columnChunks(rows: N * groups)
        try launch("rmsnorm_backward_weight_partial", grid: (Self.blocks(C, of: 32), chunks, 1), block: (32, 8, 1),
                   [.pointer(scratch), .pointer(dout), .pointer(inp), .pointer(rstd), Self.int(N), Self.int(C),
                    Self.int(groups), Self.int(stride), Self.int(itemsPerChunk)])
        try columnSumFinish(out: dweight, partial: scratch, chunks: chunks, ld: C, offset: 0, columns: C)
    }

    /// rmsnorm.cu's `kind`.
    private static func code(_ kind: RMSNormWeight) -> Int {
        switch kind {
        case .scale: 0
        case .onePlus: 1
        case .none: 2
        }
    }

    // MARK: RoPE

    /// Rotates the `heads` heads of size d at the start of each of N rows of `stride` values in place, row n by
    /// positions[n] (int32 on the device); `inverse` turns them back (the backward). cosines and sines are the
    /// RotaryTable's (maxT, d/2) tables on the device.
    public func rope(_ x: CUdeviceptr, positions: CUdeviceptr, cosines: CUdeviceptr, sines: CUdeviceptr, N: Int,
                     heads: Int, headSize d: Int, stride: Int, inverse: Bool) throws(CUDAError) {
        try gridStride(inverse ? "rope_backward" : "rope_forward", count: N * heads * d / 2,
                       [.pointer(x), .pointer(positions), .pointer(cosines), .pointer(sines), Self.int(N),
                        Self.int(heads), Self.int(d), Self.int(stride)])
    }

    // MARK: MLP activations

    /// inp (N, F) for GELU and ReLU², (N, 2F) for the gated ones → out (N, F).
    public func activation(out: CUdeviceptr, inp: CUdeviceptr, kind: MLPActivation, N: Int, F: Int) throws(CUDAError) {
        switch kind {
        case .gelu: try geluForward(out: out, inp: inp, N: N * F)
        case .reluSquared:
            try gridStride("relu_squared_forward", count: N * F, [.pointer(out), .pointer(inp), .int64(Int64(N * F))])
        case .swiGLU, .geGLU:
            try gridStride(kind == .swiGLU ? "swiglu_forward" : "geglu_forward", count: N * F,
                           [.pointer(out), .pointer(inp), Self.int(N), Self.int(F)])
        }
    }

    /// Adds into dinp (laid out as inp).
    public func activationBackward(dinp: CUdeviceptr, inp: CUdeviceptr, dout: CUdeviceptr, kind: MLPActivation, N: Int,
                                   F: Int) throws(CUDAError) {
        switch kind {
        case .gelu: try geluBackward(dinp: dinp, inp: inp, dout: dout, N: N * F)
        case .reluSquared:
            try gridStride("relu_squared_backward", count: N * F,
                           [.pointer(dinp), .pointer(inp), .pointer(dout), .int64(Int64(N * F))])
        case .swiGLU, .geGLU:
            try gridStride(kind == .swiGLU ? "swiglu_backward" : "geglu_backward", count: N * F,
                           [.pointer(dinp), .pointer(inp), .pointer(dout), Self.int(N), Self.int(F)])
        }
    }

    // MARK: Softcap

    /// logits = cap·tanh(logits/cap) in place over the V real columns of (N, Vp).
    public func softcap(_ logits: CUdeviceptr, cap: Float, N: Int, V: Int, Vp: Int) throws(CUDAError) {
        try gridStride("softcap_forward", count: N * V, [.pointer(logits), .float(cap), Self.int(N), Self.int(V), Self.int(Vp)])
    }

    /// The gradient through the cap, in place, from the capped logits.
    public func softcapBackward(_ dlogits: CUdeviceptr, capped: CUdeviceptr, cap: Float, N: Int, V: Int,
                                Vp: Int) throws(CUDAError) {
        try gridStride("softcap_backward", count: N * V,
                       [.pointer(dlogits), .pointer(capped), .float(cap), Self.int(N), Self.int(V), Self.int(Vp)])
    }

    // MARK: Bias

    /// out[n,o] += bias[o] over (N,OC).
    public func addBias(out: CUdeviceptr, bias: CUdeviceptr, N: Int, OC: Int) throws(CUDAError) {
        try gridStride("add_bias", count: N * OC, [.pointer(out), .pointer(bias), Self.int(N), Self.int(OC)])
    }

    /// dbias += the column sums of dout (N,OC). `scratch` holds columnScratchCount(rows: N, columns: OC) floats.
    public func biasBackward(dbias: CUdeviceptr, dout: CUdeviceptr, scratch: CUdeviceptr, N: Int, OC: Int) throws(CUDAError) {
        let (rowsPerChunk, chunks) = Self.columnChunks(rows: N)
        try launch("column_sum_partial", grid: (Self.blocks(OC, of: 32), chunks, 1), block: (32, 8, 1),
                   [.pointer(scratch), .pointer(dout), Self.int(N), Self.int(OC), Self.int(rowsPerChunk)])
        try columnSumFinish(out: dbias, partial: scratch, chunks: chunks, ld: OC, offset: 0, columns: OC)
    }

    // MARK: Attention

    /// Bytes of dynamic shared memory of attention_forward, attention_backward_dkv and attention_backward_dq for head
    /// size d (over 48 KiB from d = 118, 80 and 88 on: the launcher must allow it).
    public static func attentionSharedMemory(headSize d: Int) -> (forward: Int, dkv: Int, dq: Int) {
        (4 * (96 * d + 32 + 1024), 4 * (128 * d + 64 + 2048 + 64), 4 * (128 * d + 64 + 1024 + 64))
    }

    /// Bytes of dynamic shared memory of attention_cached_forward and attention_decode: one row's scores.
    public static func cachedAttentionSharedMemory(headSize d: Int, capacity: Int) -> Int { 4 * (capacity + 32 + d) }

    /// The largest head size the attention kernels handle (the `_wide` tiled kernels above 128).
    public static let maxHeadSize = 256

    /// The shape's scalars as the attention kernels take them after B and T: H, H_kv, d, W, scale.
    private static func shapeArguments(_ s: AttentionShape) throws(CUDAError) -> [KernelArgument] {
        guard s.headSize >= 1, s.headSize <= maxHeadSize, s.kvHeads >= 1, s.heads % s.kvHeads == 0 else {
            throw .unsupported("attention with \(s.heads) query heads, \(s.kvHeads) key/value heads of size \(s.headSize) (the kernels need a head size of at most \(maxHeadSize) and key/value heads that divide the query heads)")
        }
        return [int(s.heads), int(s.kvHeads), int(s.headSize), int(s.window), .float(s.scale)]
    }

    /// A tiled attention kernel's name for head size d: the `_wide` variant holds up to 256 dimensions per row.
    private static func tiled(_ kernel: String, _ s: AttentionShape) -> String { s.headSize > 128 ? kernel + "_wide" : kernel }

    /// Causal attention over qkv (B,T,qkvWidth) into out (B,T,outWidth); lse (B,H,T) float is kept for the backward
    /// (in place of the CPU's probabilities).
    public func attentionForward(out: CUdeviceptr, lse: CUdeviceptr, qkv: CUdeviceptr, B: Int, T: Int,
                                 shape s: AttentionShape) throws(CUDAError) {
        try launch(Self.tiled("attention_forward", s), grid: (Self.blocks(T, of: 32), s.heads, B), block: (128, 1, 1),
                   sharedMemory: Self.attentionSharedMemory(headSize: s.headSize).forward,
                   [.pointer(out), .pointer(lse), .pointer(qkv), Self.int(B), Self.int(T)] + (try Self.shapeArguments(s)))
    }

    /// Adds the gradient of qkv into dqkv, from the forward's out and lse; `delta` is (B,H,T) floats of scratch.
    public func attentionBackward(dqkv: CUdeviceptr, delta: CUdeviceptr, dout: CUdeviceptr, out: CUdeviceptr,
                                  qkv: CUdeviceptr, lse: CUdeviceptr, B: Int, T: Int,
                                  shape s: AttentionShape) throws(CUDAError) {
        try launch("attention_backward_delta", grid: (Self.blocks(B * T * s.heads, of: 4), 1, 1), block: (128, 1, 1),
                   [.pointer(delta), .pointer(dout), .pointer(out), Self.int(B), Self.int(T), Self.int(s.heads),
                    Self.int(s.headSize)])
        let shared = Self.attentionSharedMemory(headSize: s.headSize)
        let arguments: [KernelArgument] = [.pointer(dqkv), .pointer(dout), .pointer(qkv), .pointer(lse), .pointer(delta),
                                           Self.int(B), Self.int(T)] + (try Self.shapeArguments(s))
        try launch(Self.tiled("attention_backward_dkv", s), grid: (Self.blocks(T, of: 32), s.kvHeads, B), block: (128, 1, 1),
                   sharedMemory: shared.dkv, arguments)
        try launch(Self.tiled("attention_backward_dq", s), grid: (Self.blocks(T, of: 32), s.heads, B), block: (128, 1, 1),
                   sharedMemory: shared.dq, arguments)
    }

    /// New positions t0..<t0+n of one sequence (qkv: n rows) against its cache of `capacity` positions, then their
    /// keys and values into the cache, as attentionCachedForward.
    public func cachedAttention(out: CUdeviceptr, kCache: CUdeviceptr, vCache: CUdeviceptr, qkv: CUdeviceptr, t0: Int,
                                n: Int, shape s: AttentionShape, capacity: Int) throws(CUDAError) {
        precondition(s.window == 0 ? capacity >= t0 + n : capacity >= min(s.window, t0 + n),
                     "a cache of \(capacity) positions cannot hold what positions \(t0)..<\(t0 + n) attend to")
        try launch("attention_cached_forward", grid: (n, s.heads, 1), block: (128, 1, 1),
                   sharedMemory: Self.cachedAttentionSharedMemory(headSize: s.headSize, capacity: capacity),
                   [.pointer(out), .pointer(kCache), .pointer(vCache), .pointer(qkv), Self.int(t0), Self.int(n)]
                       + (try Self.shapeArguments(s)) + [Self.int(capacity)])
        try launch("kv_cache_write", grid: (Self.blocks(min(n, capacity) * s.kvHeads * s.headSize, of: 256), 1, 1),
                   block: (256, 1, 1),
                   [.pointer(kCache), .pointer(vCache), .pointer(qkv), Self.int(t0), Self.int(n), Self.int(s.heads),
                    Self.int(s.kvHeads), Self.int(s.headSize), Self.int(capacity)])
    }

    /// A decode step, as Backend.decodeAttention: row i of qkv is position positions[i] (int32 on the device) of the
    /// sequence whose caches start slots[i]·slotStride values in (slots: int64 on the device, all different); each
    /// row's key and value join its cache.
    public func decodeAttention(out: CUdeviceptr, kCache: CUdeviceptr, vCache: CUdeviceptr, slotStride: Int,
                                qkv: CUdeviceptr, slots: CUdeviceptr, positions: CUdeviceptr, rows: Int,
                                shape s: AttentionShape, capacity: Int) throws(CUDAError) {
        try launch("attention_decode", grid: (rows, s.heads, 1), block: (128, 1, 1),
                   sharedMemory: Self.cachedAttentionSharedMemory(headSize: s.headSize, capacity: capacity),
                   [.pointer(out), .pointer(kCache), .pointer(vCache), .int64(Int64(slotStride)), .pointer(qkv),
                    .pointer(slots), .pointer(positions)] + (try Self.shapeArguments(s)) + [Self.int(capacity)])
    }

    // MARK: Elementwise

    public func residualForward(out: CUdeviceptr, inp1: CUdeviceptr, inp2: CUdeviceptr, N: Int) throws(CUDAError) {
        try gridStride("residual_forward", count: N, [.pointer(out), .pointer(inp1), .pointer(inp2), .int64(Int64(N))])
    }

    /// dinp1 += dout; dinp2 += dout.
    public func residualBackward(dinp1: CUdeviceptr, dinp2: CUdeviceptr, dout: CUdeviceptr, N: Int) throws(CUDAError) {
        try gridStride("residual_backward", count: N, [.pointer(dinp1), .pointer(dinp2), .pointer(dout), .int64(Int64(N))])
    }

    public func geluForward(out: CUdeviceptr, inp: CUdeviceptr, N: Int) throws(CUDAError) {
        try gridStride("gelu_forward", count: N, [.pointer(out), .pointer(inp), .int64(Int64(N))])
    }

    /// dinp += dout · gelu'(inp).
    public func geluBackward(dinp: CUdeviceptr, inp: CUdeviceptr, dout: CUdeviceptr, N: Int) throws(CUDAError) {
        try gridStride("gelu_backward", count: N, [.pointer(dinp), .pointer(inp), .pointer(dout), .int64(Int64(N))])
    }

    /// floatX copy of n floats, and back.
    public func castToFloatX(out: CUdeviceptr, inp: CUdeviceptr, n: Int) throws(CUDAError) {
        try gridStride("cast_f32_to_floatx", count: n, [.pointer(out), .pointer(inp), .int64(Int64(n))])
    }

    public func castToFloat(out: CUdeviceptr, inp: CUdeviceptr, n: Int) throws(CUDAError) {
        try gridStride("cast_floatx_to_f32", count: n, [.pointer(out), .pointer(inp), .int64(Int64(n))])
    }

    // MARK: Classifier

    /// losses[n] = cross-entropy of row n of the (N,Vp) logits over its V real columns (0 where targets[n] = −1);
    /// with `writeGradient`, the logits are replaced by dloss·(softmax − onehot), 0 in padded columns and ignored
    /// rows. dloss is the gradient of each supervised loss (1 / supervised count, for the mean).
    public func fusedClassifier(logits: CUdeviceptr, losses: CUdeviceptr, targets: CUdeviceptr, dloss: Float, N: Int,
                                V: Int, Vp: Int, writeGradient: Bool) throws(CUDAError) {
        try launch("fused_classifier", grid: (N, 1, 1), block: (512, 1, 1),
                   [.pointer(logits), .pointer(losses), .pointer(targets), .float(dloss), Self.int(N), Self.int(V),
                    Self.int(Vp), .int32(writeGradient ? 1 : 0)])
    }

    // MARK: Optimizer

    /// normScale[0] = √Σ grads², normScale[1] = the clip scale (NaN when the norm is not finite, which makes the
    /// AdamW launches skip their step). `partials` holds normPartials floats.
    public func gradientNorm(normScale: CUdeviceptr, partials: CUdeviceptr, grads: CUdeviceptr, n: Int,
                             clip: Double?) throws(CUDAError) {
        try launch("global_norm_partial", grid: (Self.normPartials, 1, 1), block: (512, 1, 1),
                   [.pointer(partials), .pointer(grads), .int64(Int64(n))])
        try launch("global_norm_finish", grid: (1, 1, 1), block: (1024, 1, 1),
                   [.pointer(normScale), .pointer(partials), Self.int(Self.normPartials), .float(Float(clip ?? 0))])
    }

    /// AdamW's scalars for `step`, formed in Double and rounded once as adamWUpdate forms them; `decay` false for
    /// tensors without weight decay.
    static func adamWScalars(_ config: AdamWConfig, step: Int, decay: Bool) -> [KernelArgument] {
        let lr = config.learningRate
        return [.float(Float(lr / (1 - pow(config.beta1, Double(step))))),
                .float(Float((1 - pow(config.beta2, Double(step))).squareRoot())),
                .float(Float(1 - lr * (decay ? config.weightDecay : 0))), .float(Float(1 - config.beta1)),
                .float(Float(config.beta2)), .float(Float(1 - config.beta2)), .float(Float(config.eps))]
    }

    /// One AdamW step over n float parameters with float gradients; `gradScale` points to gradientNorm's scale
    /// (normScale + 4 bytes).
    public func adamW(params: CUdeviceptr, grads: CUdeviceptr, m: CUdeviceptr, v: CUdeviceptr, n: Int,
                      gradScale: CUdeviceptr, config: AdamWConfig, step: Int, decay: Bool) throws(CUDAError) {
        try gridStride("adamw_update", count: n,
                       [.pointer(params), .pointer(grads), .pointer(m), .pointer(v), .int64(Int64(n)), .pointer(gradScale)]
                           + Self.adamWScalars(config, step: step, decay: decay))
    }

    /// AdamW on float master weights with floatX gradients, then the floatX weights rounded from the masters
    /// (stochastically in bfloat16, from `seed`: change it every step and tensor).
    public func adamWMixed(params: CUdeviceptr, master: CUdeviceptr, grads: CUdeviceptr, m: CUdeviceptr, v: CUdeviceptr,
                           n: Int, gradScale: CUdeviceptr, config: AdamWConfig, step: Int, decay: Bool,
                           seed: UInt32) throws(CUDAError) {
        try gridStride("adamw_update_mixed", count: n,
                       [.pointer(params), .pointer(master), .pointer(grads), .pointer(m), .pointer(v), .int64(Int64(n)),
                        .pointer(gradScale)] + Self.adamWScalars(config, step: step, decay: decay) + [.uint32(seed)])
    }
}
