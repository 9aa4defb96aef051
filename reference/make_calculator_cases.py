#!/usr/bin/env python3
"""Reference for the Swift calculator (`Calculator`, the chat models' tool): what Python's eval prints for
seeded random arithmetic expressions and a hand-picked list of edge cases.

  python3 reference/make_calculator_cases.py   # writes Tests/LLMTests/Fixtures/calculator/cases.jsonl

Each line is {"expression": …, "output": str(eval(expression)) or null}. null where the Swift calculator must
give an error: Python raises (ZeroDivisionError, SyntaxError, …), or some step of the computation leaves the
calculator's bounds, which the Swift side documents: an int past 64 bits, a float that is inf or nan, or a
complex number (a negative base to a fractional power). Every subexpression of the parsed tree is evaluated
to find such steps. Only the standard library is needed; the output is the same from one run to the next.
"""
import ast, json, math, os, random

INT64 = (-(2 ** 63), 2 ** 63 - 1)

EDGE_CASES = [
    "1+2", "7", "-7", "2.5", "7/2", "6/2", "1/3", "2/3", "0.1+0.2", "10/4", "1-0.9",
    "7//2", "-7//2", "7//-2", "-7//-2", "7%3", "-7%3", "7%-3", "-7%-3", "7.5%2", "-7.5%2", "7.5%-2",
    "7.5//2", "-7.5//2", "0.0//1", "-0.0", "0*-1.0", "1//0", "1%0", "1/0", "1.0/0", "0/0", "1.5//0", "1.5%0.0",
    "2**10", "2**62", "2**63", "-2**63", "(-2)**63", "2**64", "-2**2", "(-2)**2", "2**-1", "2**-2", "0**0",
    "0**-1", "0.0**-1", "(-8)**0.5", "(-8)**(1/3)", "(-2.0)**3", "10**18", "10**19", "1**1000000000", "(-1)**999",
    "2**0.5", "9**0.5", "3**3**2", "2**3**2", "-3**2", "+3", "--3", "-+-3", "1.5**2", "1e5", "0.00001", "0.0001",
    "1/1024/1024", "123456789*1000000000", "9999999999999999.0", "99999999999999999.0", "1000000000000000.0",
    "10000000000000000.0", "0.1*3", "100.0", "3.0", "(1+2)*3", "((((1))))", "(1+2", "1+2)", "()", "", "   ",
    "1 + 2 * 3 - 4 / 5", "12/60", "0.2*50", "1,234*5", "1,000,000/4", "3.14159*2", "007", "0", "00", "0.5",
    ".5", "5.", "5..", "1 2", "2(3)", "1+", "*2", "2*", "2***3", "2//3//4", "100%7%3", "1-2-3", "2/2/2",
    "9223372036854775807", "9223372036854775807+1", "9223372036854775808", "-9223372036854775807-1",
    "(-9223372036854775807-1)//-1", "(-9223372036854775807-1)%-1", "3037000500*3037000500", "-3037000499*3037000499",
    "'strawberry'.count('r')", '"strawberry".count("r")', "'banana'.count('an')", "'aaaa'.count('aa')",
    "'abc'.count('')", "''.count('')", "'Mississippi'.count('ss')+1", "2*'hello world'.count('o')",
    "'a,b,c'.count(',')", "'abc'.count('d')", "'abc'.count(a)", "'abc'.upper()", "'abc'", "abs(-1)",
    "__import__('os')", "1 if 1 else 2", "1<2", "[1]", "x", "1e308*10",
]


def steps_in_bounds(node):
    """Whether every subexpression's value is an int within 64 bits or a finite float (not complex, not a
    string left over as a result). Raises what Python raises for a step that fails."""
    for sub in ast.walk(node):
        if not isinstance(sub, (ast.BinOp, ast.UnaryOp, ast.Constant, ast.Call)):
            continue
        value = eval(compile(ast.Expression(sub), "<case>", "eval"), {"__builtins__": {}}, {})
        if isinstance(sub, ast.Constant) and isinstance(value, str):
            continue  # the strings of a .count call
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
    return True


def allowed_shape(tree):
    """The calculator's language: numbers, + - * / // % **, unary + -, and 'string'.count('string')."""
    for sub in ast.walk(tree):
        if isinstance(sub, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load)):
            continue
        if isinstance(sub, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)):
            continue
        if isinstance(sub, ast.Constant) and type(sub.value) in (int, float, str):
            continue
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "count" \
                and isinstance(sub.func.value, ast.Constant) and isinstance(sub.func.value.value, str) \
                and len(sub.args) == 1 and not sub.keywords \
                and isinstance(sub.args[0], ast.Constant) and isinstance(sub.args[0].value, str):
            continue
        if isinstance(sub, ast.Attribute) and sub.attr == "count":
            continue
        return False
    # A bare string is not a result the calculator gives.
    return not (isinstance(tree.body, ast.Constant) and isinstance(tree.body.value, str))


def expected(expression):
    """str(eval(expression)) when the Swift calculator must agree, else None."""
    source = expression.replace(",", "") if "'" not in expression and '"' not in expression else expression
    if any(c in source for c in "eEjJ_"):  # exponents, complex and grouped literals are not in the language
        if "count" not in source:
            return None
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return None
    if not allowed_shape(tree):
        return None
    try:
        if not steps_in_bounds(tree.body):
            return None
        return str(eval(compile(tree, "<case>", "eval"), {"__builtins__": {}}, {}))
    except Exception:
        return None


def random_number(rng):
    r = rng.random()
    if r < 0.45:
        return str(rng.randint(0, 20))
    if r < 0.65:
        return str(rng.randint(0, 100000))
    if r < 0.75:
        return str(rng.randint(0, 10 ** 12))
    if r < 0.9:
        return f"{rng.randint(0, 99)}.{rng.randint(0, 99)}"
    return rng.choice(["0.5", ".25", "3.", "0.1", "1.5", "2.0", "0", "1"])


def random_expression(rng, depth=0):
    r = rng.random()
    if depth >= 4 or r < 0.3:
        return random_number(rng)
    if r < 0.4:
        return "-" + random_expression(rng, depth + 1)
    if r < 0.5:
        return "(" + random_expression(rng, depth + 1) + ")"
    if r < 0.58:
        base = rng.choice([random_number(rng), str(rng.randint(-3, 12)), "(" + random_expression(rng, depth + 1) + ")"])
        if base.startswith("-"):
            base = "(" + base + ")"
        exponent = rng.choice([str(rng.randint(0, 12)), str(rng.randint(-3, 3)), "0.5", "2.5", "-1"])
        return base + "**" + exponent
    op = rng.choice(["+", "-", "*", "/", "//", "%"])
    space = rng.choice(["", " "])
    return random_expression(rng, depth + 1) + space + op + space + random_expression(rng, depth + 1)


def main():
    rng = random.Random(16)
    cases = list(EDGE_CASES)
    seen = set(cases)
    while len(cases) < len(EDGE_CASES) + 1500:
        e = random_expression(rng)
        if len(e.encode()) <= 256 and e not in seen:
            seen.add(e)
            cases.append(e)
    out_dir = os.path.join(os.path.dirname(__file__), "..", "Tests", "LLMTests", "Fixtures", "calculator")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "cases.jsonl")
    with open(path, "w") as f:
        for e in cases:
            f.write(json.dumps({"expression": e, "output": expected(e)}, ensure_ascii=False) + "\n")
    answered = sum(expected(e) is not None for e in cases)
    print(f"wrote {len(cases)} cases ({answered} with an answer) to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
