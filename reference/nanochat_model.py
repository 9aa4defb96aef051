#!/usr/bin/env python3
"""A tiny nanochat-style GPT in plain PyTorch, with Hugging Face-style tensor names.

`transformers` has no nanochat model, so the fixtures for arch "nanochat" use this module. It follows the
architecture of karpathy/nanochat's gpt.py (written from the description below, not copied), reduced to
what the Swift engine implements:

  x = rms_norm(embed_tokens[ids])                       parameter-free RMSNorm over C, eps from the config
  for each layer:
      x = x + o_proj(attention(rms_norm(x)))
      x = x + down_proj(relu(up_proj(rms_norm(x)))^2)
  logits = cap * tanh(lm_head(rms_norm(x)) / cap)       cap = final_logit_softcapping (none if null)

  attention: q/k/v projections without biases; H query heads and H_kv key/value heads of size head_dim
  (grouped-query attention: kv head j serves query heads j*H/H_kv ... (j+1)*H/H_kv - 1); RoPE in Hugging
  Face's rotate_half convention (dimension i pairs with i + d/2, inv_freq_i = 1/theta^(2i/d),
  y = x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1)); then QK-norm *after* RoPE
  (parameter-free RMSNorm over head_dim of every q and k head); causal softmax(q k^T / sqrt(head_dim)) v.

Tensor names (nn.Linear weights are (out, in)):
  model.embed_tokens.weight                 (V, C)
  model.layers.{i}.self_attn.q_proj.weight  (H*D, C)
  model.layers.{i}.self_attn.k_proj.weight  (H_kv*D, C)
  model.layers.{i}.self_attn.v_proj.weight  (H_kv*D, C)
  model.layers.{i}.self_attn.o_proj.weight  (C, H*D)
  model.layers.{i}.mlp.up_proj.weight       (F, C)
  model.layers.{i}.mlp.down_proj.weight     (C, F)
  lm_head.weight                            (V, C)   never tied

A checkpoint folder is config.json (CONFIG_KEYS below, "model_type": "nanochat") + model.safetensors,
written by save_pretrained(model, path) and read by from_pretrained(path).
"""

import json
import math
import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

CONFIG_KEYS = [
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "intermediate_size", "max_position_embeddings", "rope_theta", "rms_norm_eps",
    "final_logit_softcapping", "tie_word_embeddings",
]


@dataclass
class NanochatConfig:
    """The config.json fields; attribute names as in Hugging Face configs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    final_logit_softcapping: Optional[float] = 15.0
    tie_word_embeddings: bool = False
    model_type = "nanochat"

    def __post_init__(self):
        if self.tie_word_embeddings:
            raise ValueError("nanochat never ties lm_head to the embedding")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim % 2 != 0:
            raise ValueError("head_dim must be even (RoPE pairs)")
        self.rope_theta = float(self.rope_theta)
        self.rms_norm_eps = float(self.rms_norm_eps)
        if self.final_logit_softcapping is not None:
            self.final_logit_softcapping = float(self.final_logit_softcapping)

    def to_dict(self):
        d = {"architectures": ["NanochatForCausalLM"], "model_type": "nanochat"}
        d.update({k: getattr(self, k) for k in CONFIG_KEYS})
        return d


def rms_norm(x, eps):
    """Parameter-free RMSNorm over the last dimension: x / sqrt(mean(x^2) + eps)."""
    return F.rms_norm(x, (x.size(-1),), eps=eps)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(T, head_dim, theta, dtype, device=None):
    """cos, sin of shape (T, head_dim), angles computed in float64: angle[t, i] = t / theta^(2i/d), i < d/2,
    and the same angle again for dimension i + d/2."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))
    angles = torch.arange(T, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, H, Hkv, D = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = nn.Linear(C, H * D, bias=False)
        self.k_proj = nn.Linear(C, Hkv * D, bias=False)
        self.v_proj = nn.Linear(C, Hkv * D, bias=False)
        self.o_proj = nn.Linear(H * D, C, bias=False)

    def forward(self, x, cos, sin):
        cfg = self.cfg
        B, T, _ = x.shape
        H, Hkv, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, Hkv, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, Hkv, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        q = rms_norm(q, cfg.rms_norm_eps)  # QK-norm after RoPE
        k = rms_norm(k, cfg.rms_norm_eps)
        group = H // Hkv
        k = k.repeat_interleave(group, dim=1)  # kv head j -> query heads j*group ... j*group+group-1
        v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        y = scores.softmax(dim=-1) @ v  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.relu(self.up_proj(x)).square())


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.eps = cfg.rms_norm_eps
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(rms_norm(x, self.eps), cos, sin)
        return x + self.mlp(rms_norm(x, self.eps))


class Body(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))


class NanochatForCausalLM(nn.Module):
    def __init__(self, cfg: NanochatConfig):
        super().__init__()
        self.config = cfg
        self.model = Body(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @torch.no_grad()
    def init_weights(self, std=0.08, head_std=None, generator=None):
        """Seeded normal init: every matrix N(0, std^2), lm_head N(0, head_std^2) (default std)."""
        for name, p in self.named_parameters():
            s = head_std if (name == "lm_head.weight" and head_std is not None) else std
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype) * s)

    def forward(self, input_ids, **unused):
        cfg = self.config
        T = input_ids.shape[1]
        if T > cfg.max_position_embeddings:
            raise ValueError(f"sequence length {T} > max_position_embeddings {cfg.max_position_embeddings}")
        x = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(T, cfg.head_dim, cfg.rope_theta, x.dtype, x.device)
        x = rms_norm(x, cfg.rms_norm_eps)
        for block in self.model.layers:
            x = block(x, cos, sin)
        logits = self.lm_head(rms_norm(x, cfg.rms_norm_eps))
        cap = cfg.final_logit_softcapping
        if cap is not None:
            logits = cap * torch.tanh(logits / cap)
        return SimpleNamespace(logits=logits)


def save_pretrained(model: NanochatForCausalLM, path):
    """Write config.json + model.safetensors (float tensors in the model's dtype) into path."""
    os.makedirs(path, exist_ok=True)
    cfg = model.config.to_dict()
    cfg["dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=False)
        f.write("\n")
    tensors = {n: p.detach().contiguous().clone() for n, p in model.named_parameters()}
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def load_config(path):
    with open(os.path.join(path, "config.json")) as f:
        d = json.load(f)
    if d.get("model_type") != "nanochat":
        raise ValueError(f"{path}: model_type {d.get('model_type')!r} is not nanochat")
    return NanochatConfig(**{k: d[k] for k in CONFIG_KEYS if k in d})


def from_pretrained(path, dtype=torch.float32):
    """Read a folder written by save_pretrained (or by the Swift engine in the same layout)."""
    model = NanochatForCausalLM(load_config(path)).to(dtype)
    state = load_file(os.path.join(path, "model.safetensors"))
    expected = dict(model.named_parameters())
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: missing tensors {missing}, unexpected tensors {extra}")
    with torch.no_grad():
        for n, p in expected.items():
            if tuple(state[n].shape) != tuple(p.shape):
                raise ValueError(f"{path}: {n} has shape {tuple(state[n].shape)}, expected {tuple(p.shape)}")
            p.copy_(state[n].to(dtype))
    return model.eval()
