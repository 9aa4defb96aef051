#!/usr/bin/env bash
# Regenerate the LoRA fixtures into Tests/LLMTests/Fixtures/<name>/ (each run reloads its output through
# PeftModel.from_pretrained and checks the logits), then prove check_peft_adapter.py accepts final/.
# Run from anywhere; needs torch, transformers, peft and safetensors. Deterministic for fixed versions, CPU, float32.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=Tests/LLMTests/Fixtures
MAKE="python3 reference/make_lora_fixture.py --steps 10"
SHAPE="--layers 2 --hidden 32 --heads 4 --kv-heads 2 --head-dim 8 --intermediate 64 --vocab 128 --max-seq 32 \
    --batch 2 --seq 12"

# LoRA on all seven Linear layers of a GQA Llama (4 query heads / 2 kv heads), r 4, alpha 8 (scaling 2).
$MAKE --out $FIX/lora-llama $SHAPE --rank 4 --alpha 8 \
    --targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --seed 1313
# PEFT's default Llama targets, q_proj and v_proj only (part of a fused q|k|v matrix), r 2, alpha 5 (scaling 2.5).
$MAKE --out $FIX/lora-llama-qv $SHAPE --rank 2 --alpha 5 --targets q_proj,v_proj --seed 1414

# check_peft_adapter.py on each final/ with final_logits (as an adapter written elsewhere would be checked).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for name in lora-llama lora-llama-qv; do
    python3 - "$FIX/$name/state.safetensors" "$TMP/$name.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
s = load_file(sys.argv[1])
save_file({"inputs": s["inputs"], "logits": s["final_logits"]}, sys.argv[2])
PY
    python3 reference/check_peft_adapter.py --base $FIX/$name/hf --adapter $FIX/$name/final --logits "$TMP/$name.safetensors"
done
du -sh $FIX/lora-llama $FIX/lora-llama-qv
