// Every kernel file of Sources/LLM/Resources/cuda, compiled as C++ into the namespace EMULATOR_PRECISION, and the
// table of its entry points. Included once per precision (KernelsFloat.cpp, KernelsBF16.cpp). A new .cu file
// joins here and in CUDAKernels.sources; a test checks that the two lists agree.
#include "Builtins.h"
#include "Launch.h"

namespace emulator::EMULATOR_PRECISION {

#include "../LLM/Resources/cuda/encoder.cu"
#include "../LLM/Resources/cuda/layernorm.cu"
#include "../LLM/Resources/cuda/matmul.cu"
#include "../LLM/Resources/cuda/attention.cu"
#include "../LLM/Resources/cuda/attention_cached.cu"
#include "../LLM/Resources/cuda/residual.cu"
#include "../LLM/Resources/cuda/gelu.cu"
#include "../LLM/Resources/cuda/classifier.cu"
#include "../LLM/Resources/cuda/adamw.cu"
#include "../LLM/Resources/cuda/convert.cu"
#include "../LLM/Resources/cuda/rmsnorm.cu"
#include "../LLM/Resources/cuda/rope.cu"
#include "../LLM/Resources/cuda/mlp.cu"
#include "../LLM/Resources/cuda/softcap.cu"

#define ENTRY(kernel) {#kernel, [](void **arguments) { invoke(kernel, arguments); }}

const KernelEntry kernels[] = {
    ENTRY(encoder_forward), ENTRY(encoder_backward_wpe), ENTRY(encoder_backward_wte),
    ENTRY(layernorm_forward), ENTRY(layernorm_backward_input), ENTRY(layernorm_backward_params_partial),
    ENTRY(add_bias), ENTRY(column_sum_partial), ENTRY(column_sum_finish),
    ENTRY(attention_forward), ENTRY(attention_backward_delta), ENTRY(attention_backward_dkv),
    ENTRY(attention_backward_dq), ENTRY(attention_forward_wide), ENTRY(attention_backward_dkv_wide),
    ENTRY(attention_backward_dq_wide),
    ENTRY(attention_cached_forward), ENTRY(kv_cache_write), ENTRY(attention_decode),
    ENTRY(residual_forward), ENTRY(residual_backward),
    ENTRY(gelu_forward), ENTRY(gelu_backward),
    ENTRY(fused_classifier),
    ENTRY(global_norm_partial), ENTRY(global_norm_finish), ENTRY(adamw_update), ENTRY(adamw_update_mixed),
    ENTRY(cast_f32_to_floatx), ENTRY(cast_floatx_to_f32),
    ENTRY(rmsnorm_forward), ENTRY(rmsnorm_backward_input), ENTRY(rmsnorm_backward_weight_partial),
    ENTRY(rope_forward), ENTRY(rope_backward),
    ENTRY(swiglu_forward), ENTRY(swiglu_backward), ENTRY(geglu_forward), ENTRY(geglu_backward),
    ENTRY(relu_squared_forward), ENTRY(relu_squared_backward),
    ENTRY(softcap_forward), ENTRY(softcap_backward),
};

const int kernelCount = sizeof(kernels) / sizeof(kernels[0]);

#undef ENTRY

}  // namespace emulator::EMULATOR_PRECISION
