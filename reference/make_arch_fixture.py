#!/usr/bin/env python3
"""Make one parity fixture in the generic format for Llama, Qwen2, Gemma 3 or nanochat.

The generic format uses Hugging Face's own tensor names and shapes, so one reader serves every
architecture (see ../shared/fixtures/README.md, "Any architecture: the generic format"). Files written
into --out DIR (the folder is replaced):

  hf/               the initial model, save_pretrained: config.json + model.safetensors (nn.Linear weights
                    (out, in); a tied lm_head is not stored)
  state.safetensors inputs int32 (B,T), targets int32 (B,T), logits f32 (B,T,V), loss f32 (1), and
                    grad.<name> f32 for every tensor <name> of hf/model.safetensors, in its shape: the first
                    forward/backward on the initial weights, gradients before clipping
  trajectory.json   source, arch, config (hf/config.json as a dict), batch {B, T}, optimizer, steps, losses,
                    grad_norms_before_clip (one per step)
  final/            the model after --steps updates, save_pretrained

Models: LlamaForCausalLM, Qwen2ForCausalLM, Gemma3ForCausalLM (Gemma3TextConfig, model_type gemma3_text)
from transformers, float32 on the CPU, attn_implementation="eager", no dropout; arch "nanochat" is
reference/nanochat_model.py. The loss is the mean cross-entropy over all B*T positions; inputs and targets
are random tokens. Each of --steps steps runs forward/backward on the same batch, records the global
gradient norm before clipping (torch.nn.utils.clip_grad_norm_ to --grad-clip), then takes a torch AdamW
step (bias-corrected; weight decay only on parameters with 2 or more dimensions).

After the default init every norm weight and bias is moved away from its default, so that a missing or
misplaced one shows: norm weights of the x*w kind (Llama, Qwen2) become 1 + 0.1*randn, Gemma's (1 + w) kind
(stored default 0) 0.1*randn, biases 0.02*randn. No config has a pad token: nn.Embedding(padding_idx=...)
would zero that row's gradient from the embedding lookup, which an ordinary implementation does not do.

Example:
  python3 reference/make_arch_fixture.py --arch llama --out /tmp/llama --layers 3 --hidden 48 --heads 6 \\
      --kv-heads 2 --head-dim 8 --intermediate 112 --vocab 300 --max-seq 32 --batch 3 --seq 24 --seed 1
"""

import argparse
import copy
import inspect
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nanochat_model  # noqa: E402
from fixture_common import add_optimizer_args, adamw_trajectory, optimizer_record, publish_dir, save_hf  # noqa: E402

ARCHS = ["llama", "qwen2", "gemma3", "nanochat"]
DEFAULT_EPS = {"llama": 1e-5, "qwen2": 1e-6, "gemma3": 1e-6, "nanochat": 1e-6}
DEFAULT_THETA = {"llama": 10000.0, "qwen2": 10000.0, "gemma3": 1_000_000.0, "nanochat": 10000.0}
LAYER_TYPE_NAMES = {"sliding": "sliding_attention", "sliding_attention": "sliding_attention",
                    "full": "full_attention", "full_attention": "full_attention"}


def uses_rope_parameters(config_cls) -> bool:
    """transformers >= 5 spells RoPE settings as rope_parameters={...}; older versions as rope_theta=..."""
    try:
        return "rope_parameters" in inspect.signature(config_cls).parameters or \
            "rope_parameters" in getattr(config_cls, "__dataclass_fields__", {})
    except (TypeError, ValueError):
        return False


