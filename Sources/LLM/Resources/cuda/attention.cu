// Causal self-attention over the fused q|k|v activation, flash-style: scores live in registers and shared
// memory one 32 × 32 tile at a time, never as a (T,T) tensor in global memory (CPU version:
// Kernels/Attention.swift, which stores preatt and att instead).
//
// Forward keeps an online softmax per query row (running max m and sum l) and saves the row's log-sum-exp,
// so backward can rebuild any probability as exp(s - lse). Backward runs in three deterministic kernels
// without atomics: delta = rowsum(dout ∘ out), then dK and dV per key tile of one key/value head (looping, in a
// fixed order, over the query heads of its group and the query tiles that see the tile), then dQ per query tile
// (looping over the key tiles it sees).
//
// Shape (AttentionShape): H query heads and H_kv key/value heads (H_kv divides H) of d dimensions each; query
// head h reads key/value head g = h / (H / H_kv). Scores are q·k·scale. A sliding window W > 0 lets query t
// see keys first(t) ..< t + 1 with first(t) = max(0, t − W + 1); W = 0 means the whole causal prefix.
// GPT-2 is H = H_kv = NH, d = C / NH, W = 0, scale = 1/√d.
//
// Layouts: qkv and dqkv are (B,T,(H + 2·H_kv)·d): query head h at columns h·d, key head g at (H + g)·d, value
// head g at (H + H_kv + g)·d. out and dout are (B,T,H·d), head h at h·d. lse and delta are (B,H,T) float.
// Each lane holds up to MAX_DIMS of a row's dimensions (lane, lane + 32, …): the tiled kernels exist for d ≤ 128
// (MAX_DIMS 4: GPT-2, Llama, Qwen2, SmolLM2) and, with a `_wide` suffix, for d ≤ 256 (MAX_DIMS 8: Gemma 3), which
// hold twice the registers and need their shared memory allowed beyond 48 KiB.
// Backward adds into dqkv (as every backward does); no two blocks add into the same values.
//
// Launch, block 128 (4 warps of 8 rows each) for the three tiled kernels, with dynamic shared memory in bytes
// (over 48 KiB needs CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES):
//   attention_forward:        grid (ceil(T/32), H, B),    4 · (96·d + 32 + 1024)
//   attention_backward_delta: grid ceil(B·T·H / 4),       block 128 (one warp per (b,t,h)), no shared memory
//   attention_backward_dkv:   grid (ceil(T/32), H_kv, B), 4 · (128·d + 64 + 2048 + 64)
//   attention_backward_dq:    grid (ceil(T/32), H, B),    4 · (128·d + 64 + 1024 + 64)
// The `_wide` variants (d ≤ 256) launch the same way, with the same shared memory formulas.
// Backward: delta first, then dkv and dq (in either order).
#include "common.cuh"

#define TILE 32           // query rows and key rows per tile
#define ROWS_PER_WARP 8   // TILE / 4 warps

// Loads rows t0 ..< t0 + TILE of one head (`head` points at its first column in row 0) into tile[r·stride + j]
// as float, times `scale`; rows at or past T become zeros. All threads of the block take part.
__device__ __forceinline__ void load_tile(float* tile, int stride, const floatX* head, long long rowStride, int t0,
                                          int T, int d, float scale) {
    for (int i = threadIdx.x; i < TILE * d; i += blockDim.x) {
        int r = i / d, j = i % d, t = t0 + r;
        tile[r * stride + j] = t < T ? to_float(head[t * rowStride + j]) * scale : 0.0f;
    }
}

// Whether query position tq sees key position tk (both inside the sequence).
__device__ __forceinline__ bool attention_visible(int tq, int tk, int T, int window) {
    return tq < T && tk <= tq && tk >= attention_first_key(tq, window);
}

