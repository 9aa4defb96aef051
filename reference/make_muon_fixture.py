#!/usr/bin/env python3
"""Make the Muon parity fixtures: ten steps of nanochat's optimizer (Muon + AdamW) on a tiny model, in float32.

The optimizer is classic nanochat's (nanochat/muon.py and gpt.py setup_optimizers before its Polar Express
version), written here from its description:

  Muon, every matrix inside the blocks (q, k, v, o, gate, up, down: separate nn.Linear weights here, the parts
  of the Swift engine's fused q|k|v and gate|up matrices there), Nesterov:
      buf.lerp_(g, 1 - momentum);  g = g.lerp(buf, momentum)
      X = g (transposed when rows > cols) / (||g||_F + 1e-7)
      5 times:  A = X X^T;  B = b A + c A A;  X = a X + B X      (a, b, c) = (3.4445, -4.7750, 2.0315)
      p -= lr * sqrt(max(1, rows / cols)) * X (transposed back)
  AdamW (torch.optim.AdamW), betas (0.8, 0.95), eps 1e-10, weight decay 0:
      token embedding  lr = embedding_lr * (C / 768) ** -0.5
      lm_head          lr = unembedding_lr * (C / 768) ** -0.5
      1-D tensors      lr = scalar_lr (norm weights; nanochat's own models have none)
  Every group's lr is its initial lr times the step's multiplier lrm (a warmup then a decay, listed in
  trajectory.json); Muon's momentum warms up linearly from 0.85 to 0.95 over the first `momentum_warmup_steps`
  steps (nanochat: 300; 5 here so that ten steps see it move and then hold). Before each update the global
  gradient norm is clipped to 1 (torch.nn.utils.clip_grad_norm_). Each step trains on its own batch of
arithmetic sequences (token t+1 = token t + k mod V, a random start and k in 1..3 per row), which the model
learns a little of in ten steps.

Files in each folder (replaced):
  hf/                  the initial model (config.json + model.safetensors, Hugging Face names)
  final/               the model after the ten steps
  batches.safetensors  inputs, targets: int32 (steps, B, T)
  trajectory.json      source, arch, batch, steps, optimizer (every setting above), lr_multipliers, momenta,
                       losses and grad_norms_before_clip, one per step

Models (reference/make_arch_fixture.py builds them; float32 on one CPU thread, deterministic):
  muon-nanochat  reference/nanochat_model.py, 1 layer, C 32, 4 query / 2 kv heads of 8, relu^2 MLP 128, V 40
  muon-llama     transformers' LlamaForCausalLM, 2 layers, C 32, 4 / 2 heads of 8, SwiGLU 40, untied, V 40

  python3 reference/make_muon_fixture.py            # writes Tests/LLMTests/Fixtures/muon-*
"""

import argparse
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_arch_fixture  # noqa: E402
from fixture_common import publish_dir  # noqa: E402

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)

FIXTURES = {
    "muon-nanochat": ["--arch", "nanochat", "--layers", "1", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
                      "--head-dim", "8", "--intermediate", "128", "--vocab", "40", "--max-seq", "16",
                      "--batch", "2", "--seq", "16", "--rope-theta", "10000", "--final-softcap", "15",
                      "--seed", "1601"],
    "muon-llama": ["--arch", "llama", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
                   "--head-dim", "8", "--intermediate", "40", "--vocab", "40", "--max-seq", "16",
                   "--batch", "2", "--seq", "12", "--seed", "1602"],
}

OPTIMIZER = {
    "matrix_lr": 0.02, "embedding_lr": 0.2, "unembedding_lr": 0.004, "scalar_lr": 0.01,
    "momentum": 0.95, "momentum_start": 0.85, "momentum_warmup_steps": 5, "ns_steps": 5,
    "adam_beta1": 0.8, "adam_beta2": 0.95, "adam_eps": 1e-10, "adam_weight_decay": 0.0, "grad_clip": 1.0,
}
STEPS = 10


def lr_multiplier(it):
    """Two warmup steps, flat, then a linear decay over the last four steps to 0.2."""
    if it < 2:
        return (it + 1) / 3
    if it < STEPS - 4:
        return 1.0
    return 1.0 - 0.8 * (it - (STEPS - 5)) / 4


def momentum_at(it, o):
    frac = min(it / o["momentum_warmup_steps"], 1)
    return (1 - frac) * o["momentum_start"] + frac * o["momentum"]


