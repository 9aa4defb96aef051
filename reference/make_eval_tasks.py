#!/usr/bin/env python3
"""Writes the project's own evaluation task sets, tasks/*.jsonl, in the format tasks/README.md describes.

Small sets of the project's own making, in the shapes of nanochat's CORE (multiple choice, schema, language
modelling) and ChatCORE (categorical, generative) tasks: arithmetic, sequences, comparisons, world capitals and
opposites. Deterministic: the same files every run (Python's random with fixed seeds; no third-party packages).

    python3 reference/make_eval_tasks.py            # writes tasks/
    python3 reference/make_eval_tasks.py --out DIR
"""
import argparse
import json
import os
import random

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Russia", "Moscow"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"), ("Brazil", "Brasilia"),
    ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Australia", "Canberra"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Greece", "Athens"), ("Turkey", "Ankara"), ("Ireland", "Dublin"),
    ("Belgium", "Brussels"), ("the Netherlands", "Amsterdam"), ("Hungary", "Budapest"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("South Korea", "Seoul"), ("Indonesia", "Jakarta"), ("the Philippines", "Manila"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"), ("Ethiopia", "Addis Ababa"),
    ("Nigeria", "Abuja"), ("Ghana", "Accra"), ("Morocco", "Rabat"), ("Cuba", "Havana"), ("Colombia", "Bogota"),
    ("Venezuela", "Caracas"), ("Ukraine", "Kyiv"), ("Czechia", "Prague"), ("Switzerland", "Bern"),
    ("New Zealand", "Wellington"), ("the United Kingdom", "London"),
]

OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("happy", "sad"), ("light", "dark"),
    ("old", "young"), ("open", "closed"), ("early", "late"), ("rich", "poor"), ("strong", "weak"),
    ("hard", "soft"), ("full", "empty"), ("wet", "dry"), ("high", "low"), ("long", "short"), ("loud", "quiet"),
    ("thick", "thin"), ("clean", "dirty"), ("true", "false"), ("win", "lose"),
    ("buy", "sell"), ("push", "pull"), ("inside", "outside"), ("first", "last"), ("begin", "end"),
    ("day", "night"), ("north", "south"), ("east", "west"), ("left", "right"), ("above", "below"),
    ("friend", "enemy"), ("love", "hate"), ("accept", "refuse"), ("arrive", "leave"), ("remember", "forget"),
    ("ask", "answer"), ("sweet", "sour"), ("wide", "narrow"), ("deep", "shallow"), ("brave", "afraid"),
    ("awake", "asleep"), ("cheap", "expensive"), ("easy", "difficult"), ("safe", "dangerous"),
    ("public", "private"), ("before", "after"), ("always", "never"), ("more", "less"),
]

NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara"]
THINGS = ["apples", "books", "coins", "marbles", "pencils", "stamps", "cards", "shells"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def distractors(rng, answer, pool, k):
    """k distinct entries of pool other than answer."""
    return rng.sample([p for p in pool if p != answer], k)


def numeric_distractors(rng, answer, k):
    out = set()
    while len(out) < k:
        d = answer + rng.choice([-10, -2, -1, 1, 2, 10, rng.randint(-20, 20)])
        if d != answer and d >= 0:
            out.add(d)
    return sorted(out)


def shuffled_choices(rng, answer, wrong):
    choices = [answer] + list(wrong)
    rng.shuffle(choices)
    return choices, choices.index(answer)


def arithmetic_problem(rng):
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return a, op, b, a * b
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b, a + b if op == "+" else a - b


def arithmetic_mc(rng, n):
    rows = []
    for _ in range(n):
        a, op, b, c = arithmetic_problem(rng)
        choices, gold = shuffled_choices(rng, c, numeric_distractors(rng, c, 3))
        rows.append({"query": f"Question: What is {a} {op} {b}?", "choices": [str(x) for x in choices], "gold": gold})
    return {"task": "arithmetic", "kind": "multiple_choice", "fewshot": 3, "delimiter": "\nAnswer: "}, rows


def capitals_mc(rng):
    rows = []
    for country, capital in CAPITALS:
        choices, gold = shuffled_choices(rng, capital, distractors(rng, capital, [c for _, c in CAPITALS], 3))
        rows.append({"query": f"The capital of {country} is", "choices": choices, "gold": gold})
    return {"task": "capitals", "kind": "multiple_choice", "fewshot": 3, "delimiter": " "}, rows


def opposites_mc(rng):
    rows = []
    words = [w for pair in OPPOSITES for w in pair]
    for word, opposite in OPPOSITES:
        wrong = distractors(rng, opposite, [w for w in words if w != word], 3)
        choices, gold = shuffled_choices(rng, opposite, wrong)
        rows.append({"query": f"The opposite of \"{word}\" is", "choices": [f"\"{c}\"" for c in choices], "gold": gold})
    return {"task": "opposites", "kind": "multiple_choice", "fewshot": 3, "delimiter": " "}, rows


def comparison_schema(rng, n):
    rows = []
    for _ in range(n):
        x, y = rng.sample(NAMES, 2)
        thing = rng.choice(THINGS)
        a, b = rng.sample(range(2, 30), 2)
        context = f"{x} has {a} {thing} and {y} has {b} {thing}."
        more = x if a > b else y
        options = [f"{context} {x}", f"{context} {y}"]
        rows.append({"context_options": options, "continuation": f"has more {thing}.", "gold": options.index(f"{context} {more}")})
    return {"task": "comparison", "kind": "schema", "fewshot": 2, "delimiter": " "}, rows


def sequences_lm(rng, n):
    rows = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            start, step = rng.randint(1, 50), rng.choice([1, 2, 5, 10])
            seq = [str(start + step * j) for j in range(6)]
            rows.append({"context": ", ".join(seq[:5]) + ",", "continuation": seq[5]})
        elif kind == 1:
            start = rng.randint(0, 19)
            seq = [chr(97 + start + j) for j in range(6)]
            rows.append({"context": " ".join(seq[:5]), "continuation": seq[5]})
        elif kind == 2:
            start = rng.randint(0, 6)
            seq = [DAYS[(start + j) % 7] for j in range(5)]
            rows.append({"context": ", ".join(seq[:4]) + ",", "continuation": seq[4]})
        else:
            start = rng.randint(0, 11)
            seq = [MONTHS[(start + j) % 12] for j in range(5)]
            rows.append({"context": ", ".join(seq[:4]) + ",", "continuation": seq[4]})
    return {"task": "sequences", "kind": "language_modeling", "fewshot": 2, "delimiter": " "}, rows


def arithmetic_chat_choice(rng, n):
    rows = []
    for _ in range(n):
        a, op, b, c = arithmetic_problem(rng)
        choices, gold = shuffled_choices(rng, c, numeric_distractors(rng, c, 3))
        rows.append({"question": f"What is {a} {op} {b}?", "choices": [str(x) for x in choices], "gold": gold})
    return {"task": "arithmetic-chat", "kind": "chat_choice"}, rows


def capitals_chat_choice(rng):
    rows = []
    for country, capital in CAPITALS:
        choices, gold = shuffled_choices(rng, capital, distractors(rng, capital, [c for _, c in CAPITALS], 3))
        rows.append({"question": f"What is the capital of {country}?", "choices": choices, "gold": gold})
    return {"task": "capitals-chat", "kind": "chat_choice"}, rows


def word_problems(rng, n):
    rows = []
    for _ in range(n):
        x = rng.choice(NAMES)
        thing = rng.choice(THINGS)
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        style = rng.randint(0, 2)
        if style == 0:
            q, ans = f"{x} has {a} {thing} and gets {b} more. How many {thing} does {x} have now?", a + b
        elif style == 1:
            a, b = max(a, b), min(a, b)
            q, ans = f"{x} has {a} {thing} and gives away {b}. How many {thing} are left?", a - b
        else:
            a, b = rng.randint(2, 9), rng.randint(2, 12)
            q, ans = f"{x} has {a} bags with {b} {thing} in each. How many {thing} is that in all?", a * b
        rows.append({"question": q, "answer": str(ans)})
    return {"task": "word-problems", "kind": "chat_answer", "max_tokens": 96}, rows


def write(out, header, rows):
    path = os.path.join(out, header["task"] + ".jsonl")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    print(f"{path}: {len(rows)} examples")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tasks"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    makers = [
        lambda r: arithmetic_mc(r, 100), capitals_mc, opposites_mc, lambda r: comparison_schema(r, 100),
        lambda r: sequences_lm(r, 100), lambda r: arithmetic_chat_choice(r, 100), capitals_chat_choice,
        lambda r: word_problems(r, 100),
    ]
    for i, make in enumerate(makers):
        header, rows = make(random.Random(1000 + i))
        write(args.out, header, rows)


if __name__ == "__main__":
    main()
