#!/usr/bin/env python3
"""Make the GPT-2 tokenizer parity cases: what tiktoken's `gpt2` encoding gives for a few hundred texts.

What: writes Tests/LLMTests/Fixtures/tokenizer/gpt2-cases.json, a JSON array of objects

    {"name": "whitespace/nbsp-run", "text": "...", "ids": [...], "ids_special": [...]}

  ids          enc.encode(text, disallowed_special=())   "<|endoftext|>" is ordinary text
  ids_special  enc.encode(text, allowed_special="all")   "<|endoftext|>" becomes token 50256

Why: the Swift GPT2Tokenizer (Sources/LLM/Tokenizer/) must produce exactly tiktoken's ids. Byte-level
BPE is easy to get almost right; these cases aim at the places where it goes wrong: the split regex
(\\p{L}, \\p{N}, \\s across many scripts, the `\\s+(?!\\S)` look-ahead, contractions, which are
case-sensitive), the merge order, multi-byte UTF-8 pieces, and the special token.

How: the encoding is built OFFLINE from the two files OpenAI published for GPT-2 (encoder.json and
vocab.bpe, in --gpt2-dir). Their SHA-256 are checked against the hashes tiktoken itself pins for its
`gpt2` encoding, so the result is tiktoken's gpt2 without downloading anything.

    pip install tiktoken==0.14.0
    python3 reference/make_tokenizer_cases.py            # --gpt2-dir defaults to the bundled Sources/LLM/Resources/gpt2
    python3 reference/make_tokenizer_cases.py --gpt2-dir /path/to/gpt2 --out /tmp/cases.json

The output is deterministic (fixed seeds). Besides the gpt2 split pattern used here (GPT-2's original
regex), every case is also encoded with tiktoken's own r50k pattern (possessive quantifiers, an extra
`\\s++$` branch) and the script stops if the two ever disagree.

Unicode versions: the split regex classifies code points with Unicode tables, and tiktoken 0.14.0's
regex engine (regex-syntax 0.8.11) knows Unicode 16 while Swift 6.3 knows Unicode 17. Code points
assigned in Unicode 17 (for example CJK Extension J, U+323B0..) are letters to Swift but unassigned
"other" to tiktoken, so the tokenizations differ. The cases avoid them: hand-written texts only use old
characters, and the random code points are either assigned in tiktoken's tables, or unassigned and in
planes 4-13 or noncharacters, which no Unicode version assigns.

Shakespeare lines are sampled from --shakespeare (default ../shared/data/tinyshakespeare.txt); only a
few dozen short lines end up in the cases.
"""

import argparse
import hashlib
import json
import os
import random
import sys

import tiktoken
import tiktoken.load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# GPT-2's split regex (openai/gpt-2 encoder.py, contractions written as one group).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# tiktoken's r50k/gpt2 pattern: same language, written for speed.
TIKTOKEN_R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 50256

# The hashes tiktoken_ext/openai_public.py pins for the files it would download.
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


def load_gpt2(gpt2_dir, pat_str=GPT2_PATTERN):
    """tiktoken's gpt2 Encoding, built from local encoder.json + vocab.bpe (no network)."""
    vocab_bpe = os.path.join(gpt2_dir, "vocab.bpe")
    encoder_json = os.path.join(gpt2_dir, "encoder.json")
    for path, want in [(vocab_bpe, VOCAB_BPE_SHA256), (encoder_json, ENCODER_JSON_SHA256)]:
        with open(path, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != want:
            sys.exit(f"{path}: sha256 {got}, expected {want} (not OpenAI's GPT-2 file)")
    # read_file_cached() opens local paths directly; an empty cache dir turns its caching off.
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=vocab_bpe, encoder_json_file=encoder_json)
    enc = tiktoken.Encoding(name="gpt2", pat_str=pat_str, mergeable_ranks=ranks,
                            special_tokens={ENDOFTEXT: ENDOFTEXT_ID}, explicit_n_vocab=50257)
    # Known ids (e.g. from the GPT-2 paper's tokenizer / tiktoken's own tests).
    assert enc.encode("Hello world") == [15496, 995], enc.encode("Hello world")
    assert enc.encode(" Hello world!") == [18435, 995, 0]
    assert enc.encode(ENDOFTEXT, allowed_special="all") == [ENDOFTEXT_ID]
    assert enc.n_vocab == 50257
    return enc


