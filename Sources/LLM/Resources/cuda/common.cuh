// What every kernel file shares: the storage type floatX, bfloat16 conversions, and warp and block reductions.
// The backend hands this file to NVRTC as a header of each program (`#include "common.cuh"`).
//
// Precision: compiled with -DLLM_BF16, floatX (weights, activations and their gradients) is bfloat16 and every
// kernel still computes in float; without it, floatX is float. Optimizer state, LayerNorm statistics, losses
// and attention's log-sum-exp stay float in both.
//
// NVRTC ships no cuda_bf16.h among its built-in headers, so bfloat16 is defined here: the high 16 bits of a
// float, converted with the sm_80 instruction where there is one.
#pragma once

// KERNEL marks an entry point the backend launches by name (C linkage, so NVRTC keeps the name as written), and
// DYNAMIC_SHARED declares the launch's dynamic shared memory. The CPU emulator that checks these kernels without a
// GPU (Sources/CUDAEmulator) defines both its own way before it includes a kernel file.
#ifndef KERNEL
#define KERNEL extern "C" __global__
#endif
#ifndef DYNAMIC_SHARED
#define DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

struct bf16 {
    unsigned short bits;
};

__device__ __forceinline__ float bf16_to_float(bf16 x) { return __uint_as_float(((unsigned int)x.bits) << 16); }

// Round to nearest even; NaN stays NaN.
__device__ __forceinline__ bf16 float_to_bf16(float x) {
#if __CUDA_ARCH__ >= 800
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return bf16{r};
#else
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{(unsigned short)((u >> 16) | 0x40u)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return bf16{(unsigned short)(u >> 16)};
#endif
}

// A hash of (index, seed) to 32 random-looking bits, for stochastic rounding.
__device__ __forceinline__ unsigned int hash_bits(unsigned int index, unsigned int seed) {
    unsigned int h = index * 0x9E3779B1u ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

// Rounds up with probability equal to the dropped fraction, so repeated small updates to a bfloat16 weight are
// not all rounded away. Infinities and NaN are truncated (they have no fraction to round).
__device__ __forceinline__ bf16 float_to_bf16_stochastic(float x, unsigned int random) {
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u += random & 0xffffu;
    return bf16{(unsigned short)(u >> 16)};
}

#if defined(LLM_BF16)
typedef bf16 floatX;
__device__ __forceinline__ float to_float(floatX x) { return bf16_to_float(x); }
__device__ __forceinline__ floatX from_float(float x) { return float_to_bf16(x); }
__device__ __forceinline__ floatX from_float_stochastic(float x, unsigned int random) {
    return float_to_bf16_stochastic(x, random);
}
#else
typedef float floatX;
__device__ __forceinline__ float to_float(floatX x) { return x; }
__device__ __forceinline__ floatX from_float(float x) { return x; }
__device__ __forceinline__ floatX from_float_stochastic(float x, unsigned int) { return x; }
#endif

// NVRTC's built-ins have no <math.h> macros.
#define NEG_INFINITY __int_as_float(0xff800000)

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu

// The sum (max) over a warp's 32 lanes, returned to every lane; the same tree, so the same result, every time.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// The sum (max) over the whole block, returned to every thread. blockDim.x must be a multiple of 32;
// `scratch` is 32 floats of shared memory. Every thread of the block must call it.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    v = warp_sum(v);
    __syncthreads();  // the previous use of scratch is over
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? scratch[lane] : 0.0f);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_max(lane < warps ? scratch[lane] : NEG_INFINITY);
}

// Column sums (bias and LayerNorm parameter gradients) run blocks of 32 columns × COLUMN_ROWS rows.
#define COLUMN_ROWS 8

// The global index of this thread in a 1-D launch, as 64 bits (tensors can pass 2^31 elements).
__device__ __forceinline__ long long global_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long global_stride() { return (long long)gridDim.x * blockDim.x; }

// The first key position query position t attends to under a sliding window of `window` positions (itself
// included); 0 when window is 0 (the whole causal prefix). AttentionShape.first in Kernels/Attention.swift.
__device__ __forceinline__ int attention_first_key(int t, int window) { return window > 0 ? max(0, t - window + 1) : 0; }

// GELU with GPT-2's tanh approximation, shared by gelu.cu and mlp.cu's GeGLU (CPU version: Kernels/GELU.swift).
// 1 + tanh(u) is evaluated as 2σ(2u) from e = exp(-2|u|) ≤ 1, as on the CPU, so nearly dead units keep accurate
// small outputs and gradients instead of the cancellation of 1 + tanh(u) ≈ 0.
#define GELU_SCALE 0.7978845608028654f  // √(2/π)

// σ(2u) and σ(-2u) = 1 - σ(2u), without overflow or cancellation.
__device__ __forceinline__ void gelu_sigmoids(float u, float* pos, float* neg) {
    float e = expf(-2.0f * fabsf(u));
    float big = 1.0f / (1.0f + e), small = e / (1.0f + e);
    *pos = u >= 0.0f ? big : small;
    *neg = u >= 0.0f ? small : big;
}

// gelu(x) = 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³).
__device__ __forceinline__ float gelu_value(float x) {
    float pos, neg;
    gelu_sigmoids(GELU_SCALE * (x + 0.044715f * x * x * x), &pos, &neg);
    return x * pos;
}

// gelu'(x) = σ(2u) + 2x·σ(2u)σ(-2u)·√(2/π)(1 + 3·0.044715·x²); also returns gelu(x) in *value.
__device__ __forceinline__ float gelu_derivative(float x, float* value) {
    float x2 = x * x, pos, neg;
    gelu_sigmoids(GELU_SCALE * (x + 0.044715f * x2 * x), &pos, &neg);
    float slope = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x2);
    *value = x * pos;
    return pos + 2.0f * x * pos * neg * slope;
}
