// GELU with GPT-2's tanh approximation, and its backward (CPU version: Kernels/GELU.swift).
// 1 + tanh(u) is evaluated as 2σ(2u) from e = exp(-2|u|) ≤ 1, as on the CPU, so nearly dead units keep accurate
// small outputs and gradients instead of the cancellation of 1 + tanh(u) ≈ 0.
#include "common.cuh"

#define GELU_SCALE 0.7978845608028654f  // √(2/π)

// σ(2u) and σ(-2u) = 1 - σ(2u), without overflow or cancellation.
__device__ __forceinline__ void gelu_sigmoids(float u, float* pos, float* neg) {
    float e = expf(-2.0f * fabsf(u));
    float big = 1.0f / (1.0f + e), small = e / (1.0f + e);
    *pos = u >= 0.0f ? big : small;
    *neg = u >= 0.0f ? small : big;
}

// out = 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³), elementwise over N values.
// Launch: grid-stride, blocks of 256.
KERNEL void gelu_forward(floatX* out, const floatX* inp, long long N) {
    for (long long i = global_index(); i < N; i += global_stride()) {
        float x = to_float(inp[i]);
        float pos, neg;
        gelu_sigmoids(GELU_SCALE * (x + 0.044715f * x * x * x), &pos, &neg);
        out[i] = from_float(x * pos);
    }
}

// dinp += dout · gelu'(x), gelu'(x) = σ(2u) + 2x·σ(2u)σ(-2u)·√(2/π)(1 + 3·0.044715·x²).
// Launch: grid-stride, blocks of 256.
KERNEL void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, long long N) {
    for (long long i = global_index(); i < N; i += global_stride()) {
        float x = to_float(inp[i]), x2 = x * x;
        float pos, neg;
        gelu_sigmoids(GELU_SCALE * (x + 0.044715f * x2 * x), &pos, &neg);
        float slope = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x2);
        float local = pos + 2.0f * x * pos * neg * slope;
        dinp[i] = from_float(to_float(dinp[i]) + local * to_float(dout[i]));
    }
}
