// What the scheduler needs from each compiled kernel: its name, and a function that runs the calling thread's
// share of it with cuLaunchKernel-style arguments (arguments[i] points to the i-th parameter's value).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace emulator {

struct KernelEntry {
    const char *name;
    void (*run)(void **arguments);
};

template <typename... Parameters, std::size_t... I>
inline void invoke(void (*kernel)(Parameters...), void **arguments, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<Parameters>> *>(arguments[I])...);
}

template <typename... Parameters> inline void invoke(void (*kernel)(Parameters...), void **arguments) {
    invoke(kernel, arguments, std::index_sequence_for<Parameters...>{});
}

/// The kernels of each precision (KernelsFloat.cpp, KernelsBF16.cpp), in the same order.
namespace floatStorage {
extern const KernelEntry kernels[];
extern const int kernelCount;
}  // namespace floatStorage
namespace bf16Storage {
extern const KernelEntry kernels[];
extern const int kernelCount;
}  // namespace bf16Storage
/// The emulator's own test kernels (SelfTest.cpp), float storage.
namespace selfTest {
extern const KernelEntry kernels[];
extern const int kernelCount;
}  // namespace selfTest

}  // namespace emulator
