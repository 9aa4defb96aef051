// Conversions between float and the storage type floatX: weights in and out of the device, master copies of
// bfloat16 weights, and logits back to the host for sampling. With floatX = float they are copies.
#include "common.cuh"

// out[i] = floatX(in[i]), rounded to nearest even. Launch: grid-stride, blocks of 256.
KERNEL void cast_f32_to_floatx(floatX* out, const float* in, long long n) {
    for (long long i = global_index(); i < n; i += global_stride()) out[i] = from_float(in[i]);
}

// out[i] = float(in[i]), exact. Launch: grid-stride, blocks of 256.
KERNEL void cast_floatx_to_f32(float* out, const floatX* in, long long n) {
    for (long long i = global_index(); i < n; i += global_stride()) out[i] = to_float(in[i]);
}
