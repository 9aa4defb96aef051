#!/usr/bin/env python3
"""Expected outputs for the Swift chat-template interpreter (ChatTemplate, Sources/LLM/Chat/Jinja/).

Writes two fixtures into Tests/LLMTests/Fixtures/chat-templates/:

  cases.json        every committed real template (*.jinja in that folder) rendered on a set of conversations
                    with transformers' own `tokenizer.apply_chat_template(..., tokenize=False)`: with and without
                    the generation prompt, with tools where the template has a tools section, plus a few extra
                    variables (date_string, tools_in_user_message, builtin_tools, enable_thinking). A conversation a
                    template rejects records the error: `raise_exception`'s message, or the Python exception's type.
  jinja-cases.json  small templates exercising the interpreter itself (whitespace control, loops, scoping, filters,
                    tests, methods, literals, errors), rendered by transformers' compiled Jinja environment
                    (`_compile_jinja_template`: trim_blocks, lstrip_blocks, its tojson, raise_exception, ...).

`strftime_now` is pinned to 2025-03-14 09:26:53 (a naive datetime, as `datetime.now()` gives); the Swift tests pass
the same wall-clock time. The tokenizer is a one-token stand-in built offline: apply_chat_template only needs one for
its special-token map, and bos_token/eos_token are passed explicitly (they override that map).

    python3 reference/make_chat_template_cases.py          # ~2 s, deterministic
"""
import calendar
import datetime as real_datetime
import json
import pathlib
import random
import sys

import jinja2
import transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "LLMTests" / "Fixtures" / "chat-templates"
FIXED_NOW = real_datetime.datetime(2025, 3, 14, 9, 26, 53)


class FixedDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


# transformers' strftime_now calls the module's `datetime.now()`.
chat_template_utils.datetime = FixedDatetime

# The special tokens each model's tokenizer gives its template.
SPECIAL_TOKENS = {
    "HuggingFaceTB-SmolLM2-135M-Instruct.jinja": ("<|im_start|>", "<|im_end|>"),
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": ("<|begin_of_text|>", "<|im_end|>"),
    "Qwen-Qwen2.5-7B-Instruct.jinja": ("", "<|im_end|>"),
    "Qwen-Qwen3-0.6B.jinja": ("", "<|im_end|>"),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "inputs-debug.jinja": ("<BOS>", "<EOS>"),
    "google-gemma-2-2b-it.jinja": ("<bos>", "<eos>"),
    "google-gemma-3-it.jinja": ("<bos>", "<eos>"),
    "meta-llama-Llama-3.1-8B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.2-3B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Meta-Llama-3-8B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "microsoft-Phi-3.5-mini-instruct.jinja": ("<s>", "<|endoftext|>"),
    "mistralai-Mistral-7B-Instruct-v0.2-legacy.jinja": ("<s>", "</s>"),
    "mistralai-Mistral-7B-Instruct-v0.2-v1.jinja": ("<s>", "</s>"),
    "mistralai-Mistral-Large-Instruct-2407-v3.jinja": ("<s>", "</s>"),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": ("<s>", "</s>"),
    "teknium-OpenHermes-2.5-Mistral-7B.jinja": ("<s>", "<|im_end|>"),
}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web — returns snippets",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for"}},
                "required": ["query"],
            },
        },
    },
]

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_multi_turn": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2+2 is 4."},
        {"role": "user", "content": "And 3+3?"},
    ],
    "no_system_multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ],
    "special_characters": [
        {"role": "system", "content": "Be terse.\nUse \"quotes\" and 'apostrophes' & <tags>."},
        {"role": "user", "content": "  leading and trailing spaces  \n\n"},
        {"role": "assistant", "content": "\tUnicode: héllo wörld — 你好 🌍\u200bzero-width, e\u0301 combining\r\nCRLF "},
        {"role": "user", "content": "Backslash \\n, braces {{ x }} {% if %} {# c #} and <|im_end|> </s> [INST]"},
    ],
    "non_alternating": [
        {"role": "user", "content": "First question"},
        {"role": "user", "content": "Second question"},
    ],
    "tool_use": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call12345",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temperature\": 22}"},
        {"role": "assistant", "content": "It is 22 °C in Paris."},
        {"role": "user", "content": "Thanks!"},
    ],
    "tool_use_empty_content": [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "callAAAAA", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "Oslo"}}},
                {"id": "callBBBBB", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "Rome"}}},
            ],
        },
        {"role": "tool", "tool_call_id": "callAAAAA", "content": "-3"},
        {"role": "tool", "tool_call_id": "callBBBBB", "content": "18"},
    ],
    "thinking_field": [
        {"role": "user", "content": "Hi", "name": None},
        {"role": "assistant", "content": "Hello.", "thinking": "Greet back.", "reasoning": "ignored: thinking comes first"},
    ],
    "reasoning": [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "Yes, 7 is prime.", "reasoning_content": "7 has no divisors but 1 and 7."},
        {"role": "user", "content": "And 9?"},
        {"role": "assistant", "content": "<think>\n9 = 3 × 3.\n</think>\n\nNo, 9 = 3 × 3."},
    ],
}

