#!/usr/bin/env python3
"""Writes Tests/LLMTests/Fixtures/eval/: a tiny Llama (random weights, seed 7) with the llama3-style test tokenizer
and Llama 3's chat template, the first examples of each shipped task (tasks/*.jsonl), and expected.json: every
example scored by reference/eval_reference.py with transformers. EvalTests runs `Evaluator` on the same model and
tasks and compares example by example.

    python3 reference/make_eval_fixture.py      # needs torch and transformers (reference/requirements.txt)
"""
import json
import os
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
import eval_reference  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "LLMTests", "Fixtures", "eval")
TOKENIZER = os.path.join(ROOT, "Tests", "LLMTests", "Fixtures", "tokenizers", "llama3-style", "tokenizer.json")
TEMPLATE = os.path.join(ROOT, "Tests", "LLMTests", "Fixtures", "chat-templates", "meta-llama-Meta-Llama-3-8B-Instruct.jinja")
EXAMPLES = {"chat_answer": 3}  # examples kept per task kind (default 6)


def main():
    tmp = OUT + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "model"))
    os.makedirs(os.path.join(tmp, "tasks"))
    torch.manual_seed(7)
    config = LlamaConfig(vocab_size=900, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, initializer_range=0.15,
                         bos_token_id=0, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(os.path.join(tmp, "model"), safe_serialization=True)
    shutil.copy(TOKENIZER, os.path.join(tmp, "model", "tokenizer.json"))
    with open(TEMPLATE) as f:
        template = f.read()
    with open(os.path.join(tmp, "model", "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": template,
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=1)
    tasks = []
    for name in sorted(os.listdir(os.path.join(ROOT, "tasks"))):
        if not name.endswith(".jsonl"):
            continue
        header, examples = eval_reference.read_task(os.path.join(ROOT, "tasks", name))
        keep = EXAMPLES.get(header["kind"], 6)
        path = os.path.join(tmp, "tasks", name)
        with open(path, "w", encoding="utf-8") as f:
            for row in [header] + examples[:keep]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        tasks.append(path)
    scorer = eval_reference.Scorer(os.path.join(tmp, "model"))
    results = [eval_reference.evaluate(scorer, p, None) for p in tasks]
    with open(os.path.join(tmp, "expected.json"), "w") as f:
        json.dump(results, f, indent=1)
    for r in results:
        print(f"{r['task']:<20} {r['correct']}/{r['examples']}")
    shutil.rmtree(OUT, ignore_errors=True)
    os.replace(tmp, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
