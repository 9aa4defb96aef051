// GELU with GPT-2's tanh approximation, and its backward (CPU version: Kernels/GELU.swift). The formulas, shared
// with mlp.cu's GeGLU, are in common.cuh (gelu_value, gelu_derivative): 1 + tanh(u) is evaluated as 2σ(2u), so
// nearly dead units keep accurate small outputs and gradients.
#include "common.cuh"

// out = 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³), elementwise over N values.
// Launch: grid-stride, blocks of 256.
KERNEL void gelu_forward(floatX* out, const floatX* inp, long long N) {
    for (long long i = global_index(); i < N; i += global_stride()) out[i] = from_float(gelu_value(to_float(inp[i])));
}

// dinp += dout · gelu'(x), gelu'(x) = σ(2u) + 2x·σ(2u)σ(-2u)·√(2/π)(1 + 3·0.044715·x²).
// Launch: grid-stride, blocks of 256.
KERNEL void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, long long N) {
    for (long long i = global_index(); i < N; i += global_stride()) {
        float value, local = gelu_derivative(to_float(inp[i]), &value);
        dinp[i] = from_float(to_float(dinp[i]) + local * to_float(dout[i]));
    }
}
