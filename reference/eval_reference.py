#!/usr/bin/env python3
"""Scores evaluation tasks (tasks/README.md's JSONL format) with Hugging Face transformers, independently of the
Swift code, so `llm eval`'s scoring can be checked against it example by example.

It renders the same prompts by the rules tasks/README.md states (few-shot examples drawn with SplitMix64, nanochat's
CORE prompt layout and its multiple-choice chat question), tokenizes with the model's own Hugging Face tokenizer,
runs the whole sequence through the model in float32, and scores:
  multiple_choice / schema   the option whose scored tokens have the lowest mean loss
  language_modeling          right if the argmax at every continuation position is the continuation's token
  chat_choice                the letter with the highest logit after the chat template's generation prompt
  chat_answer                greedy reply; the number after the last "####", else its last number, equal to the answer

    python3 reference/eval_reference.py --model HF_FOLDER --tasks tasks/*.jsonl --json out.json
    python3 reference/eval_reference.py --model F.gguf --tasks tasks/capitals.jsonl --limit 20
    python3 reference/eval_reference.py --model HF_FOLDER --tasks T.jsonl --compare llm-eval.json

--compare reads `llm eval --json` output and checks every example: mean losses within --atol, the same choice
wherever the two best options are further apart than --atol, the same reply for chat_answer. Exit status 1 on a
mismatch.
"""
import argparse
import json
import math
import os
import re
import sys

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def fewshot_indices(index, count, k):
    if k == 0:
        return []
    others = [i for i in range(count) if i != index]
    rng = SplitMix64(1234 + index)
    for j in range(k):
        r = j + rng.next() % (len(others) - j)
        others[j], others[r] = others[r], others[j]
    return others[:k]


def read_task(path):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    header, examples = lines[0], lines[1:]
    return header, examples


def texts_for(kind, e, shots, d):
    if kind == "multiple_choice":
        prefix = "".join(s["query"] + d + s["choices"][s["gold"]] + "\n\n" for s in shots)
        return [prefix + e["query"] + d + c for c in e["choices"]]
    if kind == "schema":
        prefix = "".join(s["context_options"][s["gold"]] + d + s["continuation"] + "\n\n" for s in shots)
        return [prefix + c + d + e["continuation"] for c in e["context_options"]]
    if kind == "language_modeling":
        prefix = "".join(s["context"].strip() + d + s["continuation"] + "\n\n" for s in shots)
        without = prefix + e["context"].strip() + d
        return [without.strip(), without + e["continuation"]]
    raise ValueError(kind)


def common_length(seqs, from_end):
    shortest = min(len(s) for s in seqs)
    for i in range(shortest):
        tok = seqs[0][-1 - i] if from_end else seqs[0][i]
        if any((s[-1 - i] if from_end else s[i]) != tok for s in seqs[1:]):
            return i
    return shortest


def spans_for(kind, encoded, max_len):
    if kind == "multiple_choice":
        shortest = min(len(s) for s in encoded)
        start = min(common_length(encoded, False), shortest - 1)
        spans = [(s, start, len(s)) for s in encoded]
    elif kind == "schema":
        shortest = min(len(s) for s in encoded)
        suffix = max(1, min(common_length(encoded, True), shortest - 1))
        spans = [(s, len(s) - suffix, len(s)) for s in encoded]
    else:
        with_ = encoded[1]
        start = min(common_length([encoded[0], with_], False), len(with_) - 1)
        spans = [(with_, start, len(with_))]
    out = []
    for tokens, start, end in spans:
        if len(tokens) > max_len:
            crop = len(tokens) - max_len
            tokens, start, end = tokens[crop:], start - crop, end - crop
        out.append((tokens, max(1, min(start, end - 1)), end))
    return out


def chat_question(question, choices):
    letters = [chr(65 + i) for i in range(len(choices))]
    text = f"Multiple Choice question: {question}\n"
    text += "".join(f"- {c}={l}\n" for l, c in zip(letters, choices))
    return text + "\nRespond only with the letter of the correct answer."


NUMBER = re.compile(r"-?[0-9][0-9,]*(?:\.[0-9]+)?")


