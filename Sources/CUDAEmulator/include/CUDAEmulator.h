// A CPU emulator for the CUDA C kernels in Sources/LLM/Resources/cuda, so their numerics are tested on machines
// without a GPU. The same .cu files NVRTC compiles for the GPU are compiled here as C++ (Kernels.h), once with
// float storage and once with bfloat16 (LLM_BF16), and run as cuLaunchKernel would run them: every block of the
// grid in turn, each thread of a block on its own small stack (a fiber), so that __syncthreads and the warp
// shuffles really wait for the other threads. It is slow (one core, a context switch at every barrier) and meant
// for small shapes.
//
// It is stricter than a GPU: a launch fails, with a message, when a thread waits at __syncthreads while another
// thread of its block has exited or waits at a warp barrier (a deadlock or undefined behaviour on the GPU), when
// a warp shuffle names a lane that has exited or is outside its mask, or when the launch shape is one the GPU
// refuses. Dynamic shared memory starts as NaN bytes in every block, so a read before a write shows.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Grid and block sizes, as CUDA's dim3.
typedef struct {
    unsigned int x, y, z;
} EmulatorDim3;

/// The number of kernels compiled in (each in both precisions), and the name of kernel `index`.
int emulator_kernel_count(void);
const char *emulator_kernel_name(int index);

/// Runs kernel `name` compiled for float (`bf16` = 0) or bfloat16 (`bf16` = 1) storage, as cuLaunchKernel with
/// these arguments would: `arguments[i]` points to the value of the kernel's i-th parameter; pointers are host
/// addresses. Returns 0 when every thread finished, or -1 with a one-line message in `error` (at most `capacity`
/// bytes, NUL-terminated). Safe to call from several threads at once.
int emulator_launch(const char *name, int bf16, EmulatorDim3 grid, EmulatorDim3 block, size_t shared_bytes,
                    void **arguments, char *error, size_t capacity);

#ifdef __cplusplus
}
#endif
