#!/usr/bin/env bash
# Real pretrained models against transformers: SmolLM2-135M-Instruct (GGUF Q4_1, chat) and Gemma 3 270M (GGUF
# Q4_K_M, base). For each, `llm verify --greedy` renders every committed case with the model's own tokenizer and
# chat template, checks the prompt ids against transformers' (reference/real-models/*-greedy.json, made by
# reference/real_model_greedy.py with transformers loading the same GGUF in float32) and decodes greedily,
# token by token. `llm eval` scores the shipped tasks as reference/eval_reference.py does. Then `llm serve` on SmolLM2 passes scripts/openai_client.py.
#
#     scripts/ci_real_models_check.sh            # release build of llm (built if missing)
#     LLM_REAL_MODELS=/path/to/real_models.sh scripts/ci_real_models_check.sh
#
# The models are not in the repository (their licences and sizes): they come from PyPI through
# ../shared/tools/real_models.sh (or $LLM_REAL_MODELS). Without it, or without network, this exits 0 with
# "skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "ci_real_models_check: skipped: $1"; exit 0; }
installer=${LLM_REAL_MODELS:-../shared/tools/real_models.sh}
[ -f "$installer" ] || skip "no $installer to install the models"
paths=$(bash "$installer" 2>/dev/null) || skip "the models could not be installed (no network?)"
smollm=$(printf '%s\n' "$paths" | awk -F'\t' '$1 == "smollm2-135m-instruct" { print $2 }')
gemma=$(printf '%s\n' "$paths" | awk -F'\t' '$1 == "gemma3-270m" { print $2 }')
[ -f "$smollm" ] && [ -f "$gemma" ] || skip "the installer did not print both models' paths"

bin=${LLM_BIN:-.build/release/llm}
[ -x "$bin" ] || swift build -c release --product llm

"$bin" inspect "$smollm"
"$bin" verify --greedy reference/real-models/smollm2-greedy.json --model "$smollm"
"$bin" verify --greedy reference/real-models/gemma3-greedy.json --model "$gemma"

# llm eval's scoring against transformers' on the shipped tasks, example by example (float32 on both sides; the
# reference reads SmolLM2's own tokenizer.json: transformers' conversion of the GGUF's is not exact).
if python3 -c "import torch, transformers, gguf" 2>/dev/null; then
    "$bin" eval --model "$smollm" --dequantize --tasks tasks --limit 6 --json "${TMPDIR:-/tmp}/llm-eval-smollm2.json" --quiet
    python3 reference/eval_reference.py --model "$smollm" --tokenizer Tests/LLMTests/Fixtures/tokenizers/smollm2 \
        --tasks tasks/*.jsonl --limit 6 --compare "${TMPDIR:-/tmp}/llm-eval-smollm2.json" 2>&1 | grep -v "it/s\]"
else
    echo "ci_real_models_check: eval comparison skipped (needs torch, transformers and gguf)"
fi

# The OpenAI client against the real chat model (skipped inside if the openai package is missing).
LLM_BIN="$bin" LLM_SERVE_MODEL="$smollm" scripts/ci_server_check.sh
echo "ci_real_models_check: ok"
