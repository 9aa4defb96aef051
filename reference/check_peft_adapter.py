#!/usr/bin/env python3
"""Check that a LoRA adapter folder loads in PEFT and reproduces logits computed elsewhere (e.g. by `llm`).

  python3 reference/check_peft_adapter.py --base HF_FOLDER --adapter ADAPTER_DIR --logits LOGITS.safetensors \\
      [--tolerance 1e-4]

HF_FOLDER is a transformers checkpoint (config.json + model.safetensors), loaded with AutoModelForCausalLM in
float32 with eager attention. ADAPTER_DIR holds adapter_config.json + adapter_model.safetensors; it is applied
with peft.PeftModel.from_pretrained(base, ADAPTER_DIR, strict_adapter_check="error"), so a tensor whose name
PEFT does not expect, or a LoRA module the file leaves out, is an error (PEFT's default only warns and
leaves such a module at its initial values). LOGITS.safetensors holds `inputs` int32 (B,T) (or (T)) and
`logits` f32 (B,T,V) (or (T,V)).

It runs the inputs through the adapted model and compares with `logits`. The test is relative to the size
of the logits: it passes when max |PEFT - logits| <= tolerance * max(1, max |logits|), i.e. an absolute
tolerance while the logits are at most 1 in size and a relative one beyond. Prints one line with the
difference; exits 0 on a pass, 1 on a mismatch or anything that stops PEFT from loading the adapter.
"""

import argparse
import os
import sys

import torch
from safetensors import safe_open


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--base", required=True, help="the base model: a transformers folder, or a .gguf file")
    ap.add_argument("--adapter", required=True, help="PEFT adapter folder")
    ap.add_argument("--logits", required=True, help="safetensors file with inputs int32 and logits f32")
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="allowed max abs difference, times max(1, max |logits|) (default 1e-4)")
    args = ap.parse_args(argv)

    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a progress bar
    import peft  # imported here so that --help works without them
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    with safe_open(args.logits, "pt") as f:
        names = set(f.keys())
        if not {"inputs", "logits"} <= names:
            print(f"FAIL: {args.logits} must hold `inputs` and `logits` (has {sorted(names)})")
            return 1
        inputs, want = f.get_tensor("inputs"), f.get_tensor("logits")
    if inputs.dim() == 1:
        inputs, want = inputs.unsqueeze(0), want.unsqueeze(0)
    if inputs.dim() != 2 or want.dim() != 3 or want.shape[:2] != inputs.shape:
        print(f"FAIL: shapes inputs {tuple(inputs.shape)}, logits {tuple(want.shape)}: want (B,T) and (B,T,V)")
        return 1

    try:
        if os.path.isfile(args.base) and args.base.endswith(".gguf"):  # dequantized by transformers' GGUF loader
            folder, name = os.path.split(os.path.abspath(args.base))
            base = transformers.AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager")
        else:
            base = transformers.AutoModelForCausalLM.from_pretrained(
                args.base, dtype=torch.float32, attn_implementation="eager")
        model = peft.PeftModel.from_pretrained(base, args.adapter, strict_adapter_check="error")
    except Exception as e:  # noqa: BLE001 - any load failure is a failed check
        print(f"FAIL: PEFT could not load {args.adapter} on {args.base}: {type(e).__name__}: {e}")
        return 1
    model.eval()
    n_lora = sum(1 for n, _ in model.named_parameters() if ".lora_A." in n or ".lora_B." in n)
    with torch.no_grad():
        got = model(input_ids=inputs.long(), use_cache=False).logits.float()
    if got.shape != want.shape:
        print(f"FAIL: PEFT gives logits {tuple(got.shape)}, the file has {tuple(want.shape)}")
        return 1

    diff = (got - want.float()).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    limit = args.tolerance * scale
    ok = diff <= limit  # False for NaN
    print(f"{'ok' if ok else 'FAIL'}: max |PEFT logits - {args.logits}| = {diff:.3g} "
          f"(limit {limit:.3g} = {args.tolerance:g} x {scale:.3g}; {n_lora} LoRA tensors, "
          f"B x T = {inputs.shape[0]} x {inputs.shape[1]})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