# ---------------------------------------------------------------------------------------------------
# Unicode classes as tiktoken's regex engine sees them (for the random strings)


def regex_class_set(pat):
    """The code points matching the one-character regex `pat` in tiktoken's own regex engine.

    A throwaway Encoding whose split pattern is `pat` and whose vocabulary is the 256 single bytes:
    encode_ordinary keeps only the text that the pattern matches, so decoding the result gives exactly
    the matching characters."""
    probe = tiktoken.Encoding(name="probe", pat_str=pat, mergeable_ranks={bytes([b]): b for b in range(256)},
                              special_tokens={})
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    return set(map(ord, bytes(probe.encode_ordinary(every)).decode("utf-8")))


def is_noncharacter(c):
    return 0xFDD0 <= c <= 0xFDEF or (c & 0xFFFE) == 0xFFFE


class RandomText:
    """Seeded random strings from a mix of code point ranges."""

    RANGES = [  # (weight, lo, hi)
        (6, 0x20, 0x7E),          # printable ASCII
        (2, 0x00, 0x20),          # ASCII controls and space
        (2, 0x80, 0x24F),         # C1 controls, Latin-1, Latin Extended
        (2, 0x300, 0x36F),        # combining diacritics
        (2, 0x370, 0x52F),        # Greek, Cyrillic
        (1, 0x590, 0x6FF),        # Hebrew, Arabic
        (1, 0x900, 0xE7F),        # Indic scripts, Thai
        (1, 0x1100, 0x11FF),      # Hangul Jamo
        (1, 0x2000, 0x206F),      # general punctuation, spaces, invisible format chars
        (1, 0x2150, 0x218F),      # number forms (fractions, Roman numerals)
        (1, 0x3000, 0x30FF),      # CJK punctuation, kana
        (2, 0x4E00, 0x9FFF),      # CJK ideographs
        (1, 0xAC00, 0xD7A3),      # Hangul syllables
        (1, 0xE000, 0xFFFF),      # private use, compatibility, halfwidth/fullwidth, specials
        (2, 0x1F000, 0x1FAFF),    # emoji and symbols
        (4, 0x0, 0x10FFFF),       # anything (surrogates and version-dependent code points rejected)
    ]

    def __init__(self, seed, assigned):
        self.rng = random.Random(seed)
        self.assigned = assigned
        self.weights = [w for w, _, _ in self.RANGES]

    def stable(self, c):
        """Tokenized the same under any Unicode version: assigned in tiktoken's tables (assignments and
        letter/number/space classes do not change later), or unassigned where nothing will ever be."""
        if 0xD800 <= c <= 0xDFFF:
            return False
        return c in self.assigned or is_noncharacter(c) or 4 <= (c >> 16) <= 13

    def code_point(self):
        while True:
            _, lo, hi = self.rng.choices(self.RANGES, weights=self.weights)[0]
            c = self.rng.randint(lo, hi)
            if self.stable(c):
                return c

    def string(self, max_len):
        return "".join(chr(self.code_point()) for _ in range(self.rng.randint(0, max_len)))


# ---------------------------------------------------------------------------------------------------
# The cases


