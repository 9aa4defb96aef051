// Rotary position embedding (RoPE) in place, and its backward (CPU version: Kernels/Rotary.swift), in Hugging
// Face's convention (`rotate_half`): within a head of size d, dimension i is paired with i + d/2, and pair i of
// row n turns by the angle positions[n]·θ^(−2i/d). The backward turns the gradient back by the same angle.
//
// x is N rows of `stride` values; the `heads` heads of size d are at the start of each row (a fused q|k|v row:
// heads = the query and key heads, so values are left alone). positions is (N) int32. cosines and sines are
// RotaryTable's tables, (maxT, d/2) float: cosines[t·d/2 + i] = cos(t·θ^(−2i/d)).
#include "common.cuh"

// (x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin) for x₁ = x[i], x₂ = x[i + d/2], with sin negated by `direction`
// −1 (the inverse rotation). One thread per pair: N·heads·d/2 of them.
__device__ __forceinline__ void rope_rotate(floatX* x, const int* positions, const float* cosines,
                                            const float* sines, int N, int heads, int d, int stride,
                                            float direction) {
    int half = d / 2;
    long long pairs = (long long)N * heads * half;
    for (long long p = global_index(); p < pairs; p += global_stride()) {
        int i = (int)(p % half);
        long long rowHead = p / half;
        int h = (int)(rowHead % heads);
        long long n = rowHead / heads;
        long long at = (long long)positions[n] * half + i;
        float c = cosines[at], s = direction * sines[at];
        floatX* x1 = x + n * stride + (long long)h * d + i;
        floatX* x2 = x1 + half;
        float a = to_float(*x1), b = to_float(*x2);
        *x1 = from_float(a * c - b * s);
        *x2 = from_float(b * c + a * s);
    }
}

// Rotates every pair forward. Launch: grid-stride over N·heads·d/2 pairs, blocks of 256.
KERNEL void rope_forward(floatX* x, const int* positions, const float* cosines, const float* sines, int N, int heads,
                         int d, int stride) {
    rope_rotate(x, positions, cosines, sines, N, heads, d, stride, 1.0f);
}

// Rotates the gradient dx back (the transpose of the forward rotation), in place. Launch: as rope_forward.
KERNEL void rope_backward(floatX* dx, const int* positions, const float* cosines, const float* sines, int N,
                          int heads, int d, int stride) {
    rope_rotate(dx, positions, cosines, sines, N, heads, d, stride, -1.0f);
}
