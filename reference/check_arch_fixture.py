#!/usr/bin/env python3
"""Check generic-format fixtures (Llama, Qwen2, Gemma 3, nanochat) independently of make_arch_fixture.py.

For each fixture folder DIR (hf/, state.safetensors, trajectory.json, final/; see
../shared/fixtures/README.md, "Any architecture: the generic format"):

1. Layout: state.safetensors holds inputs/targets int32 (B,T), logits f32 (B,T,V), loss f32 (1) and exactly one
   grad.<name> f32 per tensor of hf/model.safetensors, in its shape; final/ has the same tensors; trajectory.json
   agrees with hf/config.json, the batch and the state (loss[0]).
2. Library recompute: loads hf/ in float64 (transformers AutoModelForCausalLM with eager attention, or
   reference/nanochat_model.py for model_type nanochat), reruns the forward/backward on the stored batch and
   compares logits (max abs diff < 1e-4), loss (<= 1e-5) and every gradient (max abs diff <= 1e-4 x the
   tensor's max |value|). transformers' RMSNorm and RoPE run in float32 inside a float64 model, so this
   recompute is float64 up to ~1e-7 relative.
3. Own recompute: a small functional float64 implementation written here from the architecture definitions
   (no transformers code), checked the same way, plus central finite differences of the loss for the
   largest gradient entry of a few tensors.
4. Optimizer: reruns the steps with the own implementation and a hand-written AdamW + global-norm clip in
   float64, comparing step losses (2e-5 abs), gradient norms (1e-4 relative) and final/ (max abs diff
   reported; <= 5e-5 required, see reference/README.md on why a few weights can drift by rounding noise).

Prints one line per fixture (-v: every check); exits 1 if anything fails.
Usage: python3 reference/check_arch_fixture.py DIR [DIR ...] [-v]
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ARCH_OF_MODEL_TYPE = {"llama": "llama", "qwen2": "qwen2", "gemma3_text": "gemma3", "nanochat": "nanochat"}


def load_st(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


# ---------------------------------------------------------------------------------------------------------
# Own float64 implementation (functional; weights is a dict of HF-named tensors).

def rms(x, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rope_theta(cfg, layer_type):
    rp = cfg.get("rope_parameters")
    if rp is None:  # transformers 4.x spelling
        if layer_type == "sliding_attention" and "rope_local_base_freq" in cfg:
            return float(cfg["rope_local_base_freq"])
        return float(cfg["rope_theta"])
    if layer_type in rp:  # Gemma 3: one entry per layer type
        rp = rp[layer_type]
    assert rp.get("rope_type", "default") == "default", rp
    return float(rp["rope_theta"])


def rope(x, theta):
    """x (B, H, T, D); dimension i pairs with i + D/2; angle t * theta^(-2i/D)."""
    T, D = x.shape[-2], x.shape[-1]
    inv = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def own_forward(arch, cfg, W, ids):
    C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    eps = cfg["rms_norm_eps"]
    B, T = ids.shape
    gemma = arch == "gemma3"

    def norm(x, name):  # Llama/Qwen2: x_hat * w; Gemma: x_hat * (1 + w); nanochat: no weight
        if arch == "nanochat":
            return rms(x, eps)
        w = W[name]
        return rms(x, eps) * ((1.0 + w) if gemma else w)

    def linear(x, name):
        y = x @ W[name + ".weight"].T
        b = W.get(name + ".bias")
        return y if b is None else y + b

    def attention(x, i):
        p = f"model.layers.{i}.self_attn."
        q = linear(x, p + "q_proj").view(B, T, H, D).transpose(1, 2)
        k = linear(x, p + "k_proj").view(B, T, Hkv, D).transpose(1, 2)
        v = linear(x, p + "v_proj").view(B, T, Hkv, D).transpose(1, 2)
        layer_type = cfg["layer_types"][i] if "layer_types" in cfg else "full_attention"
        if gemma:  # QK-norm before RoPE, with (1 + w) weights
            q, k = norm(q, p + "q_norm.weight"), norm(k, p + "k_norm.weight")
        q, k = rope(q, rope_theta(cfg, layer_type)), rope(k, rope_theta(cfg, layer_type))
        if arch == "nanochat":  # parameter-free QK-norm after RoPE
            q, k = rms(q, eps), rms(k, eps)
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        scale = float(cfg["query_pre_attn_scalar"]) ** -0.5 if gemma else D ** -0.5
        s = (q @ k.transpose(-1, -2)) * scale
        t = torch.arange(T)
        allowed = t[None, :] <= t[:, None]  # [query t, key t2]: causal
        if layer_type == "sliding_attention":
            assert gemma or cfg.get("use_sliding_window"), "sliding layer in a model without sliding window"
            allowed = allowed & (t[:, None] - t[None, :] < cfg["sliding_window"])
        s = s.masked_fill(~allowed, float("-inf"))
        y = s.softmax(-1) @ v
        return linear(y.transpose(1, 2).reshape(B, T, H * D), p + "o_proj")

    def mlp(x, i):
        p = f"model.layers.{i}.mlp."
        if arch == "nanochat":
            return linear(F.relu(linear(x, p + "up_proj")).pow(2), p + "down_proj")
        act = gelu_tanh if gemma else F.silu
        return linear(act(linear(x, p + "gate_proj")) * linear(x, p + "up_proj"), p + "down_proj")

    emb = W["model.embed_tokens.weight"]
    x = emb[ids]
    if gemma:
        x = x * math.sqrt(C)
    if arch == "nanochat":
        x = rms(x, eps)
    for i in range(L):
        p = f"model.layers.{i}."
        if gemma:
            x = x + norm(attention(norm(x, p + "input_layernorm.weight"), i), p + "post_attention_layernorm.weight")
            x = x + norm(mlp(norm(x, p + "pre_feedforward_layernorm.weight"), i),
                         p + "post_feedforward_layernorm.weight")
        else:
            x = x + attention(norm(x, p + "input_layernorm.weight"), i)
            x = x + mlp(norm(x, p + "post_attention_layernorm.weight"), i)
    x = norm(x, "model.norm.weight")
    head = emb if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    logits = x @ head.T
    cap = cfg.get("final_logit_softcapping")
    if cap is not None:
        logits = cap * torch.tanh(logits / cap)
    return logits


def own_loss(arch, cfg, W, x, y):
    logits = own_forward(arch, cfg, W, x)
    return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


# ---------------------------------------------------------------------------------------------------------

def library_model(d, arch):
    if arch == "nanochat":
        import nanochat_model
        return nanochat_model.from_pretrained(os.path.join(d, "hf"), dtype=torch.float64)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    kw = dict(attn_implementation="eager")
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(d, "hf"), dtype=torch.float64, **kw)
    except TypeError:  # transformers 4.x
        m = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(d, "hf"), torch_dtype=torch.float64,
                                                              **kw)
    return m.eval()


class Checker:
    def __init__(self, verbose):
        self.verbose, self.failures, self.notes = verbose, [], []

    def __call__(self, ok, what):
        if self.verbose or not ok:
            print(("    ok    " if ok else "    FAIL  ") + what)
        if not ok:
            self.failures.append(what)
        return ok


def check_fixture(d, verbose):
    check = Checker(verbose)
    with open(os.path.join(d, "trajectory.json")) as f:
        tr = json.load(f)
    with open(os.path.join(d, "hf", "config.json")) as f:
        cfg = json.load(f)
    arch = tr.get("arch")
    check(arch == ARCH_OF_MODEL_TYPE.get(cfg.get("model_type")),
          f"trajectory arch {arch!r} matches config model_type {cfg.get('model_type')!r}")
    if "config" in tr:
        check(tr["config"] == cfg, "trajectory config == hf/config.json")
    check(sorted(os.listdir(os.path.join(d, "hf"))) in (["config.json", "model.safetensors"],
                                                         ["config.json", "generation_config.json", "model.safetensors"]),
          "hf/ holds config.json + model.safetensors")

    init = load_st(os.path.join(d, "hf", "model.safetensors"))
    final = load_st(os.path.join(d, "final", "model.safetensors"))
    state = load_st(os.path.join(d, "state.safetensors"))
    B, T, V = tr["batch"]["B"], tr["batch"]["T"], cfg["vocab_size"]
    x, y = state["inputs"], state["targets"]
    check(x.dtype == torch.int32 and y.dtype == torch.int32 and tuple(x.shape) == (B, T) == tuple(y.shape),
          "inputs/targets int32 (B,T)")
    check(int(x.min()) >= 0 and int(x.max()) < V and int(y.min()) >= 0 and int(y.max()) < V, "tokens < V")
    check(state["logits"].dtype == torch.float32 and tuple(state["logits"].shape) == (B, T, V), "logits f32 (B,T,V)")
    check(state["loss"].dtype == torch.float32 and tuple(state["loss"].shape) == (1,), "loss f32 (1)")
    grads = {k[5:]: v for k, v in state.items() if k.startswith("grad.")}
    check(set(state) == {"inputs", "targets", "logits", "loss"} | {"grad." + n for n in init},
          "state.safetensors: one grad.<name> per hf/ tensor, nothing else")
    check(all(grads[n].dtype == torch.float32 and grads[n].shape == init[n].shape for n in grads),
          "gradients f32 in the tensors' shapes")
    check(set(final) == set(init) and all(final[n].shape == init[n].shape for n in init), "final/ has hf/'s tensors")
    check(all(t.dtype == torch.float32 for t in list(init.values()) + list(final.values())), "weights float32")
    check(("lm_head.weight" in init) == (not cfg.get("tie_word_embeddings")), "lm_head stored iff untied")
    check(abs(tr["losses"][0] - state["loss"].item()) <= 1e-6 * abs(state["loss"].item()),
          "trajectory loss[0] == state loss")
    check(len(tr["losses"]) == tr["steps"] == len(tr["grad_norms_before_clip"]), "steps")
    if check.failures:
        return check, {}

    x64, y64 = x.long(), y.long()
    ref_logits, ref_loss = state["logits"].double(), state["loss"].item()
    results = {}

    def compare(tag, logits, loss, g):
        dl = (logits.detach() - ref_logits).abs().max().item()
        check(dl < 1e-4, f"{tag}: logits max abs diff {dl:.2e} (< 1e-4)")
        dloss = abs(loss - ref_loss)
        check(dloss <= 1e-5, f"{tag}: loss {ref_loss:.7f} vs {loss:.7f} (diff {dloss:.1e} <= 1e-5)")
        worst, worst_name = 0.0, None
        for n, ref in grads.items():
            if n not in g or g[n] is None:
                check(False, f"{tag}: no gradient for {n}")
                continue
            ref = ref.double()
            rel = (g[n] - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
            if rel > worst:
                worst, worst_name = rel, n
        check(worst <= 1e-4, f"{tag}: {len(grads)} gradients, worst max-diff/max|g| {worst:.2e} ({worst_name}) (<= 1e-4)")
        results[tag] = (dl, dloss, worst)

    # 2. The library (transformers / nanochat_model) in float64.
    model = library_model(d, arch)
    named = dict(model.named_parameters())
    check(set(named) == set(init), "library model's parameters == hf/ tensors")
    check(all(torch.equal(p.detach(), init[n].double()) for n, p in named.items() if n in init),
          "library model holds hf/'s weights")
    logits = model(input_ids=x64, use_cache=False).logits if arch != "nanochat" else model(input_ids=x64).logits
    loss = F.cross_entropy(logits.reshape(-1, V), y64.reshape(-1))
    loss.backward()
    compare("library f64", logits, loss.item(), {n: p.grad for n, p in named.items()})
    lib_logits = logits.detach()

    # 3. Own float64 implementation.
    W = {n: t.double().requires_grad_(True) for n, t in init.items()}
    logits, loss = own_loss(arch, cfg, W, x64, y64)
    loss.backward()
    compare("own f64", logits, loss.item(), {n: t.grad for n, t in W.items()})
    results["own vs library"] = (logits.detach() - lib_logits).abs().max().item()
    check(results["own vs library"] < 1e-5, f"own vs library float64 logits {results['own vs library']:.2e} (< 1e-5)")

    # Finite differences (float64, own implementation) at the largest gradient entry of a few tensors.
    picks = ["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.weight",
             "model.layers.0.self_attn.k_proj.bias", "model.layers.0.self_attn.q_norm.weight",
             "model.layers.0.post_feedforward_layernorm.weight", "lm_head.weight"]
    fd_worst = 0.0
    with torch.no_grad():
        Wd = {n: t.double() for n, t in init.items()}
        for n in [p for p in picks if p in Wd]:
            idx = tuple(int(i) for i in torch.nonzero(grads[n].abs() == grads[n].abs().max())[0])
            h, orig = 1e-5, Wd[n][idx].item()
            Wd[n][idx] = orig + h
            lp = own_loss(arch, cfg, Wd, x64, y64)[1].item()
            Wd[n][idx] = orig - h
            lm = own_loss(arch, cfg, Wd, x64, y64)[1].item()
            Wd[n][idx] = orig
            fd, ref = (lp - lm) / (2 * h), grads[n][idx].item()
            rel = abs(fd - ref) / max(abs(ref), 1e-12)
            fd_worst = max(fd_worst, rel)
            check(rel <= 1e-4, f"finite difference {n}{list(idx)}: {fd:.7e} vs stored {ref:.7e} (rel {rel:.1e})")
    results["fd"] = fd_worst

    # 4. Optimizer rerun: own model, hand-written clip + AdamW, float64.
    o = tr["optimizer"]
    P = {n: t.double().clone() for n, t in init.items()}
    m = {n: torch.zeros_like(t) for n, t in P.items()}
    v = {n: torch.zeros_like(t) for n, t in P.items()}
    losses, norms = [], []
    for step in range(1, tr["steps"] + 1):
        Wg = {n: t.clone().requires_grad_(True) for n, t in P.items()}
        loss = own_loss(arch, cfg, Wg, x64, y64)[1]
        loss.backward()
        g = {n: t.grad for n, t in Wg.items()}
        norm = math.sqrt(sum((t * t).sum().item() for t in g.values()))
        coef = min(1.0, o["grad_clip"] / (norm + 1e-6))  # as torch.nn.utils.clip_grad_norm_
        losses.append(loss.item())
        norms.append(norm)
        for n in P:
            gn = g[n] * coef
            if P[n].dim() >= 2:
                P[n] = P[n] * (1 - o["lr"] * o["weight_decay"])
            m[n] = o["beta1"] * m[n] + (1 - o["beta1"]) * gn
            v[n] = o["beta2"] * v[n] + (1 - o["beta2"]) * gn * gn
            mhat = m[n] / (1 - o["beta1"] ** step)
            vhat = v[n] / (1 - o["beta2"] ** step)
            P[n] = P[n] - o["lr"] * mhat / (vhat.sqrt() + o["eps"])
    dls = max(abs(a - b) for a, b in zip(losses, tr["losses"]))
    dns = max(abs(a - b) / b for a, b in zip(norms, tr["grad_norms_before_clip"]))
    dfinal, dfinal_name = max(((P[n] - final[n].double()).abs().max().item(), n) for n in P)
    check(dls <= 2e-5, f"{tr['steps']} step losses vs float64 rerun: max abs diff {dls:.2e} (<= 2e-5)")
    check(dns <= 1e-4, f"{tr['steps']} step grad norms vs float64 rerun: max rel diff {dns:.2e} (<= 1e-4)")
    check(dfinal <= 5e-5, f"final/ vs float64 rerun: max abs diff {dfinal:.2e} ({dfinal_name}) (<= 5e-5)")
    results["steps"] = (dls, dns, dfinal)
    return check, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    failed = 0
    for d in args.dirs:
        check, r = check_fixture(d, args.verbose)
        name = os.path.basename(os.path.normpath(d))
        if r:
            (ll, lo, lg), (ol, oo, og) = r["library f64"], r["own f64"]
            dls, dns, dfin = r["steps"]
            summary = (f"logits {ll:.1e}/{ol:.1e}  loss {lo:.1e}/{oo:.1e}  grads {lg:.1e}/{og:.1e} "
                       f"(library/own f64)  own-vs-library {r['own vs library']:.1e}  fd {r['fd']:.1e}  "
                       f"steps: loss {dls:.1e} norm {dns:.1e} final {dfin:.1e}")
        else:
            summary = "layout checks failed"
        status = "FAIL" if check.failures else "ok  "
        print(f"{status} {name:16s} {summary}")
        failed += bool(check.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
