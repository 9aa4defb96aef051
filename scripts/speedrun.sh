#!/usr/bin/env bash
# nanochat's speedrun on the CPU: from raw text to a model you can talk to, every stage measured, in one command.
#
#     scripts/speedrun.sh                    # TinyShakespeare (downloaded), into runs/speedrun/
#     scripts/speedrun.sh my-text.txt        # your own text
#     SPEEDRUN_OUT=runs/sr2 scripts/speedrun.sh
#
# Stages: a BPE tokenizer trained on the text (with nanochat's chat and tool tokens) → pretraining of a nanochat-
# architecture model (RMSNorm without weights, RoPE, QK-norm, ReLU², logit softcap, untied head) with Muon →
# base evaluation (bits per byte, and CORE on tasks/'s raw-text sets) → synthetic conversations, arithmetic with
# calculator calls among them → SFT → chat evaluation (ChatCORE on tasks/'s chat sets, the calculator on) → the
# RL on arithmetic problems (GRPO, the reward a right final number) → chat evaluation of the RL model → the report
# card (runs/speedrun/report/report.md).
#
# The CPU size (defaults below) is a 4-layer nanochat model (C=256) for 600 steps of 8×256 tokens: about 12
# minutes in all on the 2-core AMD EPYC (Zen 4, AVX-512) this was measured on; a machine without AVX-512 takes
# about twice as long. On a GPU (when the CUDA backend runs models, not yet) the same script scales up with
# SPEEDRUN_LAYERS=20 SPEEDRUN_STEPS=… as nanochat's d20.
set -euo pipefail
cd "$(dirname "$0")/.."

text=${1:-tinyshakespeare}
out=${SPEEDRUN_OUT:-runs/speedrun}
layers=${SPEEDRUN_LAYERS:-4}
steps=${SPEEDRUN_STEPS:-600}
sft_epochs=${SPEEDRUN_SFT_EPOCHS:-3}
rl_steps=${SPEEDRUN_RL_STEPS:-80}
bin=${LLM_BIN:-.build/release/llm}

if [ ! -x "$bin" ]; then
    echo "speedrun: building llm (release; a few minutes the first time)"
    swift build -c release --product llm
fi
if [ -e "$out" ]; then
    echo "speedrun: $out exists; remove it or set SPEEDRUN_OUT" >&2
    exit 1
fi
mkdir -p "$out/report"
start=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - start )) s so far)"; }

stage "pretraining: tokenizer, then a d$layers nanochat model with Muon"
"$bin" train --input "$text" --arch nanochat --layers "$layers" --steps "$steps" --batch 8 --seq 256 \
    --optimizer muon --eval-every 100 --sample-every 200 --out "$out/base"

stage "base evaluation: CORE on the raw-text tasks"
"$bin" eval --model "$out/base" --tasks tasks/arithmetic.jsonl tasks/capitals.jsonl tasks/opposites.jsonl \
    tasks/comparison.jsonl tasks/sequences.jsonl --json "$out/report/base-eval.json" --quiet

stage "conversations: the project's synthetic set, arithmetic with calculator calls among them"
"$bin" chat-data --out "$out/conversations.jsonl" --count 3000

stage "SFT"
"$bin" sft --init "$out/base" --data "$out/conversations.jsonl" --epochs "$sft_epochs" --lr 1e-3 --out "$out/chat"

stage "chat evaluation: ChatCORE on the chat tasks"
"$bin" eval --model "$out/chat" --tasks tasks/arithmetic-chat.jsonl tasks/capitals-chat.jsonl \
    tasks/word-problems.jsonl --json "$out/report/chat-eval.json" --quiet

stage "RL: GRPO on arithmetic problems, reward 1 for the right number"
"$bin" rl --model "$out/chat" --out "$out/rl" --steps "$rl_steps" --eval-every 20

stage "chat evaluation of the RL model"
"$bin" eval --model "$out/rl" --tasks tasks/arithmetic-chat.jsonl tasks/capitals-chat.jsonl \
    tasks/word-problems.jsonl --json "$out/report/rl-eval.json" --quiet

stage "report card"
"$bin" report "$out/base" "$out/chat" "$out/rl" --eval "$out/report/base-eval.json" "$out/report/chat-eval.json" \
    "$out/report/rl-eval.json" --out "$out/report"
"$bin" chat --model "$out/rl" --prompt "What is 12 * 7?" --temperature 0 || true
echo
echo "speedrun: done in $(( $(date +%s) - start )) s; talk to it: $bin chat --model $out/rl"
