// Causal multi-head self-attention over the fused [q | k | v] activation, flash-style: scores live in registers
// and shared memory one 32 × 32 tile at a time, never as a (T,T) tensor in global memory
// (CPU version: Kernels/Attention.swift, which stores preatt and att instead).
//
// Forward keeps an online softmax per query row (running max m and sum l) and saves the row's log-sum-exp,
// so backward can rebuild any probability as exp(s - lse). Backward runs in three deterministic kernels
// without atomics: delta = rowsum(dout ∘ out), then dK and dV per key tile (looping over the query tiles that
// see it), then dQ per query tile (looping over the key tiles it sees).
//
// Shapes: qkv and dqkv are (B,T,3C), head h of q at columns h·hs ..< (h+1)·hs, of k at C + …, of v at 2C + …;
// out and dout are (B,T,C); lse and delta are (B,NH,T) float. hs = C / NH must be at most 128 (each lane
// holds up to four of a row's dimensions: lane, lane + 32, lane + 64, lane + 96).
//
// Launch for the three tiled kernels: grid (ceil(T/32), NH, B), block 128 (4 warps of 8 rows each), dynamic
// shared memory in bytes (over 48 KiB needs CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES):
//   attention_forward:      4 · (96·hs + 32 + 1024)
//   attention_backward_dkv: 4 · (128·hs + 64 + 2048 + 64)
//   attention_backward_dq:  4 · (128·hs + 64 + 1024 + 64)
#include "common.cuh"

#define TILE 32           // query rows and key rows per tile
#define ROWS_PER_WARP 8   // TILE / 4 warps
#define MAX_DIMS 4        // 128 / 32: dimensions per lane

// Loads rows t0 ..< t0 + TILE of one head's q, k or v (column offset `part`) into tile[r·stride + d] as float,
// times `scale`; rows at or past T become zeros. All threads of the block take part.
__device__ __forceinline__ void load_tile(float* tile, int stride, const floatX* head, long long rowStride, int t0,
                                          int T, int hs, float scale) {
    for (int i = threadIdx.x; i < TILE * hs; i += blockDim.x) {
        int r = i / hs, d = i % hs, t = t0 + r;
        tile[r * stride + d] = t < T ? to_float(head[t * rowStride + d]) * scale : 0.0f;
    }
}

// out = softmax(q·kᵀ/√hs, causal) · v for one (batch, head, tile of 32 queries); lse = log Σ exp(scores) per row.
KERNEL void attention_forward(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH) {
    DYNAMIC_SHARED(float, smem);
    int hs = C / NH, h = blockIdx.y, b = blockIdx.z;
    int qt = gridDim.x - 1 - blockIdx.x;  // the longest rows first
    int q0 = qt * TILE, warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    float* Qs = smem;                // [TILE][hs], scaled by 1/√hs
    float* Ks = Qs + TILE * hs;      // [TILE][hs + 1]: lane j reads row j, padded against bank conflicts
    float* Vs = Ks + TILE * (hs + 1);  // [TILE][hs]
    float* Ps = Vs + TILE * hs;      // [TILE][TILE]: each warp's rows of probabilities for the current key tile
    long long C3 = 3LL * C;
    const floatX* head = qkv + (long long)b * T * C3 + h * hs;
    float scale = 1.0f / sqrtf((float)hs);
    load_tile(Qs, hs, head, C3, q0, T, hs, scale);

    float m[ROWS_PER_WARP], l[ROWS_PER_WARP], o[ROWS_PER_WARP][MAX_DIMS];
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        m[j] = NEG_INFINITY;
        l[j] = 0.0f;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) o[j][i] = 0.0f;
    }
    for (int kt = 0; kt <= qt; kt++) {
        int k0 = kt * TILE;
        __syncthreads();  // the previous tiles are used up
        load_tile(Ks, hs + 1, head + C, C3, k0, T, hs, 1.0f);
        load_tile(Vs, hs, head + 2 * C, C3, k0, T, hs, 1.0f);
        __syncthreads();
        // Scores of this warp's rows against key k0 + lane.
        float s[ROWS_PER_WARP];
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) s[j] = 0.0f;
        for (int d = 0; d < hs; d++) {
            float k = Ks[lane * (hs + 1) + d];
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) s[j] += Qs[(warp * ROWS_PER_WARP + j) * hs + d] * k;
        }
        // Online softmax: rescale what was summed so far to the new running max.
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) {
            int tq = q0 + warp * ROWS_PER_WARP + j, tk = k0 + lane;
            bool visible = tk <= tq && tk < T;  // key k0 is always visible, so the max below is finite
            float mNew = fmaxf(m[j], warp_max(visible ? s[j] : NEG_INFINITY));
            float p = visible ? expf(s[j] - mNew) : 0.0f;
            float correction = expf(m[j] - mNew);
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
            for (int i = 0; i < MAX_DIMS; i++) v[i] = lane + 32 * i < hs ? Vs[k * hs + lane + 32 * i] : 0.0f;
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
        if (tq >= T) continue;
        float inv = 1.0f / l[j];
        floatX* row = out + ((long long)b * T + tq) * C + h * hs;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) {
            if (lane + 32 * i < hs) row[lane + 32 * i] = from_float(o[j][i] * inv);
        }
        if (lane == 0) lse[((long long)b * NH + h) * T + tq] = m[j] + logf(l[j]);
    }
}

