#!/usr/bin/env python3
"""Check a parity fixture folder independently of make_fixture.py (which it does not import).

1. Layout: re-reads model.bin / state.bin / final.bin with its own reader (exact file sizes, headers),
   checks that model.bin equals hf/model.safetensors after the Conv1D transposes, that wte's padding rows
   (and their gradients) are zero, and that trajectory.json agrees with the headers. With model-bf16.bin,
   hf-fp16/ and hf-bf16/ present, checks them against model.bin rounded in numpy.
2. Recompute (skipped with --layout-only): loads hf/ into transformers in float64 and
   - reruns the forward/backward on state.bin's batch and compares logits, loss and every gradient,
   - checks a few gradient entries by central finite differences of the loss (float64),
   - reruns the optimizer with a hand-written AdamW + global-norm clipping and compares the per-step
     losses, gradient norms and final.bin,
   all with the tolerances the Swift parity check uses: logits 1e-4 abs, loss 1e-5, each gradient tensor
   1e-4 x its max |value|, step losses 2e-5, grad norms 1e-4 relative, final weights 5e-5 abs
   (see reference/README.md for why the last one is tight).

Usage: python reference/check_fixture.py DIR [DIR ...] [--layout-only]
"""

import argparse
import json
import math
import os
import sys

import numpy as np

NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
HF = {  # llm.c name -> (HF name, Conv1D weight stored (in, out))
    "wte": ("transformer.wte.weight", False), "wpe": ("transformer.wpe.weight", False),
    "ln1w": ("transformer.h.{i}.ln_1.weight", False), "ln1b": ("transformer.h.{i}.ln_1.bias", False),
    "qkvw": ("transformer.h.{i}.attn.c_attn.weight", True), "qkvb": ("transformer.h.{i}.attn.c_attn.bias", False),
    "attprojw": ("transformer.h.{i}.attn.c_proj.weight", True),
    "attprojb": ("transformer.h.{i}.attn.c_proj.bias", False),
    "ln2w": ("transformer.h.{i}.ln_2.weight", False), "ln2b": ("transformer.h.{i}.ln_2.bias", False),
    "fcw": ("transformer.h.{i}.mlp.c_fc.weight", True), "fcb": ("transformer.h.{i}.mlp.c_fc.bias", False),
    "fcprojw": ("transformer.h.{i}.mlp.c_proj.weight", True),
    "fcprojb": ("transformer.h.{i}.mlp.c_proj.bias", False),
    "lnfw": ("transformer.ln_f.weight", False), "lnfb": ("transformer.ln_f.bias", False),
}

failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)


def shapes(maxT, V, L, NH, C, Vp):
    return {"wte": (Vp, C), "wpe": (maxT, C), "ln1w": (L, C), "ln1b": (L, C), "qkvw": (L, 3 * C, C),
            "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C), "ln2w": (L, C), "ln2b": (L, C),
            "fcw": (L, 4 * C, C), "fcb": (L, 4 * C), "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
            "lnfw": (C,), "lnfb": (C,)}


def read_tensors(buf, offset, shp, dtype):
    out = {}
    for n in NAMES:
        count = int(np.prod(shp[n]))
        out[n] = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shp[n])
        offset += count * np.dtype(dtype).itemsize
    return out, offset


def read_checkpoint(path):
    buf = open(path, "rb").read()
    hdr = np.frombuffer(buf, "<i4", 256)
    assert hdr[0] == 20240326, f"{path}: bad magic {hdr[0]}"
    version = int(hdr[1])
    assert version in (3, 5), f"{path}: version {version}"
    maxT, V, L, NH, C, Vp = (int(v) for v in hdr[2:8])
    assert not hdr[8:].any(), f"{path}: header tail not zero"
    shp = shapes(maxT, V, L, NH, C, Vp)
    if version == 3:
        t, end = read_tensors(buf, 1024, shp, "<f4")
    else:  # bf16: the top 16 bits of a float32
        raw, end = read_tensors(buf, 1024, shp, "<u2")
        t = {n: (a.astype(np.uint32) << 16).view(np.float32) for n, a in raw.items()}
    assert end == len(buf), f"{path}: {len(buf) - end} trailing bytes"
    return dict(version=version, maxT=maxT, V=V, L=L, NH=NH, C=C, Vp=Vp), t


