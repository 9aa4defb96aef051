#!/usr/bin/env bash
# Side-by-side speed of quantized GGUF inference: llm vs llama.cpp's llama-bench on the same files, machine and
# thread count, alternating runs. Prints one JSON line per measurement (prefill = llama-bench's pp, decode = tg).
#   scripts/llamacpp_bench.sh MODEL.gguf [MODEL.gguf ...]
# Environment: LLM (default .build/release/llm), LLAMA_BENCH (default ~/.cache/llm-llamacpp/bin/llama-bench, from
# ../shared/tools/build_llamacpp.sh), THREADS (2), ROUNDS (3), PROMPT (512), NEW (128).
set -euo pipefail
LLM=${LLM:-.build/release/llm}
LLAMA_BENCH=${LLAMA_BENCH:-$HOME/.cache/llm-llamacpp/bin/llama-bench}
THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-3} PROMPT=${PROMPT:-512} NEW=${NEW:-128}
[ -x "$LLAMA_BENCH" ] || { echo "llamacpp_bench.sh: no llama-bench at $LLAMA_BENCH (build it with ../shared/tools/build_llamacpp.sh)" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: scripts/llamacpp_bench.sh MODEL.gguf [...]" >&2; exit 2; }
echo "{\"cpu\": \"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\", \"avx512\": $(grep -q avx512f /proc/cpuinfo && echo true || echo false), \"threads\": $THREADS}"
for round in $(seq 1 "$ROUNDS"); do
  for model in "$@"; do
    name=$(basename "$model")
    "$LLAMA_BENCH" -m "$model" -p "$PROMPT" -n "$NEW" -t "$THREADS" -r 1 -o jsonl 2>/dev/null | python3 -c "
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    kind = 'prefill' if d['n_prompt'] else 'decode'
    print(json.dumps({'round': $round, 'model': '$name', 'engine': 'llama.cpp', 'job': kind, 'tokens_per_s': round(d['avg_ts'], 2)}))"
    p=$("$LLM" bench prefill --model "$model" --prompt "$PROMPT" --steps 1 --warmup 1 --threads "$THREADS" 2>/dev/null | tail -1)
    g=$("$LLM" bench generate --model "$model" --prompt 1 --new "$NEW" --steps 1 --warmup 1 --threads "$THREADS" 2>/dev/null | tail -1)
    python3 -c "
import json
p, g = json.loads('''$p'''), json.loads('''$g''')
print(json.dumps({'round': $round, 'model': '$name', 'engine': 'llm', 'job': 'prefill', 'tokens_per_s': round(p['prefill_tokens_per_s'], 2), 'kernels': p['kernels']}))
print(json.dumps({'round': $round, 'model': '$name', 'engine': 'llm', 'job': 'decode', 'tokens_per_s': round(g['decode_tokens_per_s'], 2), 'kernels': g['kernels']}))"
  done
done
