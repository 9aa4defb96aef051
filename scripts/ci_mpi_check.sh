#!/usr/bin/env bash
# Data-parallel training over MPI against one process: does `mpirun -np 2 llm train` equal one process that
# accumulates the same micro-batches, and does a job survive a killed rank?
#   1. GPT-2 with AdamW, SFT of it, and nanochat's architecture with Muon: one process with 2 micro-batches per step
#      (--total-batch-tokens 2·B·T) against 2 ranks with one each. Train losses within 1e-6 relative, final
#      weights within 1e-4, the bound `llm verify` holds against PyTorch (scripts/compare_runs.py).
#   2. The same with ZeRO-1 (--zero 1: each rank keeps and updates half of AdamW's moments).
#   3. A 2-rank run stopped after 4 steps (--stop-after, as a signal would) and resumed on 2 ranks: bit-identical
#      to the uninterrupted run.
#   4. A ZeRO-1 run with rank 1 killed (SIGKILL) mid-run: mpirun must end the job, non-zero, within 30 s; then
#      `mpirun -np 2 llm train --resume` finishes it bit-identical to an uninterrupted ZeRO-1 run, and a copy
#      resumed by one process (2 micro-batches per step) finishes it within the tolerances of 1.
#   5. Where MPICH's launcher (mpiexec.hydra) is installed too: ZeRO-1 on 2 MPICH ranks against one process.
#   6. (as root, with iproute2) 2 ranks on two "machines": network namespaces joined by a veth pair, TCP only,
#      equal to one process as in 1, with at least a gradient's bytes each way across the pair every step.
#
#     scripts/ci_mpi_check.sh                      # uses .build/release/llm, building it if needed
#     LLM_BIN=.build/debug/llm scripts/ci_mpi_check.sh
#
# Exits 0 with a "skipped" message when mpirun (Debian: apt install openmpi-bin) or python3 is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "ci_mpi_check: skipped: $1"; exit 0; }
command -v mpirun >/dev/null 2>&1 || skip "no mpirun (install Open MPI: apt install openmpi-bin)"
command -v python3 >/dev/null 2>&1 || skip "no python3"

bin=${LLM_BIN:-.build/release/llm}
[ -x "$bin" ] || swift build -c release --product llm
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
compare="python3 $(pwd)/scripts/compare_runs.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Open MPI refuses to run as root unless told that is intended (CI containers run as root).
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi() { local n=$1; shift; mpirun --oversubscribe --bind-to none -np "$n" "$@"; }

