// LayerNorm over the channels of each position (eps 1e-5) and its backward (CPU version: Kernels/LayerNorm.swift).
// The weight and bias gradients are column sums over all rows: partial sums per chunk of rows here, then
// column_sum_finish (matmul.cu) adds the chunks in order, so the result does not depend on scheduling.
#include "common.cuh"

#define LAYERNORM_EPS 1e-5f

// out = (x - mean) / √(var + eps) · weight + bias per row of C; saves mean and rstd (float) for backward.
// out, inp are (N,C); mean, rstd are (N); weight, bias are (C). N = B·T.
// Launch: one warp per row, blocks of 128 (4 rows).
KERNEL void layernorm_forward(floatX* out, float* mean, float* rstd, const floatX* inp,
                              const floatX* weight, const floatX* bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    if (row >= N) return;
    const floatX* x = inp + (long long)row * C;
    floatX* o = out + (long long)row * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += WARP_SIZE) sum += to_float(x[c]);
    float m = warp_sum(sum) / C;
    float squares = 0.0f;
    for (int c = lane; c < C; c += WARP_SIZE) {
        float d = to_float(x[c]) - m;
        squares += d * d;
    }
    float s = 1.0f / sqrtf(warp_sum(squares) / C + LAYERNORM_EPS);  // biased variance, as PyTorch
    for (int c = lane; c < C; c += WARP_SIZE) {
        o[c] = from_float((to_float(x[c]) - m) * s * to_float(weight[c]) + to_float(bias[c]));
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

// dinp += rstd · (g - mean(g) - norm · mean(g · norm)) with norm = (x - mean)·rstd and g = weight·dout.
// dinp, dout, inp are (N,C). Launch: one warp per row, blocks of 128.
KERNEL void layernorm_backward_input(floatX* dinp, const floatX* dout, const floatX* inp,
                                     const floatX* weight, const float* mean, const float* rstd,
                                     int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    if (row >= N) return;
    long long base = (long long)row * C;
    float m = mean[row], s = rstd[row];
    float gSum = 0.0f, gNormSum = 0.0f;
    for (int c = lane; c < C; c += WARP_SIZE) {
        float g = to_float(weight[c]) * to_float(dout[base + c]);
        gSum += g;
        gNormSum += g * (to_float(inp[base + c]) - m) * s;
    }
    float gMean = warp_sum(gSum) / C, gNormMean = warp_sum(gNormSum) / C;
    for (int c = lane; c < C; c += WARP_SIZE) {
        float norm = (to_float(inp[base + c]) - m) * s;
        float g = to_float(weight[c]) * to_float(dout[base + c]);
        dinp[base + c] = from_float(to_float(dinp[base + c]) + (g - gMean - norm * gNormMean) * s);
    }
}

// Per chunk k of rows [k·rows_per_chunk, (k+1)·rows_per_chunk): partial[k, c] = Σ norm·dout (dweight) and
// partial[k, C + c] = Σ dout (dbias). partial is (chunks, 2C) float.
// Then column_sum_finish(dweight, partial, chunks, 2C, 0, C) and column_sum_finish(dbias, partial, chunks, 2C, C, C).
// Launch: grid (ceil(C/32), chunks), block (32, COLUMN_ROWS).
KERNEL void layernorm_backward_params_partial(float* partial, const floatX* dout, const floatX* inp,
                                              const float* mean, const float* rstd, int N, int C,
                                              int rows_per_chunk) {
    __shared__ float dw[COLUMN_ROWS][33], db[COLUMN_ROWS][33];
    int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    int start = chunk * rows_per_chunk, end = min(N, start + rows_per_chunk);
    float w = 0.0f, b = 0.0f;
    if (c < C) {
        for (int r = start + threadIdx.y; r < end; r += COLUMN_ROWS) {
            long long at = (long long)r * C + c;
            float d = to_float(dout[at]);
            w += (to_float(inp[at]) - mean[r]) * rstd[r] * d;
            b += d;
        }
    }
    dw[threadIdx.y][threadIdx.x] = w;
    db[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int y = 1; y < COLUMN_ROWS; y++) {
            w += dw[y][threadIdx.x];
            b += db[y][threadIdx.x];
        }
        partial[(long long)chunk * 2 * C + c] = w;
        partial[(long long)chunk * 2 * C + C + c] = b;
    }
}