def newton_schulz5(G, steps):
    """The nearest semi-orthogonal matrix to G, roughly (singular values end near 0.7 to 1.2), in float32."""
    a, b, c = NS_COEFFICIENTS
    X = G.T if G.size(0) > G.size(1) else G
    X = X / (X.norm() + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if G.size(0) > G.size(1) else X


class Muon:
    """SGD with Nesterov momentum whose update is orthogonalised; one momentum buffer per matrix."""

    def __init__(self, params, lr, ns_steps):
        self.params, self.lr, self.ns_steps = params, lr, ns_steps
        self.buffers = [torch.zeros_like(p) for p in params]
        self.momentum = None

    @torch.no_grad()
    def step(self, lrm):
        for p, buf in zip(self.params, self.buffers):
            g = p.grad
            buf.lerp_(g, 1 - self.momentum)
            g = g.lerp_(buf, self.momentum)
            update = newton_schulz5(g, self.ns_steps)
            p.add_(update, alpha=-(self.lr * lrm) * max(1, p.size(0) / p.size(1)) ** 0.5)


def groups(model):
    """nanochat's split: the blocks' matrices for Muon; the embedding, the head and 1-D tensors for AdamW."""
    matrices, embedding, head, scalars = [], [], [], []
    for name, p in model.named_parameters():
        if p.dim() == 2 and ".layers." in name:
            matrices.append((name, p))
        elif name.endswith("embed_tokens.weight"):
            embedding.append((name, p))
        elif name == "lm_head.weight":
            head.append((name, p))
        else:
            assert p.dim() == 1, name
            scalars.append((name, p))
    return matrices, embedding, head, scalars


def train(model, batches, o, C):
    matrices, embedding, head, scalars = groups(model)
    dmodel_lr_scale = (C / 768) ** -0.5
    adam_groups = [dict(params=[p for _, p in head], lr=o["unembedding_lr"] * dmodel_lr_scale),
                   dict(params=[p for _, p in embedding], lr=o["embedding_lr"] * dmodel_lr_scale)]
    if scalars:
        adam_groups.append(dict(params=[p for _, p in scalars], lr=o["scalar_lr"]))
    adamw = torch.optim.AdamW(adam_groups, betas=(o["adam_beta1"], o["adam_beta2"]), eps=o["adam_eps"],
                              weight_decay=o["adam_weight_decay"])
    for group in adamw.param_groups:
        group["initial_lr"] = group["lr"]
    muon = Muon([p for _, p in matrices], o["matrix_lr"], o["ns_steps"])
    params = list(model.parameters())
    losses, norms, multipliers, momenta = [], [], [], []
    for it, (x, y) in enumerate(batches):
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, o["grad_clip"])
        lrm, momentum = lr_multiplier(it), momentum_at(it, o)
        for group in adamw.param_groups:
            group["lr"] = group["initial_lr"] * lrm
        muon.momentum = momentum
        adamw.step()
        muon.step(lrm)
        losses.append(loss.item())
        norms.append(norm.item())
        multipliers.append(lrm)
        momenta.append(momentum)
        print(f"step {it + 1:2d}: loss {losses[-1]:.6f}  grad norm {norms[-1]:.6f}  lrm {lrm:.3f}  "
              f"momentum {momentum:.3f}")
    return losses, norms, multipliers, momenta, [n for n, _ in matrices]


def make(name, argv, out_root):
    args = make_arch_fixture.parse_args(argv + ["--out", os.path.join(out_root, name)])
    model = make_arch_fixture.build_model(args)
    initial = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(args.seed + 1_000_000)
    start = torch.randint(0, args.vocab, (STEPS, args.batch, 1), generator=gen)
    stride = torch.randint(1, 4, (STEPS, args.batch, 1), generator=gen)
    sequences = (start + stride * torch.arange(args.seq + 1)) % args.vocab
    inputs, targets = sequences[..., :-1], sequences[..., 1:]
    losses, norms, multipliers, momenta, muon_names = train(model, zip(inputs, targets), OPTIMIZER, args.hidden)
    source = (f"{'reference/nanochat_model.py' if args.arch == 'nanochat' else 'transformers ' + transformers.__version__} "
              f"{type(model).__name__}, torch {torch.__version__}, float32 on CPU; nanochat's Muon + AdamW; "
              f"made by reference/make_muon_fixture.py")
    with publish_dir(args.out) as tmp:
        make_arch_fixture.save_model(initial, os.path.join(tmp, "hf"))
        make_arch_fixture.save_model(model, os.path.join(tmp, "final"))
        save_file({"inputs": inputs.to(torch.int32).contiguous(), "targets": targets.to(torch.int32).contiguous()},
                  os.path.join(tmp, "batches.safetensors"), metadata={"format": "pt"})
        trajectory = {
            "source": source,
            "arch": args.arch,
            "batch": {"B": args.batch, "T": args.seq},
            "steps": STEPS,
            "optimizer": dict(OPTIMIZER, ns_coefficients=list(NS_COEFFICIENTS), muon_matrices=muon_names),
            "lr_multipliers": multipliers,
            "momenta": momenta,
            "losses": losses,
            "grad_norms_before_clip": norms,
        }
        with open(os.path.join(tmp, "trajectory.json"), "w") as f:
            json.dump(trajectory, f, indent=1)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests",
                                                       "LLMTests", "Fixtures"))
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name, argv in FIXTURES.items():
        make(name, argv, args.out_root)


if __name__ == "__main__":
    main()