# A corpus that is in every clone: the package's own kernels.
cat "$OLDPWD"/Sources/LLM/Kernels/*.swift > corpus.txt
model=(--layers 2 --heads 2 --channels 32 --max-seq 32)
steps=(--batch 2 --seq 16 --total-batch-tokens 64 --eval-every 4 --sample-every 4 --sample-tokens 8 --threads 1 --quiet)

"$bin" train --input corpus.txt --vocab-size 300 "${model[@]}" "${steps[@]}" --steps 8 --out one >/dev/null
data=(--train "$work/one/data/data_train_*.bin" --val "$work/one/data/data_val_*.bin" --tokenizer one/tokenizer.tok)
mpi 2 "$bin" train "${data[@]}" "${model[@]}" "${steps[@]}" --steps 8 --out two >/dev/null
result=$($compare one two) || { echo "ci_mpi_check: $result"; exit 1; }
echo "gpt2, AdamW, 2 ranks against 1 process: $result"
"$bin" chat-data --out conversations.jsonl --count 40 >/dev/null
sft=(--init one --data conversations.jsonl --batch 2 --seq 32 --total-batch-tokens 128 --steps 6 --eval-every 3
     --sample-every 3 --sample-tokens 8 --threads 1 --quiet)
"$bin" sft "${sft[@]}" --out sft-one >/dev/null
mpi 2 "$bin" sft "${sft[@]}" --out sft-two >/dev/null
result=$($compare sft-one sft-two) || { echo "ci_mpi_check: $result"; exit 1; }
echo "SFT, 2 ranks against 1 process: $result"
mpi 2 "$bin" train "${data[@]}" "${model[@]}" "${steps[@]}" --steps 8 --stop-after 4 --out stopped >/dev/null
mpi 2 "$bin" train --resume stopped --quiet >/dev/null
result=$($compare two stopped --exact) || { echo "ci_mpi_check: $result"; exit 1; }
echo "stopped at step 4 and resumed on 2 ranks: $result"

"$bin" train "${data[@]}" --arch nanochat --layers 2 --max-seq 32 --optimizer muon "${steps[@]}" --steps 8 --out muon-one >/dev/null
mpi 2 "$bin" train "${data[@]}" --arch nanochat --layers 2 --max-seq 32 --optimizer muon "${steps[@]}" --steps 8 \
    --out muon-two >/dev/null
result=$($compare muon-one muon-two) || { echo "ci_mpi_check: $result"; exit 1; }
echo "nanochat, Muon, 2 ranks against 1 process: $result"

mpi 2 "$bin" train "${data[@]}" "${model[@]}" "${steps[@]}" --steps 8 --zero 1 --out zero >/dev/null
result=$($compare one zero) || { echo "ci_mpi_check: $result"; exit 1; }
echo "gpt2, AdamW, ZeRO-1 on 2 ranks against 1 process: $result"

# An uninterrupted ZeRO-1 run on 2 ranks, then the same run with rank 1 killed once its step-4 checkpoint is written.
long=("${data[@]}" "${model[@]}" "${steps[@]}" --steps 16 --checkpoint-every 4 --keep-checkpoints 20 --zero 1)
mpi 2 "$bin" train "${long[@]}" --out whole >/dev/null
mpi 2 "$bin" train "${long[@]}" --out killed >killed.log 2>&1 &
job=$!
for _ in $(seq 600); do [ -d killed/checkpoints/step_000004 ] && break; sleep 0.1; done
[ -d killed/checkpoints/step_000004 ] || { echo "ci_mpi_check: no checkpoint appeared"; cat killed.log; exit 1; }
rank1=$(pgrep -f -- "--out killed" | while read -r p; do
    [ "$(tr '\0' '\n' </proc/"$p"/environ 2>/dev/null | grep -c '^OMPI_COMM_WORLD_RANK=1$')" = 1 ] && echo "$p"; done | head -n 1)
[ -n "$rank1" ] || { echo "ci_mpi_check: rank 1 not found"; exit 1; }
start=$(date +%s)
kill -9 "$rank1"
if wait "$job"; then echo "ci_mpi_check: the job exited 0 after a rank was killed"; exit 1; fi
took=$(( $(date +%s) - start ))
[ "$took" -le 30 ] || { echo "ci_mpi_check: the job took ${took}s to end after a rank was killed"; exit 1; }
echo "ZeRO-1, rank 1 killed after the step-4 checkpoint: the job ended in ${took}s, exit non-zero"
cp -r killed killed-one
mpi 2 "$bin" train --resume killed --quiet >/dev/null
result=$($compare whole killed --exact) || { echo "ci_mpi_check: $result"; exit 1; }
echo "resumed on 2 ranks: $result"
"$bin" train --resume killed-one --threads 1 --quiet >/dev/null
result=$($compare whole killed-one) || { echo "ci_mpi_check: $result"; exit 1; }
echo "resumed by 1 process: $result"

# MPICH, where its launcher is installed too (Debian: apt install mpich): the library the launcher belongs to.
if command -v mpiexec.hydra >/dev/null 2>&1; then
    mpiexec.hydra -np 2 "$bin" train "${data[@]}" "${model[@]}" "${steps[@]}" --steps 8 --zero 1 --out mpich >/dev/null
    result=$($compare one mpich) || { echo "ci_mpi_check: $result"; exit 1; }
    echo "MPICH, ZeRO-1 on 2 ranks against 1 process: $result"
fi

# Two "machines": network namespaces joined by a veth pair, rank 0 in one and rank 1 in the other. mpirun starts
# the remote rank through an rsh agent that enters the namespace its address names (as ssh would reach a host),
# and TCP is the only transport (no shared memory), so every byte between the ranks crosses the veth pair.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && ip netns add llm-mpi-a 2>/dev/null; then
    ip netns add llm-mpi-b
    trap 'ip netns del llm-mpi-a 2>/dev/null; ip netns del llm-mpi-b 2>/dev/null; rm -rf "$work"' EXIT
    ip link add llm-veth-a type veth peer name llm-veth-b
    ip link set llm-veth-a netns llm-mpi-a
    ip link set llm-veth-b netns llm-mpi-b
    ip -n llm-mpi-a addr add 10.77.0.1/24 dev llm-veth-a
    ip -n llm-mpi-b addr add 10.77.0.2/24 dev llm-veth-b
    for side in a b; do ip -n llm-mpi-$side link set llm-veth-$side up; ip -n llm-mpi-$side link set lo up; done
    cat >agent.sh <<'AGENT'
#!/bin/sh
host=$1; shift
case $host in 10.77.0.1) ns=llm-mpi-a ;; 10.77.0.2) ns=llm-mpi-b ;; *) echo "agent: unknown host $host" >&2; exit 1 ;; esac
exec ip netns exec "$ns" sh -c "$*"
AGENT
    chmod +x agent.sh
    printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >hosts
    bytes() { ip -n llm-mpi-a -s -j link show llm-veth-a | python3 -c "import json, sys; s = json.load(sys.stdin)[0]['stats64']; print(s['rx']['bytes'], s['tx']['bytes'])"; }
    read -r rx0 tx0 <<<"$(bytes)"
    ip netns exec llm-mpi-a mpirun --hostfile hosts -np 2 --mca plm_rsh_agent "$work/agent.sh" --mca btl tcp,self \
        --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
        "$bin" train "${data[@]}" "${model[@]}" "${steps[@]}" --steps 8 --out "$work/nodes" >/dev/null
    read -r rx1 tx1 <<<"$(bytes)"
    result=$($compare one nodes) || { echo "ci_mpi_check: $result"; exit 1; }
    # Each step, each rank must send and receive at least its whole gradient (model.bin: a 1024-byte header, then
    # the fp32 weights).
    need=$(( 8 * ($(stat -c %s one/model.bin) - 1024) ))
    if [ $((rx1 - rx0)) -lt "$need" ] || [ $((tx1 - tx0)) -lt "$need" ]; then
        echo "ci_mpi_check: only $((rx1 - rx0)) bytes in and $((tx1 - tx0)) out crossed the veth pair (want ≥ $need each)"
        exit 1
    fi
    echo "2 namespaces joined by a veth pair, $((rx1 - rx0)) bytes in and $((tx1 - tx0)) out across it: $result"
else
    echo "two namespaces: skipped (needs root and ip netns, from iproute2)"
fi
echo "ci_mpi_check: ok"