def hf_config(args):
    """The transformers config for llama / qwen2 / gemma3."""
    common = dict(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim,
        max_position_embeddings=args.max_seq,
        initializer_range=args.init_std,
        rms_norm_eps=args.rms_eps,
        tie_word_embeddings=args.tied,
        attention_dropout=0.0,
        pad_token_id=None,
    )
    theta = args.rope_theta
    if args.arch == "llama":
        cls = transformers.LlamaConfig
        extra = dict(hidden_act="silu", attention_bias=False, mlp_bias=False)
    elif args.arch == "qwen2":
        cls = transformers.Qwen2Config
        extra = dict(hidden_act="silu", use_sliding_window=False)  # q/k/v biases are always on in Qwen2
    else:
        cls = transformers.Gemma3TextConfig
        extra = dict(hidden_activation="gelu_pytorch_tanh", attention_bias=False,
                     query_pre_attn_scalar=args.query_pre_attn_scalar, sliding_window=args.sliding_window,
                     layer_types=args.layer_types, final_logit_softcapping=args.final_softcap,
                     attn_logit_softcapping=None)
    if uses_rope_parameters(cls):
        if args.arch == "gemma3":
            extra["rope_parameters"] = {
                "full_attention": {"rope_type": "default", "rope_theta": theta},
                "sliding_attention": {"rope_type": "default", "rope_theta": args.rope_local_theta},
            }
        else:
            extra["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    else:  # transformers 4.x
        extra["rope_theta"] = theta
        if args.arch == "gemma3":
            extra["rope_local_base_freq"] = args.rope_local_theta
    if args.arch != "gemma3" and args.final_softcap is not None:
        raise SystemExit(f"--final-softcap is not supported by {args.arch} in transformers")
    config = cls(**common, **extra)
    config._attn_implementation = "eager"  # plain softmax(q k^T * scale + mask) v in torch ops
    return config


def build_model(args):
    """A seeded, randomly initialised model with perturbed norm weights and biases."""
    torch.manual_seed(args.seed)
    if args.arch == "nanochat":
        cfg = nanochat_model.NanochatConfig(
            vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
            num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
            intermediate_size=args.intermediate, max_position_embeddings=args.max_seq,
            rope_theta=args.rope_theta, rms_norm_eps=args.rms_eps, final_logit_softcapping=args.final_softcap,
            tie_word_embeddings=False)
        model = nanochat_model.NanochatForCausalLM(cfg).to(torch.float32)
        model.init_weights(std=args.init_std, head_std=args.head_std)
        return model.eval()

    config = hf_config(args)
    cls = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
           "gemma3": transformers.Gemma3ForCausalLM}[args.arch]
    model = cls(config).to(torch.float32)
    model.eval()  # no dropout anyway (all p = 0)
    if args.head_std is not None:
        if args.tied:
            raise SystemExit("--head-std needs an untied lm_head")
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, args.head_std)

    # Perturb every norm weight and bias away from its default.
    norm_params = set()
    for mname, module in model.named_modules():
        if "RMSNorm" in type(module).__name__:
            norm_params.add(f"{mname}.weight")
    n_norm = n_bias = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in norm_params:
                if args.arch == "gemma3":  # (1 + w) norms, stored default 0
                    assert torch.all(p == 0), name
                    p.copy_(0.1 * torch.randn_like(p))
                else:  # x * w norms, default 1
                    assert torch.all(p == 1), name
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                n_norm += 1
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn_like(p))
                n_bias += 1
    L = args.layers
    expected_norms = {"llama": 2 * L + 1, "qwen2": 2 * L + 1, "gemma3": 6 * L + 1}[args.arch]
    expected_biases = 3 * L if args.arch == "qwen2" else 0
    assert n_norm == expected_norms, f"perturbed {n_norm} norm weights, expected {expected_norms}"
    assert n_bias == expected_biases, f"perturbed {n_bias} biases, expected {expected_biases}"
    if args.tied:
        assert model.lm_head.weight is model.model.embed_tokens.weight, "lm_head must be tied"
    else:
        assert model.lm_head.weight is not model.model.embed_tokens.weight
    return model


def save_model(model, path):
    """save_pretrained as safetensors; only config.json + model.safetensors are kept."""
    if isinstance(model, nanochat_model.NanochatForCausalLM):
        nanochat_model.save_pretrained(model, path)
        assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"], os.listdir(path)
    else:
        save_hf(model, path)


