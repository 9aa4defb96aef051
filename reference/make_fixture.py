#!/usr/bin/env python3
"""Make one parity fixture: what PyTorch computes for one small, randomly initialised GPT-2.

The Swift engine's `llm verify` command and its unit tests compare their own forward pass, backward pass
and optimizer against the files this script writes. PyTorch + Hugging Face `transformers` are the
reference: if the Swift engine reproduces these numbers (within float32 rounding), it implements GPT-2
the same way.

Files written into --out DIR (all binary files little-endian):

  model.bin        initial weights, llm.c checkpoint format (version 3, fp32):
                   256 x int32 header [20240326, 3, maxT, V, L, NH, C, Vp, 0...], then the fp32 tensors
                   wte (Vp,C) wpe (maxT,C) ln1w (L,C) ln1b (L,C) qkvw (L,3C,C) qkvb (L,3C)
                   attprojw (L,C,C) attprojb (L,C) ln2w (L,C) ln2b (L,C) fcw (L,4C,C) fcb (L,4C)
                   fcprojw (L,C,4C) fcprojb (L,C) lnfw (C) lnfb (C).
                   Matrices are (out, in): the transpose of HF's Conv1D weights, which are (in, out).
                   wte is padded from V to Vp rows (Vp = V rounded up to a multiple of 128) with zeros.
  state.bin        the first forward/backward on the initial weights (llm.c's debug-state format):
                   256 x int32 header [20240327, 2, B, T, 0...], x int32[B*T], y int32[B*T],
                   logits fp32[B*T*V] (not padded), loss fp32[1], then every parameter's gradient in
                   model.bin's order and layout (wte's gradient padded to Vp rows with zeros).
  trajectory.json  the optimizer run: config, batch, optimizer settings, per-step loss and gradient norm
                   (before clipping).
  final.bin        the weights after `steps` AdamW steps, model.bin's format.
  hf/              the initial model as `save_pretrained` writes it (config.json + model.safetensors).

With --extra-dtypes also:
  hf-fp16/, hf-bf16/  save_pretrained of the initial model cast to float16 / bfloat16.
  model-bf16.bin      llm.c version-5 checkpoint: header [20240326, 5, ...], same tensor order, each value
                      bfloat16 (round-to-nearest-even of the fp32 value, as torch's .to(torch.bfloat16)).

The model: GPT2LMHeadModel, tanh GELU ("gelu_new"), LayerNorm eps 1e-5, no dropout, lm_head tied to wte,
float32 on the CPU. After the normal init, LayerNorm weights and all biases are perturbed (they start as
1 and 0, which would hide bugs such as a missing bias or a swapped weight/bias).

Example:
  python reference/make_fixture.py --out Tests/LLMTests/Fixtures/odd-vocab \\
      --layers 2 --heads 2 --channels 32 --vocab 257 --max-seq 16 --batch 2 --seq 8 --steps 10 --seed 1
"""

import argparse
import copy
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import add_optimizer_args, adamw_trajectory, optimizer_record, publish_dir, save_hf  # noqa: E402

MODEL_MAGIC = 20240326
STATE_MAGIC = 20240327
HEADER_INTS = 256

# The llm.c tensor order, and for each tensor: HF name pattern (per layer where it has "{i}") and whether
# HF stores it as a Conv1D weight (in, out) that must be transposed to llm.c's (out, in).
LLMC_TENSORS = [
    # (llm.c name, HF name,                       transpose)
    ("wte",      "transformer.wte.weight",             False),
    ("wpe",      "transformer.wpe.weight",             False),
    ("ln1w",     "transformer.h.{i}.ln_1.weight",      False),
    ("ln1b",     "transformer.h.{i}.ln_1.bias",        False),
    ("qkvw",     "transformer.h.{i}.attn.c_attn.weight", True),
    ("qkvb",     "transformer.h.{i}.attn.c_attn.bias", False),
    ("attprojw", "transformer.h.{i}.attn.c_proj.weight", True),
    ("attprojb", "transformer.h.{i}.attn.c_proj.bias", False),
    ("ln2w",     "transformer.h.{i}.ln_2.weight",      False),
    ("ln2b",     "transformer.h.{i}.ln_2.bias",        False),
    ("fcw",      "transformer.h.{i}.mlp.c_fc.weight",  True),
    ("fcb",      "transformer.h.{i}.mlp.c_fc.bias",    False),
    ("fcprojw",  "transformer.h.{i}.mlp.c_proj.weight", True),
    ("fcprojb",  "transformer.h.{i}.mlp.c_proj.bias",  False),
    ("lnfw",     "transformer.ln_f.weight",            False),
    ("lnfb",     "transformer.ln_f.bias",              False),
]


