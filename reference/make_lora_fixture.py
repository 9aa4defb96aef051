#!/usr/bin/env python3
"""Make one LoRA parity fixture: a tiny Llama with a PEFT LoRA adapter, its first forward/backward and
--steps AdamW steps on the adapter alone.

Files written into --out DIR (the folder is replaced):

  hf/               the base model (initial, frozen, no LoRA), save_pretrained: config.json + model.safetensors
                    with plain HF names (model.layers.0.self_attn.q_proj.weight, nn.Linear weights (out, in))
  adapter/          the initial adapter, PEFT save_pretrained: adapter_config.json + adapter_model.safetensors,
                    names base_model.model.model.layers.<i>.<self_attn|mlp>.<module>.lora_A.weight (r, in) and
                    ...lora_B.weight (out, r), no adapter name ("default") in them; two tensors per targeted
                    module per layer. adapter_config.json is PEFT's, with target_modules sorted (PEFT writes a
                    set in hash order, which changes from run to run)
  final/            the adapter after --steps AdamW steps, same format
  state.safetensors inputs int32 (B,T), targets int32 (B,T) (-1: ignored), logits f32 (B,T,V) and loss f32 (1)
                    of the first forward on the initial adapter, final_logits f32 (B,T,V) with final/ on the same
                    inputs, and grad.<name> f32 for every tensor <name> of adapter/adapter_model.safetensors, in
                    its shape: the first backward, before clipping
  trajectory.json   source, arch, config (hf/config.json as a dict), lora {r, alpha, scaling, targets}, batch
                    {B, T}, optimizer (make_arch_fixture.py's keys), steps, losses, grad_norms_before_clip

The base model is make_arch_fixture.py's Llama (build_model: LlamaForCausalLM, float32 on the CPU, eager
attention, untied lm_head, RMSNorm weights 1 + 0.1*randn), wrapped with peft.get_peft_model and
LoraConfig(r, lora_alpha, target_modules, lora_dropout=0, bias="none", task_type="CAUSAL_LM"). A targeted
Linear computes W x + (alpha / r) * B (A x). PEFT initialises lora_A Kaiming-uniform and lora_B to zero; with
B = 0 every gradient of A is zero at the first step (and the adapter changes nothing), so after get_peft_model
every lora_B is set to 0.02*randn (its own seeded generator). adapter/ records these initial values.

Loss: cross-entropy with ignore_index=-1, the mean over the supervised positions. Inputs and targets are
random tokens; about --masked of the targets are -1 (at least one supervised position per row). Only the
lora_ parameters are trained (PEFT freezes the base model): each step zeroes the gradients, runs
forward/backward, records the global gradient norm before clipping (torch.nn.utils.clip_grad_norm_ over the
LoRA parameters to --grad-clip) and takes a torch AdamW step (bias-corrected, decoupled weight decay
--weight-decay on every LoRA matrix). After writing, the script reloads hf/ with transformers and adapter/
and final/ with PeftModel.from_pretrained and checks that they reproduce logits and final_logits.

Example:
  python3 reference/make_lora_fixture.py --out /tmp/lora --layers 2 --hidden 32 --heads 4 --kv-heads 2 \\
      --head-dim 8 --intermediate 64 --vocab 128 --max-seq 32 --batch 2 --seq 12 --rank 4 --alpha 8 \\
      --targets q_proj,v_proj --seed 1
"""

import argparse
import copy
import json
import os
import sys

import peft
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_arch_fixture  # noqa: E402
from fixture_common import add_optimizer_args, optimizer_record, publish_dir, save_hf  # noqa: E402

MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    make_arch_fixture.add_shape_args(ap)
    ap.add_argument("--rank", type=int, required=True, help="LoRA r")
    ap.add_argument("--alpha", type=float, required=True, help="lora_alpha (scaling alpha / r)")
    ap.add_argument("--targets", required=True, help="comma list of " + ",".join(MODULES))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--masked", type=float, default=0.25, help="fraction of the targets set to -1 (ignored)")
    add_optimizer_args(ap, lr=1e-2)
    args = ap.parse_args(argv)

    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in args.targets if t not in MODULES]
    if unknown or not args.targets or len(set(args.targets)) != len(args.targets):
        ap.error(f"--targets: a comma list of distinct names from {', '.join(MODULES)}")
    if not 0.0 <= args.masked < 1.0:
        ap.error("--masked must be in [0, 1)")
    if args.alpha == int(args.alpha):
        args.alpha = int(args.alpha)  # lora_alpha is an int in adapter_config.json when it can be
    # The base model: make_arch_fixture.py's Llama, with its own defaults (init std 0.08, RMSNorm eps 1e-5,
    # RoPE theta 1e4, untied lm_head). Its parser checks the shape flags.
    shape = ["--layers", args.layers, "--hidden", args.hidden, "--heads", args.heads,
             "--intermediate", args.intermediate, "--vocab", args.vocab, "--max-seq", args.max_seq,
             "--batch", args.batch, "--seq", args.seq, "--seed", args.seed]
    if args.kv_heads is not None:
        shape += ["--kv-heads", args.kv_heads]
    if args.head_dim is not None:
        shape += ["--head-dim", args.head_dim]
    args.base = make_arch_fixture.parse_args(["--arch", "llama", "--out", args.out] + [str(s) for s in shape])
    return args