// out = softmax(q·kᵀ·scale over the visible keys) · v for one (tile of 32 queries, query head, batch);
// lse = log Σ exp(scores) per row.
template <int MAX_DIMS>
__device__ __forceinline__ void attention_forward_body(floatX* out, float* lse, const floatX* qkv, int B, int T, int H,
                                                       int Hkv, int d, int window, float scale) {
    DYNAMIC_SHARED(float, smem);
    int h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    int qt = gridDim.x - 1 - blockIdx.x;  // the longest rows first
    int q0 = qt * TILE, warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    float* Qs = smem;                // [TILE][d], scaled by `scale`
    float* Ks = Qs + TILE * d;       // [TILE][d + 1]: lane j reads row j, padded against bank conflicts
    float* Vs = Ks + TILE * (d + 1);  // [TILE][d]
    float* Ps = Vs + TILE * d;       // [TILE][TILE]: each warp's rows of probabilities for the current key tile
    long long rowStride = (long long)(H + 2 * Hkv) * d;
    const floatX* rows = qkv + (long long)b * T * rowStride;
    load_tile(Qs, d, rows + h * d, rowStride, q0, T, d, scale);

    float m[ROWS_PER_WARP], l[ROWS_PER_WARP], o[ROWS_PER_WARP][MAX_DIMS];
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        m[j] = NEG_INFINITY;
        l[j] = 0.0f;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) o[j][i] = 0.0f;
    }
    for (int kt = attention_first_key(q0, window) / TILE; kt <= qt; kt++) {
        int k0 = kt * TILE;
        __syncthreads();  // the previous tiles are used up
        load_tile(Ks, d + 1, rows + (H + g) * d, rowStride, k0, T, d, 1.0f);
        load_tile(Vs, d, rows + (H + Hkv + g) * d, rowStride, k0, T, d, 1.0f);
        __syncthreads();
        // Scores of this warp's rows against key k0 + lane.
        float s[ROWS_PER_WARP];
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) s[j] = 0.0f;
        for (int e = 0; e < d; e++) {
            float k = Ks[lane * (d + 1) + e];
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) s[j] += Qs[(warp * ROWS_PER_WARP + j) * d + e] * k;
        }
        // Online softmax: rescale what was summed so far to the new running max.
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) {
            int tq = q0 + warp * ROWS_PER_WARP + j, tk = k0 + lane;
            bool visible = attention_visible(tq, tk, T, window);
            float mNew = fmaxf(m[j], warp_max(visible ? s[j] : NEG_INFINITY));
            // A row that has seen no key yet (under a window, or past T) keeps m = −∞, l = 0, o = 0.
            float base = mNew == NEG_INFINITY ? 0.0f : mNew;
            float p = visible ? expf(s[j] - base) : 0.0f;
            float correction = expf(m[j] - base);
            l[j] = l[j] * correction + warp_sum(p);
            m[j] = mNew;
            #pragma unroll
            for (int i = 0; i < MAX_DIMS; i++) o[j][i] *= correction;
            Ps[(warp * ROWS_PER_WARP + j) * TILE + lane] = p;
        }
        __syncwarp();
        // o[row, lane + 32i] += Σ_k p[row, k] · v[k, lane + 32i]
        for (int k = 0; k < TILE; k++) {
            float v[MAX_DIMS];
            #pragma unroll
            for (int i = 0; i < MAX_DIMS; i++) v[i] = lane + 32 * i < d ? Vs[k * d + lane + 32 * i] : 0.0f;
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                float p = Ps[(warp * ROWS_PER_WARP + j) * TILE + k];
                #pragma unroll
                for (int i = 0; i < MAX_DIMS; i++) o[j][i] += p * v[i];
            }
        }
        __syncwarp();
    }
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        int tq = q0 + warp * ROWS_PER_WARP + j;
        if (tq >= T) continue;  // every row inside sees itself, so l > 0
        float inv = 1.0f / l[j];
        floatX* row = out + ((long long)b * T + tq) * H * d + h * d;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) {
            if (lane + 32 * i < d) row[lane + 32 * i] = from_float(o[j][i] * inv);
        }
        if (lane == 0) lse[((long long)b * H + h) * T + tq] = m[j] + logf(l[j]);
    }
}

KERNEL void attention_forward(floatX* out, float* lse, const floatX* qkv, int B, int T, int H, int Hkv, int d,
                              int window, float scale) {
    attention_forward_body<4>(out, lse, qkv, B, T, H, Hkv, d, window, scale);
}

