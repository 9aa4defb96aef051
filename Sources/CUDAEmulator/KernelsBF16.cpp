// The kernels with bfloat16 storage, as NVRTC compiles them with -DLLM_BF16.
#define LLM_BF16
#define EMULATOR_PRECISION bf16Storage
#include "Kernels.h"