def read_state(path, cfg):
    buf = open(path, "rb").read()
    hdr = np.frombuffer(buf, "<i4", 256)
    assert hdr[0] == 20240327 and hdr[1] == 2 and not hdr[4:].any(), f"{path}: bad header"
    B, T = int(hdr[2]), int(hdr[3])
    off = 1024
    x = np.frombuffer(buf, "<i4", B * T, off).reshape(B, T); off += 4 * B * T
    y = np.frombuffer(buf, "<i4", B * T, off).reshape(B, T); off += 4 * B * T
    logits = np.frombuffer(buf, "<f4", B * T * cfg["V"], off).reshape(B, T, cfg["V"]); off += 4 * B * T * cfg["V"]
    loss = float(np.frombuffer(buf, "<f4", 1, off)[0]); off += 4
    grads, off = read_tensors(buf, off, shapes(*(cfg[k] for k in ("maxT", "V", "L", "NH", "C", "Vp"))), "<f4")
    assert off == len(buf), f"{path}: {len(buf) - off} trailing bytes"
    return B, T, x, y, logits, loss, grads


def to_hf(t, cfg):
    """llm.c tensors -> dict of HF-named arrays (transposed back, wte unpadded)."""
    out = {}
    for n in NAMES:
        name, transpose = HF[n]
        if "{i}" in name:
            for i in range(cfg["L"]):
                out[name.format(i=i)] = t[n][i].T if transpose else t[n][i]
        else:
            out[name] = t[n][:cfg["V"]] if n == "wte" else t[n]
    return out


