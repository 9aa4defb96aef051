// Residual connections: out = a + b, and the gradient flowing unchanged to both branches
// (CPU version: Kernels/Residual.swift).
#include "common.cuh"

// out = inp1 + inp2, elementwise over N values. Launch: grid-stride, blocks of 256.
KERNEL void residual_forward(floatX* out, const floatX* inp1, const floatX* inp2, long long N) {
    for (long long i = global_index(); i < N; i += global_stride()) {
        out[i] = from_float(to_float(inp1[i]) + to_float(inp2[i]));
    }
}

// dinp1 += dout; dinp2 += dout. Launch: grid-stride, blocks of 256.
KERNEL void residual_backward(floatX* dinp1, floatX* dinp2, const floatX* dout, long long N) {
    for (long long i = global_index(); i < N; i += global_stride()) {
        float d = to_float(dout[i]);
        dinp1[i] = from_float(to_float(dinp1[i]) + d);
        dinp2[i] = from_float(to_float(dinp2[i]) + d);
    }
}