def make_batch(args):
    """Random inputs and targets (B, T); about args.masked of the targets are -1, at least one per row is not."""
    B, T, V = args.batch, args.seq, args.vocab
    gen = torch.Generator().manual_seed(args.seed + 1_000_000)
    x = torch.randint(0, V, (B, T), generator=gen)
    y = torch.randint(0, V, (B, T), generator=gen)
    masked = torch.rand((B, T), generator=gen) < args.masked
    for b in range(B):
        if masked[b].all():
            masked[b, torch.randint(0, T, (1,), generator=gen)] = False
    y[masked] = -1
    return x, y


def loss_fn(model, x, y):
    logits = model(input_ids=x, use_cache=False).logits  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1)
    return logits, loss


def file_name(param_name):
    """PEFT parameter name -> adapter_model.safetensors name (the adapter name "default" is not stored)."""
    for ab in ("lora_A", "lora_B"):
        param_name = param_name.replace(f".{ab}.default.", f".{ab}.")
    return param_name


def save_adapter(peft_model, path):
    """PEFT save_pretrained; only adapter_config.json + adapter_model.safetensors are kept (no README.md).

    PEFT holds target_modules as a Python set and writes it as a list in set order, which changes from run to
    run (string hashing is randomised per process); the list is rewritten sorted, otherwise byte for byte as
    PEFT writes the file (keys sorted, indent 2, no final newline)."""
    peft_model.save_pretrained(path, safe_serialization=True)
    config_path = os.path.join(path, "adapter_config.json")
    with open(config_path) as f:
        text = f.read()
    adapter_config = json.loads(text)
    assert json.dumps(adapter_config, indent=2) == text, "adapter_config.json is not in the expected layout"
    adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
    with open(config_path, "w") as f:
        f.write(json.dumps(adapter_config, indent=2))
    for name in os.listdir(path):
        if name not in ADAPTER_FILES:
            os.remove(os.path.join(path, name))
    assert sorted(os.listdir(path)) == ADAPTER_FILES, os.listdir(path)


def load_st(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def verify(tmp, args, x, expected):
    """Reload hf/ + adapter/ and hf/ + final/ the way a user would and compare the logits."""
    for sub, key in (("adapter", "logits"), ("final", "final_logits")):
        stored = load_st(os.path.join(tmp, sub, "adapter_model.safetensors"))
        assert len(stored) == 2 * args.layers * len(args.targets), (sub, sorted(stored))
        want = {f"base_model.model.model.layers.{i}.{MODULES[t]}.{t}.lora_{ab}.weight"
                for i in range(args.layers) for t in args.targets for ab in "AB"}
        assert set(stored) == want, (sub, sorted(set(stored) ^ want))
        base = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.join(tmp, "hf"), dtype=torch.float32, attn_implementation="eager")
        model = peft.PeftModel.from_pretrained(base, os.path.join(tmp, sub), strict_adapter_check="error")
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=x, use_cache=False).logits
        diff = (logits - expected[key]).abs().max().item()
        print(f"check: hf/ + {sub}/ through PeftModel.from_pretrained: max |logits - {key}| = {diff:.3g}")
        assert diff <= 1e-5, f"{sub}/ does not reproduce {key}: {diff}"


