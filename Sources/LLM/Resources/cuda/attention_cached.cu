// Causal self-attention for generation against a key/value cache, so a decode step costs one position's work
// (CPU version: Kernels/AttentionCached.swift, same cache layout).
// qkv is (n,3C) for the n new positions t0 ..< t0 + n, laid out [q | k | v] as attention_forward's input;
// kCache and vCache are (NH,maxT,hs), one contiguous (maxT,hs) block per head; out is (n,C).
#include "common.cuh"

// Copies the keys and values of the n new positions into the cache. Launch: one thread per (i, c) of n × C,
// blocks of 256. Run it before attention_cached_forward for the same positions.
KERNEL void kv_cache_write(floatX* kCache, floatX* vCache, const floatX* qkv, int t0, int n, int C,
                           int NH, int maxT) {
    long long idx = global_index();
    if (idx >= (long long)n * C) return;
    int i = (int)(idx / C), c = (int)(idx % C), hs = C / NH, h = c / hs, d = c % hs;
    long long at = ((long long)h * maxT + t0 + i) * hs + d;
    kCache[at] = qkv[(long long)i * 3 * C + C + c];
    vCache[at] = qkv[(long long)i * 3 * C + 2 * C + c];
}

// For new position t = t0 + i and head h: scores against cached keys t2 ≤ t, softmax, weighted sum of cached
// values. The scores of one row (at most maxT floats) sit in shared memory.
// Launch: grid (n, NH), block 128, dynamic shared memory 4 · (maxT + 32 + hs) bytes.
KERNEL void attention_cached_forward(floatX* out, const floatX* kCache, const floatX* vCache,
                                     const floatX* qkv, int t0, int n, int C, int NH, int maxT) {
    DYNAMIC_SHARED(float, smem);
    int i = blockIdx.x, h = blockIdx.y, t = t0 + i, hs = C / NH;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    float* scores = smem;           // [maxT]
    float* scratch = scores + maxT;  // [32]
    float* q = scratch + 32;         // [hs], scaled by 1/√hs
    const floatX* keys = kCache + (long long)h * maxT * hs;
    const floatX* values = vCache + (long long)h * maxT * hs;
    float scale = 1.0f / sqrtf((float)hs);
    for (int d = threadIdx.x; d < hs; d += blockDim.x) q[d] = to_float(qkv[(long long)i * 3 * C + h * hs + d]) * scale;
    __syncthreads();
    // One warp per key, lanes across the dimensions (reads of a key row are contiguous).
    for (int t2 = warp; t2 <= t; t2 += warps) {
        float s = 0.0f;
        for (int d = lane; d < hs; d += WARP_SIZE) s += q[d] * to_float(keys[(long long)t2 * hs + d]);
        s = warp_sum(s);
        if (lane == 0) scores[t2] = s;
    }
    __syncthreads();
    float m = NEG_INFINITY;
    for (int t2 = threadIdx.x; t2 <= t; t2 += blockDim.x) m = fmaxf(m, scores[t2]);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (int t2 = threadIdx.x; t2 <= t; t2 += blockDim.x) {
        float e = expf(scores[t2] - m);
        scores[t2] = e;
        sum += e;
    }
    float inv = 1.0f / block_sum(sum, scratch);  // its barriers also publish the scores written above
    // One thread per dimension, summing over the keys (reads of a value row are contiguous across threads).
    for (int d = threadIdx.x; d < hs; d += blockDim.x) {
        float o = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) o += scores[t2] * to_float(values[(long long)t2 * hs + d]);
        out[(long long)i * C + h * hs + d] = from_float(o * inv);
    }
}
