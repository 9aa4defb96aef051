"""Code shared by make_fixture.py (GPT-2, llm.c files) and make_arch_fixture.py (generic format).

  adamw_trajectory(model, loss_fn, x, y, args)  the optimizer run every fixture records: --steps AdamW steps
                                                 on one batch, with the first forward/backward kept
  add_optimizer_args(ap, lr), optimizer_record   the AdamW flags and trajectory.json's "optimizer"
  publish_dir(out)                               write a fixture folder into a temporary folder beside `out`,
                                                 then swap it in, so an interrupted run leaves no half-written
                                                 fixture behind

check_fixture.py and check_arch_fixture.py do not import this module: they redo the AdamW run by hand, so
that a mistake here cannot hide in the checks too.
"""

import contextlib
import os
import shutil
import tempfile

import torch


def add_optimizer_args(ap, lr):
    """The AdamW flags every fixture script takes (--lr's default is the script's)."""
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)


def optimizer_record(args, decay_applies_to, note):
    """trajectory.json's "optimizer": the AdamW settings, which tensors decay, and how a step runs."""
    return {
        "lr": args.lr,
        "beta1": args.beta1,
        "beta2": args.beta2,
        "eps": args.eps,
        "weight_decay": args.weight_decay,
        "grad_clip": args.grad_clip,
        "decay_applies_to": decay_applies_to,
        "note": note,
    }


def save_hf(model, path):
    """save_pretrained as safetensors; only config.json + model.safetensors are kept (generation_config.json,
    default sampling settings, is irrelevant to a fixture)."""
    model.save_pretrained(path, safe_serialization=True)
    gen_cfg = os.path.join(path, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"], os.listdir(path)


def adamw_trajectory(model, loss_fn, x, y, args, on_step0=None):
    """Train `model` for args.steps AdamW steps on the same batch (x, y); return what the fixture records.

    Each step: zero the gradients, `logits, loss = loss_fn(model, x, y)`, backward, clip the global gradient
    norm to args.grad_clip (torch.nn.utils.clip_grad_norm_, which returns the norm before clipping), then a
    torch AdamW step (lr, beta1, beta2, eps from args; bias-corrected, decoupled weight decay
    args.weight_decay on parameters with 2 or more dimensions only: embeddings and matmul weights, not
    biases or norm weights). Prints one line per step.

    Returns (losses, norms, step0_logits, step0_loss, step0_grads): the per-step losses and pre-clip gradient
    norms (Python floats), and the first forward/backward on the initial weights: logits, loss and a dict
    {parameter name: gradient} of copies taken before clipping (clip_grad_norm_ scales gradients in place).
    `on_step0(logits, loss)`, if given, is called right after that first backward (for extra printing).
    """
    # model.parameters() (and named_parameters()) yield a tied embedding/lm_head Parameter once, so it is
    # neither updated twice nor counted twice in the gradient norm.
    params = list(model.parameters())
    assert len(params) == len({id(p) for p in params})
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
    )

    losses, norms = [], []
    step0_logits = step0_loss = step0_grads = None
    for step in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        logits, loss = loss_fn(model, x, y)
        loss.backward()
        if step == 0:
            step0_logits, step0_loss = logits.detach().clone(), loss.detach().clone()
            step0_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
            if on_step0 is not None:
                on_step0(step0_logits, step0_loss)
        norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip)  # returns the norm before clipping
        optimizer.step()
        losses.append(loss.item())
        norms.append(norm.item())
        print(f"step {step + 1:2d}: loss {losses[-1]:.6f}  grad norm {norms[-1]:.6f}")
    return losses, norms, step0_logits, step0_loss, step0_grads


@contextlib.contextmanager
def publish_dir(out):
    """`with publish_dir(out) as tmp:` write the fixture's files into tmp; it then replaces the folder `out`.

    tmp is a new folder beside `out` (same file system, so the final os.rename is one step). When the block
    ends normally, every folder under tmp becomes 0755 and every file 0644 (mkdtemp makes a private 0700
    folder, safetensors private files), an existing `out` is removed, tmp is renamed to `out` and
    "wrote <out>" is printed. When the block raises (KeyboardInterrupt included), tmp is removed and `out`
    is left as it was.
    """
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".tmp-", dir=parent)
    try:
        yield tmp
        for root, dirs, files in os.walk(tmp):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out}")