def padded_vocab(vocab_size: int) -> int:
    """Vp: the vocabulary size rounded up to a multiple of 128 (llm.c pads wte for aligned matmuls)."""
    return (vocab_size + 127) // 128 * 128


def llmc_tensors(tensors: dict, num_layers: int, vocab_size: int, vp: int) -> list:
    """Turn a dict of HF-named tensors (weights or gradients) into llm.c's list of tensors, in order.

    Per-layer tensors are stacked along a new leading L axis; Conv1D weights are transposed to (out, in);
    wte is padded with zero rows from V to Vp.
    """
    out = []
    for llmc_name, hf_name, transpose in LLMC_TENSORS:
        if "{i}" in hf_name:
            parts = [tensors[hf_name.format(i=i)] for i in range(num_layers)]
            parts = [p.t() if transpose else p for p in parts]
            t = torch.stack(parts)
        else:
            t = tensors[hf_name]
            if llmc_name == "wte":
                assert t.shape[0] == vocab_size
                t = torch.cat([t, t.new_zeros(vp - vocab_size, t.shape[1])])
        out.append(t.detach().clone())  # a copy: the live parameters keep changing during training
    return out


def header(magic: int, version: int, *values: int) -> bytes:
    ints = [magic, version, *values]
    ints += [0] * (HEADER_INTS - len(ints))
    return struct.pack(f"<{HEADER_INTS}i", *ints)


def fp32_bytes(t: torch.Tensor) -> bytes:
    return t.detach().to(torch.float32).cpu().numpy().astype("<f4").tobytes()


def bf16_bytes(t: torch.Tensor) -> bytes:
    # torch's float32 -> bfloat16 cast rounds to nearest even; reinterpret the 16 bits as int16 to write them.
    return t.detach().to(torch.bfloat16).view(torch.int16).cpu().numpy().astype("<i2").tobytes()


def checkpoint_bytes(tensors: list, cfg: dict, version: int = 3) -> bytes:
    """An llm.c checkpoint: version 3 stores fp32, version 5 stores bf16."""
    hdr = header(MODEL_MAGIC, version, cfg["max_seq_len"], cfg["vocab_size"], cfg["num_layers"],
                 cfg["num_heads"], cfg["channels"], cfg["padded_vocab_size"])
    to_bytes = {3: fp32_bytes, 5: bf16_bytes}[version]
    return hdr + b"".join(to_bytes(t) for t in tensors)


def build_model(args) -> GPT2LMHeadModel:
    """A seeded, randomly initialised GPT-2 with perturbed LayerNorm weights and biases."""
    config = GPT2Config(
        vocab_size=args.vocab,
        n_positions=args.max_seq,
        n_embd=args.channels,
        n_layer=args.layers,
        n_head=args.heads,
        activation_function="gelu_new",  # tanh approximation of GELU, as in llm.c
        layer_norm_epsilon=1e-5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,  # lm_head.weight is wte.weight
        attn_implementation="eager",  # plain softmax(QK^T/sqrt(d))V in torch ops, no fused kernel
    )
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(config).to(torch.float32)
    model.eval()  # no dropout anyway (all p = 0); eval() just makes that explicit

    # The default init sets LayerNorm weights to 1 and every bias to 0. Perturb them so a Swift
    # implementation that ignores one, or mixes them up, cannot pass by luck.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn_like(p))

    assert model.lm_head.weight is model.transformer.wte.weight, "lm_head must be tied to wte"
    return model


