// The kernels with float storage (floatX = float), as NVRTC compiles them without -DLLM_BF16.
#define EMULATOR_PRECISION floatStorage
#include "Kernels.h"
