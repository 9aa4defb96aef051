// The emulator's runtime as the built-ins (Builtins.h) and the scheduler (Scheduler.cpp) see it: the indices of
// the thread now running, and the barriers.
#pragma once

#include <cstdint>

namespace emulator {

struct uint3 {
    unsigned int x, y, z;
};

/// What a kernel reads as threadIdx, blockIdx, blockDim and gridDim, plus its block's dynamic shared memory.
/// The scheduler sets it before it switches to a thread.
struct ThreadContext {
    uint3 threadIdx, blockIdx, blockDim, gridDim;
    void *dynamicShared;
};
extern thread_local ThreadContext current;

/// Waits until every thread of the block has called it (__syncthreads).
void syncthreads();
/// Waits until every lane in `mask` has called it with the same mask (__syncwarp, and each shuffle).
void syncwarp(unsigned int mask);
/// Publishes `bits` for this lane, waits for the lanes in `mask`, and returns what lane `source` published.
uint32_t exchange(unsigned int mask, uint32_t bits, int source);

}  // namespace emulator
