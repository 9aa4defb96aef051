#!/usr/bin/env bash
# Regenerate every committed parity fixture into Tests/LLMTests/Fixtures/<name>/ and check them.
# Run from anywhere; needs the packages in reference/requirements.txt. Output is deterministic for
# fixed torch/transformers versions (the ones in requirements.txt), CPU, float32.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=Tests/LLMTests/Fixtures
MAKE="python3 reference/make_fixture.py --steps 10"

# V=257 is not a multiple of 128 (Vp=384: wte padding rows); also fp16/bf16 HF exports and a bf16 llm.c checkpoint.
$MAKE --out $FIX/odd-vocab    --vocab 257 --layers 2 --heads 2 --channels 32 --max-seq 16 --batch 2 --seq 8  --seed 101 --extra-dtypes
# T == maxT (every position embedding and the full causal mask are used); V == Vp == 128, one layer, one head.
$MAKE --out $FIX/full-context --vocab 128 --layers 1 --heads 1 --channels 16 --max-seq 12 --batch 3 --seq 12 --seed 202
# Four layers, six heads of size 8 (C=48): head split/merge and layer stacking.
$MAKE --out $FIX/deep-heads   --vocab 300 --layers 4 --heads 6 --channels 48 --max-seq 24 --batch 2 --seq 20 --seed 303
# SFT's loss mask: some targets are -1 (ignored); the loss is the mean over the others.
$MAKE --out $FIX/masked-loss  --vocab 200 --layers 2 --heads 2 --channels 32 --max-seq 16 --batch 2 --seq 16 --seed 404 --ignore-fraction 0.4

python3 reference/check_fixture.py $FIX/odd-vocab $FIX/full-context $FIX/deep-heads $FIX/masked-loss
# Greedy generation with Hugging Face generate() on deep-heads; GPT-2 tokenizer cases from tiktoken; BPE merges.
python3 reference/make_generate_fixture.py
python3 reference/make_tokenizer_cases.py
python3 reference/make_bpe_cases.py
du -sh $FIX/odd-vocab $FIX/full-context $FIX/deep-heads $FIX/masked-loss
