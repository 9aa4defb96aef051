// The classifier: softmax over the real vocabulary, cross-entropy loss, and its gradient, fused in one kernel
// (CPU version: softmaxForward, crossEntropyForward and crossEntropySoftmaxBackward in Kernels/CrossEntropy.swift).
// The probabilities are never stored: one pass finds the row's max and Σ exp together (online softmax), a
// second writes the gradient over the logits in place, which the backward needs no more.
#include "common.cuh"

// For each row n of the (N,Vp) logits (N = B·T):
//   losses[n] = log Σ_{i<V} exp(logits[n,i]) - logits[n,target], or 0 where targets[n] = -1 (ignored);
//   with write_dlogits ≠ 0, logits[n,:] is replaced by dlogits:
//     (softmax_i - [i == target]) · dloss for i < V, 0 for the padded columns V ≤ i < Vp, and 0 for the whole
//     row of an ignored position.
// dloss is the gradient of the loss at each supervised position: lossScale / (number of supervised positions)
// for the mean, as the host counts them. Launch: one block per row, blocks of 512.
KERNEL void fused_classifier(floatX* logits, float* losses, const int* targets, float dloss, int N,
                             int V, int Vp, int write_dlogits) {
    __shared__ float scratch[32];
    int n = blockIdx.x;
    if (n >= N) return;
    floatX* x = logits + (long long)n * Vp;
    int target = targets[n];
    float targetLogit = target >= 0 ? to_float(x[target]) : 0.0f;  // read before any thread overwrites the row

    // Each thread's running max and Σ exp(x - max), then merged over the block.
    float m = NEG_INFINITY, s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = to_float(x[i]);
        if (v > m) {
            s *= expf(m - v);
            m = v;
        }
        s += expf(v - m);
    }
    float rowMax = block_max(m, scratch);
    float sum = block_sum(m == NEG_INFINITY ? 0.0f : s * expf(m - rowMax), scratch);
    float logSum = logf(sum);
    if (threadIdx.x == 0) losses[n] = target >= 0 ? rowMax + logSum - targetLogit : 0.0f;
    if (!write_dlogits) return;

    float g = target >= 0 ? dloss : 0.0f;
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < Vp; i += blockDim.x) {
        float d = 0.0f;
        if (i < V) d = (expf(to_float(x[i]) - rowMax) * inv - (i == target ? 1.0f : 0.0f)) * g;
        x[i] = from_float(d);
    }
}