def extract_answer(reply):
    marker = reply.rfind("####")
    if marker >= 0:
        found = NUMBER.findall(reply[marker + 4:])
        return found[0].replace(",", "") if found else None
    found = NUMBER.findall(reply)
    return found[-1].replace(",", "") if found else None


def answers_match(found, expected):
    e = expected.replace(",", "").strip()
    if found == e:
        return True
    try:
        return float(found) == float(e)
    except ValueError:
        return False


class Scorer:
    def __init__(self, model_path, max_len=None, tokenizer=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.torch = torch
        kwargs = {}
        folder = model_path
        if model_path.endswith(".gguf"):
            folder, kwargs["gguf_file"] = os.path.dirname(model_path) or ".", os.path.basename(model_path)
        self.tok = AutoTokenizer.from_pretrained(folder, **kwargs)
        if tokenizer:
            # transformers' conversion of a GGUF tokenizer is not always exact (SmolLM2's loses "\n\n" merges
            # before digits): score with the model's own tokenizer.json, keeping the GGUF's chat template.
            template = self.tok.chat_template
            self.tok = AutoTokenizer.from_pretrained(tokenizer)
            self.tok.chat_template = self.tok.chat_template or template
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs).eval()
        cfg = self.model.config
        self.max_len = max_len or getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions")
        # The first token of a raw-text prompt: BOS when the tokenizer adds one, else <|endoftext|>, <|bos|>.
        ids = self.tok("a").input_ids
        vocab = self.tok.get_vocab()
        if self.tok.bos_token_id is not None and ids and ids[0] == self.tok.bos_token_id:
            self.first = self.tok.bos_token_id
        elif "<|endoftext|>" in vocab:
            self.first = vocab["<|endoftext|>"]
        elif "<|bos|>" in vocab:
            self.first = vocab["<|bos|>"]
        else:
            self.first = self.tok.bos_token_id

    def encode(self, text):
        return self.tok(text, add_special_tokens=False).input_ids

    def logprobs(self, tokens):
        with self.torch.no_grad():
            logits = self.model(self.torch.tensor([tokens])).logits[0].double()
        return self.torch.log_softmax(logits, dim=-1), logits

    def score_text(self, kind, e, shots, delimiter):
        texts = texts_for(kind, e, shots, delimiter)
        head = [self.first] if self.first is not None else []
        encoded = [head + self.encode(t) for t in texts]
        losses, greedy = [], []
        for tokens, start, end in spans_for(kind, encoded, self.max_len):
            lp, logits = self.logprobs(tokens)
            nll = -sum(lp[j - 1, tokens[j]].item() for j in range(start, end))
            losses.append(nll / (end - start))
            greedy.append(all(int(logits[j - 1].argmax()) == tokens[j] for j in range(start, end)))
        if kind == "language_modeling":
            return {"correct": greedy[0], "losses": losses}
        best = losses.index(min(losses))
        return {"correct": best == e["gold"], "predicted": best, "losses": losses}

    def chat_prompt(self, question):
        text = self.tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                            add_generation_prompt=True)
        return self.encode(text)

    def score_chat_choice(self, e):
        letters = [chr(65 + i) for i in range(len(e["choices"]))]
        ids = [self.encode(l) for l in letters]
        assert all(len(i) == 1 for i in ids), "each letter must be one token"
        prompt = self.chat_prompt(chat_question(e["question"], e["choices"]))
        _, logits = self.logprobs(prompt)
        last = logits[-1]
        best = 0
        for k in range(len(ids)):
            if last[ids[k][0]] > last[ids[best][0]]:
                best = k
        return {"correct": best == e["gold"], "predicted": best}

    def score_chat_answer(self, e, max_tokens, stop_ids):
        prompt = self.chat_prompt(e["question"])
        tokens = list(prompt)
        generated = []
        with self.torch.no_grad():
            for _ in range(max_tokens):
                if len(tokens) >= self.max_len:
                    break
                logits = self.model(self.torch.tensor([tokens])).logits[0, -1]
                nxt = int(logits.argmax())
                if nxt in stop_ids:
                    break
                tokens.append(nxt)
                generated.append(nxt)
        reply = self.tok.decode(generated)
        found = extract_answer(reply)
        return {"correct": found is not None and answers_match(found, e["answer"]), "reply": reply, "answer": found}


