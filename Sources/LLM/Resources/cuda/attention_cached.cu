// Causal self-attention for generation against a key/value cache, so a decode step costs one position's work
// (CPU version: Kernels/AttentionCached.swift, same layouts; the shape's parameters as in attention.cu).
//
// qkv rows are (H + 2·H_kv)·d wide, laid out [q | k | v] as attention_forward's input; out rows are H·d.
// kCache and vCache are (H_kv, capacity, d): one contiguous (capacity, d) block per key/value head, position t
// in row t % capacity. With capacity ≥ every position (the model's maxT) that is row t; a sliding-window layer's
// cache is a ring of its window's length, which holds exactly the positions its next query needs. A query
// attends to at most `capacity` keys, whose scores sit in shared memory.
#include "common.cuh"

// The attention of one new position t (query head h, key/value head g) of a sequence whose positions below t0
// are in the cache and whose positions t0 ...< t0 + n come from qkv rows 0 ..< n: scores against keys
// first(t) ...< t + 1, softmax, weighted sum of the values, written to outRow (d values). `q` points at the
// position's query head, `kNew`/`vNew` at key/value head g of qkv row 0, `keys`/`values` at g's cache block.
// The whole block of 128 threads takes part; smem holds capacity + 32 + d floats.
__device__ __forceinline__ void cached_attention_row(floatX* outRow, const floatX* q, const floatX* keys,
                                                     const floatX* values, const floatX* kNew, const floatX* vNew,
                                                     long long rowStride, int t0, int t, int d, int window,
                                                     float scale, int capacity, float* smem) {
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    int t1 = attention_first_key(t, window), count = t - t1 + 1;  // count ≤ capacity
    float* scores = smem;                // [capacity]: key t1 + i at i
    float* scratch = scores + capacity;  // [32]
    float* qs = scratch + 32;            // [d], scaled by `scale`
    for (int e = threadIdx.x; e < d; e += blockDim.x) qs[e] = to_float(q[e]) * scale;
    __syncthreads();
    // One warp per key, lanes across the dimensions (reads of a key row are contiguous).
    for (int i = warp; i < count; i += warps) {
        int t2 = t1 + i;
        const floatX* key = t2 < t0 ? keys + (long long)(t2 % capacity) * d : kNew + (t2 - t0) * rowStride;
        float s = 0.0f;
        for (int e = lane; e < d; e += WARP_SIZE) s += qs[e] * to_float(key[e]);
        s = warp_sum(s);
        if (lane == 0) scores[i] = s;
    }
    __syncthreads();
    float m = NEG_INFINITY;
    for (int i = threadIdx.x; i < count; i += blockDim.x) m = fmaxf(m, scores[i]);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        float p = expf(scores[i] - m);
        scores[i] = p;
        sum += p;
    }
    float inv = 1.0f / block_sum(sum, scratch);  // its barriers also publish the scores written above
    // One thread per dimension, summing over the keys (reads of a value row are contiguous across threads).
    for (int e = threadIdx.x; e < d; e += blockDim.x) {
        float o = 0.0f;
        for (int i = 0; i < count; i++) {
            int t2 = t1 + i;
            const floatX* value = t2 < t0 ? values + (long long)(t2 % capacity) * d : vNew + (t2 - t0) * rowStride;
            o += scores[i] * to_float(value[e]);
        }
        outRow[e] = from_float(o * inv);
    }
}

// Prefill (or any n new positions t0 ..< t0 + n of one sequence): for new position t = t0 + i and query head h,
// attention against cached keys below t0 and the new keys in qkv itself (so a ring never loses a key a new
// position still needs). The cache is not written: run kv_cache_write afterwards.
// The cache must hold what the positions attend to: capacity ≥ t0 + n without a window, ≥ min(W, t0 + n) with.
// Launch: grid (n, H), block 128, dynamic shared memory 4 · (capacity + 32 + d) bytes.
KERNEL void attention_cached_forward(floatX* out, const floatX* kCache, const floatX* vCache, const floatX* qkv,
                                     int t0, int n, int H, int Hkv, int d, int window, float scale, int capacity) {
    DYNAMIC_SHARED(float, smem);
    int i = blockIdx.x, h = blockIdx.y, g = h / (H / Hkv);
    long long rowStride = (long long)(H + 2 * Hkv) * d;
    long long block = (long long)g * capacity * d;
    cached_attention_row(out + (long long)i * H * d + h * d, qkv + i * rowStride + h * d, kCache + block,
                         vCache + block, qkv + (H + g) * d, qkv + (H + Hkv + g) * d, rowStride, t0, t0 + i, d, window,
                         scale, capacity, smem);
}

// Writes the keys and values of the new positions t0 ..< t0 + n into the cache: the last min(n, capacity) of
// them (earlier ones would be overwritten in a ring). Run it after attention_cached_forward for the same positions.
// Launch: one thread per (position, value) of min(n, capacity) × H_kv·d, blocks of 256.
KERNEL void kv_cache_write(floatX* kCache, floatX* vCache, const floatX* qkv, int t0, int n, int H, int Hkv, int d,
                           int capacity) {
    int written = min(n, capacity), width = Hkv * d;
    long long idx = global_index();
    if (idx >= (long long)written * width) return;
    int i = n - written + (int)(idx / width), c = (int)(idx % width), g = c / d, e = c % d;
    long long rowStride = (long long)(H + 2 * Hkv) * d;
    long long at = ((long long)g * capacity + (t0 + i) % capacity) * d + e;
    kCache[at] = qkv[i * rowStride + H * d + c];          // key head g at (H + g)·d
    vCache[at] = qkv[i * rowStride + (H + Hkv) * d + c];  // value head g at (H + H_kv + g)·d
}

// A decode step of the batched engine (Backend.decodeAttention): row r of qkv is one new position,
// positions[r], of the sequence whose caches start at kCache/vCache + slots[r]·slotStride; attention of each
// query head against that cache and the row's own key and value, then the row's key and value join the cache
// (the block of the first query head of each group writes its key/value head). The rows' slots must differ.
// Writing while other heads of the row read is safe: the row written, t % capacity, holds no key the position
// attends to (the cache holds what it attends to, as for attention_cached_forward with n = 1).
// slots are 64-bit and positions 32-bit, as the host passes them.
// Launch: grid (rows, H), block 128, dynamic shared memory 4 · (capacity + 32 + d) bytes.
KERNEL void attention_decode(floatX* out, floatX* kCache, floatX* vCache, long long slotStride, const floatX* qkv,
                             const long long* slots, const int* positions, int H, int Hkv, int d, int window,
                             float scale, int capacity) {
    DYNAMIC_SHARED(float, smem);
    int r = blockIdx.x, h = blockIdx.y, group = H / Hkv, g = h / group, t = positions[r];
    long long rowStride = (long long)(H + 2 * Hkv) * d;
    const floatX* row = qkv + r * rowStride;
    long long block = slots[r] * slotStride + (long long)g * capacity * d;
    cached_attention_row(out + (long long)r * H * d + h * d, row + h * d, kCache + block, vCache + block,
                         row + (H + g) * d, row + (H + Hkv + g) * d, rowStride, t, t, d, window, scale, capacity,
                         smem);
    if (h % group == 0) {
        long long at = block + (long long)(t % capacity) * d;
        for (int e = threadIdx.x; e < d; e += blockDim.x) {
            kCache[at + e] = row[(H + g) * d + e];
            vCache[at + e] = row[(H + Hkv + g) * d + e];
        }
    }
}
