#!/usr/bin/env python3
"""A small random Qwen2 or Gemma 3 (text) model as a Hugging Face folder, to start `llm train --init` from.

`llm train` has presets for gpt2, llama and nanochat; Qwen2 and Gemma 3 start from a model. This writes one with
transformers' own config and init, GPT-2's vocabulary size by default (so `--tokenizer gpt2` fits), and Gemma 3's
real layer pattern (five sliding-window layers, then a global one), which is what llama.cpp's gemma3 assumes.

  python3 reference/make_tiny_init.py --arch qwen2 --out /tmp/qwen2-init
  python3 reference/make_tiny_init.py --arch gemma3 --out /tmp/gemma3-init
"""

import argparse

import torch
import transformers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["qwen2", "gemma3"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    common = dict(vocab_size=args.vocab, hidden_size=128, intermediate_size=384, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, bos_token_id=None, eos_token_id=None,
                  pad_token_id=None)
    if args.arch == "qwen2":
        config = transformers.Qwen2Config(num_hidden_layers=2, tie_word_embeddings=True, **common)
        model = transformers.Qwen2ForCausalLM(config)
    else:
        config = transformers.Gemma3TextConfig(num_hidden_layers=6, head_dim=32, query_pre_attn_scalar=32,
                                               sliding_window=32, **common)
        model = transformers.Gemma3ForCausalLM(config)
    model.save_pretrained(args.out, safe_serialization=True)
    print(f"wrote {args.out} ({args.arch}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")


if __name__ == "__main__":
    main()
