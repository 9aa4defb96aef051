#!/usr/bin/env python3
"""Writes a tiny random GPT-2 as an llm.c checkpoint (version 3, fp32) that can chat: for trying `llm serve`
end to end in seconds, in CI and by hand. Its replies are gibberish, but they exercise everything.

The vocabulary defaults to 50265: GPT-2's 50257 tokens plus rows for the eight chat tokens (<|user_start|> ...),
the least `llm serve` needs to chat with GPT-2's tokenizer. Weights follow GPT-2's initialisation (as
`ModelWeights.randomGPT2`): N(0, 0.02), residual projections scaled by 1/sqrt(2L), LayerNorm weights 1, biases 0,
padded vocabulary rows 0. Standard library only.

    python3 scripts/make_tiny_model.py --out /tmp/tiny.bin
    .build/release/llm serve --model /tmp/tiny.bin
"""
import argparse
import array
import math
import random
import sys


def write_checkpoint(path, max_t, vocab, layers, heads, channels, seed):
    padded = (vocab + 127) // 128 * 128
    L, C = layers, channels
    rng = random.Random(seed)

    def gaussian(n, std):
        return array.array("f", (rng.gauss(0.0, std) for _ in range(n)))

    def const(n, value):
        return array.array("f", [value]) * n

    residual = 0.02 / math.sqrt(2 * L)
    tensors = [  # llm.c's order (ParameterLayout.swift)
        gaussian(vocab * C, 0.02) + const((padded - vocab) * C, 0.0),  # wte (Vp, C)
        gaussian(max_t * C, 0.02),  # wpe (maxT, C)
        const(L * C, 1.0), const(L * C, 0.0),  # ln1w, ln1b
        gaussian(L * 3 * C * C, 0.02), const(L * 3 * C, 0.0),  # qkvw, qkvb
        gaussian(L * C * C, residual), const(L * C, 0.0),  # attprojw, attprojb
        const(L * C, 1.0), const(L * C, 0.0),  # ln2w, ln2b
        gaussian(L * 4 * C * C, 0.02), const(L * 4 * C, 0.0),  # fcw, fcb
        gaussian(L * C * 4 * C, residual), const(L * C, 0.0),  # fcprojw, fcprojb
        const(C, 1.0), const(C, 0.0),  # lnfw, lnfb
    ]
    header = array.array("i", [20240326, 3, max_t, vocab, layers, heads, channels, padded]) + array.array("i", [0]) * 248
    if sys.byteorder != "little":
        for a in [header] + tensors:
            a.byteswap()
    with open(path, "wb") as f:
        header.tofile(f)
        for t in tensors:
            t.tofile(f)
    return sum(len(t) for t in tensors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write the .bin checkpoint")
    parser.add_argument("--context", type=int, default=512, help="maxT (default 512)")
    parser.add_argument("--vocab", type=int, default=50265, help="vocabulary size (default 50265: GPT-2's plus the chat tokens)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.channels % args.heads:
        parser.error("--channels must be divisible by --heads")
    count = write_checkpoint(args.out, args.context, args.vocab, args.layers, args.heads, args.channels, args.seed)
    print(f"wrote {args.out}: maxT={args.context} V={args.vocab} L={args.layers} NH={args.heads} C={args.channels}, {count} parameters")


if __name__ == "__main__":
    main()
