// The MLP activations besides GPT-2's GELU (CPU version: Kernels/MLPActivations.swift): the gated SwiGLU
// (silu(gate)·up, Llama, Qwen2) and GeGLU (gelu_tanh(gate)·up, Gemma), and ReLU² (nanochat).
//
// A gated MLP's first matmul writes [gate | up] side by side: inp is (N, 2F) with the gate in columns 0..<F and up
// in F..<2F; out is (N, F). Forward kernels overwrite out; backward kernels add into dinp, as the CPU does.
#include "common.cuh"

// σ(x) and σ(-x) = 1 - σ(x), from e = exp(-|x|) ≤ 1: no overflow, no cancellation.
__device__ __forceinline__ void mlp_sigmoids(float x, float* pos, float* neg) {
    float e = expf(-fabsf(x));
    float big = 1.0f / (1.0f + e), small = e / (1.0f + e);
    *pos = x >= 0.0f ? big : small;
    *neg = x >= 0.0f ? small : big;
}

// out[n, i] = silu(gate) · up = gate·σ(gate)·up, for i < F. One thread per output: N·F of them.
// Launch: grid-stride, blocks of 256.
KERNEL void swiglu_forward(floatX* out, const floatX* inp, int N, int F) {
    for (long long k = global_index(); k < (long long)N * F; k += global_stride()) {
        long long n = k / F, i = k % F;
        float g = to_float(inp[n * 2 * F + i]), u = to_float(inp[n * 2 * F + F + i]);
        float pos, neg;
        mlp_sigmoids(g, &pos, &neg);
        out[k] = from_float(g * pos * u);
    }
}

// dgate += dout · up · silu'(gate), dup += dout · silu(gate), silu'(x) = σ(x)·(1 + x·σ(-x)). dinp is (N, 2F)
// laid out as the input, dout is (N, F). Launch: grid-stride over N·F, blocks of 256.
KERNEL void swiglu_backward(floatX* dinp, const floatX* inp, const floatX* dout, int N, int F) {
    for (long long k = global_index(); k < (long long)N * F; k += global_stride()) {
        long long n = k / F, i = k % F, gate = n * 2 * F + i, up = gate + F;
        float g = to_float(inp[gate]), u = to_float(inp[up]), dy = to_float(dout[k]);
        float pos, neg;
        mlp_sigmoids(g, &pos, &neg);
        float slope = pos * (1.0f + g * neg);
        dinp[gate] = from_float(to_float(dinp[gate]) + dy * u * slope);
        dinp[up] = from_float(to_float(dinp[up]) + dy * g * pos);
    }
}

// out[n, i] = gelu_tanh(gate) · up, for i < F (gelu_value in common.cuh, as gelu.cu).
// Launch: grid-stride over N·F, blocks of 256.
KERNEL void geglu_forward(floatX* out, const floatX* inp, int N, int F) {
    for (long long k = global_index(); k < (long long)N * F; k += global_stride()) {
        long long n = k / F, i = k % F;
        float g = to_float(inp[n * 2 * F + i]), u = to_float(inp[n * 2 * F + F + i]);
        out[k] = from_float(gelu_value(g) * u);
    }
}

// dgate += dout · up · gelu'(gate), dup += dout · gelu(gate). Shapes as swiglu_backward.
// Launch: grid-stride over N·F, blocks of 256.
KERNEL void geglu_backward(floatX* dinp, const floatX* inp, const floatX* dout, int N, int F) {
    for (long long k = global_index(); k < (long long)N * F; k += global_stride()) {
        long long n = k / F, i = k % F, gate = n * 2 * F + i, up = gate + F;
        float g = to_float(inp[gate]), u = to_float(inp[up]), dy = to_float(dout[k]);
        float value, slope = gelu_derivative(g, &value);
        dinp[gate] = from_float(to_float(dinp[gate]) + dy * u * slope);
        dinp[up] = from_float(to_float(dinp[up]) + dy * value);
    }
}

// out = max(x, 0)², elementwise over n values (n = N·F). Launch: grid-stride, blocks of 256.
KERNEL void relu_squared_forward(floatX* out, const floatX* inp, long long n) {
    for (long long k = global_index(); k < n; k += global_stride()) {
        float r = fmaxf(to_float(inp[k]), 0.0f);
        out[k] = from_float(r * r);
    }
}

// dinp += dout · 2·max(x, 0), elementwise over n values. Launch: grid-stride, blocks of 256.
KERNEL void relu_squared_backward(floatX* dinp, const floatX* inp, const floatX* dout, long long n) {
    for (long long k = global_index(); k < n; k += global_stride()) {
        float r = fmaxf(to_float(inp[k]), 0.0f);
        dinp[k] = from_float(to_float(dinp[k]) + 2.0f * r * to_float(dout[k]));
    }
}