KERNEL void attention_forward_wide(floatX* out, float* lse, const floatX* qkv, int B, int T, int H, int Hkv, int d,
                              int window, float scale) {
    attention_forward_body<8>(out, lse, qkv, B, T, H, Hkv, d, window, scale);
}

// delta[b,h,t] = Σ_j dout[b,t,h·d + j] · out[b,t,h·d + j], which equals Σ_k p·dp over the row: the softmax
// backward's subtracted term. Launch: one warp per (b,t,h), blocks of 128.
KERNEL void attention_backward_delta(float* delta, const floatX* dout, const floatX* out, int B, int T, int H,
                                     int d) {
    long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (row >= (long long)B * T * H) return;  // whole warps return together
    int h = (int)(row % H);
    long long bt = row / H;
    long long at = bt * H * d + h * d;
    float s = 0.0f;
    for (int j = lane; j < d; j += WARP_SIZE) s += to_float(dout[at + j]) * to_float(out[at + j]);
    s = warp_sum(s);
    int b = (int)(bt / T), t = (int)(bt % T);
    if (lane == 0) delta[((long long)b * H + h) * T + t] = s;
}

// dk and dv for one (tile of 32 keys, key/value head g, batch), added into dqkv. With s = q·k·scale,
// p = exp(s - lse), dp = dout·v and ds = p·(dp - delta): dv[k] = Σ_q p·dout[q], dk[k] = Σ_q ds·q·scale, the sums
// over every query row of every query head of g's group that sees key k: the heads in order, then the query
// tiles from the key tile's own to the last one the window lets see it.
// Each warp owns 8 keys; for scores a lane is a query of the current query tile, for sums a lane holds dimensions.
template <int MAX_DIMS>
__device__ __forceinline__ void attention_backward_dkv_body(floatX* dqkv, const floatX* dout, const floatX* qkv,
                                                            const float* lse, const float* delta, int B, int T, int H,
                                                            int Hkv, int d, int window, float scale) {
    DYNAMIC_SHARED(float, smem);
    int g = blockIdx.y, b = blockIdx.z, group = H / Hkv;
    int kt = blockIdx.x, k0 = kt * TILE;  // early key tiles have the most queries: first
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    float* Qs = smem;                       // [TILE][d + 1], scaled by `scale`
    float* dOs = Qs + TILE * (d + 1);       // [TILE][d + 1]
    float* Ks = dOs + TILE * (d + 1);       // [TILE][d]
    float* Vs = Ks + TILE * d;              // [TILE][d]
    float* Ps = Vs + TILE * d;              // [TILE keys][TILE queries]
    float* dSs = Ps + TILE * TILE;          // [TILE keys][TILE queries]
    float* lseS = dSs + TILE * TILE;        // [TILE]
    float* deltaS = lseS + TILE;            // [TILE]
    long long rowStride = (long long)(H + 2 * Hkv) * d, outStride = (long long)H * d;
    const floatX* rows = qkv + (long long)b * T * rowStride;
    load_tile(Ks, d, rows + (H + g) * d, rowStride, k0, T, d, 1.0f);
    load_tile(Vs, d, rows + (H + Hkv + g) * d, rowStride, k0, T, d, 1.0f);
    // The last query that sees a key of this tile: the tile's last key plus the window.
    int kLast = min(k0 + TILE, T) - 1;
    int qLast = window > 0 ? min(T - 1, kLast + window - 1) : T - 1;

    float dk[ROWS_PER_WARP][MAX_DIMS], dv[ROWS_PER_WARP][MAX_DIMS];
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) dk[j][i] = dv[j][i] = 0.0f;
    }
    for (int h = g * group; h < (g + 1) * group; h++) {
        const floatX* dhead = dout + (long long)b * T * outStride + h * d;
        const float* lseRow = lse + ((long long)b * H + h) * T;
        const float* deltaRow = delta + ((long long)b * H + h) * T;
        for (int qt = kt; qt * TILE <= qLast; qt++) {
            int q0 = qt * TILE;
            __syncthreads();  // the previous tiles are used up
            load_tile(Qs, d + 1, rows + h * d, rowStride, q0, T, d, scale);
            load_tile(dOs, d + 1, dhead, outStride, q0, T, d, 1.0f);
            if (threadIdx.x < TILE) {
                int t = q0 + threadIdx.x;
                lseS[threadIdx.x] = t < T ? lseRow[t] : 0.0f;
                deltaS[threadIdx.x] = t < T ? deltaRow[t] : 0.0f;
            }
            __syncthreads();
            // s and dp of query q0 + lane against this warp's keys.
            float s[ROWS_PER_WARP], dp[ROWS_PER_WARP];
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) s[j] = dp[j] = 0.0f;
            for (int e = 0; e < d; e++) {
                float q = Qs[lane * (d + 1) + e], go = dOs[lane * (d + 1) + e];
                #pragma unroll
                for (int j = 0; j < ROWS_PER_WARP; j++) {
                    s[j] += q * Ks[(warp * ROWS_PER_WARP + j) * d + e];
                    dp[j] += go * Vs[(warp * ROWS_PER_WARP + j) * d + e];
                }
            }
            int tq = q0 + lane;
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                int key = warp * ROWS_PER_WARP + j, tk = k0 + key;
                float p = attention_visible(tq, tk, T, window) ? expf(s[j] - lseS[lane]) : 0.0f;
                Ps[key * TILE + lane] = p;
                dSs[key * TILE + lane] = p * (dp[j] - deltaS[lane]);
            }
            __syncwarp();
            for (int q = 0; q < TILE; q++) {
                float go[MAX_DIMS], qv[MAX_DIMS];
                #pragma unroll
                for (int i = 0; i < MAX_DIMS; i++) {
                    bool inside = lane + 32 * i < d;
                    go[i] = inside ? dOs[q * (d + 1) + lane + 32 * i] : 0.0f;
                    qv[i] = inside ? Qs[q * (d + 1) + lane + 32 * i] : 0.0f;
                }
                #pragma unroll
                for (int j = 0; j < ROWS_PER_WARP; j++) {
                    int key = warp * ROWS_PER_WARP + j;
                    float p = Ps[key * TILE + q], ds = dSs[key * TILE + q];
                    #pragma unroll
                    for (int i = 0; i < MAX_DIMS; i++) {
                        dv[j][i] += p * go[i];
                        dk[j][i] += ds * qv[i];  // Qs already carries the scale
                    }
                }
            }
            __syncwarp();
        }
    }
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        int tk = k0 + warp * ROWS_PER_WARP + j;
        if (tk >= T) continue;
        floatX* row = dqkv + ((long long)b * T + tk) * rowStride;
        floatX* dkRow = row + (H + g) * d;
        floatX* dvRow = row + (H + Hkv + g) * d;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) {
            int e = lane + 32 * i;
            if (e >= d) continue;
            dkRow[e] = from_float(to_float(dkRow[e]) + dk[j][i]);
            dvRow[e] = from_float(to_float(dvRow[e]) + dv[j][i]);
        }
    }
}

