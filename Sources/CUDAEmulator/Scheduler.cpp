// Runs a kernel launch on the CPU: the blocks of the grid one after another, and within a block every thread as a
// fiber (ucontext) on its own stack. A fiber runs until it reaches a barrier (__syncthreads, __syncwarp, a shuffle)
// or returns; when no fiber can run, the scheduler releases the barriers whose threads have all arrived, or, when
// none has, reports the deadlock. Everything runs on the calling OS thread, so a launch is deterministic.
#include "CUDAEmulator.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "Runtime.h"
#include "Launch.h"

namespace emulator {

thread_local ThreadContext current;

namespace {

enum class State { ready, atSyncthreads, atWarpBarrier, exited, failed };

struct Fiber {
    ucontext_t context;
    State state;
    uint3 index;
    unsigned int linear;
    unsigned int warpMask;   // the mask of the warp barrier it waits at
    unsigned int warpPhase;  // warp barriers passed; its parity picks the exchange buffer
};

/// The block being run on this OS thread.
struct Block {
    const KernelEntry *kernel = nullptr;
    void **arguments = nullptr;
    std::vector<Fiber> fibers;
    std::vector<uint32_t> published[2];  // the shuffles' values by thread, double-buffered by warp phase
    ucontext_t scheduler;
    Fiber *running = nullptr;
    std::string error;
};

thread_local Block *active = nullptr;

constexpr size_t stackBytes = 128 * 1024;

std::string describe(const uint3 &v) {
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::string describe(const Fiber &fiber) {
    return "thread " + describe(fiber.index) + " of block " + describe(current.blockIdx);
}

void fiberMain() {
    Block *block = active;
    block->kernel->run(block->arguments);
    block->running->state = State::exited;
    // Returning resumes the scheduler (uc_link).
}

void suspend(State state) {
    Fiber *fiber = active->running;
    fiber->state = state;
    swapcontext(&fiber->context, &active->scheduler);
}

/// Ends the launch with `message`; the fiber is never resumed.
[[noreturn]] void fail(const std::string &message) {
    active->error = describe(*active->running) + ": " + message;
    suspend(State::failed);
    std::abort();  // unreachable: a failed fiber is abandoned
}

/// Stacks for up to 1024 fibers, each below a guard page, so an overflow faults instead of corrupting a neighbour.
struct Stacks {
    char *base = nullptr;
    size_t count = 0, slot = 0;

    bool allocate(size_t n) {
        slot = stackBytes + (size_t)sysconf(_SC_PAGESIZE);
        void *memory = mmap(nullptr, n * slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
        if (memory == MAP_FAILED) return false;
        base = (char *)memory;
        count = n;
        for (size_t i = 0; i < n; i++) mprotect(base + i * slot, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE);
        return true;
    }
    char *stack(size_t i) const { return base + i * slot + (slot - stackBytes); }
    ~Stacks() {
        if (base) munmap(base, count * slot);
    }
};

/// Releases the warps whose lanes have all reached the same warp barrier. False, with `error` set, when a warp
/// barrier can never be released.
bool releaseWarps(Block &block, bool &released) {
    size_t n = block.fibers.size();
    for (size_t warp = 0; warp * 32 < n; warp++) {
        Fiber *first = nullptr;
        for (size_t i = warp * 32; i < n && i < warp * 32 + 32; i++) {
            if (block.fibers[i].state == State::atWarpBarrier) {
                first = &block.fibers[i];
                break;
            }
        }
        if (!first) continue;
        bool complete = true;
        for (unsigned int lane = 0; lane < 32; lane++) {
            if (!(first->warpMask >> lane & 1)) continue;
            size_t i = warp * 32 + lane;
            if (i >= n) {
                block.error = describe(*first) + ": a warp barrier's mask names lane " + std::to_string(lane) +
                              ", which this block does not have";
                return false;
            }
            const Fiber &other = block.fibers[i];
            if (other.state == State::exited) {
                block.error = describe(*first) + ": waits at a warp barrier (shuffle or __syncwarp) for " +
                              describe(other) + ", which has exited";
                return false;
            }
            if (other.state != State::atWarpBarrier) {
                complete = false;
                continue;
            }
            if (other.warpMask != first->warpMask || other.warpPhase != first->warpPhase) {
                block.error = describe(*first) + " and " + describe(other) +
                              " wait at different warp barriers (masks or counts differ)";
                return false;
            }
        }
        if (!complete) continue;
        for (unsigned int lane = 0; lane < 32; lane++) {
            if (first->warpMask >> lane & 1) block.fibers[warp * 32 + lane].state = State::ready;
        }
        released = true;
    }
    return true;
}

/// Runs every thread of block `current.blockIdx` to its end. False, with `block.error` set, on a fault.
bool runBlock(Block &block, const Stacks &stacks, size_t sharedBytes) {
    uint3 dim = current.blockDim;
    size_t n = block.fibers.size();
    if (sharedBytes) std::memset(current.dynamicShared, 0xff, sharedBytes);  // NaN until written
    for (size_t i = 0; i < n; i++) {
        Fiber &fiber = block.fibers[i];
        fiber.linear = (unsigned int)i;
        fiber.index = {(unsigned int)(i % dim.x), (unsigned int)(i / dim.x % dim.y), (unsigned int)(i / dim.x / dim.y)};
        fiber.state = State::ready;
        fiber.warpMask = 0;
        fiber.warpPhase = 0;
        getcontext(&fiber.context);
        fiber.context.uc_stack.ss_sp = stacks.stack(i);
        fiber.context.uc_stack.ss_size = stackBytes;
        fiber.context.uc_link = &block.scheduler;
        makecontext(&fiber.context, fiberMain, 0);
    }
    for (;;) {
        for (Fiber &fiber : block.fibers) {
            if (fiber.state != State::ready) continue;
            block.running = &fiber;
            current.threadIdx = fiber.index;
            swapcontext(&block.scheduler, &fiber.context);
            if (fiber.state == State::failed) return false;
        }
        bool released = false;
        if (!releaseWarps(block, released)) return false;
        if (released) continue;
        const Fiber *exited = nullptr, *waiting = nullptr, *inWarp = nullptr;
        for (const Fiber &fiber : block.fibers) {
            if (fiber.state == State::exited && !exited) exited = &fiber;
            if (fiber.state == State::atSyncthreads && !waiting) waiting = &fiber;
            if (fiber.state == State::atWarpBarrier && !inWarp) inWarp = &fiber;
        }
        if (!waiting && !inWarp) return true;  // every thread has exited
        if (waiting && inWarp) {
            block.error = describe(*waiting) + " waits at __syncthreads while " + describe(*inWarp) +
                          " waits at a warp barrier: a deadlock";
            return false;
        }
        if (inWarp) {
            block.error = describe(*inWarp) + " waits at a warp barrier that can never be released";
            return false;
        }
        if (exited) {
            block.error = describe(*waiting) + " waits at __syncthreads, but " + describe(*exited) +
                          " has exited: every thread of a block must reach each __syncthreads";
            return false;
        }
        for (Fiber &fiber : block.fibers) fiber.state = State::ready;
    }
}

const KernelEntry *find(const char *name, bool bf16) {
    const KernelEntry *table = bf16 ? bf16Storage::kernels : floatStorage::kernels;
    int count = bf16 ? bf16Storage::kernelCount : floatStorage::kernelCount;
    for (int i = 0; i < count; i++) {
        if (std::strcmp(table[i].name, name) == 0) return &table[i];
    }
    for (int i = 0; i < selfTest::kernelCount; i++) {
        if (std::strcmp(selfTest::kernels[i].name, name) == 0) return &selfTest::kernels[i];
    }
    return nullptr;
}

/// The launch shapes the GPU refuses (compute capability 8.0 and later), as cuLaunchKernel would.
std::string checkShape(EmulatorDim3 grid, EmulatorDim3 block, size_t sharedBytes) {
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z) return "a grid or block size is 0";
    if (block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024) {
        return "a block of " + std::to_string(block.x) + "×" + std::to_string(block.y) + "×" + std::to_string(block.z) +
               " threads; the GPU allows at most 1024 (x, y ≤ 1024, z ≤ 64)";
    }
    if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        return "a grid of " + std::to_string(grid.x) + "×" + std::to_string(grid.y) + "×" + std::to_string(grid.z) +
               " blocks; the GPU allows x < 2^31, y and z ≤ 65535";
    }
    if (sharedBytes > 227 * 1024) {
        return std::to_string(sharedBytes) + " bytes of dynamic shared memory; an H100 allows at most 227 KiB";
    }
    return "";
}

}  // namespace

void syncthreads() { suspend(State::atSyncthreads); }

void syncwarp(unsigned int mask) {
    Fiber *fiber = active->running;
    if (!(mask >> (fiber->linear % 32) & 1)) fail("a warp barrier's mask leaves out the calling lane");
    fiber->warpMask = mask;
    suspend(State::atWarpBarrier);
    fiber->warpPhase++;
}

uint32_t exchange(unsigned int mask, uint32_t bits, int source) {
    Fiber *fiber = active->running;
    unsigned int phase = fiber->warpPhase & 1;
    active->published[phase][fiber->linear] = bits;
    syncwarp(mask);
    if (source < 0 || source >= 32 || !(mask >> source & 1)) {
        fail("a warp shuffle reads lane " + std::to_string(source) + ", outside its mask");
    }
    return active->published[phase][fiber->linear - fiber->linear % 32 + (unsigned int)source];
}

}  // namespace emulator

