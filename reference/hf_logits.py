#!/usr/bin/env python3
"""Load a checkpoint folder (config.json + model.safetensors) or a GGUF file the way other tools would, and run tokens.

Shows that a model written by the Swift `llm` program loads in Hugging Face transformers
(AutoModelForCausalLM; reference/nanochat_model.py when config.json says "model_type": "nanochat") and
computes the same logits.

  MODEL_DIR may also be a .gguf file (transformers' from_pretrained(..., gguf_file=...)).

  python3 reference/hf_logits.py MODEL_DIR --tokens 1,2,3
      prints the last position's top-5 logits (token id and value)
  python3 reference/hf_logits.py MODEL_DIR --compare logits.safetensors
      the file holds `inputs` int32 (T) and `logits` f32 (T, V); runs `inputs` and prints the max abs
      difference of all T x V logits; exit status 1 if it is above --tol (default 1e-4)

The model runs in float32 on the CPU with eager attention.
"""

import argparse
import json
import os
import sys

import torch


def load_model(path):
    if os.path.isfile(path) and path.endswith(".gguf"):
        # A GGUF file: transformers dequantizes it to float32 and builds the model from its metadata.
        import transformers
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        folder, name = os.path.split(os.path.abspath(path))
        return transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                                 attn_implementation="eager").eval()
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") == "nanochat":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import nanochat_model
        return nanochat_model.from_pretrained(path, dtype=torch.float32)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                                  attn_implementation="eager")
    except TypeError:  # transformers 4.x
        model = transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                                  attn_implementation="eager")
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--compare", help="safetensors file with inputs int32 (T) and logits f32 (T, V)")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest accepted max abs logit difference")
    args = ap.parse_args()

    expected = None
    if args.compare:
        from safetensors.torch import load_file
        ref = load_file(args.compare)
        tokens = ref["inputs"].reshape(-1).long()
        expected = ref["logits"].to(torch.float32)
        if args.tokens:
            given = torch.tensor([int(t) for t in args.tokens.split(",") if t.strip()])
            if not torch.equal(given, tokens):
                ap.error("--tokens differ from the inputs stored in --compare")
    elif args.tokens:
        tokens = torch.tensor([int(t) for t in args.tokens.split(",") if t.strip()])
    else:
        ap.error("give --tokens or --compare")
    if tokens.numel() == 0:
        ap.error("no tokens")

    model = load_model(args.model_dir)
    with torch.no_grad():
        logits = model(input_ids=tokens[None, :]).logits[0].to(torch.float32)  # (T, V)

    top = torch.topk(logits[-1], k=min(5, logits.shape[-1]))
    print(f"{args.model_dir}: {tokens.numel()} tokens, vocab {logits.shape[-1]}; last position top-5:")
    for value, index in zip(top.values.tolist(), top.indices.tolist()):
        print(f"  token {index:6d}  logit {value:.6f}")

    if expected is not None:
        if tuple(expected.shape) != tuple(logits.shape):
            print(f"FAIL: stored logits have shape {tuple(expected.shape)}, the model gives {tuple(logits.shape)}")
            return 1
        diff = (logits - expected).abs().max().item()
        ok = diff <= args.tol
        print(f"max abs logit difference vs {args.compare}: {diff:.3e} ({'ok' if ok else 'FAIL'}, tolerance {args.tol:g})")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