def bf16_round(a):
    """float32 -> bfloat16 bits, round to nearest even (NaN-free input assumed)."""
    bits = a.astype("<f4").view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def load_safetensors(path):
    from safetensors import safe_open
    out = {}
    with safe_open(path, framework="pt") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def check_layout(d):
    cfg, model = read_checkpoint(os.path.join(d, "model.bin"))
    check(cfg["version"] == 3 and cfg["Vp"] == (cfg["V"] + 127) // 128 * 128 and cfg["Vp"] >= cfg["V"],
          f"model.bin header {cfg}")
    fcfg, final = read_checkpoint(os.path.join(d, "final.bin"))
    check(fcfg == cfg, "final.bin header equals model.bin's")
    B, T, x, y, logits, loss, grads = read_state(os.path.join(d, "state.bin"), cfg)
    check(T <= cfg["maxT"] and 0 <= x.min() and x.max() < cfg["V"] and -1 <= y.min() and y.max() < cfg["V"],
          f"state.bin B={B} T={T}, tokens in [0, V)")
    check(not model["wte"][cfg["V"]:].any() and not grads["wte"][cfg["V"]:].any()
          and not final["wte"][cfg["V"]:].any(), f"wte rows {cfg['V']}..{cfg['Vp'] - 1} zero (model, grad, final)")

    hf = load_safetensors(os.path.join(d, "hf", "model.safetensors"))
    mine = to_hf(model, cfg)
    check(set(hf) == set(mine), f"hf/ holds exactly the {len(mine)} transformer.* tensors (no lm_head)")
    check(all(hf[k].dtype.__str__() == "torch.float32" and np.array_equal(hf[k].numpy(), mine[k]) for k in mine),
          "model.bin == hf/ (bit-exact, after (in,out)->(out,in) transposes)")
    hcfg = json.load(open(os.path.join(d, "hf", "config.json")))
    check((hcfg["n_positions"], hcfg["vocab_size"], hcfg["n_layer"], hcfg["n_head"], hcfg["n_embd"])
          == (cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"])
          and hcfg["activation_function"] == "gelu_new" and hcfg["tie_word_embeddings"]
          and hcfg["layer_norm_epsilon"] == 1e-5, "hf/config.json matches the header")

    tr = json.load(open(os.path.join(d, "trajectory.json")))
    c = tr["config"]
    check((c["max_seq_len"], c["vocab_size"], c["padded_vocab_size"], c["num_layers"], c["num_heads"], c["channels"])
          == (cfg["maxT"], cfg["V"], cfg["Vp"], cfg["L"], cfg["NH"], cfg["C"])
          and tr["batch"] == {"B": B, "T": T} and len(tr["losses"]) == len(tr["grad_norms_before_clip"]) == tr["steps"],
          "trajectory.json matches the headers")
    check(abs(tr["losses"][0] - loss) <= 1e-6 * abs(loss), "trajectory loss[0] == state.bin loss")
    gnorm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    check(abs(gnorm - tr["grad_norms_before_clip"][0]) <= 1e-5 * gnorm,
          f"state.bin gradients are unclipped: norm {gnorm:.6f} == trajectory grad_norms[0]")

    # Optional dtype variants.
    if os.path.exists(os.path.join(d, "model-bf16.bin")):
        bcfg, bf = read_checkpoint(os.path.join(d, "model-bf16.bin"))
        check(bcfg == dict(cfg, version=5), "model-bf16.bin header (version 5)")
        raw = open(os.path.join(d, "model-bf16.bin"), "rb").read()[1024:]
        want = b"".join(bf16_round(model[n]).astype("<u2").tobytes() for n in NAMES)
        check(raw == want, "model-bf16.bin == model.bin rounded to bf16 (nearest even, numpy)")
    import torch
    for sub, dt in [("hf-fp16", torch.float16), ("hf-bf16", torch.bfloat16)]:
        p = os.path.join(d, sub, "model.safetensors")
        if not os.path.exists(p):
            continue
        h = load_safetensors(p)
        ok = set(h) == set(mine) and all(h[k].dtype == dt for k in h)
        for k in mine:
            if dt == torch.float16:
                ok &= np.array_equal(h[k].numpy(), mine[k].astype(np.float16))
            else:
                ok &= np.array_equal(h[k].view(torch.int16).numpy().view(np.uint16), bf16_round(mine[k]))
        check(ok, f"{sub}/ == model.bin cast to {dt} (numpy rounding)")
    return cfg, model, final, (B, T, x, y, logits, loss, grads), tr


def check_recompute(d, cfg, model_t, final_t, state, tr):
    import torch
    import torch.nn.functional as F
    from transformers import GPT2LMHeadModel

    B, T, x, y, logits_ref, loss_ref, grads_ref = state
    model = GPT2LMHeadModel.from_pretrained(os.path.join(d, "hf"), attn_implementation="eager").double().eval()
    assert model.lm_head.weight is model.transformer.wte.weight
    xt, yt = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))

    def loss_of(m):
        lg = m(input_ids=xt).logits
        # -1 targets are masked out of the mean (SFT's loss mask), as in make_fixture.py.
        return lg, F.cross_entropy(lg.view(-1, lg.size(-1)), yt.view(-1), ignore_index=-1)

    # (a) forward/backward in float64 vs state.bin
    logits, loss = loss_of(model)
    loss.backward()
    dl = np.abs(logits.detach().numpy() - logits_ref).max()
    check(dl <= 1e-4, f"logits vs float64 recompute: max abs diff {dl:.2e} (<= 1e-4)")
    check(abs(loss.item() - loss_ref) <= 1e-5, f"loss {loss_ref:.7f} vs float64 {loss.item():.7f} (<= 1e-5)")
    g64 = {n: p.grad.numpy() for n, p in model.named_parameters()}
    worst = 0.0
    for n in NAMES:
        name, transpose = HF[n]
        if "{i}" in name:
            g = np.stack([g64[name.format(i=i)].T if transpose else g64[name.format(i=i)] for i in range(cfg["L"])])
        else:
            g = g64[name]
        ref = grads_ref[n][:cfg["V"]] if n == "wte" else grads_ref[n]
        rel = np.abs(g - ref).max() / max(np.abs(g).max(), 1e-30)
        worst = max(worst, rel)
    check(worst <= 1e-4, f"all 16 gradient tensors vs float64 recompute: worst max-diff/max|g| {worst:.2e} (<= 1e-4)")

    # (b) central finite differences on the largest gradient entry of a few tensors (tests the transposes)
    h = 1e-5
    params = dict(model.named_parameters())
    for n in ["wte", "qkvw", "fcprojw", "lnfb"]:
        ref = grads_ref[n]
        idx = np.unravel_index(np.abs(ref).argmax(), ref.shape)
        name, transpose = HF[n]
        if "{i}" in name:
            hf_name, rest = name.format(i=idx[0]), idx[1:]
        else:
            hf_name, rest = name, idx
        hf_idx = tuple(reversed(rest)) if transpose else tuple(rest)
        p = params[hf_name]
        with torch.no_grad():
            orig = p[hf_idx].item()
            p[hf_idx] = orig + h
            lp = loss_of(model)[1].item()
            p[hf_idx] = orig - h
            lm = loss_of(model)[1].item()
            p[hf_idx] = orig
        fd = (lp - lm) / (2 * h)
        rel = abs(fd - ref[idx]) / abs(ref[idx])
        check(rel <= 1e-4, f"finite difference {n}{list(map(int, idx))}: fd {fd:.7e} vs state.bin {ref[idx]:.7e} (rel {rel:.1e})")

    # (c) hand-written clip + AdamW in float64 vs trajectory.json and final.bin
    o = tr["optimizer"]
    plist = list(model.parameters())  # tied wte appears once
    m = [torch.zeros_like(p) for p in plist]
    v = [torch.zeros_like(p) for p in plist]
    losses, norms = [], []
    for step in range(1, tr["steps"] + 1):
        for p in plist:
            p.grad = None
        loss = loss_of(model)[1]
        loss.backward()
        norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in plist))
        scale = min(1.0, o["grad_clip"] / (norm + 1e-6))  # as torch.nn.utils.clip_grad_norm_
        losses.append(loss.item()); norms.append(norm)
        with torch.no_grad():
            for p, mm, vv in zip(plist, m, v):
                g = p.grad * scale
                mm.mul_(o["beta1"]).add_((1 - o["beta1"]) * g)
                vv.mul_(o["beta2"]).add_((1 - o["beta2"]) * g * g)
                if p.dim() >= 2:
                    p.mul_(1 - o["lr"] * o["weight_decay"])
                mhat = mm / (1 - o["beta1"] ** step)
                vhat = vv / (1 - o["beta2"] ** step)
                p.sub_(o["lr"] * mhat / (vhat.sqrt() + o["eps"]))
    dl = max(abs(a - b) for a, b in zip(losses, tr["losses"]))
    dn = max(abs(a - b) / b for a, b in zip(norms, tr["grad_norms_before_clip"]))
    check(dl <= 2e-5, f"{tr['steps']} step losses vs float64 AdamW: max diff {dl:.2e} (<= 2e-5)")
    check(dn <= 1e-4, f"{tr['steps']} step grad norms vs float64: max rel diff {dn:.2e} (<= 1e-4)")
    w64 = {k: p.detach().numpy() for k, p in model.named_parameters()}
    fin = to_hf(final_t, cfg)
    dw = max(np.abs(w64[k] - fin[k]).max() for k in fin)
    check(dw <= 5e-5, f"final.bin vs float64 AdamW weights: max abs diff {dw:.2e} (<= 5e-5)")


def main():
    ap = argparse.ArgumentParser(description="check parity fixture folders")
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--layout-only", action="store_true")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    for d in args.dirs:
        print(d)
        cfg, model_t, final_t, state, tr = check_layout(d)
        if not args.layout_only:
            check_recompute(d, cfg, model_t, final_t, state, tr)
    print("ALL OK" if not failures else f"{len(failures)} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
