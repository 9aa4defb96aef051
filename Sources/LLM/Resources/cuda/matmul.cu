// What the matmuls need around cuBLASLt: a bias add, and the bias gradient as column sums of dout
// (CPU version: the bias parts of matmulForward/matmulBackward in Kernels/Matmul.swift).
// Column sums go in two deterministic passes: partial sums per chunk of rows, then the chunks added in order.
#include "common.cuh"

// out[n,o] += bias[o]. out is (N,OC). Launch: grid-stride, blocks of 256.
KERNEL void add_bias(floatX* out, const floatX* bias, int N, int OC) {
    for (long long i = global_index(); i < (long long)N * OC; i += global_stride()) {
        out[i] = from_float(to_float(out[i]) + to_float(bias[i % OC]));
    }
}

// partial[k, o] = Σ x[n, o] over rows n of chunk k: [k·rows_per_chunk, (k+1)·rows_per_chunk).
// x is (N,cols), partial is (chunks, cols) float. For dbias: x = dout, cols = OC; then
// column_sum_finish(dbias, partial, chunks, OC, 0, OC).
// Launch: grid (ceil(cols/32), chunks), block (32, COLUMN_ROWS).
KERNEL void column_sum_partial(float* partial, const floatX* x, int N, int cols, int rows_per_chunk) {
    __shared__ float sums[COLUMN_ROWS][33];
    int o = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    int start = chunk * rows_per_chunk, end = min(N, start + rows_per_chunk);
    float s = 0.0f;
    if (o < cols) {
        for (int r = start + threadIdx.y; r < end; r += COLUMN_ROWS) s += to_float(x[(long long)r * cols + o]);
    }
    sums[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < cols) {
        for (int y = 1; y < COLUMN_ROWS; y++) s += sums[y][threadIdx.x];
        partial[(long long)chunk * cols + o] = s;
    }
}

// out[c] += Σ_k partial[k·ld + offset + c] over chunks k in order, for c < cols.
// Launch: one thread per column, blocks of 256.
KERNEL void column_sum_finish(floatX* out, const float* partial, int chunks, int ld, int offset,
                              int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int k = 0; k < chunks; k++) s += partial[(long long)k * ld + offset + c];
    out[c] = from_float(to_float(out[c]) + s);
}