def loss_fn(model, x, y):
    logits = model(input_ids=x).logits  # (B, T, V)
    # Mean over the supervised positions: targets of -1 are ignored (all B*T positions without --ignore-fraction).
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
    return logits, loss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--max-seq", type=int, required=True, help="maxT (n_positions)")
    ap.add_argument("--batch", type=int, required=True, help="B")
    ap.add_argument("--seq", type=int, required=True, help="T (<= max-seq)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, required=True)
    add_optimizer_args(ap, lr=1e-3)
    ap.add_argument("--ignore-fraction", type=float, default=0.0,
                    help="mark this fraction of the targets -1 (ignored by the loss), as SFT's loss mask does")
    ap.add_argument("--extra-dtypes", action="store_true",
                    help="also write hf-fp16/, hf-bf16/ and model-bf16.bin")
    args = ap.parse_args(argv)
    assert args.channels % args.heads == 0, "channels must be divisible by heads"
    assert args.seq <= args.max_seq, "seq must be <= max-seq"

    transformers.logging.set_verbosity_error()  # e.g. "bos_token_id 50256 not in vocabulary" (harmless)
    transformers.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fewer sources of run-to-run variation in float32 sums

    B, T, V, L = args.batch, args.seq, args.vocab, args.layers
    Vp = padded_vocab(V)
    cfg = {
        "max_seq_len": args.max_seq,
        "vocab_size": V,
        "padded_vocab_size": Vp,
        "num_layers": L,
        "num_heads": args.heads,
        "channels": args.channels,
    }

    model = build_model(args)
    initial_model = copy.deepcopy(model)  # kept untouched for hf/ (deepcopy keeps wte/lm_head tied)
    initial = llmc_tensors(dict(model.named_parameters()), L, V, Vp)

    # The batch: random tokens and targets, seeded separately from the weights.
    gen = torch.Generator().manual_seed(args.seed + 1_000_000)
    x = torch.randint(0, V, (B, T), generator=gen)
    y = torch.randint(0, V, (B, T), generator=gen)
    if args.ignore_fraction > 0:  # a loss mask: these targets are ignored (written as -1 in state.bin)
        y[torch.rand((B, T), generator=gen) < args.ignore_fraction] = -1

    # AdamW (fixture_common.py) decays the >= 2-D parameters (wte, wpe, matmul weights), not biases and
    # LayerNorms. model.parameters() yields the tied wte/lm_head Parameter once: 2 + 12 per layer + 2.
    n_params = len(list(model.parameters()))
    assert n_params == 2 + 12 * L + 2, f"unexpected parameter count {n_params}"
    losses, norms, logits, loss, grads = adamw_trajectory(model, loss_fn, x, y, args)
    # state.bin: the first forward/backward on the initial weights, gradients taken before clipping.
    state = (logits, loss, llmc_tensors(grads, L, V, Vp))
    final = llmc_tensors(dict(model.named_parameters()), L, V, Vp)

    trajectory = {
        "source": (f"transformers {transformers.__version__} GPT2LMHeadModel (gelu_new, eps 1e-5, "
                   f"tied wte/lm_head), torch {torch.__version__} AdamW, float32 on CPU; "
                   f"made by reference/make_fixture.py --seed {args.seed}"),
        "config": cfg,
        "batch": {"B": B, "T": T},
        "optimizer": optimizer_record(
            args, "parameters with 2 or more dimensions (wte, wpe, all matmul weights)",
            ("same batch every step; clip global grad norm (over all params) to grad_clip before "
             "each update; bias-corrected AdamW, decoupled decay lr*wd*param")),
        "steps": args.steps,
        "losses": losses,
        "grad_norms_before_clip": norms,
    }

    # Write everything into a temporary folder next to --out, then swap it into place, so that an
    # interrupted run never leaves a half-written fixture behind.
    with publish_dir(args.out) as tmp:
        with open(os.path.join(tmp, "model.bin"), "wb") as f:
            f.write(checkpoint_bytes(initial, cfg))
        with open(os.path.join(tmp, "final.bin"), "wb") as f:
            f.write(checkpoint_bytes(final, cfg))

        logits, loss, grads = state
        with open(os.path.join(tmp, "state.bin"), "wb") as f:
            f.write(header(STATE_MAGIC, 2, B, T))
            f.write(x.to(torch.int32).numpy().astype("<i4").tobytes())
            f.write(y.to(torch.int32).numpy().astype("<i4").tobytes())
            f.write(fp32_bytes(logits))  # (B, T, V), not padded
            f.write(fp32_bytes(loss.reshape(1)))
            for g in grads:
                f.write(fp32_bytes(g))

        with open(os.path.join(tmp, "trajectory.json"), "w") as f:
            json.dump(trajectory, f, indent=2)
            f.write("\n")

        # hf/: the initial weights (the live model has been trained by now).
        save_hf(initial_model, os.path.join(tmp, "hf"))
        if args.extra_dtypes:
            for dtype, name in [(torch.float16, "hf-fp16"), (torch.bfloat16, "hf-bf16")]:
                save_hf(copy.deepcopy(initial_model).to(dtype), os.path.join(tmp, name))
            with open(os.path.join(tmp, "model-bf16.bin"), "wb") as f:
                f.write(checkpoint_bytes(initial, cfg, version=5))


if __name__ == "__main__":
    sys.exit(main())