def loss_fn(model, x, y):
    logits = model(input_ids=x, use_cache=False).logits  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    return logits, loss


def add_shape_args(ap):
    """The output folder, the model's shape, the batch and the seed (make_lora_fixture.py takes them too)."""
    ap.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--hidden", type=int, required=True, help="C (hidden_size)")
    ap.add_argument("--heads", type=int, required=True, help="query heads")
    ap.add_argument("--kv-heads", type=int, help="key/value heads (default: --heads)")
    ap.add_argument("--head-dim", type=int, help="default: hidden / heads")
    ap.add_argument("--intermediate", type=int, required=True, help="MLP width")
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--max-seq", type=int, required=True, help="max_position_embeddings")
    ap.add_argument("--batch", type=int, required=True, help="B")
    ap.add_argument("--seq", type=int, required=True, help="T (<= max-seq)")
    ap.add_argument("--seed", type=int, required=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--arch", required=True, choices=ARCHS)
    add_shape_args(ap)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--init-std", type=float, default=0.08,
                    help="std of the normal init of matrices and embeddings (HF initializer_range)")
    ap.add_argument("--head-std", type=float, help="std of an untied lm_head's init (default: --init-std)")
    ap.add_argument("--rms-eps", type=float, help="RMSNorm eps (default: llama 1e-5, others 1e-6)")
    ap.add_argument("--tied", action="store_true", help="tie lm_head to the embedding")
    ap.add_argument("--qkv-bias", action="store_true",
                    help="q/k/v projection biases: qwen2 only, where they are always present (required there)")
    ap.add_argument("--sliding-window", type=int, help="gemma3: sliding_window")
    ap.add_argument("--layer-types", help="gemma3: comma list of sliding|full per layer")
    ap.add_argument("--query-pre-attn-scalar", type=float, help="gemma3: attention scale is this**-0.5")
    ap.add_argument("--final-softcap", type=float, help="final_logit_softcapping (gemma3, nanochat)")
    ap.add_argument("--rope-theta", type=float, help="RoPE theta (gemma3: of the full-attention layers)")
    ap.add_argument("--rope-local-theta", type=float, default=10000.0,
                    help="gemma3: RoPE theta of the sliding layers (rope_local_base_freq)")
    add_optimizer_args(ap, lr=1e-3)
    args = ap.parse_args(argv)

    args.kv_heads = args.kv_heads or args.heads
    args.head_dim = args.head_dim or args.hidden // args.heads
    if args.rms_eps is None:
        args.rms_eps = DEFAULT_EPS[args.arch]
    if args.rope_theta is None:
        args.rope_theta = DEFAULT_THETA[args.arch]
    if args.seq > args.max_seq:
        ap.error("--seq must be <= --max-seq")
    if args.heads % args.kv_heads:
        ap.error("--heads must be a multiple of --kv-heads")
    if args.arch == "qwen2" and not args.qkv_bias:
        ap.error("Qwen2 always has q/k/v biases: pass --qkv-bias")
    if args.arch != "qwen2" and args.qkv_bias:
        ap.error("--qkv-bias: only qwen2 has q/k/v biases")
    if args.arch == "nanochat" and args.tied:
        ap.error("nanochat's lm_head is never tied")
    gemma_only = [args.sliding_window, args.layer_types, args.query_pre_attn_scalar]
    if args.arch != "gemma3" and any(v is not None for v in gemma_only):
        ap.error("--sliding-window, --layer-types and --query-pre-attn-scalar are gemma3 options")
    if args.arch == "gemma3":
        if args.query_pre_attn_scalar is None:
            args.query_pre_attn_scalar = float(args.head_dim)
        if args.query_pre_attn_scalar == int(args.query_pre_attn_scalar):
            args.query_pre_attn_scalar = int(args.query_pre_attn_scalar)  # the config field is an int
        if args.layer_types is None:
            args.layer_types = ["full_attention"] * args.layers
        else:
            args.layer_types = [LAYER_TYPE_NAMES[t.strip()] for t in args.layer_types.split(",")]
        if len(args.layer_types) != args.layers:
            ap.error("--layer-types needs one entry per layer")
        if "sliding_attention" in args.layer_types and args.sliding_window is None:
            ap.error("sliding layers need --sliding-window")
        if args.sliding_window is None:
            args.sliding_window = args.max_seq
    return args


