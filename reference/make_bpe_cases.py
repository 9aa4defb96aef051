#!/usr/bin/env python3
"""Reference for the Swift BPE trainer (`BPETrainer`): a naive byte-level BPE trainer, written from the
definition with no shortcuts, trains on a seeded synthetic text and records the tokens it learns.

  python3 reference/make_bpe_cases.py          # writes Tests/LLMTests/Fixtures/tokenizer/bpe-*.{txt,json}

The algorithm: split the text with the pattern (Python's `regex` module, which supports \\p{L} and
possessive quantifiers), count each distinct piece, then repeatedly count every adjacent token pair
(weighted by piece counts), merge the most frequent pair everywhere (left to right, non-overlapping), and
append the new token. Ties go to the smaller (left id, right id) pair, the rule the Swift trainer documents.
"""
import json, os, random
import regex

PATTERNS = {
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""",
}


def synthetic_text(seed=7, words=6000):
    """Seeded text with repeated words, numbers, punctuation, contractions, accents, CJK and emoji."""
    rng = random.Random(seed)
    vocab = ["the", "king", "queen", "shall", "speak", "thou", "art", "noble", "love", "war", "crown", "night",
             "day", "sword", "heart", "it's", "we'll", "they're", "I'VE", "don't", "café", "naïve", "Ωmega",
             "город", "東京", "🙂", "x42", "1999", "3.14", "hello", "world", "tokenizer", "merge", "pair"]
    out = []
    for i in range(words):
        r = rng.random()
        if r < 0.6:
            w = rng.choice(vocab)
        elif r < 0.9:  # made-up words give many distinct pairs and many ties
            w = "".join(rng.choice("aeioustrnlkmpdgbéü") for _ in range(rng.randint(1, 9)))
        else:
            w = str(rng.randint(0, 10**rng.randint(1, 6)))
        out.append(w)
        r = rng.random()
        out.append("\n" if r < 0.05 else ", " if r < 0.12 else ". " if r < 0.17 else "  " if r < 0.19 else " ")
    return "".join(out)


def train(text, pattern, merges):
    counts = {}
    for piece in regex.findall(PATTERNS[pattern], text):
        key = tuple(piece.encode("utf-8"))
        counts[key] = counts.get(key, 0) + 1
    words = [(list(k), c) for k, c in counts.items()]
    tokens = [bytes([b]) for b in range(256)]
    for _ in range(merges):
        pairs = {}
        for w, c in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], -p[0], -p[1]))
        new = len(tokens)
        tokens.append(tokens[best[0]] + tokens[best[1]])
        for i, (w, c) in enumerate(words):
            j, merged = 0, []
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    merged.append(new); j += 2
                else:
                    merged.append(w[j]); j += 1
            words[i] = (merged, c)
    return tokens


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LLMTests", "Fixtures", "tokenizer")
    os.makedirs(root, exist_ok=True)
    text = synthetic_text()
    with open(os.path.join(root, "bpe-train.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    cases = {}
    for pattern in PATTERNS:
        tokens = train(text, pattern, merges=300)
        cases[pattern] = [list(t) for t in tokens[256:]]
    with open(os.path.join(root, "bpe-merges.json"), "w") as f:
        json.dump({"source": "reference/make_bpe_cases.py", "merges": 300, "tokens": cases}, f)
    print(f"wrote {len(text.encode())} bytes of text and 300 merges for {', '.join(PATTERNS)}")


if __name__ == "__main__":
    main()
