#!/usr/bin/env python3
"""Compares two training runs of `llm train`/`llm sft`: the train losses in their log.jsonl step by step, and the
final weights element by element: model.bin (llm.c's format, after its 256-int header) for GPT-2, the fp32
tensors of model/model.safetensors (a Hugging Face folder) for the other architectures. Exits 1 when a loss
differs by more than --loss-rtol (relative) or a weight by more than --weights-atol, printing what differed.

    python3 scripts/compare_runs.py RUN_A RUN_B [--loss-rtol 1e-6] [--weights-atol 1e-4] [--exact]

Only the Python standard library: it runs wherever the CI does.
"""
import argparse
import json
import os
import struct
import sys
from array import array


def losses(run):
    out = {}
    with open(f"{run}/log.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if record.get("kind") == "train":
                out[record["step"]] = record["loss"]
    return out


def weights(run):
    values = array("f")
    if os.path.exists(f"{run}/model.bin"):
        with open(f"{run}/model.bin", "rb") as f:
            f.seek(256 * 4)
            values.frombytes(f.read())
        return values
    with open(f"{run}/model/model.safetensors", "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    for name in sorted(k for k in header if k != "__metadata__"):
        info = header[name]
        if info["dtype"] != "F32":
            raise SystemExit(f"compare_runs: {run}: {name} is {info['dtype']}, not F32")
        start, end = info["data_offsets"]
        values.frombytes(data[start:end])
    return values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--loss-rtol", type=float, default=1e-6)
    ap.add_argument("--weights-atol", type=float, default=1e-4)
    ap.add_argument("--exact", action="store_true", help="losses and weights must be bit-identical")
    args = ap.parse_args()
    la, lb = losses(args.a), losses(args.b)
    if sorted(la) != sorted(lb) or not la:
        print(f"compare_runs: {args.a} logs steps {sorted(la)[:3]}…, {args.b} steps {sorted(lb)[:3]}…")
        return 1
    worst_loss = max(abs(la[s] - lb[s]) / max(abs(la[s]), 1e-30) for s in la)
    wa, wb = weights(args.a), weights(args.b)
    if len(wa) != len(wb):
        print(f"compare_runs: {len(wa)} weights against {len(wb)}")
        return 1
    worst_weight = max(abs(x - y) for x, y in zip(wa, wb))
    identical = sum(x == y for x, y in zip(wa, wb)) / len(wa)
    summary = (f"{len(la)} steps, largest relative loss difference {worst_loss:.2e}; {len(wa)} weights, largest "
               f"difference {worst_weight:.2e} ({identical:.0%} identical)")
    if args.exact:
        ok = worst_loss == 0 and worst_weight == 0
    else:
        ok = worst_loss <= args.loss_rtol and worst_weight <= args.weights_atol
    print(("" if ok else "compare_runs: FAILED: ") + summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
