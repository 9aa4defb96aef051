#!/usr/bin/env python3
"""Benchmark tiktoken's GPT-2 encoder on one text file: the number the Swift tokenizer is compared with.

What it measures: single-threaded `encode_ordinary` (no special tokens) of the whole file, in MB/s of
UTF-8 input, as the median of 5 timed runs after one warm-up run. It also prints the token count and the
SHA-256 of the token stream `[50256] + ids` written as little-endian uint16 (the layout of llm.c's
.bin token shards), so the Swift tokenizer can show that it produces the very same stream.

The encoding is built offline from encoder.json + vocab.bpe, like make_tokenizer_cases.py.

    python3 reference/tiktoken_bench.py data/tinyshakespeare.txt      # README: "Tokenizers and data" downloads it
    python3 reference/tiktoken_bench.py FILE --gpt2-dir /path/to/gpt2 --runs 5

The last line of output is JSON: {"tool": "tiktoken", "mb_per_s": ..., "tokens": ..., "sha256": ...}.
"""

import os

# encode_ordinary runs on the calling thread; pin Rayon's pool to one thread anyway, before tiktoken loads.
os.environ["RAYON_NUM_THREADS"] = "1"

import argparse
import hashlib
import json
import statistics
import sys
import time

import numpy as np
import tiktoken

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_cases import ENDOFTEXT_ID, REPO, load_gpt2  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", help="UTF-8 text file to encode")
    ap.add_argument("--gpt2-dir", default=os.path.join(REPO, "Sources", "LLM", "Resources", "gpt2"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    with open(args.file, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    enc = load_gpt2(args.gpt2_dir)

    ids = enc.encode_ordinary(text)  # warm-up
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        again = enc.encode_ordinary(text)
        times.append(time.perf_counter() - t0)
        assert again == ids
    median = statistics.median(times)
    mb_per_s = len(raw) / 1e6 / median

    stream = np.array([ENDOFTEXT_ID] + ids, dtype="<u2")
    digest = hashlib.sha256(stream.tobytes()).hexdigest()

    print(f"tiktoken {tiktoken.__version__}: {len(raw)} bytes, {len(ids)} tokens (+1 <|endoftext|>)")
    print("runs (s): " + " ".join(f"{t:.4f}" for t in times) + f"  median {median:.4f} s")
    print(json.dumps({"tool": "tiktoken", "mb_per_s": round(mb_per_s, 3), "tokens": len(stream), "sha256": digest}))


if __name__ == "__main__":
    main()