def main(argv=None):
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fewer sources of run-to-run variation in float32 sums

    base = make_arch_fixture.build_model(args.base)  # seeded; perturbed RMSNorm weights
    initial_base = copy.deepcopy(base)  # for hf/: plain HF names, no LoRA modules
    x, y = make_batch(args)

    config = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=args.targets,
                             lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(base, config)  # lora_A: Kaiming-uniform from torch's global RNG (seeded above)
    gen = torch.Generator().manual_seed(args.seed + 2_000_000)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n, _ in trainable), [n for n, _ in trainable]
    assert len(trainable) == 2 * args.layers * len(args.targets), len(trainable)
    with torch.no_grad():
        for n, p in trainable:
            if ".lora_B." in n:
                assert torch.all(p == 0), n
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    scaling = args.alpha / args.rank
    for module in model.modules():
        if isinstance(module, peft.tuners.lora.LoraLayer):
            assert module.scaling["default"] == scaling, (module.scaling, scaling)
    model.eval()  # no dropout anyway (lora_dropout 0, attention_dropout 0)

    params = [p for _, p in trainable]
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
                                  weight_decay=args.weight_decay)  # every LoRA tensor is a 2-D matrix

    with publish_dir(args.out) as tmp:  # written beside --out, then swapped in
        save_hf(initial_base, os.path.join(tmp, "hf"))
        save_adapter(model, os.path.join(tmp, "adapter"))

        losses, norms = [], []
        for step in range(args.steps):
            optimizer.zero_grad(set_to_none=True)
            logits, loss = loss_fn(model, x, y)
            loss.backward()
            if step == 0:  # copies: clip_grad_norm_ scales the gradients in place
                logits0, loss0 = logits.detach().clone(), loss.detach().clone()
                grads0 = {file_name(n): p.grad.detach().clone() for n, p in trainable}
            norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip)  # the norm before clipping
            optimizer.step()
            losses.append(loss.item())
            norms.append(norm.item())
            print(f"step {step + 1:2d}: loss {losses[-1]:.6f}  grad norm {norms[-1]:.6f}")
        with torch.no_grad():
            final_logits = model(input_ids=x, use_cache=False).logits
        assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)

        save_adapter(model, os.path.join(tmp, "final"))
        with open(os.path.join(tmp, "hf", "config.json")) as f:
            config_dict = json.load(f)
        with safe_open(os.path.join(tmp, "hf", "model.safetensors"), "pt") as f:
            base_names = list(f.keys())
        assert not any("lora" in n or n.startswith("base_model.") for n in base_names), base_names
        with safe_open(os.path.join(tmp, "adapter", "adapter_model.safetensors"), "pt") as f:
            adapter_names = list(f.keys())
            adapter_shapes = {n: tuple(f.get_slice(n).get_shape()) for n in adapter_names}
        assert set(adapter_names) == set(grads0), sorted(set(adapter_names) ^ set(grads0))

        tensors = {
            "inputs": x.to(torch.int32).contiguous(),
            "targets": y.to(torch.int32).contiguous(),
            "logits": logits0.to(torch.float32).contiguous(),
            "loss": loss0.reshape(1).to(torch.float32).contiguous(),
            "final_logits": final_logits.to(torch.float32).contiguous(),
        }
        for name in sorted(adapter_names):
            assert tuple(grads0[name].shape) == adapter_shapes[name], name
            tensors["grad." + name] = grads0[name].to(torch.float32).contiguous()
        save_file(tensors, os.path.join(tmp, "state.safetensors"), metadata={"format": "pt"})

        trajectory = {
            "source": (f"transformers {transformers.__version__} LlamaForCausalLM (eager attention) + peft "
                       f"{peft.__version__} LoRA, torch {torch.__version__} AdamW, float32 on CPU; "
                       f"made by reference/make_lora_fixture.py --seed {args.seed}"),
            "arch": "llama",
            "config": config_dict,
            "lora": {
                "r": args.rank,
                "alpha": args.alpha,
                "scaling": scaling,
                "targets": args.targets,
                "init": ("lora_A: PEFT's Kaiming-uniform; lora_B: 0.02*randn (PEFT's zero init replaced, so that "
                         "the first gradients of lora_A are not zero)"),
            },
            "batch": {"B": args.batch, "T": args.seq},
            "masked_targets": int((y == -1).sum().item()),
            "optimizer": optimizer_record(
                args, "every LoRA tensor (all 2-D); the base model is frozen",
                ("same batch every step; loss = mean cross-entropy over the targets != -1; clip the "
                 "global grad norm over the LoRA tensors to grad_clip before each update (torch "
                 "clip_grad_norm_: scale grad_clip/(norm+1e-6) when below 1); bias-corrected AdamW, "
                 "decoupled decay lr*wd*param")),
            "steps": args.steps,
            "losses": losses,
            "grad_norms_before_clip": norms,
        }
        with open(os.path.join(tmp, "trajectory.json"), "w") as f:
            json.dump(trajectory, f, indent=2)
            f.write("\n")

        verify(tmp, args, x, {"logits": logits0, "final_logits": final_logits})


if __name__ == "__main__":
    sys.exit(main())
