#!/usr/bin/env python3
"""PyTorch's side of `llm bench`: the same jobs on the same GPT-2 shapes, timed the same way, in fp32 on the CPU.

The model is Hugging Face's GPT2LMHeadModel (gelu_new, dropout 0, tied head) with random weights, in eager mode:
what `reference/make_fixture.py` checks the engine against. Each mode mirrors one of `llm bench`'s:

  train     forward, cross-entropy, backward, global-norm clip 1.0 and AdamW (lr 1e-4, betas (0.9, 0.95),
            eps 1e-8, weight decay 0.1 on tensors of two or more dimensions): milliseconds per step
  forward   the forward pass alone (no gradients): milliseconds per pass
  generate  a random --prompt-token prompt's forward pass into the KV cache, then greedy decoding of --new tokens
            with the cache (the first new token comes from the prompt's logits): tokens per second
  matmul    each of the model's matmul shapes at --batch × --seq rows (qkv, attproj, fc, fcproj, lm head), forward
            (out = inp·Wᵀ + b) and backward (dinp += dout·W, dW += doutᵀ·inp, db += Σ dout): GFLOP/s

Timings are medians of --steps runs after --warmup untimed ones, as in `llm bench`, whose defaults these are.
The last line is JSON with the keys `llm bench` prints for the same mode (plus "tool" and "torch"):
train and forward {"mode", "median_ms", "min", "max", "threads", "batch", "seq", "params", "tokens_per_s"};
generate {"mode", "tokens_per_s", "decode_tokens_per_s", "prefill_tokens_per_s", "threads", "prompt", "new",
"params"}; matmul {"mode", "gflops", "threads", "rows"}.

    pip install torch transformers                 # CPU torch is enough
    python3 reference/torch_gpt2_bench.py train --preset d12 --batch 4 --seq 64 --threads 2
    .build/release/llm bench train --preset d12 --batch 4 --seq 64 --threads 2

Run the two alternately, in the same session, and compare the ratios: on a shared machine absolute times drift.
One difference in shape: the LM head here has V = 50257 rows, `llm`'s Vp = 50304 (the vocabulary padded to a
multiple of 128, as llm.c does), 0.1% more work for `llm`; `matmul` times `llm`'s Vp, as `llm bench matmul` does.
"""
import argparse
import json
import os
import statistics
import sys
import time

PRESETS = {"d6": (6, 6, 384), "d12": (12, 12, 768), "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600)}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("mode", nargs="?", default="train", choices=["train", "forward", "generate", "matmul"])
    ap.add_argument("--preset", choices=sorted(PRESETS), help="llm.c's GPT-2 shapes (d12 is GPT-2 124M); "
                    "otherwise --layers, --heads, --channels")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--channels", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--max-seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4, help="batch size B (train, forward, matmul)")
    ap.add_argument("--seq", type=int, default=64, help="sequence length T (train, forward, matmul)")
    ap.add_argument("--prompt", type=int, default=16, help="generate: prompt tokens")
    ap.add_argument("--new", type=int, default=256, help="generate: new tokens")
    ap.add_argument("--steps", type=int, default=5, help="timed repetitions")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up repetitions")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    a = ap.parse_args()
    if a.preset:
        a.layers, a.heads, a.channels = PRESETS[a.preset]
    if min(a.layers, a.heads, a.channels, a.vocab, a.batch, a.seq, a.prompt, a.steps, a.threads) < 1 or a.warmup < 0:
        ap.error("sizes, --steps and --threads must be at least 1, --warmup at least 0")
    if a.channels % a.heads:
        ap.error(f"--channels {a.channels} is not a multiple of --heads {a.heads}")
    if a.mode in ("train", "forward") and a.seq > a.max_seq:
        ap.error(f"--seq {a.seq} exceeds --max-seq {a.max_seq}")
    if a.mode == "generate" and a.prompt + a.new > a.max_seq:
        ap.error(f"--prompt {a.prompt} + --new {a.new} must be at most --max-seq {a.max_seq}")
    return a


def main():
    a = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))  # before torch starts its pool
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {"tool": "torch", "torch": torch.__version__, "mode": a.mode}
    if a.mode == "matmul":
        out.update(bench_matmul(torch, a))
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=a.vocab, n_positions=a.max_seq, n_embd=a.channels, n_layer=a.layers,
                         n_head=a.heads, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                         attn_pdrop=0.0)
        model = GPT2LMHeadModel(cfg).float()
        params = sum(p.numel() for p in model.parameters())
        print(f"bench {a.mode}: torch {torch.__version__} GPT2LMHeadModel L={a.layers} H={a.heads} C={a.channels} "
              f"V={a.vocab}, {params} parameters, {torch.get_num_threads()} threads", file=sys.stderr)
        result = bench_generate(torch, model, a) if a.mode == "generate" else bench_step(torch, model, a)
        out.update(result, params=params)
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out))


