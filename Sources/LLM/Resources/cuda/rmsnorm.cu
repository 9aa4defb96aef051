// RMSNorm over groups of C values and its backward (CPU version: Kernels/RMSNorm.swift), in the three weighted
// kinds of RMSNormWeight: `kind` 0 is x̂·w (Llama, Qwen2), 1 is x̂·(1 + w) (Gemma), 2 is x̂ with no weight
// (nanochat; weight is then unused and may be null). x̂ = x·rstd, rstd = 1/√(mean(x²) + eps).
//
// Each row n < N of `stride` values holds `groups` groups of C: group g starts at n·stride + g·C. A plain (N,C)
// tensor is groups 1, stride C; QK-norm normalises each head of a fused q|k|v row (C = head size, groups = heads,
// stride = the fused row). The item of group g in row n is n·groups + g; rstd is (N, groups) float.
//
// The weight gradient is a column sum over every item: partial sums per chunk of items here, then
// column_sum_finish (matmul.cu) adds the chunks in order, so the result does not depend on scheduling.
#include "common.cuh"

#define RMSNORM_SCALE 0
#define RMSNORM_ONE_PLUS 1
#define RMSNORM_NO_WEIGHT 2

// The multiplier of x̂ at channel c.
__device__ __forceinline__ float rmsnorm_gain(const floatX* weight, int kind, int c) {
    if (kind == RMSNORM_SCALE) return to_float(weight[c]);
    if (kind == RMSNORM_ONE_PLUS) return 1.0f + to_float(weight[c]);
    return 1.0f;
}

// out = x·rstd·gain per group, rstd[item] = 1/√(mean(x²) + eps). out and inp are (N, stride) (only the groups are
// read and written), weight is (C), rstd is (N, groups).
// Launch: one warp per item (N·groups of them), blocks of 128 (4 items).
KERNEL void rmsnorm_forward(floatX* out, float* rstd, const floatX* inp, const floatX* weight, int kind, float eps,
                            int N, int C, int groups, int stride) {
    int item = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    if (item >= N * groups) return;
    long long base = (long long)(item / groups) * stride + (long long)(item % groups) * C;
    const floatX* x = inp + base;
    floatX* o = out + base;
    float squares = 0.0f;
    for (int c = lane; c < C; c += WARP_SIZE) {
        float v = to_float(x[c]);
        squares += v * v;
    }
    float s = 1.0f / sqrtf(warp_sum(squares) / C + eps);
    for (int c = lane; c < C; c += WARP_SIZE) o[c] = from_float(to_float(x[c]) * s * rmsnorm_gain(weight, kind, c));
    if (lane == 0) rstd[item] = s;
}

// dinp += rstd · (g - x̂ · mean(g · x̂)) with g = gain·dout, per group. dinp, dout, inp are (N, stride).
// Launch: one warp per item (N·groups of them), blocks of 128.
KERNEL void rmsnorm_backward_input(floatX* dinp, const floatX* dout, const floatX* inp, const floatX* weight,
                                   const float* rstd, int kind, int N, int C, int groups, int stride) {
    int item = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    if (item >= N * groups) return;
    long long base = (long long)(item / groups) * stride + (long long)(item % groups) * C;
    float s = rstd[item];
    float gNormSum = 0.0f;
    for (int c = lane; c < C; c += WARP_SIZE) {
        gNormSum += rmsnorm_gain(weight, kind, c) * to_float(dout[base + c]) * to_float(inp[base + c]) * s;
    }
    float gNormMean = warp_sum(gNormSum) / C;
    for (int c = lane; c < C; c += WARP_SIZE) {
        float g = rmsnorm_gain(weight, kind, c) * to_float(dout[base + c]);
        float norm = to_float(inp[base + c]) * s;
        dinp[base + c] = from_float(to_float(dinp[base + c]) + (g - norm * gNormMean) * s);
    }
}

// Per chunk k of items [k·items_per_chunk, (k+1)·items_per_chunk): partial[k, c] = Σ x̂·dout over the chunk's
// items, the weight gradient of both weighted kinds (d(1 + w)/dw = 1). partial is (chunks, C) float. Then
// column_sum_finish(dweight, partial, chunks, C, 0, C) adds it into dweight. Not launched for kind 2 (no weight).
// Launch: grid (ceil(C/32), chunks), block (32, COLUMN_ROWS).
KERNEL void rmsnorm_backward_weight_partial(float* partial, const floatX* dout, const floatX* inp,
                                            const float* rstd, int N, int C, int groups, int stride,
                                            int items_per_chunk) {
    __shared__ float dw[COLUMN_ROWS][33];
    int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    int start = chunk * items_per_chunk, end = min(N * groups, start + items_per_chunk);
    float w = 0.0f;
    if (c < C) {
        for (int item = start + threadIdx.y; item < end; item += COLUMN_ROWS) {
            long long at = (long long)(item / groups) * stride + (long long)(item % groups) * C + c;
            w += to_float(inp[at]) * rstd[item] * to_float(dout[at]);
        }
    }
    dw[threadIdx.y][threadIdx.x] = w;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int y = 1; y < COLUMN_ROWS; y++) w += dw[y][threadIdx.x];
        partial[(long long)chunk * C + c] = w;
    }
}
