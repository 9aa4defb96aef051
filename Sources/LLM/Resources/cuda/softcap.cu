// The final logit softcap of nanochat and Gemma 2 (CPU version: Kernels/Softcap.swift): logits = cap·tanh(logits /
// cap) in place, which keeps every logit within (−cap, cap) without changing their order; its backward needs only
// the capped value. Logits are N rows of Vp values of which the first V are real; the padding is left alone.
#include "common.cuh"

// tanh(z) as the CPU computes it. For |z| ≥ 1/8, from e = exp(−2|z|) ≤ 1: tanh|z| = (1 − e)/(1 + e), with z's
// sign (no overflow for any z). Below that, 1 − e would cancel away most of its digits, so the Taylor series
// z − z³/3 + 2z⁵/15 − 17z⁷/315 takes over; its next term is below 2e-9 of tanh z there.
__device__ __forceinline__ float softcap_tanh(float z) {
    float magnitude = fabsf(z);
    if (magnitude < 0.125f) {
        float z2 = z * z;
        return z + z * z2 * (-1.0f / 3.0f + z2 * (2.0f / 15.0f + z2 * (-17.0f / 315.0f)));
    }
    float e = expf(-2.0f * magnitude);
    float t = (1.0f - e) / (1.0f + e);
    return z < 0.0f ? -t : t;
}

// x[n, v] = cap·tanh(x[n, v] / cap) for v < V. x is (N, Vp).
// Launch: grid-stride over the N·V real logits, blocks of 256.
KERNEL void softcap_forward(floatX* x, float cap, int N, int V, int Vp) {
    for (long long k = global_index(); k < (long long)N * V; k += global_stride()) {
        long long at = (k / V) * Vp + k % V;
        x[at] = from_float(cap * softcap_tanh(to_float(x[at]) / cap));
    }
}

// d[n, v] = d[n, v]·(1 − (y[n, v] / cap)²) in place on the gradient, for v < V, where y is the capped output
// softcap_forward left. d and y are (N, Vp). Launch: grid-stride over N·V, blocks of 256.
KERNEL void softcap_backward(floatX* d, const floatX* y, float cap, int N, int V, int Vp) {
    for (long long k = global_index(); k < (long long)N * V; k += global_stride()) {
        long long at = (k / V) * Vp + k % V;
        float t = to_float(y[at]) / cap;
        d[at] = from_float(to_float(d[at]) * (1.0f - t * t));
    }
}