// delta[b,h,t] = Σ_d dout[b,t,h·hs + d] · out[b,t,h·hs + d], which equals Σ_k p·dp over the row: the softmax
// backward's subtracted term. Launch: one warp per (b,t,h), blocks of 128.
KERNEL void attention_backward_delta(float* delta, const floatX* dout, const floatX* out, int B, int T,
                                     int C, int NH) {
    long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE, hs = C / NH;
    if (row >= (long long)B * T * NH) return;
    int h = (int)(row % NH);
    long long bt = row / NH;
    long long at = bt * C + h * hs;
    float s = 0.0f;
    for (int d = lane; d < hs; d += WARP_SIZE) s += to_float(dout[at + d]) * to_float(out[at + d]);
    s = warp_sum(s);
    int b = (int)(bt / T), t = (int)(bt % T);
    if (lane == 0) delta[((long long)b * NH + h) * T + t] = s;
}

// dk and dv for one (batch, head, tile of 32 keys), added into dqkv. With s = q·k/√hs, p = exp(s - lse),
// dp = dout·v and ds = p·(dp - delta): dv[k] = Σ_q p·dout[q], dk[k] = Σ_q ds·q/√hs.
// Each warp owns 8 keys; for scores a lane is a query of the current query tile, for sums a lane holds dimensions.
KERNEL void attention_backward_dkv(floatX* dqkv, const floatX* dout, const floatX* qkv,
                                   const float* lse, const float* delta, int B, int T, int C, int NH) {
    DYNAMIC_SHARED(float, smem);
    int hs = C / NH, h = blockIdx.y, b = blockIdx.z;
    int kt = blockIdx.x, k0 = kt * TILE;  // early key tiles have the most queries: first
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    float* Qs = smem;                       // [TILE][hs + 1], scaled by 1/√hs
    float* dOs = Qs + TILE * (hs + 1);      // [TILE][hs + 1]
    float* Ks = dOs + TILE * (hs + 1);      // [TILE][hs]
    float* Vs = Ks + TILE * hs;             // [TILE][hs]
    float* Ps = Vs + TILE * hs;             // [TILE keys][TILE queries]
    float* dSs = Ps + TILE * TILE;          // [TILE keys][TILE queries]
    float* lseS = dSs + TILE * TILE;        // [TILE]
    float* deltaS = lseS + TILE;            // [TILE]
    long long C3 = 3LL * C;
    const floatX* head = qkv + (long long)b * T * C3 + h * hs;
    const floatX* dhead = dout + (long long)b * T * C + h * hs;
    const float* lseRow = lse + ((long long)b * NH + h) * T;
    const float* deltaRow = delta + ((long long)b * NH + h) * T;
    float scale = 1.0f / sqrtf((float)hs);
    load_tile(Ks, hs, head + C, C3, k0, T, hs, 1.0f);
    load_tile(Vs, hs, head + 2 * C, C3, k0, T, hs, 1.0f);

    float dk[ROWS_PER_WARP][MAX_DIMS], dv[ROWS_PER_WARP][MAX_DIMS];
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) dk[j][i] = dv[j][i] = 0.0f;
    }
    for (int qt = kt; qt * TILE < T; qt++) {
        int q0 = qt * TILE;
        __syncthreads();
        load_tile(Qs, hs + 1, head, C3, q0, T, hs, scale);
        load_tile(dOs, hs + 1, dhead, C, q0, T, hs, 1.0f);
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
        for (int d = 0; d < hs; d++) {
            float q = Qs[lane * (hs + 1) + d], g = dOs[lane * (hs + 1) + d];
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                s[j] += q * Ks[(warp * ROWS_PER_WARP + j) * hs + d];
                dp[j] += g * Vs[(warp * ROWS_PER_WARP + j) * hs + d];
            }
        }
        int tq = q0 + lane;
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) {
            int key = warp * ROWS_PER_WARP + j, tk = k0 + key;
            bool visible = tq < T && tk <= tq;
            float p = visible ? expf(s[j] - lseS[lane]) : 0.0f;
            Ps[key * TILE + lane] = p;
            dSs[key * TILE + lane] = p * (dp[j] - deltaS[lane]);
        }
        __syncwarp();
        for (int q = 0; q < TILE; q++) {
            float g[MAX_DIMS], qv[MAX_DIMS];
            #pragma unroll
            for (int i = 0; i < MAX_DIMS; i++) {
                bool inside = lane + 32 * i < hs;
                g[i] = inside ? dOs[q * (hs + 1) + lane + 32 * i] : 0.0f;
                qv[i] = inside ? Qs[q * (hs + 1) + lane + 32 * i] : 0.0f;
            }
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                int key = warp * ROWS_PER_WARP + j;
                float p = Ps[key * TILE + q], ds = dSs[key * TILE + q];
                #pragma unroll
                for (int i = 0; i < MAX_DIMS; i++) {
                    dv[j][i] += p * g[i];
                    dk[j][i] += ds * qv[i];  // Qs already carries the 1/√hs
                }
            }
        }
        __syncwarp();
    }
    #pragma unroll
    for (int j = 0; j < ROWS_PER_WARP; j++) {
        int tk = k0 + warp * ROWS_PER_WARP + j;
        if (tk >= T) continue;
        floatX* row = dqkv + ((long long)b * T + tk) * C3 + h * hs;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) {
            int d = lane + 32 * i;
            if (d >= hs) continue;
            row[C + d] = from_float(to_float(row[C + d]) + dk[j][i]);
            row[2 * C + d] = from_float(to_float(row[2 * C + d]) + dv[j][i]);
        }
    }
}

