#!/usr/bin/env bash
# Regenerate the generic-format fixtures (Llama, Qwen2, Gemma 3, nanochat) into Tests/LLMTests/Fixtures/<name>/
# and check them. Run from anywhere; needs torch, transformers and safetensors (reference/requirements.txt).
# Deterministic for fixed torch/transformers versions, CPU, float32.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=Tests/LLMTests/Fixtures
MAKE="python3 reference/make_arch_fixture.py --steps 10"

# Llama with grouped-query attention: 6 query heads share 2 kv heads (3 each), head size 8, SwiGLU 112,
# untied lm_head, T < maxT.
$MAKE --arch llama --out $FIX/llama-gqa --layers 3 --hidden 48 --heads 6 --kv-heads 2 --head-dim 8 \
    --intermediate 112 --vocab 300 --max-seq 32 --batch 3 --seq 24 --seed 505
# Qwen2 with one kv head for all 4 query heads (MQA), q/k/v biases, tied embeddings, T == maxT.
$MAKE --arch qwen2 --out $FIX/qwen2-mqa --layers 2 --hidden 32 --heads 4 --kv-heads 1 --head-dim 8 \
    --intermediate 64 --vocab 256 --qkv-bias --tied --max-seq 16 --batch 2 --seq 16 --seed 606
# Gemma 3: head size 32 with C/H = 16, one kv head, sliding window 5 < T on layers 0-1 (RoPE theta 1e4),
# full attention on layer 2 (theta 1e6), attention scale 24^-0.5 (not head_dim's), final logit softcap 30,
# (1 + w) norms incl. q_norm/k_norm, embeddings times sqrt(C), tied. Init std 0.2 so the softcap matters.
$MAKE --arch gemma3 --out $FIX/gemma3-window --layers 3 --hidden 48 --heads 3 --kv-heads 1 --head-dim 32 \
    --intermediate 96 --vocab 280 --tied --sliding-window 5 --layer-types sliding,sliding,full \
    --query-pre-attn-scalar 24 --rope-theta 1e6 --rope-local-theta 1e4 --final-softcap 30 \
    --max-seq 32 --batch 2 --seq 16 --init-std 0.2 --seed 707
# nanochat (reference/nanochat_model.py): parameter-free RMSNorms, QK-norm after RoPE, relu^2 MLP, untied
# lm_head (init std 0.2 so the softcap 15 matters), GQA 4/2.
$MAKE --arch nanochat --out $FIX/nanochat-tiny --layers 2 --hidden 64 --heads 4 --kv-heads 2 --head-dim 16 \
    --intermediate 256 --vocab 260 --rope-theta 100000 --rms-eps 1e-6 --final-softcap 15 \
    --max-seq 32 --batch 2 --seq 20 --head-std 0.2 --seed 809

python3 reference/check_arch_fixture.py $FIX/llama-gqa $FIX/qwen2-mqa $FIX/gemma3-window $FIX/nanochat-tiny
du -sh $FIX/llama-gqa $FIX/qwen2-mqa $FIX/gemma3-window $FIX/nanochat-tiny
