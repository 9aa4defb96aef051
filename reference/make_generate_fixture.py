#!/usr/bin/env python3
"""Make the greedy-generation fixture: what Hugging Face's `generate` produces for a small GPT-2.

What: loads the committed deep-heads model (Tests/LLMTests/Fixtures/deep-heads/hf: maxT=24, V=300, 4 layers,
6 heads) with GPT2LMHeadModel.from_pretrained and runs greedy `model.generate(..., do_sample=False,
use_cache=True)` from a few seeded random prompts up to the context limit (prompt + new tokens = maxT).
Writes Tests/LLMTests/Fixtures/generate/greedy.json:

    {"source": "...", "model": "deep-heads/hf", "max_seq_len": 24,
     "cases": [{"prompt": [...], "generated": [...], "margins": [...]}, ...]}

  prompt     the prompt ids
  generated  the new ids only (len = maxT - len(prompt))
  margins    for each generated token, top-1 minus top-2 of the logits it was picked from

Why: the Swift KV-cache engine (Sources/LLM/Inference/) must pick the same tokens as PyTorch's cached
decoding. The two compute the same logits to about 1e-6, so an argmax could only flip where the top two logits
are closer than that; the script stops unless every margin is above MIN_MARGIN, so the fixture can't hinge on
float noise.

    python3 reference/make_generate_fixture.py      # ~2 s, deterministic
"""

import json
import os
import sys

import torch
import transformers
from transformers import GPT2LMHeadModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, "Tests/LLMTests/Fixtures/deep-heads/hf")
OUT = os.path.join(REPO, "Tests/LLMTests/Fixtures/generate/greedy.json")
PROMPT_LENGTHS = [1, 4, 9]
SEED = 404
MIN_MARGIN = 1e-4


def main():
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = GPT2LMHeadModel.from_pretrained(MODEL, attn_implementation="eager").to(torch.float32)
    model.eval()
    max_t, vocab = model.config.n_positions, model.config.vocab_size

    gen = torch.Generator().manual_seed(SEED)
    cases = []
    for length in PROMPT_LENGTHS:
        prompt = torch.randint(0, vocab, (1, length), generator=gen)
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=max_t - length, do_sample=False, use_cache=True,
                                 pad_token_id=0, eos_token_id=None, output_logits=True,
                                 return_dict_in_generate=True)
        generated = out.sequences[0, length:].tolist()
        assert len(generated) == max_t - length, (length, len(generated))
        margins = []
        for step, logits in enumerate(out.logits):
            top2 = torch.topk(logits[0], 2).values
            assert int(torch.argmax(logits[0])) == generated[step]
            margins.append(float(top2[0] - top2[1]))
        print(f"prompt length {length}: {len(generated)} tokens, smallest margin {min(margins):.2e}")
        assert min(margins) > MIN_MARGIN, f"prompt length {length}: a margin is {min(margins):.2e}; pick another seed"
        cases.append({"prompt": prompt[0].tolist(), "generated": generated, "margins": margins})

    fixture = {
        "source": (f"transformers {transformers.__version__} GPT2LMHeadModel.generate (greedy, use_cache), "
                   f"torch {torch.__version__}, float32 on CPU; made by reference/make_generate_fixture.py "
                   f"(seed {SEED})"),
        "model": "deep-heads/hf",
        "max_seq_len": max_t,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    os.replace(tmp, OUT)
    print(f"wrote {os.path.relpath(OUT, REPO)}")


if __name__ == "__main__":
    sys.exit(main())
