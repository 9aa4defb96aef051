#!/usr/bin/env python3
"""Converts public evaluation sets into `llm eval`'s task format (tasks/README.md), writing JSONL to stdout.

    python3 reference/convert_tasks.py hellaswag hellaswag_val.jsonl > hellaswag.jsonl
    python3 reference/convert_tasks.py arc ARC-Easy-Test.jsonl --name arc-easy > arc-easy.jsonl
    python3 reference/convert_tasks.py arc-chat ARC-Challenge-Test.jsonl > arc-challenge-chat.jsonl
    python3 reference/convert_tasks.py mmlu-chat mmlu_test.jsonl > mmlu-chat.jsonl
    python3 reference/convert_tasks.py gsm8k gsm8k_test.jsonl > gsm8k.jsonl

Inputs are the sets' own JSONL files (this project ships none of them):
  hellaswag   {"ctx": …, "endings": [4 strings], "label": i}            → multiple_choice (CORE: 10-shot, " ")
  arc         {"question": {"stem": …, "choices": [{"text", "label"}]}, "answerKey": "B"}
                                                                        → multiple_choice ("Question: …\\nAnswer: ")
  arc-chat    the same                                                  → chat_choice
  mmlu-chat   {"question": …, "choices": [4 strings], "answer": i}       → chat_choice
  gsm8k       {"question": …, "answer": "…#### 72"}                     → chat_answer (the number after ####)
"""
import argparse
import json
import re
import sys


def rows(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def hellaswag(path, args):
    header = {"task": args.name or "hellaswag", "kind": "multiple_choice", "fewshot": args.fewshot, "delimiter": " "}
    out = []
    for r in rows(path):
        # HellaSwag's ctx ends mid-sentence; its endings continue it after a space.
        out.append({"query": r["ctx"], "choices": r["endings"], "gold": int(r["label"])})
    return header, out


def arc_items(path):
    for r in rows(path):
        q = r["question"]
        labels = [c["label"] for c in q["choices"]]
        yield q["stem"], [c["text"] for c in q["choices"]], labels.index(r["answerKey"])


def arc(path, args):
    header = {"task": args.name or "arc", "kind": "multiple_choice", "fewshot": args.fewshot, "delimiter": "\nAnswer: "}
    return header, [{"query": "Question: " + s, "choices": c, "gold": g} for s, c, g in arc_items(path)]


def arc_chat(path, args):
    header = {"task": args.name or "arc-chat", "kind": "chat_choice"}
    return header, [{"question": s, "choices": c, "gold": g} for s, c, g in arc_items(path)]


def mmlu_chat(path, args):
    header = {"task": args.name or "mmlu-chat", "kind": "chat_choice"}
    return header, [{"question": r["question"], "choices": r["choices"], "gold": int(r["answer"])} for r in rows(path)]


def gsm8k(path, args):
    header = {"task": args.name or "gsm8k", "kind": "chat_answer", "max_tokens": args.max_tokens}
    out = []
    for r in rows(path):
        m = re.search(r"####\s*(-?[0-9.,]+)", r["answer"])
        if not m:
            sys.exit(f"{path}: an answer without '#### N': {r['answer'][-80:]!r}")
        out.append({"question": r["question"], "answer": m.group(1).replace(",", "")})
    return header, out


CONVERTERS = {"hellaswag": hellaswag, "arc": arc, "arc-chat": arc_chat, "mmlu-chat": mmlu_chat, "gsm8k": gsm8k}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", choices=sorted(CONVERTERS))
    ap.add_argument("input")
    ap.add_argument("--name", help="the task's name (default: the set's)")
    ap.add_argument("--fewshot", type=int, default=None, help="few-shot examples (default: 10 HellaSwag, 25 ARC as CORE)")
    ap.add_argument("--max-tokens", type=int, default=512, help="gsm8k: the longest reply")
    args = ap.parse_args()
    if args.fewshot is None:
        args.fewshot = {"hellaswag": 10, "arc": 25}.get(args.set, 0)
    header, examples = CONVERTERS[args.set](args.input, args)
    if not examples:
        sys.exit(f"{args.input}: no examples")
    print(json.dumps(header, ensure_ascii=False))
    for e in examples:
        print(json.dumps(e, ensure_ascii=False))


if __name__ == "__main__":
    main()
