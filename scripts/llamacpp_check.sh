#!/usr/bin/env bash
# Does llama.cpp run the GGUF files `llm convert` writes, and decode what we decode? For each architecture
# llama.cpp shares with us, a small `llm train` run (GPT-2's tokenizer), exported with `llm convert --to X.gguf`,
# then greedy continuations of a prompt from `llm sample --temperature 0` and from llama.cpp's `llama-simple`:
# the texts must be equal (and llama-tokenize's ids of both, printed for the record).
#
#     scripts/llamacpp_check.sh [LLAMACPP_DIR] [TEXT]
#
# LLAMACPP_DIR holds bin/llama-simple and bin/llama-tokenize (../shared/tools/build_llamacpp.sh builds them, 15-25
# minutes on 2 cores; default ~/.cache/llm-llamacpp). TEXT is a training text (default tinyshakespeare from
# ../shared). Not part of .ci/run (the llama.cpp build is too long); exits 0 with "skipped" without llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
llamacpp=${1:-$HOME/.cache/llm-llamacpp}
text=${2:-../shared/data/tinyshakespeare.txt}
skip() { echo "llamacpp_check: skipped: $1"; exit 0; }
[ -x "$llamacpp/bin/llama-simple" ] || skip "no $llamacpp/bin/llama-simple (build it with ../shared/tools/build_llamacpp.sh)"
[ -f "$text" ] || skip "no training text $text"
bin=${LLM_BIN:-.build/release/llm}
[ -x "$bin" ] || swift build -c release --product llm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

prompt="ROMEO:"
new=32
status=0
# gpt2 and llama train from scratch; qwen2 and gemma3 have no preset, so they start from a small random model that
# transformers makes (reference/make_tiny_init.py; skipped without torch and transformers).
archs=${ARCHS:-gpt2 llama qwen2 gemma3}
for arch in $archs; do
    case $arch in
        gpt2|llama) shape=(--arch "$arch" --layers 2 --heads 4 --channels 128 --max-seq 256) ;;
        *)
            if ! python3 reference/make_tiny_init.py --arch "$arch" --out "$work/$arch-init" >/dev/null 2>&1; then
                echo "$arch: skipped (reference/make_tiny_init.py needs torch and transformers)"
                continue
            fi
            shape=(--init "$work/$arch-init") ;;
    esac
    "$bin" train --input "$text" --tokenizer gpt2 "${shape[@]}" \
        --steps 300 --batch 8 --seq 64 --eval-every 0 --sample-every 0 --out "$work/$arch" --quiet >/dev/null
    for type in f32 q8_0; do
        gguf="$work/$arch-$type.gguf"
        "$bin" convert --from "$work/$arch" --to "$gguf" --type "$type" >/dev/null
        ours=$("$bin" sample --model "$gguf" --prompt "$prompt" --temperature 0 --max-new-tokens "$new" 2>/dev/null)
        theirs=$("$llamacpp/bin/llama-simple" -m "$gguf" -n "$new" "$prompt" 2>/dev/null)
        theirs=${theirs#"$prompt"}
        if [ -z "$(printf '%s' "$ours" | tr -d '[:space:]')" ]; then
            echo "$arch $type: inconclusive: the continuation is only whitespace (train longer)"
            status=1
        elif [ "$ours" == "$theirs" ]; then
            echo "$arch $type: equal: $(printf '%s' "$ours" | head -c 80 | tr '\n' ' ')"
        else
            echo "$arch $type: DIFFERENT"
            echo "  llm:       $(printf '%s' "$ours" | tr '\n' ' ')"
            echo "  llama.cpp: $(printf '%s' "$theirs" | tr '\n' ' ')"
            [ "$type" == f32 ] && status=1
        fi
    done
done
[ $status == 0 ] && echo "llamacpp_check: ok" || echo "llamacpp_check: FAILED"
exit $status