KERNEL void attention_backward_dkv(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                   const float* delta, int B, int T, int H, int Hkv, int d, int window, float scale) {
    attention_backward_dkv_body<4>(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, d, window, scale);
}

KERNEL void attention_backward_dkv_wide(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                   const float* delta, int B, int T, int H, int Hkv, int d, int window, float scale) {
    attention_backward_dkv_body<8>(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, d, window, scale);
}

// dq for one (tile of 32 queries, query head h, batch), added into dqkv: dq[q] = Σ_k ds·k·scale over the keys
// q sees. Each warp owns 8 query rows; for scores a lane is a key of the current key tile, for sums a lane holds
// dimensions.
template <int MAX_DIMS>
__device__ __forceinline__ void attention_backward_dq_body(floatX* dqkv, const floatX* dout, const floatX* qkv,
                                                           const float* lse, const float* delta, int B, int T, int H,
                                                           int Hkv, int d, int window, float scale) {
    DYNAMIC_SHARED(float, smem);
    int h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    int qt = gridDim.x - 1 - blockIdx.x;  // the longest rows first
    int q0 = qt * TILE, warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    float* Qs = smem;                      // [TILE][d], scaled by `scale`
    float* dOs = Qs + TILE * d;            // [TILE][d]
    float* Ks = dOs + TILE * d;            // [TILE][d + 1]
    float* Vs = Ks + TILE * (d + 1);       // [TILE][d + 1]
    float* dSs = Vs + TILE * (d + 1);      // [TILE queries][TILE keys]
    float* lseS = dSs + TILE * TILE;       // [TILE]
    float* deltaS = lseS + TILE;           // [TILE]
    long long rowStride = (long long)(H + 2 * Hkv) * d, outStride = (long long)H * d;
    const floatX* rows = qkv + (long long)b * T * rowStride;
    const float* lseRow = lse + ((long long)b * H + h) * T;
    const float* deltaRow = delta + ((long long)b * H + h) * T;
    load_tile(Qs, d, rows + h * d, rowStride, q0, T, d, scale);
    load_tile(dOs, d, dout + (long long)b * T * outStride + h * d, outStride, q0, T, d, 1.0f);
    if (threadIdx.x < TILE) {
        int t = q0 + threadIdx.x;
        lseS[threadIdx.x] = t < T ? lseRow[t] : 0.0f;
        deltaS[threadIdx.x] = t < T ? deltaRow[t] : 0.0f;
    }

    float dq[ROWS_PER_WARP][MAX_DIMS];
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) dq[j][i] = 0.0f;
    }
    for (int kt = attention_first_key(q0, window) / TILE; kt <= qt; kt++) {
        int k0 = kt * TILE;
        __syncthreads();  // the previous tiles are used up (and, the first time, Qs, dOs, lseS and deltaS are in)
        load_tile(Ks, d + 1, rows + (H + g) * d, rowStride, k0, T, d, 1.0f);
        load_tile(Vs, d + 1, rows + (H + Hkv + g) * d, rowStride, k0, T, d, 1.0f);
        __syncthreads();
        // s and dp of this warp's rows against key k0 + lane.
        float s[ROWS_PER_WARP], dp[ROWS_PER_WARP];
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) s[j] = dp[j] = 0.0f;
        for (int e = 0; e < d; e++) {
            float k = Ks[lane * (d + 1) + e], v = Vs[lane * (d + 1) + e];
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                s[j] += Qs[(warp * ROWS_PER_WARP + j) * d + e] * k;
                dp[j] += dOs[(warp * ROWS_PER_WARP + j) * d + e] * v;
            }
        }
        int tk = k0 + lane;
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) {
            int row = warp * ROWS_PER_WARP + j, tq = q0 + row;
            float p = attention_visible(tq, tk, T, window) ? expf(s[j] - lseS[row]) : 0.0f;
            dSs[row * TILE + lane] = p * (dp[j] - deltaS[row]);
        }
        __syncwarp();
        for (int k = 0; k < TILE; k++) {
            float kv[MAX_DIMS];
            #pragma unroll
            for (int i = 0; i < MAX_DIMS; i++) kv[i] = lane + 32 * i < d ? Ks[k * (d + 1) + lane + 32 * i] : 0.0f;
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                float ds = dSs[(warp * ROWS_PER_WARP + j) * TILE + k];
                #pragma unroll
                for (int i = 0; i < MAX_DIMS; i++) dq[j][i] += ds * kv[i];
            }
        }
        __syncwarp();
    }
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        int tq = q0 + warp * ROWS_PER_WARP + j;
        if (tq >= T) continue;
        floatX* row = dqkv + ((long long)b * T + tq) * rowStride + h * d;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) {
            int e = lane + 32 * i;
            if (e < d) row[e] = from_float(to_float(row[e]) + dq[j][i] * scale);
        }
    }
}

KERNEL void attention_backward_dq(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                  const float* delta, int B, int T, int H, int Hkv, int d, int window, float scale) {
    attention_backward_dq_body<4>(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, d, window, scale);
}

KERNEL void attention_backward_dq_wide(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                  const float* delta, int B, int T, int H, int Hkv, int d, int window, float scale) {
    attention_backward_dq_body<8>(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, d, window, scale);
}