def hand_cases():
    """(category, name, text) for the hand-written cases."""
    out = []

    def add(cat, name, text):
        out.append((cat, f"{cat}/{name}", text))

    # basics
    for name, t in [("empty", ""), ("hello-world", "Hello world"), ("hello-world-space", " Hello world!"),
                    ("single-letter", "a"), ("single-space", " "), ("single-newline", "\n"),
                    ("single-digit", "7"), ("single-punct", "."), ("sentence", "The quick brown fox jumps over the lazy dog."),
                    ("code", "def f(x):\n    return x ** 2  # square\n"),
                    ("json", '{"key": [1, 2.5, -3e10], "ok": true, "s": "a\\"b"}'),
                    ("url", "https://example.com/path?q=1&r=two#frag"),
                    ("email", "first.last+tag@example.co.uk"),
                    ("numbers", "In 2024, 3.14159 and 1,000,000 and 0x1F and 10^9 and -42."),
                    ("camel", "getHTTPResponseCode XMLHttpRequest snake_case_name kebab-case-name"),
                    ("all-caps", "THIS IS ALL CAPS TEXT WITH NUMBERS 123"),
                    ("byte-values", "".join(chr(b) for b in range(32, 256)))]:
        add("basic", name, t)

    # letters of many scripts (sentences, then single words with/without a leading space)
    scripts = {
        "latin-diacritics": "Ça va? Naïve façade, crème brûlée, São Paulo, Ærøskøbing, Dvořák, Łódź, Ğüşçöı.",
        "vietnamese": "Tiếng Việt có dấu: người, được, những, Nguyễn.",
        "greek": "Καλημέρα κόσμε· ΑΒΓΔ αβγδ ϊΰ ῾Ελλάς",
        "cyrillic": "Привет, мир! Ёлка, ЪЫЬ, Їжак, Ђорђе, Қазақ",
        "arabic": "مرحبا بالعالم، السلام عليكم",
        "arabic-harakat": "بِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ",
        "hebrew": "שלום עולם, עִבְרִית",
        "devanagari": "नमस्ते दुनिया, हिन्दी क्षत्रिय",
        "bengali": "আমি বাংলায় গান গাই",
        "tamil": "வணக்கம் உலகம்",
        "thai": "สวัสดีชาวโลก ภาษาไทย",
        "hangul": "안녕하세요 세계, 한국어 텍스트",
        "hangul-jamo": "\u1100\u1161\u11a8 \u1112\u1161\u11ab",
        "cjk": "你好，世界！中文文本测试。漢字",
        "japanese": "こんにちは世界、カタカナとひらがな。ｶﾀｶﾅ",
        "ethiopic": "ሰላም ለዓለም፣ ግዕዝ",
        "armenian": "Բարեւ աշխարհ",
        "georgian": "გამარჯობა მსოფლიო",
        "khmer": "សួស្ដីពិភពលោក",
        "tibetan": "བཀྲ་ཤིས་བདེ་ལེགས།",
        "cherokee": "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
        "runic-gothic": "ᚠᚢᚦᚨᚱᚲ 𐌰𐌱𐌲𐌳",
        "math-alnum": "𝐀𝐁𝐂 𝒜𝒷𝒸 𝔸𝕓𝕔 𝟘𝟙𝟚",
        "cjk-ext-b": "𠀀𠀁𠜎 𪚥",
        "modifier-letters": "ʰʲʷ ˈstress ꜝ ᵃᵇᶜ",
        "titlecase": "ǅemal ǈ ǋ",
        "ipa": "ðə kwɪk braʊn fɒks",
        "mixed-scripts": "Hello мир 世界 عالم κόσμε!",
    }
    for name, t in scripts.items():
        add("script", name, t)
        word = t.split()[0].strip(",.!?、，·")
        add("script", name + "-word-leading-space", " " + word)
        add("script", name + "-after-ascii", "abc" + word + "123" + word + "!")

    # digits and numbers of several kinds
    digits = {
        "ascii": "0123456789", "ascii-long": "12345678901234567890", "space-digits": " 1 22 333 4444 55555",
        "arabic-indic": "٠١٢٣٤٥٦٧٨٩", "extended-arabic-indic": "۰۱۲۳۴۵۶۷۸۹", "devanagari": "०१२३४५६७८९",
        "bengali": "০১২৩৪৫৬৭৮৯", "thai": "๐๑๒๓๔๕๖๗๘๙", "fullwidth": "０１２３４５６７８９",
        "superscripts": "x² + y³ = z¹⁰", "subscripts": "H₂O CO₂ x₁₀",
        "roman-upper": "Chapter Ⅻ and Ⅳ", "roman-lower": "ⅰⅱⅲ ⅻ ↂ", "fractions": "½ ¼ ¾ ⅓ ⅞ 1½ cups",
        "circled": "①②③ ⑩ ⓿", "math-digits": "𝟎𝟏𝟐 𝟘𝟙", "cjk-numerals": "〇一二三 〡〢〣",
        "digits-letters": "abc123def456", "letters-digits-space": "abc 123 def 456",
        "mixed-kinds": "1٢३４5", "decimal-comma": "3,14 and 2.71 and 1e-9",
        "digit-then-nbsp": "100\u00a0km", "phone": "+1 (555) 010-9999",
    }
    for name, t in digits.items():
        add("digits", name, t)

    # emoji
    emoji = {
        "simple": "🙂😀🎉", "with-text": "I love it 😍 so much!!!", "leading-space": " 🙂",
        "skin-tones": "👍👍🏻👍🏼👍🏽👍🏾👍🏿", "zwj-family": "👨‍👩‍👧‍👦", "zwj-professions": "👩‍💻 🧑‍🚀 👨🏽‍🍳",
        "rainbow-flag": "🏳️‍🌈", "flags": "🇺🇸🇯🇵🇩🇪🇫🇷", "subdivision-flag": "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
        "keycaps": "1️⃣ #️⃣ *️⃣", "variation-selectors": "☺︎ ☺️ ❤️ ♥", "emoji-newer": "🫠🫶🥹🫨",
        "emoji-run": "🔥" * 7, "emoji-digits": "🙂1🙂2🙂", "emoji-letters": "a🙂b😀c",
        "hearts-text": "love❤️you", "symbols": "★☆♠♣ ✓✗ ⚡ ☃",
    }
    for name, t in emoji.items():
        add("emoji", name, t)

    # combining marks
    combining = {
        "e-acute-decomposed": "e\u0301", "cafe-decomposed": "cafe\u0301 au lait",
        "nfc-vs-nfd": "\u00e9 e\u0301", "stacked": "a\u0301\u0308\u0323\u0330",
        "mark-alone": "\u0301", "mark-after-space": " \u0301x", "mark-after-digit": "1\u0301 2\u20e3",
        "mark-after-punct": "!\u0301?", "zalgo": "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
        "devanagari-virama": "क्ष त्र ज्ञ", "hangul-decomposed": "\u1112\u1161\u11ab\u1100\u1173\u11af",
        "enclosing": "A\u20dd B\u20de", "variation-cjk": "葛\U000e0100", "cgj": "a\u034fb",
    }
    for name, t in combining.items():
        add("combining", name, t)

    # control and format characters
    controls = {"c0-all": "".join(chr(c) for c in range(0x20)), "del": "a\x7fb", "nul": "a\x00b",
                "nul-only": "\x00", "bell-backspace": "ding\x07\x08!", "escape-seq": "\x1b[31mred\x1b[0m",
                "form-feed-vtab": "a\x0cb\x0bc", "info-separators": "a\x1cb\x1dc\x1ed\x1fe",
                "nel": "line\u0085next", "c1": "".join(chr(c) for c in range(0x80, 0xa0)),
                "zwsp": "zero\u200bwidth", "zwnj-zwj": "a\u200cb\u200dc", "bom-start": "\ufeffHello",
                "bom-middle": "Hel\ufefflo", "line-separator": "one\u2028two", "paragraph-separator": "one\u2029two",
                "rtl-marks": "a\u200fb\u202ec\u202c", "soft-hyphen": "hy\u00adphen", "word-joiner": "a\u2060b",
                "replacement-char": "bad \ufffd byte", "tags": "a\U000e0041\U000e0062", "noncharacters": "x\ufdd0\uffff\U0010fffe",
                "private-use": "\ue000\uf8ff \U000f0000"}
    for name, t in controls.items():
        add("control", name, t)

    # whitespace
    ws_kinds = {"space": " ", "tab": "\t", "lf": "\n", "crlf": "\r\n", "cr": "\r", "nbsp": "\u00a0",
                "ideographic": "\u3000", "en-quad": "\u2000", "em-space": "\u2003", "thin": "\u2009",
                "hair": "\u200a", "narrow-nbsp": "\u202f", "medium-math": "\u205f", "ogham": "\u1680",
                "vtab": "\x0b", "ff": "\x0c", "nel": "\u0085", "line-sep": "\u2028"}
    for name, w in ws_kinds.items():
        add("whitespace", f"{name}-x1-before-word", w + "word")
        add("whitespace", f"{name}-x3-between", "a" + w * 3 + "b")
        add("whitespace", f"{name}-x2-end", "end" + w * 2)
    add("whitespace", "all-2000-200a", "a" + "".join(chr(c) for c in range(0x2000, 0x200b)) + "b")
    for n in range(1, 6):
        for follow_name, follow in [("letter", "x"), ("digit", "7"), ("punct", "!"), ("cjk", "中"), ("emoji", "🙂")]:
            add("whitespace", f"spaces-{n}-before-{follow_name}", "a" + " " * n + follow)
    for name, t in [("mixed-run", "a \t \n\u00a0 \u3000 b"), ("mixed-run-end", "a \t\n \u00a0"),
                    ("only-spaces", "     "), ("only-newlines", "\n\n\n"), ("only-mixed", " \t\r\n\u3000 "),
                    ("leading-run", "   \n\tstart"), ("newline-then-spaces", "a\n    b"),
                    ("spaces-then-newline", "a    \nb"), ("crlf-paragraphs", "one\r\n\r\ntwo\r\n"),
                    ("indent-code", "if x:\n\tif y:\n\t\treturn 1\n"), ("tab-before-punct", "a\t\t("),
                    ("nbsp-before-word", "a\u00a0\u00a0b"), ("ideographic-cjk", "中\u3000文"),
                    ("space-nbsp-space", "a \u00a0 b"), ("trailing-single-space", "word "),
                    ("spaces-before-newline-end", "x  \n"), ("double-newline", "para one.\n\npara two."),
                    ("spaces-before-contraction", "a  's"), ("newline-space-letter", "\n x")]:
        add("whitespace", name, t)

    # contractions (the regex is case-sensitive: only lower-case 's 't 're 've 'm 'll 'd)
    contractions = {
        "lower": "it's don't we're they've I'm we'll he'd", "upper": "IT'S DON'T WE'RE THEY'VE I'M WE'LL HE'D",
        "odd-case": "'S 'T 'Re 'LL 'll 've 'VE 'd 'D 'M 'rE 'Ll", "bare": "'s't're've'm'll'd",
        "leading": "'s", "double-quote-s": "''s", "space-quote": "' s ' t", "unicode-letter-before": "élan's naïve'll café'd",
        "cjk-before": "中文's 日本'll", "digits-before": "1990's 80're", "curly": "it’s don’t ‘quoted’ ’s",
        "prime": "5′ 6″ it′s", "not-contraction": "'sa 'tis 'rex 'very 'mm 'lly 'dd", "quote-runs": "'''s ''' \"'s\"",
        "space-before": "dog 's tail", "newline-before": "dog\n's", "apostrophe-end": "dogs'", "after-punct": "!'s ?'ll",
        "emoji-before": "🙂's", "backtick": "it`s", "contraction-then-letters": "'sss 'llama 'dork",
    }
    for name, t in contractions.items():
        add("contraction", name, t)

    # punctuation runs
    punct = {"ascii-all": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "ellipsis": "Wait... what?!", "dashes": "a--b — c – d",
             "unicode-punct": "¿¡«»‹›„“”‘’‚…‰§¶†‡•", "cjk-punct": "「こんにちは」『世界』【注】。、",
             "fullwidth-punct": "！？（）［］｛｝", "arrows-math": "→ ⇒ ∀x∈ℝ: x²≥0 ∑∫∂", "currency": "$5 €10 £3 ¥100 ₹50 ₿1",
             "space-punct": " !! ?? ..", "punct-letters": "...abc!!!def???", "markdown": "## Title\n\n* item **bold** _it_ `code`",
             "html": "<div class=\"x\">&amp;&lt;</div>", "repeat-mixed": "?!?!?!?!", "underscore-run": "____init____",
             "box-drawing": "┌─┬─┐│ │└─┘"}
    for name, t in punct.items():
        add("punct", name, t)

    # long runs of one character
    for name, t in [("a-1000", "a" * 1000), ("space-1000", " " * 1000), ("bang-1000", "!" * 1000),
                    ("newline-500", "\n" * 500), ("emoji-300", "🙂" * 300), ("digit-1000", "7" * 1000),
                    ("space-1000-then-word", " " * 1000 + "word"), ("ab-500", "ab" * 500),
                    ("cjk-500", "中" * 500), ("tab-300", "\t" * 300), ("nbsp-300", "\u00a0" * 300)]:
        add("long", name, t)

    # the special token
    E = ENDOFTEXT
    special = {"alone": E, "start": E + "Hello", "end": "Hello" + E, "middle": "Hello" + E + "world",
               "spaces-around": "Hello " + E + " world", "twice": E + E, "newlines": "doc one\n" + E + "\ndoc two",
               "partial-no-close": "a<|endoftext|b", "partial-no-open": "a|endoftext|>b", "partial-prefix": "<|endoftext",
               "other-case": "<|ENDOFTEXT|>", "inner-space": "<| endoftext |>", "nested": "<|<|endoftext|>|>",
               "startoftext": "<|startoftext|>", "after-letters": "abc" + E + "def", "after-space-end": "end " + E,
               "document-separator": "First document.\n\n" + E + "Second document."}
    for name, t in special.items():
        add("special", name, t)
    return out


