// The CUDA built-ins the kernels use, for the CPU: thread and block indices, __syncthreads, the warp shuffles,
// the bit casts and the integer min/max. Included before the kernel files (Kernels.h); the scheduler behind the
// barriers is in Scheduler.cpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "Runtime.h"

namespace emulator {

inline int laneIndex() {
    unsigned int linear = (current.threadIdx.z * current.blockDim.y + current.threadIdx.y) * current.blockDim.x
                          + current.threadIdx.x;
    return (int)(linear % 32);
}

template <typename T> inline T shuffle(unsigned int mask, T value, int source) {
    static_assert(sizeof(T) == 4, "the emulator shuffles 32-bit values");
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    bits = exchange(mask, bits, source);
    std::memcpy(&value, &bits, 4);
    return value;
}

}  // namespace emulator

#define threadIdx (::emulator::current.threadIdx)
#define blockIdx (::emulator::current.blockIdx)
#define blockDim (::emulator::current.blockDim)
#define gridDim (::emulator::current.gridDim)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// Static shared memory: one copy per OS thread, shared by the fibers of the block running on it.
#define __shared__ static thread_local
#define DYNAMIC_SHARED(type, name) type *name = (type *)::emulator::current.dynamicShared
// Kernels get C++ linkage inside a namespace per precision (Kernels.h), so both precisions link into one library.
#define KERNEL

inline void __syncthreads() { ::emulator::syncthreads(); }
inline void __syncwarp(unsigned int mask = 0xffffffffu) { ::emulator::syncwarp(mask); }

template <typename T> inline T __shfl_sync(unsigned int mask, T value, int source, int width = 32) {
    int lane = ::emulator::laneIndex();
    return ::emulator::shuffle(mask, value, (lane & ~(width - 1)) + (source % width));
}
template <typename T> inline T __shfl_xor_sync(unsigned int mask, T value, int laneMask, int width = 32) {
    (void)width;
    return ::emulator::shuffle(mask, value, ::emulator::laneIndex() ^ laneMask);
}
template <typename T> inline T __shfl_down_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    int lane = ::emulator::laneIndex(), source = lane + (int)delta;
    // A source past the segment returns the lane's own value, as on the GPU.
    return ::emulator::shuffle(mask, value, (source / width == lane / width) ? source : lane);
}
template <typename T> inline T __shfl_up_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    int lane = ::emulator::laneIndex(), source = lane - (int)delta;
    return ::emulator::shuffle(mask, value, (source >= 0 && source / width == lane / width) ? source : lane);
}

inline float __uint_as_float(unsigned int u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, 4);
    return i;
}
using std::isfinite;
using std::isinf;
using std::isnan;
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }

// CUDA's integer min and max (the float ones are fminf and fmaxf).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
