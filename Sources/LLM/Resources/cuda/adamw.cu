// The optimizer step on the GPU: the global gradient norm, the clip scale, and AdamW
// (CPU version: Kernels/AdamW.swift and GPT2.update). Nothing here reads back to the host: the clip scale
// stays on the device, and a non-finite gradient norm makes AdamW leave every weight and moment untouched,
// so the host can launch the whole step and check the norm afterwards.
#include "common.cuh"

// partials[blockIdx.x] = Σ grads[i]² over this block's grid-stride share of the n gradients.
// Launch: a fixed grid (its size is the number of partials; the same grid gives the same sum), blocks of 512.
KERNEL void global_norm_partial(float* partials, const floatX* grads, long long n) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = global_index(); i < n; i += global_stride()) {
        float g = to_float(grads[i]);
        s += g * g;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// norm_scale[0] = √(Σ partials), the global gradient norm; norm_scale[1] = the clip scale, as
// torch.nn.utils.clip_grad_norm_: min(1, clip / (norm + 1e-6)) when clip > 0, else 1; NaN when the norm is not
// finite, which makes the AdamW kernels skip the step. Launch: one block of 1024.
KERNEL void global_norm_finish(float* norm_scale, const float* partials, int count, float clip) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        float norm = sqrtf(s);
        float scale = clip > 0.0f ? fminf(1.0f, clip / (norm + 1e-6f)) : 1.0f;
        norm_scale[0] = norm;
        norm_scale[1] = isfinite(norm) ? scale : __int_as_float(0x7fc00000);
    }
}

// The AdamW step for one parameter, in the CPU's order of operations:
// g *= scale; p *= decay; m += (1-β1)(g - m); v = β2·v + (1-β2)·g²; p -= step_size · m / (√v / bias2_sqrt + eps).
__device__ __forceinline__ float adamw_step(float p, float g, float* m, float* v, float step_size, float bias2_sqrt,
                                            float decay, float one_minus_beta1, float beta2, float one_minus_beta2,
                                            float eps) {
    p *= decay;
    float mv = *m + one_minus_beta1 * (g - *m);
    float vv = *v * beta2 + one_minus_beta2 * g * g;
    *m = mv;
    *v = vv;
    return p - step_size * mv / (sqrtf(vv) / bias2_sqrt + eps);
}

// AdamW over n float parameters with float gradients. The host forms the scalars in double and rounds once,
// as adamWUpdate does: step_size = lr / (1 - β1^t), bias2_sqrt = √(1 - β2^t), decay = 1 - lr·wd (wd = 0 for
// tensors that are not decayed). grad_scale points to global_norm_finish's scale (norm_scale + 1).
// Launch: grid-stride, blocks of 256; one launch per parameter tensor (their decay differs).
KERNEL void adamw_update(float* params, const float* grads, float* m, float* v, long long n,
                         const float* grad_scale, float step_size, float bias2_sqrt, float decay,
                         float one_minus_beta1, float beta2, float one_minus_beta2, float eps) {
    float scale = *grad_scale;
    if (!isfinite(scale)) return;
    for (long long i = global_index(); i < n; i += global_stride()) {
        params[i] = adamw_step(params[i], grads[i] * scale, &m[i], &v[i], step_size, bias2_sqrt, decay,
                               one_minus_beta1, beta2, one_minus_beta2, eps);
    }
}

// AdamW for mixed precision: float master weights and moments, floatX gradients; the updated master weight is
// rounded (stochastically when floatX is bfloat16, with random bits from `seed`, which the host changes every
// step and tensor) into the floatX copy the model computes with.
// Scalars as adamw_update. Launch: grid-stride, blocks of 256; one launch per parameter tensor.
KERNEL void adamw_update_mixed(floatX* params, float* master, const floatX* grads, float* m, float* v,
                               long long n, const float* grad_scale, float step_size,
                               float bias2_sqrt, float decay, float one_minus_beta1, float beta2,
                               float one_minus_beta2, float eps, unsigned int seed) {
    float scale = *grad_scale;
    if (!isfinite(scale)) return;
    for (long long i = global_index(); i < n; i += global_stride()) {
        float p = adamw_step(master[i], to_float(grads[i]) * scale, &m[i], &v[i], step_size, bias2_sqrt, decay,
                             one_minus_beta1, beta2, one_minus_beta2, eps);
        master[i] = p;
        params[i] = from_float_stochastic(p, hash_bits((unsigned int)i, seed));
    }
}
