// Small kernels that check the emulator itself (CUDAEmulatorTests): block and warp reductions from common.cuh,
// shared memory published by __syncthreads, and the faults it must report instead of running on.
#include "Builtins.h"
#include "Launch.h"

namespace emulator::selfTest {

#include "../LLM/Resources/cuda/common.cuh"

// out[blockIdx.x] = Σ inp over the block's threads, by block_sum; out[gridDim.x + i] = warp_sum of each thread.
KERNEL void emulator_test_sums(float* out, const float* inp) {
    __shared__ float scratch[32];
    float v = inp[global_index()];
    float total = block_sum(v, scratch);
    out[gridDim.x + global_index()] = warp_sum(v);
    if (threadIdx.x == 0) out[blockIdx.x] = total;
}

// Each thread writes its slot of dynamic shared memory, then reads its neighbour's after __syncthreads.
KERNEL void emulator_test_neighbour(float* out, int synchronize) {
    DYNAMIC_SHARED(float, slots);
    slots[threadIdx.x] = (float)threadIdx.x;
    if (synchronize) __syncthreads();
    out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// Half the block skips a __syncthreads the other half waits at.
KERNEL void emulator_test_divergent_barrier(float* out) {
    if (threadIdx.x % 2 == 0) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Lane 5 exits before its warp's shuffles.
KERNEL void emulator_test_exited_lane(float* out) {
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = warp_sum(1.0f);
}

// Warp 0 waits at __syncthreads while warp 1 waits in a shuffle for lanes that are at the barrier.
KERNEL void emulator_test_deadlock(float* out) {
    if (threadIdx.x < 32 || threadIdx.x % 32 == 0) __syncthreads();
    else out[threadIdx.x] = warp_sum(1.0f);
}

#define ENTRY(kernel) {#kernel, [](void **arguments) { invoke(kernel, arguments); }}

const KernelEntry kernels[] = {
    ENTRY(emulator_test_sums), ENTRY(emulator_test_neighbour), ENTRY(emulator_test_divergent_barrier),
    ENTRY(emulator_test_exited_lane), ENTRY(emulator_test_deadlock),
};
const int kernelCount = sizeof(kernels) / sizeof(kernels[0]);

#undef ENTRY

}  // namespace emulator::selfTest
