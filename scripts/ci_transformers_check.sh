#!/usr/bin/env bash
# Do Hugging Face folders and GGUF files written by `llm` load in transformers and give the same logits? For each committed
# architecture fixture (Llama, Qwen2, Gemma 3, nanochat): `llm convert` rewrites its hf/ folder (our config.json
# and safetensors), `llm logits` saves our logits for a token sequence, and reference/hf_logits.py --compare runs
# transformers (or reference/nanochat_model.py) on the rewritten folder and checks every logit within 1e-4.
#
#     scripts/ci_transformers_check.sh                      # uses .build/release/llm, building it if needed
#     LLM_BIN=.build/debug/llm scripts/ci_transformers_check.sh
#
# Exits 0 with a "skipped" message when python3, torch or transformers is missing (they are large; CI does not
# install them).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "ci_transformers_check: skipped: $1"; exit 0; }
command -v python3 >/dev/null 2>&1 || skip "no python3"
python3 -c "import torch, transformers, safetensors" 2>/dev/null || skip "torch, transformers or safetensors is not installed"

export TQDM_DISABLE=1  # transformers' GGUF loader draws a progress bar
bin=${LLM_BIN:-.build/release/llm}
[ -x "$bin" ] || swift build -c release --product llm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tokens=3,17,99,42,7,250,1,200,64,5,6,7,8,9,10,11
for name in llama-gqa qwen2-mqa gemma3-window nanochat-tiny; do
    "$bin" convert --from "Tests/LLMTests/Fixtures/$name/hf" --to "$work/$name" >/dev/null
    "$bin" logits --model "$work/$name" --tokens "$tokens" --out "$work/$name.safetensors" >/dev/null
    python3 reference/hf_logits.py "$work/$name" --compare "$work/$name.safetensors" | tail -n 1 | sed "s|^|$name: |"
done
# GGUF files `llm convert` writes, read by transformers' GGUF loader (the tokenizer: 256 single bytes).
{ printf 'llm-tokenizer 1\npattern gpt2\ntokens 256\n'
  python3 -c 'import base64; print("\n".join(base64.b64encode(bytes([b])).decode() for b in range(256)))'; } > "$work/bytes.tok"
for name in llama-gqa qwen2-mqa; do
    "$bin" convert --from "Tests/LLMTests/Fixtures/$name/hf" --to "$work/$name.gguf" --type f32 --tokenizer "$work/bytes.tok" >/dev/null
    "$bin" logits --model "$work/$name.gguf" --tokens "$tokens" --out "$work/$name-gguf.safetensors" >/dev/null
    python3 reference/hf_logits.py "$work/$name.gguf" --compare "$work/$name-gguf.safetensors" | tail -n 1 | sed "s|^|$name.gguf: |"
done
echo "ci_transformers_check: ok"