def bench_step(torch, model, a):
    """A training step or a forward pass on one random batch of B×T tokens, as `llm bench train|forward`."""
    x = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    inputs, targets = x[:, :-1], x[:, 1:]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    model.train(a.mode == "train")
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if a.mode == "train":
            opt.zero_grad(set_to_none=True)
            logits = model(input_ids=inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        else:
            with torch.no_grad():
                model(input_ids=inputs)
        ms = (time.perf_counter() - t0) * 1e3
        print(f"{'warmup' if i < a.warmup else 'step'} {i + 1}: {ms:.1f} ms", file=sys.stderr)
        if i >= a.warmup:
            times.append(ms)
    median = statistics.median(times)
    tokens_per_s = a.batch * a.seq / (median / 1e3)
    print(f"median {median:.1f} ms (min {min(times):.1f}, max {max(times):.1f}), {tokens_per_s:.0f} tokens/s")
    return {"median_ms": median, "min": min(times), "max": max(times), "batch": a.batch, "seq": a.seq,
            "tokens_per_s": tokens_per_s}


def bench_generate(torch, model, a):
    """A random prompt's prefill, then greedy decoding with the KV cache, timed apart, as `llm bench generate`:
    tokens_per_s is all new tokens over the whole time, decode_tokens_per_s the new tokens after the first over
    the decoding time, prefill_tokens_per_s the prompt's tokens over the prefill time."""
    model.eval()
    prompt = torch.randint(0, a.vocab, (1, a.prompt))
    runs = []
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            result = model(input_ids=prompt, use_cache=True)
            t1 = time.perf_counter()
            past, token = result.past_key_values, result.logits[:, -1].argmax(-1, keepdim=True)
            for _ in range(max(a.new - 1, 0)):  # the first new token comes from the prefill's logits
                result = model(input_ids=token, past_key_values=past, use_cache=True)
                past, token = result.past_key_values, result.logits[:, -1].argmax(-1, keepdim=True)
            t2 = time.perf_counter()
            run = (a.new / (t2 - t0), a.prompt / (t1 - t0), (a.new - 1) / (t2 - t1) if a.new > 1 else 0.0)
            print(f"{'warmup' if i < a.warmup else 'run'} {i + 1}: prefill {run[1]:.1f} tokens/s ({t1 - t0:.3f} s), "
                  f"decode {run[2]:.2f} tokens/s", file=sys.stderr)
            if i >= a.warmup:
                runs.append(run)
    overall, prefill, decode = (statistics.median(r[k] for r in runs) for k in range(3))
    print(f"median decode {decode:.2f} tokens/s, prefill {prefill:.1f} tokens/s ({a.prompt}-token prompt, {a.new} new "
          f"tokens, greedy, KV cache)")
    return {"tokens_per_s": overall, "decode_tokens_per_s": decode, "prefill_tokens_per_s": prefill,
            "prompt": a.prompt, "new": a.new}


def bench_matmul(torch, a):
    """Each linear layer of the model and its LM head at N = B·T rows, forward and backward, as `llm bench
    matmul`: medians of --steps runs after --warmup, and a step's matmuls together (each layer's × L)."""
    C, N = a.channels, a.batch * a.seq
    padded_vocab = (a.vocab + 127) // 128 * 128
    shapes = [("qkv", C, 3 * C), ("attproj", C, C), ("fc", C, 4 * C), ("fcproj", 4 * C, C), ("lm head", C, padded_vocab)]
    print(f"matmul shapes at N={N}, {torch.get_num_threads()} threads, torch {torch.__version__} "
          f"(forward: 2·N·C·OC FLOPs; backward: 4·N·C·OC)")

    def median_ms(body):
        times = []
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            body()
            if i >= a.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    flops = seconds = 0.0
    for name, inC, outC in shapes:
        inp, w, b, dout = torch.randn(N, inC), torch.randn(outC, inC), torch.randn(outC), torch.randn(N, outC)
        dinp, dw, db = torch.zeros(N, inC), torch.zeros(outC, inC), torch.zeros(outC)
        out = torch.empty(N, outC)

        def backward():
            dinp.addmm_(dout, w)
            dw.addmm_(dout.t(), inp)
            db.add_(dout.sum(0))

        f = median_ms(lambda: torch.addmm(b, inp, w.t(), out=out))
        bw = median_ms(backward)
        work = N * inC * outC
        print(f"  {name:<8} {inC:5d} -> {outC:5d}   forward {f:7.2f} ms {2 * work / f / 1e6:6.1f} GFLOP/s   "
              f"backward {bw:7.2f} ms {4 * work / bw / 1e6:6.1f} GFLOP/s")
        weight = 1 if name == "lm head" else a.layers
        flops += weight * 6 * work
        seconds += weight * (f + bw) / 1e3
    print(f"all of a step's matmuls: {flops / seconds / 1e9:.1f} GFLOP/s")
    return {"gflops": round(flops / seconds / 1e9, 1), "rows": N}


if __name__ == "__main__":
    main()