using namespace emulator;

extern "C" int emulator_kernel_count(void) { return floatStorage::kernelCount; }

extern "C" const char *emulator_kernel_name(int index) {
    return index >= 0 && index < floatStorage::kernelCount ? floatStorage::kernels[index].name : nullptr;
}

extern "C" int emulator_launch(const char *name, int bf16, EmulatorDim3 grid, EmulatorDim3 blockSize,
                               size_t sharedBytes, void **arguments, char *error, size_t capacity) {
    auto failed = [&](const std::string &message) {
        if (capacity) std::snprintf(error, capacity, "%s: %s", name, message.c_str());
        return -1;
    };
    const KernelEntry *kernel = find(name, bf16 != 0);
    if (!kernel) return failed("no such kernel in the emulator");
    std::string shape = checkShape(grid, blockSize, sharedBytes);
    if (!shape.empty()) return failed("launch refused: " + shape);

    Block block;
    block.kernel = kernel;
    block.arguments = arguments;
    size_t threads = (size_t)blockSize.x * blockSize.y * blockSize.z;
    block.fibers.resize(threads);
    block.published[0].assign(threads, 0);
    block.published[1].assign(threads, 0);
    Stacks stacks;
    if (!stacks.allocate(threads)) return failed("could not map the fibers' stacks");
    std::vector<unsigned char> shared(sharedBytes);

    Block *outer = active;
    ThreadContext saved = current;
    active = &block;
    current.blockDim = {blockSize.x, blockSize.y, blockSize.z};
    current.gridDim = {grid.x, grid.y, grid.z};
    current.dynamicShared = shared.data();
    bool ok = true;
    for (unsigned int z = 0; ok && z < grid.z; z++) {
        for (unsigned int y = 0; ok && y < grid.y; y++) {
            for (unsigned int x = 0; ok && x < grid.x; x++) {
                current.blockIdx = {x, y, z};
                ok = runBlock(block, stacks, sharedBytes);
            }
        }
    }
    active = outer;
    current = saved;
    return ok ? 0 : failed(block.error);
}