def evaluate(scorer, path, limit):
    header, examples = read_task(path)
    kind = header["kind"]
    n = min(len(examples), limit or len(examples))
    details = []
    stop_ids = set()
    if kind == "chat_answer":
        for t in [scorer.tok.eos_token_id] + [scorer.tok.convert_tokens_to_ids(s) for s in ("<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|endoftext|>")]:
            if isinstance(t, int) and t != scorer.tok.unk_token_id:
                stop_ids.add(t)
        gen = getattr(scorer.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        stop_ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for i in range(n):
        e = examples[i]
        if kind in ("multiple_choice", "schema", "language_modeling"):
            shots = [examples[j] for j in fewshot_indices(i, len(examples), header.get("fewshot", 0))]
            r = scorer.score_text(kind, e, shots, header.get("delimiter", " "))
        elif kind == "chat_choice":
            r = scorer.score_chat_choice(e)
        else:
            r = scorer.score_chat_answer(e, header.get("max_tokens", 256), stop_ids)
        r["index"] = i
        details.append(r)
    correct = sum(d["correct"] for d in details)
    return {"task": header["task"], "kind": kind, "examples": n, "correct": correct, "accuracy": correct / n,
            "details": details}


def compare(ours, theirs, atol):
    """Returns a list of mismatches between an `llm eval --json` report and this script's."""
    problems = []
    by_name = {t["task"]: t for t in ours["tasks"]}
    for ref in theirs:
        mine = by_name.get(ref["task"])
        if mine is None:
            problems.append(f"{ref['task']}: missing from llm eval's report")
            continue
        for a, b in zip(mine["details"], ref["details"]):
            where = f"{ref['task']} example {b['index']}"
            if "losses" in b:
                for x, y in zip(a["losses"], b["losses"]):
                    if not math.isclose(x, y, abs_tol=atol):
                        problems.append(f"{where}: mean loss {x:.6f} vs {y:.6f}")
                ordered = sorted(b["losses"])
                clear = len(ordered) < 2 or ordered[1] - ordered[0] > atol
                if "predicted" in b and clear and a.get("predicted") != b["predicted"]:
                    problems.append(f"{where}: chose {a.get('predicted')} vs {b['predicted']}")
                if ref["kind"] == "language_modeling" and a["correct"] != b["correct"]:
                    problems.append(f"{where}: greedy match {a['correct']} vs {b['correct']}")
            elif ref["kind"] == "chat_choice" and a.get("predicted") != b["predicted"]:
                problems.append(f"{where}: chose {a.get('predicted')} vs {b['predicted']}")
            elif ref["kind"] == "chat_answer" and a.get("reply") != b["reply"]:
                problems.append(f"{where}: reply {a.get('reply')!r} vs {b['reply']!r}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a Hugging Face folder or a GGUF file (dequantized by transformers)")
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--tokenizer", help="a folder with the model's own tokenizer.json (instead of the GGUF's, converted)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--compare", help="an `llm eval --json` report to check against")
    ap.add_argument("--atol", type=float, default=2e-4, help="mean-loss tolerance for --compare")
    args = ap.parse_args()
    scorer = Scorer(args.model, tokenizer=args.tokenizer)
    results = [evaluate(scorer, p, args.limit) for p in args.tasks]
    for r in results:
        print(f"{r['task']:<20} {r['kind']:<18} {r['correct']}/{r['examples']} = {r['accuracy']:.4f}")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    if args.compare:
        with open(args.compare) as f:
            ours = json.load(f)
        problems = compare(ours, results, args.atol)
        checked = sum(r["examples"] for r in results)
        if problems:
            print(f"MISMATCH: {len(problems)} problem(s) over {checked} examples", file=sys.stderr)
            for p in problems[:30]:
                print("  " + p, file=sys.stderr)
            sys.exit(1)
        print(f"OK: llm eval agrees with transformers on {checked} examples (mean losses within {args.atol})")


if __name__ == "__main__":
    main()
