// Token + position embedding, the first layer of GPT-2, and its backward (CPU version: Kernels/Encoder.swift).
// Backward is deterministic: no atomics; each gradient element is summed by one thread in a fixed order.
#include "common.cuh"

// out[b,t,c] = wte[inp[b,t],c] + wpe[t,c].
// out is (B,T,C), inp is (B,T) token ids already checked to be < V, wte is (Vp,C), wpe is (maxT,C).
// Launch: one thread per element of out, blocks of 256.
KERNEL void encoder_forward(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                            int B, int T, int C) {
    long long i = global_index();
    if (i >= (long long)B * T * C) return;
    int c = (int)(i % C);
    long long bt = i / C;
    int t = (int)(bt % T);
    out[i] = from_float(to_float(wte[(long long)inp[bt] * C + c]) + to_float(wpe[(long long)t * C + c]));
}

// dwpe[t,c] += Σ_b dout[b,t,c], summed over b in order.
// dwpe is (maxT,C), dout is (B,T,C). Launch: one thread per (t,c), blocks of 256.
KERNEL void encoder_backward_wpe(floatX* dwpe, const floatX* dout, int B, int T, int C) {
    long long i = global_index();
    if (i >= (long long)T * C) return;
    float sum = 0.0f;
    for (int b = 0; b < B; b++) sum += to_float(dout[(long long)b * T * C + i]);
    dwpe[i] = from_float(to_float(dwpe[i]) + sum);
}

// dwte[token,c] += Σ dout[p,c] over the positions p = b·T + t whose input is that token.
// The host groups positions by token (a counting sort of the (B,T) inputs it already holds): bucket k is the
// token bucket_tokens[k] with positions positions[bucket_starts[k] ..< bucket_starts[k+1]], in increasing order.
// dwte is (Vp,C), dout is (B,T,C). Launch: grid (buckets, ceil(C/256)), blocks of 256; one thread per (token, c).
KERNEL void encoder_backward_wte(floatX* dwte, const floatX* dout, const int* bucket_tokens,
                                const int* bucket_starts, const int* positions, int buckets, int C) {
    int k = blockIdx.x;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C || k >= buckets) return;
    float sum = 0.0f;
    for (int j = bucket_starts[k]; j < bucket_starts[k + 1]; j++) sum += to_float(dout[(long long)positions[j] * C + c]);
    long long at = (long long)bucket_tokens[k] * C + c;
    dwte[at] = from_float(to_float(dwte[at]) + sum);
}