def shakespeare_cases(path, rng, n_lines=40, n_chunks=4):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = [l for l in text.split("\n") if 15 <= len(l) <= 70]
    out = [("shakespeare", f"shakespeare/line-{i:02d}", l) for i, l in enumerate(rng.sample(lines, n_lines))]
    for i in range(n_chunks):  # a few multi-line chunks with the blank lines between speeches
        start = rng.randrange(len(text) - 400)
        start = text.index("\n\n", start) + 2
        out.append(("shakespeare", f"shakespeare/chunk-{i}", text[start:start + 300]))
    return out


def random_cases(assigned, seed, count):
    gen = RandomText(seed, assigned)
    return [("random", f"random/{i:03d}", gen.string(40)) for i in range(count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpt2-dir", default=os.path.join(REPO, "Sources", "LLM", "Resources", "gpt2"),
                    help="folder with encoder.json and vocab.bpe (default: ../shared/data/gpt2 from the repo)")
    ap.add_argument("--shakespeare", default=os.path.normpath(os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt")))
    ap.add_argument("--out", default=os.path.join(REPO, "Tests", "LLMTests", "Fixtures", "tokenizer", "gpt2-cases.json"))
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--random", type=int, default=120, help="number of random Unicode strings")
    args = ap.parse_args()

    enc = load_gpt2(args.gpt2_dir)
    enc_r50k = load_gpt2(args.gpt2_dir, TIKTOKEN_R50K_PATTERN)
    assigned = regex_class_set(r"\P{Cn}")

    rng = random.Random(args.seed)
    raw = hand_cases() + shakespeare_cases(args.shakespeare, rng) + random_cases(assigned, args.seed + 1, args.random)

    cases, counts = [], {}
    names = set()
    for cat, name, text in raw:
        assert name not in names, name
        names.add(name)
        ids = enc.encode(text, disallowed_special=())
        ids_special = enc.encode(text, allowed_special="all")
        assert ids == enc_r50k.encode(text, disallowed_special=()), f"{name}: gpt2 and r50k patterns disagree"
        assert ids_special == enc_r50k.encode(text, allowed_special="all"), name
        assert enc.decode_bytes(ids) == text.encode("utf-8"), name
        cases.append({"name": name, "text": text, "ids": ids, "ids_special": ids_special})
        counts[cat] = counts.get(cat, 0) + 1

    # One case per line. Non-printable characters (controls, format characters, unusual spaces,
    # private use, unassigned) are written as \u escapes so the file shows them; the rest stays readable.
    def escape_invisible(s):
        return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in s)

    body = ",\n".join(escape_invisible(json.dumps(c, ensure_ascii=False)) for c in cases)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("[\n" + body + "\n]\n")
    with open(args.out, encoding="utf-8") as f:
        assert json.load(f) == cases, "escaping changed the cases"

    print(f"wrote {len(cases)} cases to {os.path.relpath(args.out)} ({os.path.getsize(args.out)} bytes)")
    print("cases per category: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