def main(argv=None):
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fewer sources of run-to-run variation in float32 sums

    B, T, V = args.batch, args.seq, args.vocab
    model = build_model(args)
    initial_model = copy.deepcopy(model)  # untouched, for hf/ (deepcopy keeps a tied lm_head tied)

    gen = torch.Generator().manual_seed(args.seed + 1_000_000)
    x = torch.randint(0, V, (B, T), generator=gen)
    y = torch.randint(0, V, (B, T), generator=gen)

    def report_softcap(logits, loss):
        if args.arch in ("gemma3", "nanochat") and args.final_softcap is not None:
            cap = args.final_softcap
            raw = cap * torch.atanh((logits.detach().double() / cap).clamp(-1 + 1e-12, 1 - 1e-12))
            print(f"max |logit| {logits.abs().max().item():.3f}; the softcap moves logits by up to "
                  f"{(raw - logits.double()).abs().max().item():.4f}")

    # fixture_common.py: AdamW, weight decay on the >= 2-D parameters; a tied embedding/lm_head counts once.
    losses, norms, logits, loss, grads = adamw_trajectory(model, loss_fn, x, y, args, on_step0=report_softcap)
    state = (logits, loss, grads)

    if args.arch == "nanochat":
        source = (f"reference/nanochat_model.py NanochatForCausalLM, torch {torch.__version__} AdamW, "
                  f"float32 on CPU; made by reference/make_arch_fixture.py --seed {args.seed}")
    else:
        source = (f"transformers {transformers.__version__} {type(model).__name__} (eager attention), "
                  f"torch {torch.__version__} AdamW, float32 on CPU; "
                  f"made by reference/make_arch_fixture.py --seed {args.seed}")

    with publish_dir(args.out) as tmp:  # written beside --out, then swapped in
        save_model(initial_model, os.path.join(tmp, "hf"))
        save_model(model, os.path.join(tmp, "final"))
        with open(os.path.join(tmp, "hf", "config.json")) as f:
            config_dict = json.load(f)
        with safe_open(os.path.join(tmp, "hf", "model.safetensors"), "pt") as f:
            stored = list(f.keys())

        logits, loss, grads = state
        assert set(stored) == set(grads), (sorted(set(stored) ^ set(grads)))
        tensors = {
            "inputs": x.to(torch.int32).contiguous(),
            "targets": y.to(torch.int32).contiguous(),
            "logits": logits.to(torch.float32).contiguous(),
            "loss": loss.reshape(1).to(torch.float32).contiguous(),
        }
        for name in sorted(stored):
            tensors["grad." + name] = grads[name].to(torch.float32).contiguous()
        save_file(tensors, os.path.join(tmp, "state.safetensors"), metadata={"format": "pt"})

        trajectory = {
            "source": source,
            "arch": args.arch,
            "config": config_dict,
            "batch": {"B": B, "T": T},
            "optimizer": optimizer_record(
                args, "parameters with 2 or more dimensions",
                ("same batch every step; clip the global grad norm (over all parameters, a tied "
                 "embedding once) to grad_clip before each update (torch clip_grad_norm_: scale "
                 "grad_clip/(norm+1e-6) when below 1); bias-corrected AdamW, decoupled decay "
                 "lr*wd*param")),
            "steps": args.steps,
            "losses": losses,
            "grad_norms_before_clip": norms,
        }
        with open(os.path.join(tmp, "trajectory.json"), "w") as f:
            json.dump(trajectory, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