# Templates with a tools section: their tools cases, as (conversation, extra variables).
TOOL_CASES = {
    "inputs-debug.jinja": [("tool_use", {})],
    "meta-llama-Llama-3.1-8B-Instruct.jinja": [
        ("tool_use", {}),
        ("system_multi_turn", {}),
        ("tool_use", {"tools_in_user_message": False}),
        ("system_multi_turn", {"tools_in_user_message": False, "builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}),
    ],
    "meta-llama-Llama-3.2-3B-Instruct.jinja": [("tool_use", {}), ("system_multi_turn", {"tools_in_user_message": False})],
    "Qwen-Qwen2.5-7B-Instruct.jinja": [("tool_use", {}), ("tool_use_empty_content", {}), ("single_user", {})],
    "Qwen-Qwen3-0.6B.jinja": [("tool_use_empty_content", {}), ("reasoning", {})],
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": [("tool_use", {}), ("tool_use_empty_content", {}), ("system_multi_turn", {})],
    "mistralai-Mistral-Large-Instruct-2407-v3.jinja": [("tool_use", {}), ("tool_use_empty_content", {})],
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": [("tool_use", {}), ("tool_use_empty_content", {}), ("single_user", {})],
}

# Other variables some templates read.
EXTRA_CASES = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja": [("system_multi_turn", {"date_string": "01 Jan 2030"})],
    "meta-llama-Llama-3.2-3B-Instruct.jinja": [("system_multi_turn", {"date_string": "01 Jan 2030"})],
    "Qwen-Qwen3-0.6B.jinja": [("reasoning", {"enable_thinking": False}), ("single_user", {"enable_thinking": True})],
    "inputs-debug.jinja": [("single_user", {"date_string": "01 Jan 2030", "custom": {"b": [1, 2.5, None], "a": "x"}})],
}


def error_record(e):
    """raise_exception's message exactly; for other failures only the exception's type."""
    if type(e) is jinja2.exceptions.TemplateError:
        return {"kind": "raised", "message": str(e)}
    return {"kind": "error", "type": type(e).__name__, "message": str(e)}


def render_case(tokenizer, name, source, conversation, add_generation_prompt, tools, extra):
    bos, eos = SPECIAL_TOKENS[name]
    case = {
        "template": name,
        "conversation": conversation,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos,
        "eos_token": eos,
        "tools": tools,
        "extra": extra,
    }
    try:
        case["expected"] = tokenizer.apply_chat_template(
            json.loads(json.dumps(CONVERSATIONS[conversation])),
            chat_template=source,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            tools=json.loads(json.dumps(TOOLS)) if tools else None,
            bos_token=bos,
            eos_token=eos,
            **extra,
        )
    except Exception as e:  # noqa: BLE001 - every failure is part of the expected behaviour
        case["error"] = error_record(e)
    return case


def template_cases():
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    names = sorted(p.name for p in FIXTURES.glob("*.jinja"))
    missing = set(names) ^ set(SPECIAL_TOKENS)
    if missing:
        sys.exit(f"templates without special tokens (or missing files): {sorted(missing)}")
    cases = []
    for name in names:
        source = (FIXTURES / name).read_text()
        for conversation in CONVERSATIONS:
            for add_generation_prompt in (True, False):
                cases.append(render_case(tokenizer, name, source, conversation, add_generation_prompt, False, {}))
        for conversation, extra in TOOL_CASES.get(name, []):
            cases.append(render_case(tokenizer, name, source, conversation, True, True, extra))
        for conversation, extra in EXTRA_CASES.get(name, []):
            cases.append(render_case(tokenizer, name, source, conversation, True, False, extra))
    return cases


# (name, template, variables): the interpreter's own cases.
MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}]
JINJA_CASES = [
    # Whitespace control: trim_blocks, lstrip_blocks, -, +, comments, trailing newline, CRLF.
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "    {% if true %}\n    indented\n    {% endif %}\ndone", {}),
    ("lstrip_not_after_text", "x   {% if true %}y{% endif %}", {}),
    ("lstrip_tab_and_start", "\t{% if true %}a{% endif %}\n  \t{% if true %}b{% endif %}", {}),
    ("minus_strips_all", "a  \n\n  {%- if true -%}  \n\n b  \n {%- endif -%}\n\n  c", {}),
    ("variable_minus", "a \n {{- 'b' -}} \n c", {}),
    ("variable_no_trim", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("plus_disables_lstrip", "  {%+ if true %}x{% endif %}", {}),
    ("plus_disables_trim", "{% if true +%}\nx{% endif %}", {}),
    ("comment_trim", "a\n  {# comment #}\nb{#- c -#}  c", {}),
    ("comment_plus", "a\n  {#+ comment +#}\nb", {}),
    ("trailing_newline_dropped", "line\n", {}),
    ("only_one_trailing_newline", "line\n\n", {}),
    ("crlf_normalised", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\rd", {}),
    ("raw_block", "{% raw %}{{ not evaluated }}{% endraw %}!", {}),
    ("line_after_output", "{{ 1 }}  {% if true %}x{% endif %}", {}),
    ("nested_blocks_indent", "{% for i in [1, 2] %}\n  {% if i > 1 %}\n    big {{ i }}\n  {% else %}\n    small {{ i }}\n  {% endif %}\n{% endfor %}", {}),
    # Literals and operators.
    ("string_escapes", "{{ 'a\\tb\\nc\\\\d\\'e\"f\\x41\\u00e9\\U0001F600\\101\\q' }}", {}),
    ("double_quoted", '{{ "it\'s \\"quoted\\"" }}', {}),
    ("adjacent_strings", "{{ 'a' 'b' \"c\" }}", {}),
    ("numbers", "{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 2.5e-7 }} {{ 1e16 }} {{ 123456789.125 }}", {}),
    ("constants", "{{ true }} {{ True }} {{ false }} {{ none }} {{ None }}", {}),
    ("arithmetic", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", {}),
    ("float_arithmetic", "{{ 0.1 + 0.2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 / 3 }} {{ 10 / 5 }} {{ 3 * 1.0 }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }} {{ 1 ~ (2 + 3) }}", {}),
    ("error_concat_binds_tighter_than_plus", "{{ 1 + 2 ~ 3 }}", {}),
    ("string_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 3 * 'x' }} {{ 'a' ~ 1 ~ none ~ true ~ undefined_thing }}", {}),
    ("list_ops", "{{ [1, 2] + [3] }} {{ [0] * 3 }} {{ (1, 2) + (3,) }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 1 != '1' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", {}),
    ("in_operator", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 'x' in nothing }}", {}),
    ("and_or_values", "{{ 'a' and 'b' }}|{{ '' and 'b' }}|{{ '' or 'c' }}|{{ 0 or none }}|{{ not '' }}", {}),
    ("conditional_expression", "{{ 'yes' if x else 'no' }} {{ 'only' if false }}|{{ 'a' if false else 'b' if true else 'c' }}", {"x": 1}),
    ("list_dict_tuple_print", "{{ [1, 'a', none, true, 2.5, [3]] }} {{ {'k': 'v', 'n': 1} }} {{ (1,) }} {{ () }} {{ (1, 'b') }}", {}),
    ("repr_quotes", "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'tab\\t\\x01\\u200b\\u00e9'] }}", {}),
    ("print_tuple", "{{ 1, 2 }}", {}),
    ("dict_literal_keys", "{{ {1: 'a', 'b': 2, none: 3, true: 4} }}", {}),
    # Attribute and item access.
    ("attribute_and_item", "{{ m.role }} {{ m['content'] }} {{ m.get('role') }} {{ m.get('missing', 'dflt') }} {{ m.get('missing') }}", {"m": {"role": "user", "content": "hi"}}),
    ("item_falls_back_to_method", "{{ m['items'] is defined }} {{ m.items is defined }} {{ m.missing is defined }}", {"m": {"role": "user"}}),
    ("negative_index", "{{ xs[-1] }} {{ xs[0] }} {{ xs[5] is defined }} {{ 'hello'[1] }} {{ 'héllo'[-4] }} {{ xs.0 }}", {"xs": [1, 2, 3]}),
    ("slices", "{{ xs[1:] }} {{ xs[:-1] }} {{ xs[::-1] }} {{ xs[::2] }} {{ xs[5:] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ xs[-2:] }} {{ xs[:10:3] }}", {"xs": [1, 2, 3, 4, 5]}),
    ("none_attribute", "{{ n.x is defined }} {{ n['x'] is defined }}", {"n": None}),
    ("nested_access", "{{ d.a.b[1].c }}", {"d": {"a": {"b": [{"c": 1}, {"c": "deep"}]}}}),
    # Statements: if, for, loop variables, else, filters, unpacking, break/continue, set, namespace, macro.
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("loop_variables", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("loop_prev_next", "{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }};{% endfor %}", {}),
    ("loop_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in none_undefined %}x{% else %}undef{% endfor %}", {}),
    ("for_if_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ ',' if not loop.last }}{% endfor %} {% for x in [] if x %}{% else %}none{% endfor %}", {}),
    ("for_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héllo' %}{{ c }}.{% endfor %}", {"d": {"z": 1, "y": 2}}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }};{% endfor %}{{ x }}", {}),
    ("set_in_if_leaks", "{% if true %}{% set y = 'inner' %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(count=0, last=none) %}{% for x in [3, 4, 5] %}{% set ns.count = ns.count + x %}{% set ns.last = x %}{% endfor %}{{ ns.count }} {{ ns.last }}", {}),
    ("namespace_shared", "{% set ns = namespace() %}{% set alias = ns %}{% set alias.v = 'shared' %}{{ ns.v }} {{ ns.missing is defined }}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 'x', %}{{ c }}", {}),
    ("set_block", "{% set block %}Hello {{ name }}!{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}", {"name": "World"}),
    ("filter_block", "{% filter upper %}quiet {{ 'words' }}{% endfilter %}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}", {}),
    ("macro", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', greeting='Hi') }} {{ greet(name='Cy', greeting='Yo') }} {{ greet() }}", {}),
    ("macro_recursion", "{% macro count(n) %}{{ n }}{% if n > 0 %}{{ count(n - 1) }}{% endif %}{% endmacro %}{{ count(5) }}", {}),
    ("macro_reads_globals", "{% macro f() %}{{ g }}{% endmacro %}{% set g = 'top' %}{% for g in ['loop'] %}{{ f() }}{% endfor %}", {}),
    ("macro_whitespace", "{%- macro row(x) %}\n  <{{ x }}>\n{% endmacro -%}\n{{ row(1) }}{{ row(2) }}", {}),
    ("generation_block", "{% for m in msgs %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}", {"msgs": MSGS}),
    ("print_statement", "{% print 'printed' %}", {}),
    ("call_block", "{% macro box(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}{% call box('T') %}body {{ 1 + 1 }}{% endcall %}", {}),
    ("call_block_arguments", "{% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }}{% endfor %}{% endmacro %}{% call(item, i) each(['a', 'b']) %}{{ i }}={{ item }};{% endcall %}", {}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }} {{ m() }}", {}),
    ("macro_caller_undefined", "{% macro m() %}{{ caller is defined }}{% endmacro %}{{ m() }}", {}),
    ("error_macro_too_many_arguments", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("unknown_filter_in_untaken_if", "{% if false %}{{ x|wordwrap }}{% elif false %}{{ x is nosuchtest }}{% endif %}ok {{ 'a' if true else x|nosuchfilter }}", {}),
    ("include_in_untaken_if", "{% if false %}{% include 'other.jinja' %}{% endif %}ok", {}),
    ("namespace_print", "{% set ns = namespace(a=1, b='x') %}{{ ns }}", {}),
    ("set_with_filters", "{% set x = ' Hi '|trim|upper %}{{ x }}{% set y = [3, 1]|sort|first %}{{ y }}", {}),
    ("loop_over_messages_roles", "{% for m in msgs %}{{ loop.index0 }}:{{ m['role'][0]|upper }}{{ m.content|length }}{% if not loop.last %},{% endif %}{% endfor %}", {"msgs": MSGS}),
    # Filters.
    ("filter_trim", "[{{ '  a b \\n'|trim }}] [{{ 'xxaxx'|trim('x') }}] [{{ '\\u00a0nbsp\\u3000'|trim }}]", {}),
    ("filter_case", "{{ 'hello wORLD'|upper }} {{ 'HeLLo'|lower }} {{ 'hello wORLD'|capitalize }} {{ 'hello wORLD-foo(bar) x'|title }}", {}),
    ("filter_length", "{{ 'héllo'|length }} {{ [1, 2]|length }} {{ {'a': 1}|count }} {{ undefined_thing|length }} {{ '🌍e\u0301'|length }}", {}),
    ("filter_first_last", "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ {'k': 1, 'j': 2}|first }} [{{ []|first }}]", {}),
    ("filter_join", "{{ [1, 'a', none]|join(', ') }} {{ 'abc'|join('-') }} {{ users|join(', ', attribute='name') }}", {"users": [{"name": "ann"}, {"name": "bob"}]}),
    ("filter_default", "{{ missing|default('d') }} {{ ''|default('e') }} {{ ''|default('e', true) }} {{ none|default('n') }} {{ missing|d }}", {}),
    ("filter_string_int_float", "{{ 12|string ~ 'x' }} {{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '0x1A'|int(base=16) }} {{ '2.5'|float }} {{ 'x'|float }} {{ true|int }}", {}),
    ("filter_list", "{{ 'abc'|list }} {{ {'a': 1, 'b': 2}|list }} {{ (1, 2)|list }}", {}),
    ("filter_map", "{{ users|map(attribute='name')|join(',') }} {{ ['a', 'b']|map('upper')|list }} {{ users|map(attribute='age', default=0)|list }} {{ [1, 2]|map('string')|join }}", {"users": [{"name": "ann", "age": 3}, {"name": "bob"}]}),
    ("filter_select_reject", "{{ range(8)|select('odd')|list }} {{ range(8)|reject('even')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ [1, 5, 9]|select('gt', 4)|list }} {{ ['a', 'b']|select('in', 'abc')|list }}", {}),
    ("filter_selectattr", "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ msgs|rejectattr('role', 'eq', 'system')|list|length }} {{ flags|selectattr('on')|list }}", {"msgs": MSGS, "flags": [{"on": True, "n": 1}, {"on": False, "n": 2}]}),
    ("filter_replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'ab'|replace('', '-') }} {{ 'hello'.replace('l', 'L', 1) }}", {}),
    ("filter_indent", "[{{ 'a\\nb\\n\\nc'|indent }}] [{{ 'a\\nb'|indent(2, true) }}] [{{ 'a\\n\\nb'|indent(2, blank=true) }}] [{{ 'x\\ny'|indent('> ') }}]", {}),
    ("filter_items_dictsort", "{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value', reverse=true) }} {{ {'B': 1, 'a': 2}|dictsort }} {{ {'B': 1, 'a': 2}|dictsort(true) }}", {"d": {"b": 2, "a": 3, "c": 1}}),
    ("filter_tojson", "{{ v|tojson }}", {"v": {"s": "é \"q\" \\ \n\t\u0001<>&'", "n": [1, 2.5, -0.0, 1e20, None, True], "e": {}, "l": []}}),
    ("filter_tojson_indent", "{{ v|tojson(indent=2) }}\n{{ v|tojson(indent=0) }}\n{{ v|tojson(sort_keys=true) }}\n{{ v|tojson(separators=(',', ':')) }}\n{{ v|tojson(ensure_ascii=true) }}", {"v": {"z": [1, {"y": "ü🌍"}], "a": None, "m": []}}),
    ("filter_tojson_scalars", "{{ 'x'|tojson }} {{ 1|tojson }} {{ 1.0|tojson }} {{ none|tojson }} {{ (1, 2)|tojson }} {{ {1: 'a', true: 'b'}|tojson }}", {}),
    ("filter_numbers", "{{ -3|abs }} {{ -2.5|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(method='ceil') }} {{ [3, 1, 2]|sum }} {{ [1.5, 2]|sum(start=1) }} {{ [3, 1, 2]|max }} {{ [3, 1, 2]|min }}", {}),
    ("filter_sort_unique_reverse", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [3, 1, 2]|sort(reverse=true) }} {{ users|sort(attribute='age')|map(attribute='name')|join }} {{ ['a', 'A', 'b', 'a']|unique|list }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }}", {"users": [{"name": "x", "age": 3}, {"name": "y", "age": 1}, {"name": "z", "age": 2}]}),
    ("filter_escape_safe_attr", "{{ '<a href=\"x\">&\\'</a>'|escape }} {{ '<b>'|e }} {{ '<b>'|safe }} {{ ns|attr('v') }} {{ {'k': 1}|attr('k') is defined }}", {"ns": None}),
    ("filter_chain_precedence", "{{ 'a' + '  b  '|trim + 'c' }} {{ -1|abs }} {{ 'x'|upper ~ 'y' }} {{ [1, 2, 3]|length > 2 }}", {}),
    # Tests.
    ("tests_types", "{{ 'a' is string }} {{ 1 is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is integer }} {{ true is boolean }} {{ none is none }} {{ {} is mapping }} {{ [] is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ {} is iterable }} {{ 1 is iterable }} {{ undefined_thing is iterable }}", {}),
    ("tests_defined", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ x.a is defined }} {{ x is not none }} {{ n is none }} {{ n is defined }}", {"x": {"a": 1}, "n": None}),
    ("tests_values", "{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'a' is in 'abc' }} {{ 1 is eq 1 }} {{ 1 is ne 2 }} {{ 1 is lt 2 }} {{ 2 is ge 2 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ false is sameas false }} {{ none is sameas none }} {{ true is true }} {{ 1 is true }} {{ f is callable }}", {"f": None}),
    ("tests_negated_and_precedence", "{{ not x is defined }} {{ x is not defined }} {{ x is defined and x > 1 }} {{ 'a' is string or false }}", {"x": 3}),
    # Methods Python strings and dicts have.
    ("string_methods", "{{ '  a b  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  a '.lstrip() }}|{{ ' a  '.rstrip() }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b\\tc '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ 'a\\nb\\r\\nc'.splitlines() }}", {}),
    ("string_methods_2", "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'hello'.upper() }} {{ 'HeLLo'.lower() }} {{ \"they're bill's friends\".title() }} {{ 'hELLO'.capitalize() }} {{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }} {{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ '  '.isspace() }}", {}),
    ("think_split", "{% set c = m.split('</think>')[-1].lstrip('\\n') %}{% set r = m.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}[{{ r }}][{{ c }}]", {"m": "<think>\nreasoning here\n</think>\n\nthe answer"}),
    ("dict_methods", "{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", {"d": {"x": 1, "y": [2]}}),
    ("list_methods", "{{ [1, 2, 1].count(1) }} {{ ['a', 'b'].index('b') }}", {}),
    # Globals.
    ("range", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }}", {}),
    ("dict_global", "{{ dict(a=1, b='x') }} {{ dict({'k': 2}, j=3) }}", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M:%S %A %j %%') }}", {}),
    ("raise_exception_message", "{% if true %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}", {}),
    ("raise_exception_in_loop", "{% for m in msgs %}{% if m.role == 'assistant' %}{{ raise_exception('Role ' ~ m.role ~ ' not allowed at ' ~ loop.index0) }}{% endif %}{{ m.content }}{% endfor %}", {"msgs": MSGS}),
    # Undefined values and runtime errors.
    ("undefined_prints_empty", "[{{ nothing }}][{{ nothing|upper }}][{{ m.nope }}][{{ xs[9] }}]", {"m": {}, "xs": []}),
    ("error_attribute_of_undefined", "{{ nothing.attr }}", {}),
    ("error_add_undefined", "{{ nothing + 1 }}", {}),
    ("error_concat_str_int", "{{ 'a' + 1 }}", {}),
    ("error_compare_types", "{{ 1 < 'a' }}", {}),
    ("error_divide_by_zero", "{{ 1 / 0 }}", {}),
    ("error_call_undefined", "{{ nothing() }}", {}),
    ("error_iterate_int", "{% for x in 5 %}{% endfor %}", {}),
    ("error_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("error_tojson_undefined", "{{ nothing|tojson }}", {}),
    ("error_range_too_big", "{{ range(200000)|length }}", {}),
    ("error_set_non_namespace", "{% set x = 1 %}{% set x.a = 2 %}", {}),
    ("error_length_of_int", "{{ 5|length }}", {}),
]


def whitespace_fuzz(count, seed=1234):
    """Random nestings of text, tags, comments and outputs with every whitespace-control marker."""
    rng = random.Random(seed)
    texts = ["a", " ", "  ", "\n", "\t", "\n  ", "x\n", " \n ", "\u00a0", "\r\n", "\n\n", "b ", "\u3000", "\x0b"]

    def mark():
        return rng.choice(["", "", "-", "+"])

    def tag(body):
        kind = rng.random()
        if kind < 0.4:
            return "{%" + mark() + " if true " + mark() + "%}" + body + "{%" + mark() + " endif " + mark() + "%}"
        if kind < 0.7:
            return "{%" + mark() + " for i in [1, 2] " + mark() + "%}" + body + "{%" + mark() + " endfor " + mark() + "%}"
        return "{%" + mark() + " set x " + mark() + "%}" + body + "{%" + mark() + " endset " + mark() + "%}[{{ x }}]"

    def piece(depth):
        kind = rng.random()
        if kind < 0.4 or depth > 2:
            return rng.choice(texts)
        if kind < 0.55:
            return "{{" + rng.choice(["", "-"]) + " 'v' " + rng.choice(["", "-"]) + "}}"
        if kind < 0.65:
            return "{#" + mark() + " c " + mark() + "#}"
        return tag("".join(piece(depth + 1) for _ in range(rng.randint(0, 5))))

    return [(f"whitespace_fuzz_{i}", "".join(piece(0) for _ in range(rng.randint(1, 6))), {}) for i in range(count)]


def jinja_cases():
    cases = []
    for name, source, variables in JINJA_CASES + whitespace_fuzz(60):
        case = {"name": name, "template": source, "variables": variables}
        try:
            case["expected"] = chat_template_utils._compile_jinja_template(source).render(**json.loads(json.dumps(variables)))
        except Exception as e:  # noqa: BLE001
            case["error"] = error_record(e)
        cases.append(case)
    return cases


def main():
    header = {
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "now": FIXED_NOW.isoformat(),
        "now_unix_utc": calendar.timegm(FIXED_NOW.timetuple()),
    }
    templates = {**header, "tools": TOOLS, "conversations": CONVERSATIONS, "cases": template_cases()}
    interpreter = {**header, "cases": jinja_cases()}
    for name, data in (("cases.json", templates), ("jinja-cases.json", interpreter)):
        path = FIXTURES / name
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path.relative_to(ROOT)}: {len(data['cases'])} cases")


if __name__ == "__main__":
    main()
