#!/usr/bin/env bash
# Does a LoRA adapter trained here load in PEFT and give the same logits, and does a merged model load in
# transformers? On each committed LoRA fixture (reference/make_lora_fixture.py: a tiny Llama and PEFT's adapter):
#   1. `llm verify FIXTURE --save-final OURS` checks the gradients and ten AdamW steps against PEFT's and writes the
#      adapter it trained, in PEFT's format;
#   2. `llm logits --adapter OURS` saves our logits with that adapter on the fixture's base;
#   3. reference/check_peft_adapter.py loads the base with transformers, applies OURS with
#      `PeftModel.from_pretrained`, and compares the logits (1e-4);
#   4. `llm merge` folds OURS into the base, and reference/hf_logits.py runs the merged folder in transformers
#      against the same logits.
#
#     scripts/ci_peft_check.sh                      # uses .build/release/llm, building it if needed
#     LLM_BIN=.build/debug/llm scripts/ci_peft_check.sh
#
# Exits 0 with a "skipped" message when python3, torch, transformers or peft is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "ci_peft_check: skipped: $1"; exit 0; }
command -v python3 >/dev/null 2>&1 || skip "no python3"
python3 -c "import torch, transformers, safetensors, peft" 2>/dev/null || skip "torch, transformers, safetensors or peft is not installed"

bin=${LLM_BIN:-.build/release/llm}
[ -x "$bin" ] || swift build -c release --product llm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tokens=3,17,99,42,7,120,1,100,64,5,6,7,8,9,10,11
for name in lora-llama lora-llama-qv; do
    fixture=Tests/LLMTests/Fixtures/$name
    "$bin" verify "$fixture" --save-final "$work/$name-adapter" | tail -n 1 | sed "s|^|$name verify: |"
    "$bin" logits --model "$fixture/hf" --adapter "$work/$name-adapter" --tokens "$tokens" --out "$work/$name.safetensors" >/dev/null
    python3 reference/check_peft_adapter.py --base "$fixture/hf" --adapter "$work/$name-adapter" \
        --logits "$work/$name.safetensors" | sed "s|^|$name in PEFT: |"
    "$bin" merge --model "$fixture/hf" --adapter "$work/$name-adapter" --out "$work/$name-merged" >/dev/null
    python3 reference/hf_logits.py "$work/$name-merged" --compare "$work/$name.safetensors" | tail -n 1 \
        | sed "s|^|$name merged, in transformers: |"
done
echo "ci_peft_check: ok"
