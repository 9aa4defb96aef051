#!/usr/bin/env python3
"""Greedy replies of a real GGUF model in Hugging Face transformers: the reference `llm` must equal.

transformers loads the GGUF (`from_pretrained(dir, gguf_file=name)`), dequantizes every tensor to float32 and
builds its tokenizer and chat template from the file's metadata; the model then runs in float32 on the CPU.
For each case of a cases file it writes the prompt's token ids, the greedy continuation's ids (up to --new
tokens, ending at the model's end token) and its text.

  python3 reference/real_model_greedy.py MODEL.gguf reference/real-models/smollm2-cases.json --out OUT.json

Cases file: {"cases": [{"name": …, "messages": [{"role": …, "content": …}, …]}  (chat: rendered with the
model's template and add_generation_prompt) or {"name": …, "text": …} (plain text, the tokenizer's BOS rule)]}.
"""

import argparse
import json
import os
import sys

import torch
import transformers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("gguf")
    ap.add_argument("cases")
    ap.add_argument("--new", type=int, default=48, help="most new tokens per case")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    with open(args.cases) as f:
        cases = json.load(f)["cases"]
    eos = model.generation_config.eos_token_id
    out = []
    for case in cases:
        if "messages" in case:
            ids = tok.apply_chat_template(case["messages"], add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
        else:
            ids = tok(case["text"])["input_ids"]
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=args.new, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos)
        new = gen[0, len(ids):].tolist()
        text = tok.decode(new, skip_special_tokens=True)
        out.append({"name": case["name"], "prompt_ids": ids, "output_ids": new, "text": text})
        print(f"{case['name']}: {len(ids)} prompt tokens → {len(new)}: {text!r}", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump({"model": name, "cases_file": os.path.basename(args.cases), "transformers": transformers.__version__, "torch": torch.__version__,
                   "max_new_tokens": args.new, "eos_token_id": eos, "cases": out}, f, indent=1)


if __name__ == "__main__":
    main()