// dq for one (batch, head, tile of 32 queries), added into dqkv: dq[q] = Σ_k ds·k/√hs.
// Each warp owns 8 query rows; for scores a lane is a key of the current key tile, for sums a lane holds dimensions.
KERNEL void attention_backward_dq(floatX* dqkv, const floatX* dout, const floatX* qkv,
                                  const float* lse, const float* delta, int B, int T, int C, int NH) {
    DYNAMIC_SHARED(float, smem);
    int hs = C / NH, h = blockIdx.y, b = blockIdx.z;
    int qt = gridDim.x - 1 - blockIdx.x;  // the longest rows first
    int q0 = qt * TILE, warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    float* Qs = smem;                       // [TILE][hs], scaled by 1/√hs
    float* dOs = Qs + TILE * hs;            // [TILE][hs]
    float* Ks = dOs + TILE * hs;            // [TILE][hs + 1]
    float* Vs = Ks + TILE * (hs + 1);       // [TILE][hs + 1]
    float* dSs = Vs + TILE * (hs + 1);      // [TILE queries][TILE keys]
    float* lseS = dSs + TILE * TILE;        // [TILE]
    float* deltaS = lseS + TILE;            // [TILE]
    long long C3 = 3LL * C;
    const floatX* head = qkv + (long long)b * T * C3 + h * hs;
    const float* lseRow = lse + ((long long)b * NH + h) * T;
    const float* deltaRow = delta + ((long long)b * NH + h) * T;
    float scale = 1.0f / sqrtf((float)hs);
    load_tile(Qs, hs, head, C3, q0, T, hs, scale);
    load_tile(dOs, hs, dout + (long long)b * T * C + h * hs, C, q0, T, hs, 1.0f);
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
    for (int kt = 0; kt <= qt; kt++) {
        int k0 = kt * TILE;
        __syncthreads();
        load_tile(Ks, hs + 1, head + C, C3, k0, T, hs, 1.0f);
        load_tile(Vs, hs + 1, head + 2 * C, C3, k0, T, hs, 1.0f);
        __syncthreads();
        // s and dp of this warp's rows against key k0 + lane.
        float s[ROWS_PER_WARP], dp[ROWS_PER_WARP];
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) s[j] = dp[j] = 0.0f;
        for (int d = 0; d < hs; d++) {
            float k = Ks[lane * (hs + 1) + d], v = Vs[lane * (hs + 1) + d];
            #pragma unroll
            for (int j = 0; j < ROWS_PER_WARP; j++) {
                s[j] += Qs[(warp * ROWS_PER_WARP + j) * hs + d] * k;
                dp[j] += dOs[(warp * ROWS_PER_WARP + j) * hs + d] * v;
            }
        }
        int tk = k0 + lane;
        #pragma unroll
        for (int j = 0; j < ROWS_PER_WARP; j++) {
            int row = warp * ROWS_PER_WARP + j, tq = q0 + row;
            bool visible = tq < T && tk <= tq;
            float p = visible ? expf(s[j] - lseS[row]) : 0.0f;
            dSs[row * TILE + lane] = p * (dp[j] - deltaS[row]);
        }
        __syncwarp();
        for (int k = 0; k < TILE; k++) {
            float kv[MAX_DIMS];
            #pragma unroll
            for (int i = 0; i < MAX_DIMS; i++) kv[i] = lane + 32 * i < hs ? Ks[k * (hs + 1) + lane + 32 * i] : 0.0f;
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
        floatX* row = dqkv + ((long long)b * T + tq) * C3 + h * hs;
        #pragma unroll
        for (int i = 0; i < MAX_DIMS; i++) {
            int d = lane + 32 * i;
            if (d < hs) row[d] = from_float(to_float(row[d]) + dq[j][i] * scale);
        }
    }
}
